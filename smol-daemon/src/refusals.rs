//! Refused connections, logged once per burst, so that a flood does not
//! flood the log: the first refusal is logged, the next ones within
//! [`QUIET`] are counted, and one line at the end of that time says how
//! many there were and names the last. The control channel
//! (`--max-control-connections`, `--control-allow`) and the entry points
//! (`--max-handshakes`, `--max-handshakes-per-ip`) each have one.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use smol::LocalExecutor;

/// How long refusals after a logged one are counted instead of logged.
pub const QUIET: Duration = Duration::from_secs(10);

/// Refused connections of one kind, logged once per burst.
#[derive(Debug)]
pub struct Refusals {
    /// What refuses, for the count's line (`control`, `entry`).
    kind: &'static str,
    quiet: Cell<bool>,
    counted: Cell<u64>,
    last: RefCell<String>,
    /// Every refusal since start (`vncap_connections_refused_total`).
    total: Cell<u64>,
}

impl Refusals {
    /// No refusal yet; `kind` names them in the count's line.
    pub fn new(kind: &'static str) -> Refusals {
        Refusals {
            kind,
            quiet: Cell::new(false),
            counted: Cell::new(0),
            last: RefCell::new(String::new()),
            total: Cell::new(0),
        }
    }

    /// How many refusals were noted since start.
    pub fn total(&self) -> u64 {
        self.total.get()
    }

    /// Logs (or counts) `what` (`control PEER: closed: WHY`, `PEER on
    /// port N: refused: WHY`).
    pub fn note(self: &Rc<Self>, ex: &LocalExecutor<'static>, what: String) {
        self.total.set(self.total.get() + 1);
        if self.quiet.get() {
            self.counted.set(self.counted.get() + 1);
            *self.last.borrow_mut() = what;
            return;
        }
        log::warn!(
            "{what} (further refusals for {}s are counted, not logged)",
            QUIET.as_secs()
        );
        self.quiet.set(true);
        let me = self.clone();
        ex.spawn(async move {
            smol::Timer::after(QUIET).await;
            let n = me.counted.replace(0);
            if n > 0 {
                log::warn!(
                    "{}: {n} more connections refused in {}s (the last: {})",
                    me.kind,
                    QUIET.as_secs(),
                    me.last.borrow()
                );
            }
            me.quiet.set(false);
        })
        .detach();
    }
}
