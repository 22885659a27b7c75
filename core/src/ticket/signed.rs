//! Signed, self-contained single-port tickets (issue 16): a console's
//! ticket sealed into its URL token, so that any vncap holding the key
//! admits it with no shared state.
//!
//! What it is: the token format, [`seal`] and [`open`], the [`Key`]s
//! (`--ticket-key`, `--ticket-key-previous`), and [`Table::issue_signed`],
//! the table's issue rules for a request the single port serves, producing
//! a sealed token instead of a table entry. What it is not: one-time use
//! (an opened ticket is adopted into the local table once, and its nonce
//! remembered until it expires: [`super::nonces`]), a clock, or an RNG
//! (the caller gives wall-clock time, [`UnixTime`], and the nonce's random
//! bytes).
//!
//! # The token
//!
//! URL-safe base64 without padding (RFC 4648 §5) of
//!
//! ```text
//! version 1 | key id (4) | nonce (16) | expiry (u64 BE, UNIX seconds)
//! | flags (1) | client.ip (0, 4 or 16) | backend port (u16 BE)
//! | host length (1) | host | password length (1) | sealed password
//! | tag (16)
//! ```
//!
//! flags: bits 0-1 TLS and bits 2-3 WebSocket ([`Need`]: 0 no, 1 yes, 2
//! either), bits 4-5 the `client.ip` pin (0 none, 1 IPv4, 2 IPv6); bits
//! 6-7 zero. The token is at most [`TOKEN_CAP`] characters (a 255-byte
//! host), so `/websockify?token=…` fits the WebSocket handshake's request
//! target ([`crate::ws::handshake::MAX_TARGET`]).
//!
//! # Keys, sealing and the tag
//!
//! The key file's bytes `K` (at least [`MIN_KEY_LEN`]) are never used
//! directly: three keys are derived with HMAC-SHA-256 under distinct
//! labels: the key id (the first 4 bytes of `HMAC(K, "vncap ticket v1 key
//! id")`, sent in clear so that `open` tries the previous key only when it
//! is the one that signed), the sealing key and the tag key.
//!
//! The console password is **sealed**, not stored as a verifier: RFB's VNC
//! authentication (RFC 6143 §7.2.2) is a DES challenge-response keyed by the
//! password itself, so whoever checks a viewer's response needs the
//! password, and any "verifier" that suffices to check it would be
//! password-equivalent. It is XORed with the keystream `HMAC(seal key,
//! "password" | nonce)` (the nonce is fresh per ticket, so no two tickets
//! share a keystream), and only its first 8 bytes are kept: VNC
//! authentication uses no more. Then the tag, `HMAC(tag key, everything
//! before it)` truncated to 16 bytes, authenticates the whole token,
//! ciphertext included (encrypt-then-MAC). Tags are compared in constant
//! time (`subtle`).
//!
//! Forging a token without the key means guessing a 128-bit tag: 2^-128 per
//! try. A token gives no password to whoever reads it.
//!
//! # Time
//!
//! The expiry is wall-clock UNIX seconds, because the core's [`Instant`]
//! counts from each process's start and means nothing to another instance.
//! The driver passes the wall clock in ([`UnixTime`]). Instances must keep
//! their clocks in step (NTP): a clock `s` seconds behind the issuer's
//! keeps a ticket `s` seconds longer, one ahead cuts it short. A ticket
//! whose expiry lies more than the table's longest lifetime plus
//! [`CLOCK_SKEW_MS`] ahead is refused ([`Error::TooFarAhead`]): its nonce
//! would have to be remembered that long.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::{viewer_password_for, GeneratedPassword, Table, URL_PATH_PREFIX};
use crate::control::{Console, Host, Need, Password, Transport, HOST_CAP};
use crate::secret::Secret;
use crate::time::Instant;

type HmacSha256 = Hmac<Sha256>;

