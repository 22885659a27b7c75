//! Budgets for connections that have not authenticated yet: how many may
//! be in their handshake at once (`--max-handshakes`) and how many of those
//! from one source (`--max-handshakes-per-ip`; an IPv6 source is its /64,
//! what one host is usually given). Live sessions are counted apart
//! (`--max-sessions`, `daemon::Slot`), so one host's flood of silent
//! connections cannot keep another host's viewer out. A [`Pass`] gives its
//! place back when dropped.

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
    source: IpAddr,
}

impl Drop for Pass {
    fn drop(&mut self) {
        let b = &self.budget;
        b.held.set(b.held.get().saturating_sub(1));
        let mut per = b.per_source.borrow_mut();
        if let Some(n) = per.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.source);
            }
        }
        // A flood's map is not kept at its peak.
        if per.is_empty() && per.capacity() > 64 {
            per.shrink_to(64);
        }
    }
}

/// A place in a [`Budget`]'s whole count, not yet in any source's; given
/// back on drop.
#[derive(Debug)]
pub struct Unattributed {
    budget: Rc<Budget>,
    /// Given back or turned into a [`Pass`]: the drop does nothing.
    moved: bool,
}

impl Unattributed {
    /// Counts this place against `peer` from now on, or gives it back if
    /// that source holds its share.
    pub fn attribute(mut self, peer: IpAddr) -> Result<Pass, Full> {
        self.moved = true;
        let budget = self.budget.clone();
        let source = source_of(peer);
        let mut per = budget.per_source.borrow_mut();
        let n = per.entry(source).or_insert(0);
        if *n >= budget.max_per_source {
            drop(per);
            budget.held.set(budget.held.get().saturating_sub(1));
            return Err(Full::Source(budget.max_per_source));
        }
        *n += 1;
        drop(per);
        Ok(Pass { budget, source })
    }
}

impl Drop for Unattributed {
    fn drop(&mut self) {
        if !self.moved {
            let b = &self.budget;
            b.held.set(b.held.get().saturating_sub(1));
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
        let source = source_of(peer);
        if self.held.get() >= self.max {
            return Err(Full::All(self.max));
        }
        let mut per = self.per_source.borrow_mut();
        let n = per.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Full::Source(self.max_per_source));
        }
        *n += 1;
        self.held.set(self.held.get() + 1);
        Ok(Pass {
            budget: self.clone(),
            source,
        })
    }

    /// A place counted in the whole budget only, for a connection whose
    /// source is not known yet (from a trusted proxy, before its PROXY
    /// header; or a Unix socket, which has none); [`Unattributed::attribute`]
    /// counts it against its source later.
    pub fn take_unattributed(self: &Rc<Self>) -> Result<Unattributed, Full> {
        if self.held.get() >= self.max {
            return Err(Full::All(self.max));
        }
        self.held.set(self.held.get() + 1);
        Ok(Unattributed {
            budget: self.clone(),
            moved: false,
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
    fn unattributed_places_count_in_the_whole_then_against_their_source() {
        let b = Budget::new(3, 1);
        let u1 = b.take_unattributed().unwrap();
        let u2 = b.take_unattributed().unwrap();
        let _a = b.take(ip("192.0.2.1")).unwrap();
        assert_eq!(b.take_unattributed().unwrap_err(), Full::All(3));
        // The source already holds its share: the place is given back.
        assert_eq!(u1.attribute(ip("192.0.2.1")).unwrap_err(), Full::Source(1));
        assert_eq!(b.held(), 2);
        let p = u2.attribute(ip("192.0.2.2")).unwrap();
        assert_eq!(b.held(), 2);
        drop(p);
        assert_eq!(b.held(), 1);
        drop(b.take_unattributed().unwrap());
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
