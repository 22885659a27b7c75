//! The daemon's shared state and its one owner of the ticket table: the
//! table, the entry listeners' tasks (closed when the core says a ticket
//! went), connection slots, and the single expiry timer. It knows nothing
//! of entry points or sessions (`entry.rs` opens the doors); it holds the
//! session registry (`sessions.rs`) for the control channel and the
//! drain.
//! Everything runs on one thread (a smol `LocalExecutor`), so the table is a
//! `RefCell` borrowed briefly and never across an `.await`.

use crate::clock::Clock;
use crate::settings::Settings;
use smol::channel::{Receiver, Sender};
use smol::{LocalExecutor, Task};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use vncap_core::ticket::{self, Event, Table};

/// Most tickets issued and not yet used at once (the table's fixed capacity).
pub const MAX_TICKETS: usize = 1024;

/// The ticket table, in storage allocated once on the heap, slot by slot.
pub type Tickets = Table<Box<[ticket::Slot]>>;

/// Signed tickets' nonces remembered until they expire (with
/// `--ticket-key`): a full memory refuses new signed tickets (503), so it
/// holds what many consoles a minute need (40 bytes each, 320 KiB, allocated only with a key).
pub const SIGNED_NONCES: usize = 8192;

/// The nonces of the signed tickets admitted here.
pub type Nonces = ticket::nonces::Nonces<Box<[ticket::nonces::Slot]>>;

/// The daemon: settings, the clock, the ticket table and the entry listeners.
pub struct Daemon {
    /// Settings.
    pub settings: Settings,
    /// The one clock.
    pub clock: Clock,
    /// The executor every task runs on.
    pub ex: Rc<LocalExecutor<'static>>,
    /// Live sessions and the counters (`sessions.rs`).
    pub sessions: Rc<crate::sessions::Registry>,
    tickets: RefCell<Tickets>,
    nonces: RefCell<Nonces>,
    listeners: RefCell<HashMap<u16, Task<()>>>,
    timer_wake: (Sender<()>, Receiver<()>),
    connections: Cell<usize>,
    /// Viewer connections before authentication (`budget.rs`).
    pub handshakes: Rc<crate::budget::Budget>,
    /// Viewer connections refused for the handshake budget, logged once
    /// per burst.
    pub handshake_refusals: Rc<crate::refusals::Refusals>,
    /// Who may use the control channel, how many at once (`access.rs`).
    pub control_access: crate::access::Access,
}

/// A viewer connection slot; frees itself when dropped.
pub struct Slot(Rc<Daemon>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
    }
}

impl Daemon {
    /// A daemon with an empty table.
    pub fn new(
        settings: Settings,
        table: ticket::Config,
        ex: Rc<LocalExecutor<'static>>,
    ) -> Result<Rc<Self>, ticket::Error> {
        let storage = (0..MAX_TICKETS).map(|_| ticket::Slot::new()).collect();
        let table = Table::new(table, storage)?;
        let remembered = if settings.ticket_keys.is_some() {
            SIGNED_NONCES
        } else {
            0
        };
        let nonces = (0..remembered)
            .map(|_| ticket::nonces::Slot::new())
            .collect();
        let handshakes =
            crate::budget::Budget::new(settings.max_handshakes, settings.max_handshakes_per_ip);
        let control_access = crate::access::Access::new(
            settings.control_allow.clone(),
            settings.trusted_proxy.clone(),
            settings.max_control_connections,
            settings.max_control_connections_per_ip,
        );
        Ok(Rc::new(Daemon {
            settings,
            clock: Clock::new(),
            ex,
            sessions: crate::sessions::Registry::new(),
            tickets: RefCell::new(table),
            nonces: RefCell::new(ticket::nonces::Nonces::new(nonces)),
            listeners: RefCell::new(HashMap::new()),
            timer_wake: smol::channel::bounded(1),
            connections: Cell::new(0),
            handshakes,
            handshake_refusals: Rc::new(crate::refusals::Refusals::new("entry")),
            control_access,
        }))
    }

