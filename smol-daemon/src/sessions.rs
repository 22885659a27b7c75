//! The session registry: every live session (relaying, after its backend
//! login) by id — its ticket's id — with what `list` shows, a way to end it
//! (`kill`, the drain at shutdown), and the daemon's counters (`stats`,
//! `/metrics`). Sessions register themselves (`session.rs`) and leave on
//! drop; nothing here touches a socket. One thread: `RefCell`s borrowed
//! briefly, never across an `.await`.

use crate::meter::Meter;
use smol::channel::{Receiver, Sender};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use vncap_core::control::{Door, Layers, Logins, SessionRow, Stats};

/// Why vncap itself ended a session (the viewer and the backend end theirs
/// by closing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `kill` on the control channel.
    Killed,
    /// Shutdown, at the drain's end (or at once).
    Restart,
    /// `--idle-timeout`: nothing moved either way.
    Idle,
    /// `--max-session-secs`.
    MaxLife,
    /// A WebSocket viewer sent nothing after a ping (`--ping-timeout`).
    NoAnswer,
}

impl Ending {
    /// Who ended it, for the log.
    pub fn who(self) -> &'static str {
        match self {
            Ending::Killed => "operator",
            Ending::Restart => "restart",
            Ending::Idle | Ending::MaxLife | Ending::NoAnswer => "proxy",
        }
    }

    /// Why, for the log.
    pub fn reason(self) -> &'static str {
        match self {
            Ending::Killed => "killed over the control channel",
            Ending::Restart => "the proxy is restarting",
            Ending::Idle => "idle timeout",
            Ending::MaxLife => "session time limit reached",
            Ending::NoAnswer => vncap_core::ws::connection::NO_ANSWER,
        }
    }

    /// Why, as a WebSocket viewer's close frame says it.
    pub fn close_reason(self) -> &'static str {
        match self {
            Ending::Killed => "session ended by the operator",
            other => other.reason(),
        }
    }

    /// The WebSocket close code (RFC 6455 7.4.1): 1001 going away for a
    /// restart, 1011 for a viewer that stopped answering, else 1000.
    pub fn close_code(self) -> u16 {
        match self {
            Ending::Restart => 1001,
            Ending::NoAnswer => vncap_core::ws::connection::NO_ANSWER_CODE,
            _ => 1000,
        }
    }
}

/// The result of a viewer's login, as `vncap_logins_total` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Authenticated, backend logged in: a session.
    Ok,
    /// The viewer's password did not match.
    WrongPassword,
    /// The backend could not be reached.
    BackendUnreachable,
    /// The backend refused vncap's login (or its TLS).
    BackendRefused,
    /// The viewer may not have a console (no ticket, wrong address, ...).
    Refused,
}

/// What is known of a live session.
#[derive(Debug, Clone)]
pub struct Info {
    /// Its ticket's backend host.
    pub backend_host: String,
    /// Its ticket's backend port.
    pub backend_port: u16,
    /// The viewer's address.
    pub viewer: SocketAddr,
    /// Where the viewer came in.
    pub door: Door,
    /// What the viewer came over.
    pub transport: Layers,
    /// When it started, in Unix seconds.
    pub started: u64,
}

/// A live session.
pub struct Live {
    info: Info,
    meter: Rc<Meter>,
    end: Sender<Ending>,
}

/// Counters that outlive sessions.
#[derive(Debug, Default)]
struct Counters {
    logins: Cell<Logins>,
    /// Bytes of sessions that ended.
    bytes_to_viewer: Cell<u64>,
    bytes_to_backend: Cell<u64>,
    control_ok: Cell<u64>,
    control_failed: Cell<u64>,
}

/// The live sessions and the counters.
pub struct Registry {
    live: RefCell<BTreeMap<u64, Live>>,
    counters: Counters,
    /// Signalled when a session leaves.
    changed: (Sender<()>, Receiver<()>),
    shutting_down: Cell<bool>,
}

/// A session's place in the registry; leaves it when dropped.
pub struct Registered {
    reg: Rc<Registry>,
    id: u64,
    /// The session's meter.
    pub meter: Rc<Meter>,
    /// Receives why vncap ends the session, if it does.
    pub ended: Receiver<Ending>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let c = &self.reg.counters;
        c.bytes_to_viewer
            .set(c.bytes_to_viewer.get() + self.meter.to_viewer());
        c.bytes_to_backend
            .set(c.bytes_to_backend.get() + self.meter.to_backend());
        self.reg.live.borrow_mut().remove(&self.id);
        let _ = self.reg.changed.0.try_send(());
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Rc<Registry> {
        Rc::new(Registry {
            live: RefCell::new(BTreeMap::new()),
            counters: Counters::default(),
            changed: smol::channel::bounded(1),
            shutting_down: Cell::new(false),
        })
    }