/// The format version this module writes and reads.
pub const VERSION: u8 = 1;
/// The shortest key file accepted (bytes).
pub const MIN_KEY_LEN: usize = 32;
/// Bytes of the key id.
pub const KEY_ID_LEN: usize = 4;
/// Bytes of the nonce (the caller's random bytes; [`super::TOKEN_BYTES`]).
pub const NONCE_LEN: usize = super::TOKEN_BYTES;
/// Bytes of the tag: HMAC-SHA-256 truncated to 128 bits.
pub const TAG_LEN: usize = 16;
/// Bytes of the password kept (VNC authentication uses the first 8).
pub const PASSWORD_LEN: usize = 8;
/// How far ahead of the longest lifetime an expiry may lie (clock skew
/// between instances), in milliseconds.
pub const CLOCK_SKEW_MS: u64 = 60_000;

/// version, key id, nonce, expiry, flags, port, host length, password length.
const FIXED: usize = 1 + KEY_ID_LEN + NONCE_LEN + 8 + 1 + 2 + 1 + 1;
/// The longest token before its encoding.
pub const RAW_CAP: usize = FIXED + 16 + HOST_CAP + PASSWORD_LEN + TAG_LEN;
/// The longest token: [`RAW_CAP`] bytes in unpadded base64.
pub const TOKEN_CAP: usize = (RAW_CAP * 4).div_ceil(3);
/// A token of either kind: a table's (hex) or a signed one.
pub type Token = Secret<TOKEN_CAP>;
/// `url_path` for a token of either kind.
pub type UrlPath = Secret<{ URL_PATH_PREFIX.len() + TOKEN_CAP }>;

const LABEL_ID: &[u8] = b"vncap ticket v1 key id";
const LABEL_SEAL: &[u8] = b"vncap ticket v1 seal";
const LABEL_TAG: &[u8] = b"vncap ticket v1 tag";
const LABEL_PASSWORD: &[u8] = b"password";

/// Wall-clock time: milliseconds since the UNIX epoch, from the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(u64);

impl UnixTime {
    /// `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        UnixTime(ms)
    }

    /// `s` seconds after the epoch.
    pub const fn from_secs(s: u64) -> Self {
        UnixTime(s.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> u64 {
        self.0
    }
}

/// Why a signed ticket was not made or not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The key file holds fewer than [`MIN_KEY_LEN`] bytes.
    ShortKey,
    /// Not a signed ticket: bad base64, too short or long, an unknown
    /// version, or fields that do not parse.
    Malformed,
    /// Signed by neither the current nor the previous key.
    WrongKey,
    /// The tag does not match: the token was changed.
    Tampered,
    /// Its time is up (at its expiry second exactly, too).
    Expired,
    /// Its expiry lies further ahead than any ticket may live (the clocks
    /// of the instances disagree, or the issuer allows longer tickets).
    TooFarAhead,
    /// No room to remember its nonce, or to hold it in the table: refused
    /// rather than forgetting a nonce early (which would allow a replay).
    Full,
    /// The table refused it (used, burnt, pinned to another address, another
    /// transport, ...).
    Ticket(super::Error),
}

impl Error {
    /// A short reason, for a log line or the viewer.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::ShortKey => "ticket key shorter than 32 bytes",
            Error::Malformed => "not a signed ticket",
            Error::WrongKey => "ticket signed with another key",
            Error::Tampered => "ticket tampered with",
            Error::Expired => "console expired",
            Error::TooFarAhead => "ticket expiry too far ahead (clocks out of step?)",
            Error::Full => "too many signed tickets in use; try again later",
            Error::Ticket(e) => e.reason(),
        }
    }

    /// The HTTP status for the single port: 403 for a token that is not
    /// ours (or was changed), 404 for an expired or used one (as the
    /// table's [`super::Error::http_status`]), 503 when full.
    pub const fn http_status(&self) -> u16 {
        match self {
            Error::Malformed | Error::WrongKey | Error::Tampered | Error::TooFarAhead => 403,
            Error::Expired => 404,
            Error::Full => 503,
            Error::ShortKey => 500,
            Error::Ticket(e) => e.http_status(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl From<super::Error> for Error {
    fn from(e: super::Error) -> Self {
        Error::Ticket(e)
    }
}

/// One ticket key: the derived id, sealing key and tag key. Its `Debug`
/// shows the id only.
#[derive(Clone)]
pub struct Key {
    id: [u8; KEY_ID_LEN],
    seal: [u8; 32],
    tag: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:02x?})", self.id)
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

impl Key {
    /// The key of a key file's bytes (at least [`MIN_KEY_LEN`]; all of
    /// them count).
    pub fn new(secret: &[u8]) -> Result<Key, Error> {
        if secret.len() < MIN_KEY_LEN {
            return Err(Error::ShortKey);
        }
        let full = hmac(secret, &[LABEL_ID]);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&full[..KEY_ID_LEN]);
        Ok(Key {
            id,
            seal: hmac(secret, &[LABEL_SEAL]),
            tag: hmac(secret, &[LABEL_TAG]),
        })
    }

    /// The key id written in its tokens (not secret).
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }
}