    /// What a session needs of the daemon (`session.rs`).
    pub fn place(&self) -> crate::session::Place<'_> {
        crate::session::Place {
            settings: &self.settings,
            clock: &self.clock,
            sessions: &self.sessions,
            tickets: self,
        }
    }

    /// Takes a session slot (an authenticated viewer), or `None` at
    /// `--max-sessions`.
    pub fn connection_slot(self: &Rc<Self>) -> Option<Slot> {
        let n = self.connections.get();
        if n >= self.settings.max_sessions {
            return None;
        }
        self.connections.set(n + 1);
        Some(Slot(self.clone()))
    }

    /// Runs `f` on the table, then closes the listeners of tickets that went.
    pub fn with_tickets<T>(&self, f: impl FnOnce(&mut Tickets) -> T) -> T {
        let (out, gone) = {
            let mut table = self.tickets.borrow_mut();
            let out = f(&mut table);
            let mut gone = Vec::new();
            while let Some(ev) = table.poll_event() {
                gone.push(ev);
            }
            (out, gone)
        };
        for ev in gone {
            let (port, what) = match ev {
                Event::Expired { port, .. } => (port, "expired"),
                Event::Closed { port, .. } => (port, "closed"),
            };
            if let Some(port) = port {
                log::info!("ticket on port {port} {what}");
                self.close_listener(port);
            }
        }
        out
    }

    /// With `--ticket-key`: runs `f` on the table, the signed tickets'
    /// nonces and the keys now ([`Daemon::with_tickets`]); `None` without.
    pub fn with_signed<T>(
        &self,
        f: impl FnOnce(&mut Tickets, &mut Nonces, &ticket::signed::Keys) -> T,
    ) -> Option<T> {
        let keys = self.settings.ticket_keys.as_ref()?.keys();
        Some(self.with_tickets(|t| f(t, &mut self.nonces.borrow_mut(), &keys)))
    }

    /// The counters of `stats` and `/metrics`: the registry's, with the
    /// ticket table's.
    pub fn stats(&self) -> vncap_core::control::Stats {
        let t = self.tickets.borrow();
        let tickets = (t.len(), t.issued_total(), t.expired_total());
        drop(t);
        vncap_core::control::Stats {
            refused_control: self.control_access.refusals.total(),
            refused_entry: self.handshake_refusals.total(),
            ..self.sessions.stats(tickets)
        }
    }

    /// The longest ticket lifetime a request may ask for.
    pub fn max_ticket_timeout_ms(&self) -> u64 {
        self.tickets.borrow().config().max_timeout_ms
    }

    /// The single-port listener's port, when there is one.
    pub fn single_port(&self) -> Option<u16> {
        self.tickets.borrow().config().single_port
    }

    /// Stops accepting on an entry port (its task is cancelled, the socket closed).
    pub fn close_listener(&self, port: u16) {
        // Dropped outside the borrow: cancelling runs the task's destructors.
        let task = self.listeners.borrow_mut().remove(&port);
        drop(task);
    }

    /// Keeps `task`, the accept loop of a ticket's entry port, until the
    /// ticket goes (then the task is cancelled, which closes the socket).
    pub fn add_listener(&self, port: u16, task: Task<()>) {
        self.listeners.borrow_mut().insert(port, task);
    }

    /// Wakes the expiry loop (a new ticket may expire first).
    pub fn wake_timer(&self) {
        let _ = self.timer_wake.0.try_send(());
    }

    /// The expiry loop: sleeps until the table's next expiry (or a new
    /// ticket), then lets the table expire what is due.
    pub async fn expiry_loop(self: Rc<Self>) {
        loop {
            let next = self.tickets.borrow().poll_timeout();
            let wake = async {
                let _ = self.timer_wake.1.recv().await;
            };
            match next {
                Some(at) => {
                    futures_lite::future::or(
                        async {
                            smol::Timer::at(self.clock.deadline(at)).await;
                        },
                        wake,
                    )
                    .await
                }
                None => wake.await,
            }
            let now = self.clock.now();
            self.with_tickets(|t| t.handle_timeout(now));
        }
    }

    /// Closes every entry listener (at shutdown).
    pub fn close_all_listeners(&self) {
        let all: Vec<_> = self.listeners.borrow_mut().drain().collect();
        drop(all);
    }
}
