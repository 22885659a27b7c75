//! A minimal `log` backend: one line per record on stderr, with the level and
//! the module. Never given secrets: callers log fingerprints, not passwords.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if self.enabled(record.metadata()) {
            let target = record
                .target()
                .strip_prefix("vncap")
                .unwrap_or(record.target());
            let target = target.trim_start_matches("::").trim_start_matches('_');
            // One write per line, so concurrent lines never interleave.
            let line = format!(
                "vncap[{}] {} {}: {}\n",
                std::process::id(),
                record.level(),
                target,
                record.args()
            );
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Installs the stderr logger at `level` (once per process; later calls only
/// change the level).
pub fn init(level: LevelFilter) {
    static LOGGER: Stderr = Stderr;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