/// The keys an instance admits with: the current one (which also signs)
/// and, during a rotation, the previous one.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Signs new tickets and opens its own.
    pub current: Key,
    /// Opens tickets signed before the rotation.
    pub previous: Option<Key>,
}

impl Keys {
    fn by_id(&self, id: &[u8]) -> Option<&Key> {
        core::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .find(|k| k.id[..] == *id)
    }
}

/// What a signed ticket carries. Its `Debug` shows no password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// The caller's random bytes: one-time use remembers them.
    pub nonce: [u8; NONCE_LEN],
    /// When it expires: UNIX seconds (unusable from this second on).
    pub expires: u64,
    /// Backend VNC server host.
    pub backend_host: Host,
    /// Backend VNC server port.
    pub backend_port: u16,
    /// Which layers the viewer may use.
    pub transport: Transport,
    /// The only address the viewer may come from.
    pub client_ip: Option<IpAddr>,
    /// What the viewer must present (its first [`PASSWORD_LEN`] bytes).
    pub password: Password,
}

const fn need_bits(n: Need) -> u8 {
    match n {
        Need::No => 0,
        Need::Yes => 1,
        Need::Either => 2,
    }
}

fn need_of(b: u8) -> Option<Need> {
    match b {
        0 => Some(Need::No),
        1 => Some(Need::Yes),
        2 => Some(Need::Either),
        _ => None,
    }
}

/// A short, non-replayable name of a token for logs: the first 4 bytes of
/// its SHA-256, as 8 hex digits (the same on every instance).
pub fn fingerprint(token: &[u8]) -> u32 {
    let d = Sha256::digest(token);
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Writes `bytes` at `*at` in `buf`, moving `at`; false when it does not fit.
fn put(buf: &mut [u8], at: &mut usize, bytes: &[u8]) -> bool {
    match buf.get_mut(*at..*at + bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            *at += bytes.len();
            true
        }
        None => false,
    }
}

/// XORs `data` with the keystream of `key` and `nonce` (at most 32 bytes).
fn keystream_xor(key: &Key, nonce: &[u8], data: &mut [u8]) {
    let stream = hmac(&key.seal, &[LABEL_PASSWORD, nonce]);
    for (b, k) in data.iter_mut().zip(stream.iter()) {
        *b ^= k;
    }
}

/// The tag of `body` under `key`.
fn tag(key: &Key, body: &[u8]) -> [u8; 32] {
    hmac(&key.tag, &[body])
}

