//! One-time use of signed tickets, per instance: the nonces this instance
//! has admitted, remembered until their tickets expire, and the admit step
//! that adopts an opened signed ticket into the local [`Table`].
//!
//! What it is: [`Nonces`], a fixed-capacity memory in caller-owned storage
//! (like the table's), and [`Table::admit_signed`]. What it is not: the
//! token format ([`super::signed`]), or a second set of ticket rules: an
//! opened ticket becomes a pending entry of the table, keyed by its nonce,
//! so admission, the attempt limit, the `client.ip` pin, the transport
//! check, expiry and one-time use are the table's. This memory only keeps a
//! used (or burnt) ticket from being adopted again.
//!
//! A nonce is forgotten only once its ticket has expired by both clocks
//! (the core's [`Instant`] and the wall clock). When the memory is full of
//! unexpired nonces, a new signed ticket is refused ([`signed::Error::Full`],
//! 503) rather than forgetting one early, which would let that ticket be
//! replayed. A wall clock stepped back after a nonce was forgotten can make
//! an expired ticket look valid again: slew the clock (NTP), do not step it.
//!
//! One-time use is per instance: N instances sharing a key each admit a
//! captured token once, so it can be used at most N times before it
//! expires (each time with its password).

use core::net::IpAddr;

use super::signed::{self, Keys, UnixTime, NONCE_LEN};
use super::{hex_token, Entry, Handle, Lookup, Table, Ticket};
use crate::time::Instant;

/// One nonce's room in the memory's storage ([`Nonces::new`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Slot {
    held: Option<Held>,
}

impl Slot {
    /// An empty slot.
    pub const fn new() -> Self {
        Slot { held: None }
    }
}

#[derive(Debug, Clone, Copy)]
struct Held {
    nonce: [u8; NONCE_LEN],
    /// The ticket's expiry here.
    until: Instant,
    /// Its expiry on the wall clock, ms.
    until_wall: u64,
}

impl Held {
    fn expired(&self, now: Instant, wall: UnixTime) -> bool {
        now >= self.until && wall.millis() >= self.until_wall
    }
}

/// The nonces of the signed tickets admitted here, until they expire: as
/// many as its storage has [`Slot`]s.
pub struct Nonces<S> {
    slots: S,
}

impl<S: AsRef<[Slot]> + AsMut<[Slot]>> core::fmt::Debug for Nonces<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Nonces")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<S: AsRef<[Slot]> + AsMut<[Slot]>> Nonces<S> {
    /// An empty memory in `storage` (cleared; its length is the capacity).
    pub fn new(mut storage: S) -> Self {
        for s in storage.as_mut() {
            *s = Slot::new();
        }
        Nonces { slots: storage }
    }

    /// How many nonces it can hold.
    pub fn capacity(&self) -> usize {
        self.slots.as_ref().len()
    }

    /// How many it holds (expired ones not yet reused included).
    pub fn len(&self) -> usize {
        self.slots
            .as_ref()
            .iter()
            .filter(|s| s.held.is_some())
            .count()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `nonce` was admitted here and its ticket may not have
    /// expired.
    pub fn contains(&self, nonce: &[u8; NONCE_LEN]) -> bool {
        self.slots
            .as_ref()
            .iter()
            .any(|s| s.held.is_some_and(|h| h.nonce == *nonce))
    }

    /// Whether a nonce could be remembered at `now` (a free slot, or one
    /// whose ticket has expired by both clocks).
    pub fn has_room(&self, now: Instant, wall: UnixTime) -> bool {
        self.slots
            .as_ref()
            .iter()
            .any(|s| !matches!(s.held, Some(h) if !h.expired(now, wall)))
    }

    /// Remembers `nonce` until `until` here and `until_wall` on the wall
    /// clock, in a free slot or one whose ticket has expired; else
    /// [`signed::Error::Full`].
    pub fn remember(
        &mut self,
        nonce: [u8; NONCE_LEN],
        until: Instant,
        until_wall: UnixTime,
        now: Instant,
        wall: UnixTime,
    ) -> Result<(), signed::Error> {
        let slot = self
            .slots
            .as_mut()
            .iter_mut()
            .find(|s| !matches!(s.held, Some(h) if !h.expired(now, wall)))
            .ok_or(signed::Error::Full)?;
        slot.held = Some(Held {
            nonce,
            until,
            until_wall: until_wall.millis(),
        });
        Ok(())
    }
}

