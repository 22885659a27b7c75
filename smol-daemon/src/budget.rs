//! Budgets for connections that have not authenticated yet: how many may
//! be in their handshake at once (`--max-handshakes`) and how many of those
//! from one source (`--max-handshakes-per-ip`; an IPv6 source is its /64,
//! what one host is usually given). Live sessions are counted apart
//! (`--max-sessions`, `daemon::Slot`), so one host's flood of silent
//! connections cannot keep another host's viewer out. A [`Pass`] gives its
//! place back when dropped.
//!
//! Behind a trusted load balancer (`--trusted-proxy`) the socket's peer is
//! the balancer, not the viewer: such a connection takes a place of the
//! whole budget at the accept ([`Budget::take_unsourced`]) and is charged to
//! its source only once the client is known (the entry machine settled it,
//! or the control channel read the PROXY header: [`Pass::charge`]), so one
//! balancer is not one source. A Unix socket's control connection has no
//! source and is counted in the whole only.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;

/// The budget one kind of connection shares.
#[derive(Debug)]
pub struct Budget {
    max: usize,
    max_per_source: usize,
    held: Cell<usize>,
    per_source: RefCell<HashMap<IpAddr, usize>>,
}

/// Why a connection got no pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every pass is held.
    All(usize),
    /// This source holds its share.
    Source(usize),
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Full::All(n) => write!(f, "{n} handshakes already in progress (--max-handshakes)"),
            Full::Source(n) => write!(
                f,
                "{n} handshakes from this address already in progress (--max-handshakes-per-ip)"
            ),
        }
    }
}

/// A place in a [`Budget`], given back on drop.
#[derive(Debug)]
pub struct Pass {
    budget: Rc<Budget>,
    /// The source it is counted for, once known.
    source: Option<IpAddr>,
}

impl Drop for Pass {
    fn drop(&mut self) {
        let b = &self.budget;
        b.held.set(b.held.get().saturating_sub(1));
        self.uncharge();
    }
}

impl Pass {
    /// Counts this place for the source of `client` too (its share of
    /// `--max-handshakes-per-ip`), instead of any it was counted for; or
    /// why not (the pass then counts for no source).
    pub fn charge(&mut self, client: IpAddr) -> Result<(), Full> {
        let source = source_of(client);
        if self.source == Some(source) {
            return Ok(());
        }
        self.uncharge();
        let b = &self.budget;
        let mut per = b.per_source.borrow_mut();
        let n = per.entry(source).or_insert(0);
        if *n >= b.max_per_source {
            return Err(Full::Source(b.max_per_source));
        }
        *n += 1;
        self.source = Some(source);
        Ok(())
    }

    fn uncharge(&mut self) {
        let Some(source) = self.source.take() else {
            return;
        };
        let mut per = self.budget.per_source.borrow_mut();
        if let Some(n) = per.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                per.remove(&source);
            }
        }
        // A flood's map is not kept at its peak.
        if per.is_empty() && per.capacity() > 64 {
            per.shrink_to(64);
        }
    }
}

/// Whom a source address is counted as: itself, or its /64 for IPv6.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Budget {
    /// A budget of `max` places, at most `max_per_source` for one source.
    pub fn new(max: usize, max_per_source: usize) -> Rc<Budget> {
        Rc::new(Budget {
            max,
            max_per_source,
            held: Cell::new(0),
            per_source: RefCell::new(HashMap::new()),
        })
    }

    /// A place for a connection from `peer`, or why not.
    pub fn take(self: &Rc<Self>, peer: IpAddr) -> Result<Pass, Full> {
        let mut pass = self.take_unsourced()?;
        // On failure the pass is dropped: its place goes back.
        pass.charge(peer)?;
        Ok(pass)
    }

    /// A place of the whole budget for a connection whose source is not
    /// known yet (a trusted proxy's): [`Pass::charge`] it once it is.
    pub fn take_unsourced(self: &Rc<Self>) -> Result<Pass, Full> {
        if self.held.get() >= self.max {
            return Err(Full::All(self.max));
        }
        self.held.set(self.held.get() + 1);
        Ok(Pass {
            budget: self.clone(),
            source: None,
        })
    }

    /// Places held now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_cannot_take_another_sources_places() {
        let b = Budget::new(4, 2);
        let a1 = b.take(ip("192.0.2.1")).unwrap();
        let _a2 = b.take(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(b.take(ip("192.0.2.1")).unwrap_err(), Full::Source(2));
        let _b1 = b.take(ip("192.0.2.2")).unwrap();
        let _c1 = b.take(ip("2001:db8::1")).unwrap();
        // One /64 is one source; and the whole budget is full.
        assert_eq!(b.take(ip("2001:db8::2")).unwrap_err(), Full::All(4));
        drop(a1);
        assert_eq!(b.held(), 3);
        assert!(b.take(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn a_proxied_connection_is_charged_to_its_client() {
        let b = Budget::new(4, 1);
        let mut via = b.take_unsourced().unwrap();
        let mut via2 = b.take_unsourced().unwrap();
        assert_eq!(b.held(), 2);
        assert!(b.per_source.borrow().is_empty(), "no source yet");
        via.charge(ip("192.0.2.7")).unwrap();
        assert_eq!(via2.charge(ip("192.0.2.7")), Err(Full::Source(1)));
        via2.charge(ip("192.0.2.8")).unwrap();
        // The balancer itself holds no share.
        let direct = b.take(ip("127.0.0.1")).unwrap();
        assert_eq!(b.take(ip("192.0.2.7")).unwrap_err(), Full::Source(1));
        drop((via, via2, direct));
        assert_eq!(b.held(), 0);
        assert!(b.per_source.borrow().is_empty());
    }

    #[test]
    fn an_unsourced_place_refused_its_source_gives_its_place_back() {
        let b = Budget::new(3, 1);
        let mut u1 = b.take_unsourced().unwrap();
        let mut u2 = b.take_unsourced().unwrap();
        let _a = b.take(ip("192.0.2.1")).unwrap();
        assert_eq!(b.take_unsourced().unwrap_err(), Full::All(3));
        // The source already holds its share: dropped, the place goes back.
        assert_eq!(u1.charge(ip("192.0.2.1")).unwrap_err(), Full::Source(1));
        drop(u1);
        assert_eq!(b.held(), 2);
        u2.charge(ip("192.0.2.2")).unwrap();
        assert_eq!(b.held(), 2);
        drop(u2);
        assert_eq!(b.held(), 1);
        drop(b.take_unsourced().unwrap());
        assert_eq!(b.held(), 1);
    }

    #[test]
    fn passes_give_their_places_back() {
        let b = Budget::new(100, 100);
        let passes: Vec<Pass> = (0..100)
            .map(|i| b.take(IpAddr::from([192, 0, 2, i as u8])).unwrap())
            .collect();
        assert_eq!(b.held(), 100);
        drop(passes);
        assert_eq!(b.held(), 0);
        assert!(b.per_source.borrow().is_empty());
    }
}