/// Seals `c` with `key` into a token. Fails only for a host longer than
/// [`HOST_CAP`] (impossible for a [`Host`]) or an empty one.
pub fn seal(key: &Key, c: &Contents) -> Result<Token, Error> {
    let mut raw = [0u8; RAW_CAP];
    let mut at = 0;
    let mut ip = [0u8; 16];
    let (pin, ip_len) = match c.client_ip {
        None => (0, 0),
        Some(IpAddr::V4(a)) => {
            ip[..4].copy_from_slice(&a.octets());
            (1, 4)
        }
        Some(IpAddr::V6(a)) => {
            ip = a.octets();
            (2, 16)
        }
    };
    let ip = &ip[..ip_len];
    let flags = need_bits(c.transport.tls) | need_bits(c.transport.websocket) << 2 | pin << 4;
    let host = c.backend_host.as_bytes();
    let pw = c.password.as_bytes();
    let pw = pw.get(..PASSWORD_LEN).unwrap_or(pw);
    if host.is_empty() || host.len() > HOST_CAP {
        return Err(Error::Malformed);
    }
    let mut sealed = [0u8; PASSWORD_LEN];
    sealed[..pw.len()].copy_from_slice(pw);
    keystream_xor(key, &c.nonce, &mut sealed[..pw.len()]);
    let ok = put(&mut raw, &mut at, &[VERSION])
        && put(&mut raw, &mut at, &key.id)
        && put(&mut raw, &mut at, &c.nonce)
        && put(&mut raw, &mut at, &c.expires.to_be_bytes())
        && put(&mut raw, &mut at, &[flags])
        && put(&mut raw, &mut at, ip)
        && put(&mut raw, &mut at, &c.backend_port.to_be_bytes())
        && put(&mut raw, &mut at, &[host.len() as u8])
        && put(&mut raw, &mut at, host)
        && put(&mut raw, &mut at, &[pw.len() as u8])
        && put(&mut raw, &mut at, &sealed[..pw.len()]);
    let t = tag(key, raw.get(..at).unwrap_or_default());
    if !(ok && put(&mut raw, &mut at, &t[..TAG_LEN])) {
        return Err(Error::Malformed);
    }
    let mut text = [0u8; TOKEN_CAP];
    let n = URL_SAFE_NO_PAD
        .encode_slice(raw.get(..at).unwrap_or_default(), &mut text)
        .map_err(|_| Error::Malformed)?;
    Token::from_slice(text.get(..n).unwrap_or_default()).map_err(|_| Error::Malformed)
}

/// Reads a token's fields front to back; `None` when it runs out.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
}

/// Opens a token at wall-clock `now`: decodes it, picks the key its id
/// names (else [`Error::WrongKey`]), checks the tag in constant time (else
/// [`Error::Tampered`]), unseals the password, and refuses it from its
/// expiry second on ([`Error::Expired`]). Never panics, whatever `token`.
pub fn open(keys: &Keys, token: &[u8], now: UnixTime) -> Result<Contents, Error> {
    if token.len() > TOKEN_CAP {
        return Err(Error::Malformed);
    }
    let mut raw = [0u8; RAW_CAP];
    let n = URL_SAFE_NO_PAD
        .decode_slice(token, &mut raw)
        .map_err(|_| Error::Malformed)?;
    let raw = raw.get(..n).ok_or(Error::Malformed)?;
    if raw.len() < FIXED + TAG_LEN || raw.first() != Some(&VERSION) {
        return Err(Error::Malformed);
    }
    let (body, their_tag) = raw.split_at(raw.len() - TAG_LEN);
    let id = body.get(1..1 + KEY_ID_LEN).ok_or(Error::Malformed)?;
    let key = keys.by_id(id).ok_or(Error::WrongKey)?;
    let ours = tag(key, body);
    if !bool::from(ours[..TAG_LEN].ct_eq(their_tag)) {
        return Err(Error::Tampered);
    }
    let c = parse(key, body).ok_or(Error::Malformed)?;
    if now.millis() >= c.expires.saturating_mul(1000) {
        return Err(Error::Expired);
    }
    Ok(c)
}