    /// Registers session `id`.
    pub fn register(self: &Rc<Self>, id: u64, info: Info, meter: Rc<Meter>) -> Registered {
        let (end, ended) = smol::channel::bounded(1);
        self.live.borrow_mut().insert(
            id,
            Live {
                info,
                meter: meter.clone(),
                end,
            },
        );
        Registered {
            reg: self.clone(),
            id,
            meter,
            ended,
        }
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.live.borrow().len()
    }

    /// The live sessions, for [`rows`] (borrowed briefly).
    pub fn live(&self) -> std::cell::Ref<'_, BTreeMap<u64, Live>> {
        self.live.borrow()
    }

    /// Ends session `id`; whether it was live.
    pub fn kill(&self, id: u64, why: Ending) -> bool {
        self.live
            .borrow()
            .get(&id)
            .is_some_and(|l| l.end.try_send(why).is_ok())
    }

    /// Ends every session of backend `host:port`; how many.
    pub fn kill_backend(&self, host: &str, port: u16, why: Ending) -> usize {
        self.live
            .borrow()
            .values()
            .filter(|l| l.info.backend_host == host && l.info.backend_port == port)
            .filter(|l| l.end.try_send(why).is_ok())
            .count()
    }

    /// Ends every session; how many.
    pub fn kill_all(&self, why: Ending) -> usize {
        self.live
            .borrow()
            .values()
            .filter(|l| l.end.try_send(why).is_ok())
            .count()
    }

    /// Waits until no session is live.
    pub async fn wait_empty(&self) {
        while self.len() > 0 {
            let _ = self.changed.1.recv().await;
        }
    }

    /// Counts one login.
    pub fn count_login(&self, result: Login) {
        let mut l = self.counters.logins.get();
        let c = match result {
            Login::Ok => &mut l.ok,
            Login::WrongPassword => &mut l.wrong_password,
            Login::BackendUnreachable => &mut l.backend_unreachable,
            Login::BackendRefused => &mut l.backend_refused,
            Login::Refused => &mut l.refused,
        };
        *c += 1;
        self.counters.logins.set(l);
    }

    /// Counts one control request, answered or not.
    pub fn count_control(&self, ok: bool) {
        let c = if ok {
            &self.counters.control_ok
        } else {
            &self.counters.control_failed
        };
        c.set(c.get() + 1);
    }

    /// The counters, with the ticket table's (pending, issued, expired).
    pub fn stats(&self, (pending, issued, expired): (usize, u64, u64)) -> Stats {
        let c = &self.counters;
        let live = self.live.borrow();
        let (v, b) = live.values().fold((0, 0), |(v, b), l| {
            (v + l.meter.to_viewer(), b + l.meter.to_backend())
        });
        Stats {
            sessions_active: live.len() as u64,
            tickets_pending: pending as u64,
            tickets_issued_total: issued,
            tickets_expired_total: expired,
            logins_total: c.logins.get(),
            bytes_to_viewer: c.bytes_to_viewer.get() + v,
            bytes_to_backend: c.bytes_to_backend.get() + b,
            control_ok: c.control_ok.get(),
            control_failed: c.control_failed.get(),
            // The refusals are the daemon's (`Daemon::stats`).
            ..Stats::default()
        }
    }

    /// From now on console requests are refused (`FAILED shutting down`).
    pub fn shut_down(&self) {
        self.shutting_down.set(true);
    }

    /// Whether the daemon is shutting down.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.get()
    }
}

/// The rows `list` shows (iterable twice: `List` sizes, then emits).
pub fn rows(live: &BTreeMap<u64, Live>) -> impl Iterator<Item = SessionRow<'_>> + Clone {
    live.iter().map(|(&id, l)| row(id, l))
}

fn row(id: u64, l: &Live) -> SessionRow<'_> {
    SessionRow {
        id,
        backend_host: &l.info.backend_host,
        backend_port: l.info.backend_port,
        viewer: l.info.viewer,
        door: l.info.door,
        transport: l.info.transport,
        started: l.info.started,
        bytes_to_viewer: l.meter.to_viewer(),
        bytes_to_backend: l.meter.to_backend(),
    }
}
