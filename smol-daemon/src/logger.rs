//! A minimal `log` backend: one line per record on stderr, with the level and
//! the module. Never given secrets: callers log fingerprints, not passwords.
//! Outside the journal each line starts with a UTC timestamp and
//! `vncap[PID]`; when stderr is the journal (systemd sets `JOURNAL_STREAM`)
//! it has both already, so lines start with the level.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct Stderr;

/// Whether stderr goes to the journal (set once, by [`init`]).
static JOURNAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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
            let prefix = if JOURNAL.load(std::sync::atomic::Ordering::Relaxed) {
                String::new()
            } else {
                format!("{} vncap[{}] ", timestamp(), std::process::id())
            };
            let sep = if target.is_empty() { "" } else { " " };
            let line = format!(
                "{prefix}{}{sep}{target}: {}\n",
                record.level(),
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
    JOURNAL.store(
        std::env::var_os("JOURNAL_STREAM").is_some(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Now in UTC, as RFC 3339 with milliseconds (`2026-12-01T23:59:00.123Z`).
fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, ms) = (now.as_secs(), now.subsec_millis());
    let (y, m, d) = civil(secs / 86400);
    let t = secs % 86400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// The proleptic Gregorian date of a day number since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_become_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(11_016), (2000, 2, 29));
        assert_eq!(super::civil(20_788), (2026, 12, 1));
    }
}
