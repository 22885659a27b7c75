//! The daemon's shared state and its one owner of the ticket table: issuing a
//! ticket (and opening its entry listener before the reply goes out), closing
//! listeners when the core says a ticket went, and the single expiry timer.
//! Everything runs on one thread (a smol `LocalExecutor`), so the table is a
//! `RefCell` borrowed briefly and never across an `.await`.

use crate::clock::Clock;
use crate::entry;
use smol::channel::{Receiver, Sender};
use smol::net::TcpListener;
use smol::{LocalExecutor, Task};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;
use vncap_core::control::Console;
use vncap_core::ticket::{self, Event, Issued, Table};

/// Most tickets issued and not yet used at once (the table's fixed capacity).
pub const MAX_TICKETS: usize = 1024;

/// The ticket table, in storage allocated once on the heap, slot by slot.
pub type Tickets = Table<Box<[ticket::Slot]>>;

/// Settings every task reads, fixed at start (but for the TLS certificate).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where entry listeners bind.
    pub listen: IpAddr,
    /// Seconds a viewer has to authenticate.
    pub handshake_timeout: Duration,
    /// How backends are reached.
    pub connect: crate::backend::ConnectPolicy,
    /// Most concurrent viewer connections.
    pub max_sessions: usize,
    /// Relay buffer per direction, bytes.
    pub relay_buffer: usize,
    /// The Flash policy served on entry points.
    pub policy_domain: String,
    /// The ports the Flash policy allows.
    pub policy_ports: (u16, u16),
    /// TLS on entry points, when configured (its certificate is replaced on
    /// SIGHUP).
    pub tls: Option<crate::tls::Acceptor>,
    /// `Origin` values a WebSocket viewer must send (empty: any).
    pub allowed_origins: Vec<String>,
    /// Longest control request.
    pub max_request_bytes: usize,
    /// Longest HTTP request header block (WebSocket upgrade).
    pub max_header_bytes: usize,
    /// Longest WebSocket message from a viewer.
    pub max_message_bytes: u64,
    /// `--record`: the directory every connection's RFB bytes go to.
    pub record: Option<std::path::PathBuf>,
}

/// The daemon: settings, the clock, the ticket table and the entry listeners.
pub struct Daemon {
    /// Settings.
    pub settings: Settings,
    /// The one clock.
    pub clock: Clock,
    /// The executor every task runs on.
    pub ex: Rc<LocalExecutor<'static>>,
    tickets: RefCell<Tickets>,
    listeners: RefCell<HashMap<u16, Task<()>>>,
    timer_wake: (Sender<()>, Receiver<()>),
    connections: Cell<usize>,
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
        Ok(Rc::new(Daemon {
            settings,
            clock: Clock::new(),
            ex,
            tickets: RefCell::new(table),
            listeners: RefCell::new(HashMap::new()),
            timer_wake: smol::channel::bounded(1),
            connections: Cell::new(0),
        }))
    }

    /// Takes a connection slot, or `None` at `--max-sessions`.
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

    /// Issues a ticket for `req` and opens its entry listener; the reply may
    /// go out once this returns `Ok`.
    pub async fn issue(self: &Rc<Self>, req: &Console) -> Result<Issued, String> {
        let mut random = [0u8; ticket::RANDOM_LEN];
        getrandom::fill(&mut random).map_err(|e| format!("no randomness: {e}"))?;
        // A pool port may be taken by another program: try a few.
        for _ in 0..8 {
            let issued = self
                .with_tickets(|t| t.issue(self.clock.now(), req, &random))
                .map_err(|e| e.reason().to_string())?;
            if !issued.own_port {
                self.wake_timer();
                return Ok(issued);
            }
            match TcpListener::bind(SocketAddr::new(self.settings.listen, issued.port)).await {
                Ok(listener) => {
                    let task = self.ex.spawn(entry::accept_loop(
                        self.clone(),
                        issued.handle,
                        issued.port,
                        listener,
                    ));
                    self.listeners.borrow_mut().insert(issued.port, task);
                    self.wake_timer();
                    return Ok(issued);
                }
                Err(e) => {
                    log::warn!("entry port {}: {e}; trying another", issued.port);
                    self.with_tickets(|t| t.withdraw(issued.handle)).ok();
                }
            }
        }
        Err("no entry port could be opened".into())
    }

    fn wake_timer(&self) {
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