/// The fields of an authentic body.
fn parse(key: &Key, body: &[u8]) -> Option<Contents> {
    let mut f = Fields { rest: body };
    f.take(1 + KEY_ID_LEN)?;
    let nonce = f.array::<NONCE_LEN>()?;
    let expires = u64::from_be_bytes(f.array::<8>()?);
    let flags = f.byte()?;
    let transport = Transport {
        tls: need_of(flags & 3)?,
        websocket: need_of((flags >> 2) & 3)?,
    };
    let client_ip = match (flags >> 4) & 3 {
        0 => None,
        1 => Some(IpAddr::V4(Ipv4Addr::from(f.array::<4>()?))),
        2 => Some(IpAddr::V6(Ipv6Addr::from(f.array::<16>()?))),
        _ => return None,
    };
    if flags >> 6 != 0 {
        return None;
    }
    let backend_port = u16::from_be_bytes(f.array::<2>()?);
    let host_len = usize::from(f.byte()?);
    let host = core::str::from_utf8(f.take(host_len)?).ok()?;
    let mut backend_host = Host::new();
    backend_host.push_str(host).ok()?;
    let pw_len = usize::from(f.byte()?);
    if pw_len > PASSWORD_LEN || host.is_empty() || backend_port == 0 {
        return None;
    }
    let mut pw = [0u8; PASSWORD_LEN];
    pw[..pw_len].copy_from_slice(f.take(pw_len)?);
    keystream_xor(key, &nonce, &mut pw[..pw_len]);
    if !f.rest.is_empty() {
        return None;
    }
    Some(Contents {
        nonce,
        expires,
        backend_host,
        backend_port,
        transport,
        client_ip,
        password: Password::from_slice(&pw[..pw_len]).ok()?,
    })
}

/// What [`Table::issue_signed`] made: the control reply's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The single port (the viewer's).
    pub port: u16,
    /// The signed token.
    pub token: Token,
    /// `websockify?token=...`.
    pub url_path: UrlPath,
    /// The generated viewer password, when the request had none.
    pub password: Option<GeneratedPassword>,
    /// Its expiry, UNIX seconds.
    pub expires: u64,
    /// Its lifetime in whole seconds, rounded up.
    pub expires_in: u64,
    /// [`fingerprint`] of the token, for the log.
    pub fingerprint: u32,
}

impl Issued {
    /// The control reply for it ([`crate::control::Control::reply_ok`]).
    pub fn granted(&self) -> crate::control::Granted<'_> {
        crate::control::Granted {
            port: self.port,
            password: self.password.as_ref().and_then(|p| p.as_str()),
            expires_in: Some(self.expires_in),
            token: self.token.as_str(),
            url_path: self.url_path.as_str(),
        }
    }
}

impl<S: AsRef<[super::Slot]> + AsMut<[super::Slot]>> Table<S> {
    /// Whether a signed ticket serves `req`: single-port mode is
    /// configured and `req` is one the single port serves
    /// ([`Table::issue`] would give it a token).
    pub fn signs(&self, req: &Console) -> bool {
        self.wants_token(req)
    }