impl<S: AsRef<[super::Slot]> + AsMut<[super::Slot]>> Table<S> {
    /// The admit step for a signed single-port token ([`signed::open`]
    /// with `keys` at `wall`), for a viewer at `peer` that arrived with
    /// `arrived` = (TLS, WebSocket) at `now`:
    ///
    /// - the first time this instance sees the ticket, it becomes a
    ///   pending table entry (its viewer password the sealed one, its
    ///   backend password this instance's configured cluster password, as
    ///   for any dialect-2 ticket; TLS-only under `require_tls`) and its
    ///   nonce is remembered in `nonces` until it expires;
    /// - while that entry is pending (a viewer retrying within the attempt
    ///   rules), the entry is found again;
    /// - once it is gone (used, burnt, withdrawn), the nonce is still
    ///   remembered: [`super::Error::NoSuchTicket`], 404.
    ///
    /// Then the table's [`Table::admit`] decides (pin, transport, guesses).
    /// Nothing is changed when the token does not open, or when there is no
    /// room ([`signed::Error::Full`]: the table or `nonces` is full).
    pub fn admit_signed<N: AsRef<[Slot]> + AsMut<[Slot]>>(
        &mut self,
        nonces: &mut Nonces<N>,
        keys: &Keys,
        token: &[u8],
        peer: IpAddr,
        (now, wall): (Instant, UnixTime),
        arrived: (bool, bool),
    ) -> Result<Handle, signed::Error> {
        let c = signed::open(keys, token, wall)?;
        let name = hex_token(&c.nonce);
        let key = Lookup::Token(name.as_bytes());
        let pending = self
            .tickets_iter()
            .any(|t| t.entry == Entry::Token(name.clone()));
        if !pending {
            if nonces.contains(&c.nonce) {
                return Err(super::Error::NoSuchTicket.into());
            }
            let expires = self.local_expiry(&c, now, wall)?;
            let slot = self
                .slots()
                .iter()
                .position(|s| s.ticket.is_none())
                .filter(|_| self.len() < self.config.max_tickets)
                .ok_or(signed::Error::Full)?;
            if !nonces.has_room(now, wall) {
                return Err(signed::Error::Full);
            }
            let mut transport = c.transport;
            if self.config.require_tls {
                transport.tls = crate::control::Need::Yes;
            }
            nonces.remember(c.nonce, expires, UnixTime::from_secs(c.expires), now, wall)?;
            let id = self.next_id;
            self.next_id += 1;
            let ticket = Ticket {
                id,
                entry: Entry::Token(name.clone()),
                viewer_password: c.password,
                backend_host: c.backend_host,
                backend_port: c.backend_port,
                backend_password: self.config.backend_password.clone(),
                client_ip: c.client_ip,
                transport,
                expires,
                failures: heapless::Vec::new(),
            };
            if let Some(s) = self.slots.as_mut().get_mut(slot) {
                s.ticket = Some(ticket);
            }
            debug!("ticket: adopted a signed ticket");
        }
        Ok(self.admit(key, peer, now, arrived)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Console, Dialect, Host, Password, Transport};
    use crate::ticket::signed::{Issued, Key};
    use crate::ticket::{Config, Error, Event, RANDOM_LEN};
    use core::net::Ipv4Addr;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const WALL: UnixTime = UnixTime::from_secs(1_800_000_000);
    const WS: (bool, bool) = (false, true);

    fn table() -> Table<[super::super::Slot; 4]> {
        let config = Config {
            single_port: Some(6080),
            backend_password: Some(Password::from_str("cluster").unwrap()),
            ..Config::default()
        };
        Table::new(config, core::array::from_fn(|_| super::super::Slot::new())).unwrap()
    }

    fn nonces<const N: usize>() -> Nonces<[Slot; N]> {
        Nonces::new([Slot::new(); N])
    }

    fn keys() -> Keys {
        Keys {
            current: Key::new(b"0123456789abcdef0123456789abcdef").unwrap(),
            previous: None,
        }
    }

    fn snf(password: Option<&str>) -> Console {
        let mut host = Host::new();
        host.push_str("node1").unwrap();
        Console {
            dialect: Dialect::Snf,
            host,
            port: 5900,
            password: password.map(|p| Password::from_str(p).unwrap()),
            client_password: None,
            client_ip: None,
            preferred_port: None,
            transport: Transport::WEBSOCKET,
            timeout_ms: Some(10_000),
            auth_user: None,
            auth_password: None,
        }
    }

    fn issue(t: &mut Table<[super::super::Slot; 4]>, seed: u8) -> Issued {
        t.issue_signed(WALL, &snf(None), &[seed; RANDOM_LEN], &keys().current)
            .unwrap()
    }

    #[test]
    fn a_remembered_nonce_takes_40_bytes() {
        assert_eq!(core::mem::size_of::<Slot>(), 40);
    }

    #[test]
    fn issued_by_one_admitted_by_another_once() {
        let mut issuer = table();
        let i = issue(&mut issuer, 7);
        assert!(issuer.is_empty(), "the issuer keeps nothing");
        assert_eq!(issuer.issued_total(), 1);
        assert_eq!(i.port, 6080);
        assert_eq!(i.expires, 1_800_000_010);
        let pw = i.password.clone().unwrap();
        assert_eq!(i.granted().token, i.token.as_str());

        let (mut t, mut n) = (table(), nonces::<4>());
        let now = Instant::from_millis(500);
        let tok = i.token.as_bytes();
        let h = t
            .admit_signed(&mut n, &keys(), tok, PEER, (now, WALL), WS)
            .unwrap();
        let ticket = t.get(h).unwrap();
        assert_eq!(ticket.viewer_password.as_bytes(), pw.as_bytes());
        assert_eq!(
            ticket.backend_password.as_ref().map(|p| p.as_bytes()),
            Some(&b"cluster"[..])
        );
        assert_eq!(ticket.backend_host.as_str(), "node1");
        assert_eq!(ticket.expires, now + 10_000);
        assert_eq!(n.len(), 1);
        // The same viewer again while it is pending: the same entry.
        assert_eq!(
            t.admit_signed(&mut n, &keys(), tok, PEER, (now, WALL), WS),
            Ok(h)
        );
        assert_eq!(t.len(), 1);
        // A native viewer: the table's transport rule.
        assert!(matches!(
            t.admit_signed(&mut n, &keys(), tok, PEER, (now, WALL), (false, false)),
            Err(signed::Error::Ticket(Error::WrongTransport(_)))
        ));
        t.authenticated(h, now).unwrap();
        assert!(matches!(
            t.poll_event(),
            Some(Event::Closed { port: None, .. })
        ));
        // A replay at the same table: refused, 404.
        let replay = t.admit_signed(&mut n, &keys(), tok, PEER, (now, WALL), WS);
        assert_eq!(replay, Err(signed::Error::Ticket(Error::NoSuchTicket)));
        assert_eq!(replay.unwrap_err().http_status(), 404);
        assert!(t.is_empty());
        // Another instance (another table and memory) admits it once too.
        let (mut other, mut m) = (table(), nonces::<4>());
        assert!(other
            .admit_signed(&mut m, &keys(), tok, PEER, (now, WALL), WS)
            .is_ok());
    }

    #[test]
    fn a_burnt_ticket_stays_burnt_and_expiry_is_the_tokens() {
        let mut t = table();
        let mut n = nonces::<4>();
        let i = issue(&mut t, 1);
        let tok = i.token.as_bytes();
        let now = Instant::from_millis(0);
        let h = t
            .admit_signed(&mut n, &keys(), tok, PEER, (now, WALL), WS)
            .unwrap();
        // Wrong passwords from as many sources as the table allows burn it.
        let failing = usize::from(Config::default().failing_sources);
        for k in 1..failing {
            let source = core::net::IpAddr::from([192, 0, 2, k as u8]);
            assert_eq!(
                t.failed_attempt(h, source),
                Ok(crate::ticket::Attempt::Blocked)
            );
        }
        assert_eq!(t.failed_attempt(h, PEER), Ok(crate::ticket::Attempt::Gone));
        assert_eq!(
            t.admit_signed(&mut n, &keys(), tok, PEER, (now, WALL), WS),
            Err(signed::Error::Ticket(Error::NoSuchTicket))
        );
        // At its expiry second the token itself is refused.
        let end = UnixTime::from_secs(i.expires);
        let j = issue(&mut t, 2);
        assert_eq!(
            t.admit_signed(&mut n, &keys(), j.token.as_bytes(), PEER, (now, end), WS),
            Err(signed::Error::Expired)
        );
        assert_eq!(n.len(), 1, "nothing remembered for a refused token");
    }

    #[test]
    fn full_memory_refuses_and_forgets_only_the_expired() {
        let mut t = table();
        let mut n = nonces::<1>();
        let now = Instant::from_millis(0);
        let a = issue(&mut t, 1);
        let b = issue(&mut t, 2);
        let h = t
            .admit_signed(&mut n, &keys(), a.token.as_bytes(), PEER, (now, WALL), WS)
            .unwrap();
        t.authenticated(h, now).unwrap();
        let full = t.admit_signed(&mut n, &keys(), b.token.as_bytes(), PEER, (now, WALL), WS);
        assert_eq!(full, Err(signed::Error::Full));
        assert_eq!(full.unwrap_err().http_status(), 503);
        // Once a's ticket has expired by both clocks, its room is b's.
        let later = (now + 10_000, UnixTime::from_secs(a.expires));
        assert_eq!(
            t.admit_signed(&mut n, &keys(), b.token.as_bytes(), PEER, later, WS),
            Err(signed::Error::Expired),
            "b expires with a (same lifetime)"
        );
        let c = t
            .issue_signed(
                UnixTime::from_secs(a.expires),
                &snf(Some("pw")),
                &[3; RANDOM_LEN],
                &keys().current,
            )
            .unwrap();
        // Monotonic time not yet past a's expiry: still remembered.
        let early = (now + 9_999, UnixTime::from_secs(a.expires));
        assert_eq!(
            t.admit_signed(&mut n, &keys(), c.token.as_bytes(), PEER, early, WS),
            Err(signed::Error::Full)
        );
        assert!(t
            .admit_signed(&mut n, &keys(), c.token.as_bytes(), PEER, later, WS)
            .is_ok());
        assert!(!n.contains(&[1; NONCE_LEN]));
    }

    #[test]
    fn a_full_table_refuses_without_remembering() {
        let mut t = Table::new(
            Config {
                single_port: Some(6080),
                max_tickets: 1,
                ..Config::default()
            },
            core::array::from_fn::<_, 2, _>(|_| super::super::Slot::new()),
        )
        .unwrap();
        let mut n = nonces::<4>();
        let now = Instant::from_millis(0);
        let k = keys();
        let a = t
            .issue_signed(WALL, &snf(None), &[1; RANDOM_LEN], &k.current)
            .unwrap();
        let b = t
            .issue_signed(WALL, &snf(None), &[2; RANDOM_LEN], &k.current)
            .unwrap();
        t.admit_signed(&mut n, &k, a.token.as_bytes(), PEER, (now, WALL), WS)
            .unwrap();
        assert_eq!(
            t.admit_signed(&mut n, &k, b.token.as_bytes(), PEER, (now, WALL), WS),
            Err(signed::Error::Full)
        );
        assert!(!n.contains(&[2; NONCE_LEN]), "b may come back later");
    }

    #[test]
    fn too_far_ahead_and_not_for_the_single_port() {
        let mut t = table();
        let mut n = nonces::<4>();
        let k = keys();
        // Issued by an instance whose clock is an hour ahead.
        let ahead = UnixTime::from_secs(1_800_003_600);
        let i = t
            .issue_signed(ahead, &snf(None), &[1; RANDOM_LEN], &k.current)
            .unwrap();
        let now = Instant::from_millis(0);
        assert_eq!(
            t.admit_signed(&mut n, &k, i.token.as_bytes(), PEER, (now, WALL), WS),
            Err(signed::Error::TooFarAhead)
        );
        // Native consoles and GWM's dialect are not the single port's.
        let mut plain = snf(None);
        plain.transport = Transport::PLAIN;
        assert!(!t.signs(&plain));
        assert_eq!(
            t.issue_signed(WALL, &plain, &[1; RANDOM_LEN], &k.current),
            Err(signed::Error::Ticket(Error::BadConfig))
        );
        let mut gwm = snf(Some("pw"));
        gwm.dialect = Dialect::Twisted;
        assert!(!t.signs(&gwm));
        assert!(t.signs(&snf(None)));
    }
}
