//! Who may use the control channel, and how many at once (issue 15):
//! `--control-allow` (the addresses a TCP client may come from),
//! `--max-control-connections` and `--max-control-connections-per-ip` (a
//! [`Budget`], an IPv6 /64 being one source), `--trusted-proxy` (whose
//! connections may start with a PROXY header naming the client: the client
//! is then the one checked and counted), and `--control-users` (the users
//! file, re-read on SIGHUP). Refusals are logged once per burst
//! ([`crate::refusals::Refusals`]), so a flood does not flood the log.
//! What it is not: the reading of a request (`control.rs`) or the users
//! file format (`users.rs`).

use crate::budget::{Budget, Full, Pass};
use crate::refusals::Refusals;
use crate::users::Users;
use std::cell::RefCell;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use vncap_core::cidr::CidrList;

/// The control channel's access settings and state.
pub struct Access {
    allow: CidrList,
    trusted_proxy: CidrList,
    budget: Rc<Budget>,
    /// `--control-users`: the file and what it held when last read.
    users: RefCell<Option<(PathBuf, Rc<Users>)>>,
    /// Refusals logged once per burst.
    pub refusals: Rc<Refusals>,
}

/// A control connection's place in the budget, held while it lives: a
/// [`Pass`] counted against its source, or in the whole only (a Unix
/// socket's client).
pub type Place = Pass;

/// What to do with a TCP connection just accepted.
#[derive(Debug)]
pub enum Admit {
    /// Serve it; its client is the peer.
    Serve(Place),
    /// From a trusted proxy: read its PROXY header first, then
    /// [`Access::behind_proxy`] with the client it names.
    ReadProxyHeader(Pass),
}

impl Access {
    /// Access as configured, without users (see [`Access::set_users`]).
    pub fn new(
        allow: CidrList,
        trusted_proxy: CidrList,
        max: usize,
        max_per_source: usize,
    ) -> Access {
        Access {
            allow,
            trusted_proxy,
            budget: Budget::new(max, max_per_source),
            users: RefCell::new(None),
            refusals: Rc::new(Refusals::new("control")),
        }
    }

    /// `--control-users`: from now on every request needs credentials
    /// these `users` know; `path` is read again on SIGHUP.
    pub fn set_users(&self, path: PathBuf, users: Users) {
        *self.users.borrow_mut() = Some((path, Rc::new(users)));
    }

    /// Decides on a TCP connection from `peer` before a byte is read: a
    /// trusted proxy's goes on to its header; another's must be allowed and
    /// within the budget. `Err` is why not (to log through
    /// [`crate::refusals::Refusals`]; the connection is closed unread).
    pub fn at_accept(&self, peer: IpAddr) -> Result<Admit, String> {
        let peer = peer.to_canonical();
        if self.trusted_proxy.contains(peer) {
            return self
                .budget
                .take_unsourced()
                .map(Admit::ReadProxyHeader)
                .map_err(full);
        }
        self.allowed(peer)?;
        self.budget.take(peer).map(Admit::Serve).map_err(full)
    }

    /// The client a trusted proxy's header named: allowed, and counted
    /// against it.
    pub fn behind_proxy(&self, mut place: Pass, client: IpAddr) -> Result<Place, String> {
        let client = client.to_canonical();
        self.allowed(client)?;
        // On failure `place` is dropped: its place goes back.
        place.charge(client).map_err(full)?;
        Ok(place)
    }

    /// A Unix socket's connection: no address to check, counted in the
    /// whole.
    pub fn unix(&self) -> Result<Place, String> {
        self.budget.take_unsourced().map_err(full)
    }

    fn allowed(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow.contains(ip) {
            Ok(())
        } else {
            Err("address not in --control-allow".into())
        }
    }

    /// The users file, when `--control-users` is set.
    pub fn users(&self) -> Option<Rc<Users>> {
        self.users.borrow().as_ref().map(|(_, u)| u.clone())
    }

    /// SIGHUP: reads `--control-users` again; a file that does not load
    /// keeps the old users (logged, naming the file and the error).
    pub fn reload_users(&self) {
        let Some(path) = self.users.borrow().as_ref().map(|(p, _)| p.clone()) else {
            return;
        };
        match Users::load(&path) {
            Ok(u) => {
                log::info!("reloaded {} control users from {}", u.len(), path.display());
                *self.users.borrow_mut() = Some((path, Rc::new(u)));
            }
            Err(e) => log::warn!("SIGHUP: kept the old control users: {e}"),
        }
    }
}

/// A full budget, in the control channel's option names.
fn full(f: Full) -> String {
    match f {
        Full::All(n) => format!("{n} control connections already open (--max-control-connections)"),
        Full::Source(n) => format!(
            "{n} control connections from this address already open (--max-control-connections-per-ip)"
        ),
    }
}