    /// [`Table::issue`] for a request the single port serves
    /// ([`Table::signs`]; `Error::Ticket(BadConfig)` otherwise), with
    /// tickets signed by `key`: the same rules (`require_tls`, TLS
    /// available, the generated password, the lifetime cut to the maximum),
    /// but the ticket is sealed into its token and nothing is kept here:
    /// any instance with the key adopts it when its viewer comes
    /// ([`Table::admit_signed`]). `random`: [`super::RANDOM_LEN`] fresh
    /// bytes (the first 16 are the nonce). `wall` is the wall clock now.
    pub fn issue_signed(
        &mut self,
        wall: UnixTime,
        req: &Console,
        random: &[u8],
        key: &Key,
    ) -> Result<Issued, Error> {
        let Some(single) = self.config.single_port.filter(|_| self.wants_token(req)) else {
            return Err(Error::Ticket(super::Error::BadConfig));
        };
        let transport = self.transport_for(req)?;
        let nonce: [u8; NONCE_LEN] = random
            .get(..NONCE_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(super::Error::NotEnoughRandom)?;
        let rest = random.get(NONCE_LEN..).unwrap_or_default();
        let (password, generated) = viewer_password_for(req, rest)?;
        let lifetime = self.lifetime(req);
        let expires = wall.millis().saturating_add(lifetime).div_ceil(1000);
        let contents = Contents {
            nonce,
            expires,
            backend_host: req.host.clone(),
            backend_port: req.port,
            transport,
            client_ip: req.client_ip,
            password,
        };
        let token = seal(key, &contents)?;
        let mut url: heapless::String<{ URL_PATH_PREFIX.len() + TOKEN_CAP }> =
            heapless::String::new();
        let _ = url.push_str(URL_PATH_PREFIX);
        let _ = url.push_str(token.as_str().unwrap_or_default());
        self.issued_total += 1;
        let fingerprint = fingerprint(token.as_bytes());
        debug!("ticket: issued signed ticket {:08x}", fingerprint);
        Ok(Issued {
            port: single,
            url_path: UrlPath::from_str(&url).unwrap_or_default(),
            token,
            password: generated,
            expires,
            expires_in: lifetime.div_ceil(1000),
            fingerprint,
        })
    }

    /// When a ticket adopted at `now` from `c` (opened at `wall`) expires
    /// here, or [`Error::TooFarAhead`].
    pub(super) fn local_expiry(
        &self,
        c: &Contents,
        now: Instant,
        wall: UnixTime,
    ) -> Result<Instant, Error> {
        let left = c.expires.saturating_mul(1000).saturating_sub(wall.millis());
        if left > self.config.max_timeout_ms.saturating_add(CLOCK_SKEW_MS) {
            return Err(Error::TooFarAhead);
        }
        Ok(now + left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn contents() -> Contents {
        let mut host = Host::new();
        host.push_str("node1.example.org").unwrap();
        Contents {
            nonce: [9; NONCE_LEN],
            expires: 1_800_000_030,
            backend_host: host,
            backend_port: 5901,
            transport: Transport::WEBSOCKET,
            client_ip: None,
            password: Password::from_str("sekrit12").unwrap(),
        }
    }

    fn keys() -> Keys {
        Keys {
            current: Key::new(&[1; 32]).unwrap(),
            previous: None,
        }
    }

    const NOW: UnixTime = UnixTime::from_secs(1_800_000_000);

    fn raw(token: &Token) -> heapless::Vec<u8, RAW_CAP> {
        let mut buf = [0u8; RAW_CAP];
        let n = URL_SAFE_NO_PAD
            .decode_slice(token.as_bytes(), &mut buf)
            .unwrap();
        heapless::Vec::from_slice(&buf[..n]).unwrap()
    }

    fn text(raw: &[u8]) -> heapless::Vec<u8, TOKEN_CAP> {
        let mut buf = [0u8; TOKEN_CAP];
        let n = URL_SAFE_NO_PAD.encode_slice(raw, &mut buf).unwrap();
        heapless::Vec::from_slice(&buf[..n]).unwrap()
    }

    #[test]
    fn round_trip_and_the_password_is_sealed() {
        let k = keys();
        let mut c = contents();
        for pin in [
            None,
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ] {
            c.client_ip = pin;
            let t = seal(&k.current, &c).unwrap();
            assert!(t
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
            assert_eq!(open(&k, t.as_bytes(), NOW), Ok(c.clone()));
            let r = raw(&t);
            assert!(
                !r.windows(8).any(|w| w == b"sekrit12"),
                "sealed, not in clear"
            );
        }
        // The password is cut to the 8 bytes VNC uses.
        c.password = Password::from_str("0123456789abcdef").unwrap();
        let t = seal(&k.current, &c).unwrap();
        let opened = open(&k, t.as_bytes(), NOW).unwrap();
        assert_eq!(opened.password.as_bytes(), b"01234567");
        // The longest host still fits the handshake's request target.
        let mut long = Host::new();
        long.push_str(&"h".repeat(HOST_CAP)).unwrap();
        c.backend_host = long;
        c.client_ip = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        let t = seal(&k.current, &c).unwrap();
        assert_eq!(t.len(), TOKEN_CAP);
        assert!(1 + URL_PATH_PREFIX.len() + TOKEN_CAP <= crate::ws::handshake::MAX_TARGET);
        assert_eq!(
            open(&k, t.as_bytes(), NOW).unwrap().backend_host,
            c.backend_host
        );
    }

    #[test]
    fn every_changed_byte_is_tampering() {
        let k = keys();
        let t = seal(&k.current, &contents()).unwrap();
        let r = raw(&t);
        for i in 0..r.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = r.clone();
                bad[i] ^= bit;
                let got = open(&k, &text(&bad), NOW);
                let want = match i {
                    0 => Error::Malformed,
                    1..=KEY_ID_LEN => Error::WrongKey,
                    _ => Error::Tampered,
                };
                assert_eq!(got, Err(want), "byte {i} bit {bit:#x}");
                assert_eq!(got.unwrap_err().http_status(), 403);
            }
        }
        // Cut short, one byte longer, not base64: not a ticket.
        assert_eq!(
            open(&k, &text(&r[..r.len() - 1]), NOW),
            Err(Error::Tampered)
        );
        let mut longer = r.clone();
        longer.push(0).unwrap();
        assert_eq!(open(&k, &text(&longer), NOW), Err(Error::Tampered));
        assert_eq!(open(&k, &text(&r[..FIXED]), NOW), Err(Error::Malformed));
        assert_eq!(open(&k, b"not base64!", NOW), Err(Error::Malformed));
        assert_eq!(open(&k, b"", NOW), Err(Error::Malformed));
        assert_eq!(open(&k, &[b'A'; TOKEN_CAP + 1], NOW), Err(Error::Malformed));
    }

    #[test]
    fn expiry_at_its_exact_second() {
        let k = keys();
        let c = contents();
        let t = seal(&k.current, &c).unwrap();
        let at = UnixTime::from_secs(c.expires);
        assert!(open(&k, t.as_bytes(), UnixTime::from_millis(at.millis() - 1)).is_ok());
        assert_eq!(open(&k, t.as_bytes(), at), Err(Error::Expired));
        assert_eq!(Error::Expired.http_status(), 404);
    }

    #[test]
    fn previous_key_and_wrong_key() {
        let old = Key::new(&[2; 40]).unwrap();
        let t = seal(&old, &contents()).unwrap();
        let rotated = Keys {
            current: Key::new(&[1; 32]).unwrap(),
            previous: Some(old.clone()),
        };
        assert_eq!(open(&rotated, t.as_bytes(), NOW), Ok(contents()));
        assert_eq!(open(&keys(), t.as_bytes(), NOW), Err(Error::WrongKey));
        // A key whose id collides but whose tag key differs: tampered.
        let mut twin = Key::new(&[3; 32]).unwrap();
        twin.id = old.id;
        let impostor = Keys {
            current: twin,
            previous: None,
        };
        assert_eq!(open(&impostor, t.as_bytes(), NOW), Err(Error::Tampered));
        assert_eq!(Key::new(&[0; 31]).unwrap_err(), Error::ShortKey);
        assert_ne!(Key::new(&[1; 32]).unwrap().id(), old.id());
    }

    #[test]
    fn a_known_token_opens() {
        // Written by fuzz/seed.py's own implementation of the format (key
        // [0x11; 32], nonce 0..16): the format is the module docs'.
        let k = Keys {
            current: Key::new(&[0x11; 32]).unwrap(),
            previous: None,
        };
        let token = b"ASnbvgkAAQIDBAUGBwgJCgsMDQ4PAAAAAGtJ0h4EFw0Rbm9kZTEuZXhhbXBsZS5vcmcIhV7qvUY-plYbbM3G1CCDw_qPGizGl1bk";
        let c = open(&k, token, NOW).unwrap();
        assert_eq!(c.nonce, core::array::from_fn(|i| i as u8));
        assert_eq!(c.password.as_bytes(), b"sekrit12");
        assert_eq!(c.backend_host.as_str(), "node1.example.org");
        assert_eq!(seal(&k.current, &c).unwrap().as_bytes(), &token[..]);
    }

    #[test]
    fn debug_shows_no_secret() {
        use core::fmt::Write;
        let mut s: heapless::String<512> = heapless::String::new();
        write!(s, "{:?} {:?}", keys(), contents()).unwrap();
        assert!(!s.contains("sekrit12"), "{s}");
        assert_eq!(fingerprint(b"x"), fingerprint(b"x"));
        assert_ne!(fingerprint(b"x"), fingerprint(b"y"));
    }
}
