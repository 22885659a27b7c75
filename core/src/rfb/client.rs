//! The RFB client side of the handshake: vncap logging in to the backend VNC
//! server as a viewer would (RFC 6143 §7.1.1 ProtocolVersion, §7.1.2
//! Security, §7.2.1 None, §7.2.2 VNC Authentication, §7.1.3 SecurityResult;
//! rfbproto.md VeNCrypt, see [`super::vencrypt`]).
//!
//! It answers the server's version with the highest both speak (3.8, 3.7 or
//! 3.3). With backend TLS ([`Tls::Prefer`] or [`Tls::Require`]) it picks
//! VeNCrypt (19) when offered, agrees version 0.2, takes X509None or X509Vnc
//! and hands the TLS handshake to the driver ([`Event::StartTls`]); inside
//! TLS it answers the DES challenge (X509Vnc) and reads SecurityResult.
//! Otherwise it picks None if offered, else VNC Authentication with the
//! backend password if the caller has one, else stops with an error naming
//! what the server offered ([`Client::offered_types`]). The anonymous-TLS
//! subtypes (TLSNone, TLSVnc: QEMU's `tls-creds-anon`), Plain and SASL are
//! refused with a reason that names Ganeti's `vnc_x509_path`; with
//! [`Tls::Require`] so is a server without VeNCrypt. It handles 3.3's
//! server-chosen type and "connection failed" with its reason, and
//! SecurityResult with the 3.8 reason on failure. For None there is no
//! SecurityResult before 3.8 (VeNCrypt always sends one).
//!
//! After [`Event::LoggedIn`] both halves of the proxy stand just before the
//! viewer's ClientInit, so the driver relays bytes untouched from there; the
//! machine consumes nothing after SecurityResult. It is not a viewer: no
//! ClientInit, no ServerInit. It does no TLS and checks no certificate: the
//! driver does both at the hand-off.

use super::des::{self, CHALLENGE_LEN, KEY_LEN};
use super::vencrypt;
use super::wire::{
    parse_version, u32_at, Outbox, Reason, Version, SECURITY_NONE, SECURITY_RESULT_OK,
    SECURITY_VENCRYPT, SECURITY_VNC_AUTH, VERSION_LEN,
};
use crate::machine::Machine;

/// The most input the machine ever needs at once (the challenge): a caller
/// buffer of this size never stalls it.
pub const MAX_INPUT: usize = CHALLENGE_LEN;

/// Everything the client can ever queue: its version, its security type,
/// the VeNCrypt version and subtype, its response.
const OUT_CAP: usize = VERSION_LEN + 1 + 2 + 4 + CHALLENGE_LEN;

/// How many of the server's VeNCrypt subtypes are kept for
/// [`Client::offered_subtypes`] (all of them are looked at).
const SUBTYPES_KEPT: usize = 16;

/// Whether the client speaks VeNCrypt to the backend: the driver has a CA to
/// verify the backend's certificate with (the daemon's
/// `--backend-tls-dir`), and whether it insists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// No backend TLS: None or VNC Authentication only; a backend that
    /// offers nothing but VeNCrypt is [`Error::TlsNotConfigured`].
    Off,
    /// VeNCrypt (X509None, X509Vnc) when the backend offers it, preferred
    /// over None and VNC Authentication; otherwise as [`Tls::Off`].
    Prefer,
    /// VeNCrypt only: a backend that does not offer it is
    /// [`Error::TlsRequired`].
    Require,
}

/// What the client reports to its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The backend accepted the VeNCrypt subtype: the driver runs the TLS
    /// client handshake on the connection now (verifying the backend's
    /// certificate), then calls [`Client::tls_established`] and from then on
    /// feeds the machine the plaintext and sends its output inside TLS. The
    /// machine consumes nothing until then; bytes left unconsumed are TLS
    /// records, for the TLS layer.
    StartTls,
    /// The backend let us in; the next bytes are the viewer's ClientInit, to
    /// be relayed. Nothing more is consumed.
    LoggedIn,
}

/// Why the login failed. There is nothing to send the backend: the driver
/// closes the connection (and rejects the viewer, e.g. with
/// [`Error::reason`] or [`Client::server_reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The backend's first 12 bytes are not `RFB xxx.yyy\n`.
    NotRfb,
    /// The backend speaks a version older than 3.3.
    UnsupportedVersion,
    /// The backend refused the connection before authentication (security
    /// type 0, or zero types); its reason is in [`Client::server_reason`].
    ConnectionFailed,
    /// The backend demands VNC Authentication and no backend password was
    /// given.
    PasswordRequired,
    /// The backend offers neither None nor VNC Authentication; what it
    /// offers is in [`Client::offered_types`].
    NoCommonSecurityType,
    /// [`Tls::Require`], and the backend does not offer VeNCrypt.
    TlsRequired,
    /// The backend offers VeNCrypt only, and the client has no backend TLS
    /// ([`Tls::Off`]).
    TlsNotConfigured,
    /// The backend speaks a VeNCrypt version before 0.2, or refused ours.
    VencryptVersion,
    /// The backend offers only anonymous-TLS subtypes (TLSNone, TLSVnc):
    /// Ganeti's `vnc_tls` without `vnc_x509_path`.
    AnonymousTls,
    /// The backend offers no VeNCrypt subtype with an X.509 certificate and
    /// None or VNC authentication inside (Plain, SASL, or nothing known);
    /// the list is in [`Client::offered_subtypes`].
    NoX509Subtype,
    /// The backend refused the subtype it offered.
    SubtypeRefused,
    /// SecurityResult failed: the backend refused the password (its 3.8
    /// reason is in [`Client::server_reason`]).
    AuthenticationFailed,
}

impl Error {
    /// What went wrong, in protocol words.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotRfb => "backend did not send an RFB ProtocolVersion",
            Error::UnsupportedVersion => "backend speaks an RFB version older than 3.3",
            Error::ConnectionFailed => "backend refused the connection",
            Error::PasswordRequired => {
                "backend requires VNC authentication and no backend password is configured"
            }
            Error::NoCommonSecurityType => {
                "backend offers neither None nor VNC authentication security"
            }
            Error::TlsRequired => {
                "backend does not offer VeNCrypt (TLS), which is required: set Ganeti's vnc_tls \
                 and vnc_x509_path"
            }
            Error::TlsNotConfigured => {
                "backend offers only VeNCrypt (TLS) and no backend TLS is set up"
            }
            Error::VencryptVersion => "backend does not speak VeNCrypt 0.2",
            Error::AnonymousTls => {
                "backend offers only anonymous TLS (VeNCrypt TLSNone/TLSVnc, MITM-able): set \
                 Ganeti's vnc_x509_path"
            }
            Error::NoX509Subtype => {
                "backend offers no VeNCrypt X509None/X509Vnc subtype: set Ganeti's vnc_x509_path"
            }
            Error::SubtypeRefused => "backend refused the VeNCrypt subtype it offered",
            Error::AuthenticationFailed => "backend refused the password",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the server's ProtocolVersion.
    Version,
    /// 3.3: waiting for the server's u32 security type.
    SecurityType33,
    /// 3.7/3.8: waiting for the number of security types.
    TypeCount,
    /// 3.7/3.8: reading the list; this many types still to come.
    Types(u8),
    /// VeNCrypt: waiting for the server's version (2 bytes).
    VencryptVersion,
    /// VeNCrypt: waiting for the server's verdict on our version.
    VencryptVersionAck,
    /// VeNCrypt: waiting for the number of subtypes.
    SubtypeCount,
    /// VeNCrypt: reading the subtypes; this many still to come.
    Subtypes(u8),
    /// VeNCrypt: waiting for the server's acknowledgement of our subtype.
    SubtypeAck,
    /// VeNCrypt: the driver runs TLS; nothing is consumed until
    /// [`Client::tls_established`].
    Tls,
    /// Waiting for the 16-byte challenge.
    Challenge,
    /// Waiting for SecurityResult.
    Result,
    /// Waiting for a reason's u32 length; then fail with the error.
    ReasonLen(Error),
    /// Reading a reason; this many bytes still to come, then fail.
    Reason(u32, Error),
    /// Logged in; nothing more is consumed.
    LoggedIn,
    /// Stopped with `error`.
    Failed,
}

/// The RFB client handshake machine (see the module docs).
///
/// Driver order: drain [`Machine::poll_output`] (to the backend), feed the
/// backend's bytes to [`Machine::handle_input`], keeping what it does not
/// consume, until [`Event::LoggedIn`] or an error. On [`Event::StartTls`]
/// run the TLS client handshake over the connection (what the machine left
/// unconsumed goes to TLS first), call [`Client::tls_established`], and go on
/// the same way inside TLS. Call `handle_input` again after every `Ok(n)`
/// with `n > 0` (with the rest, even if empty) until it returns `Ok(0)` or
/// `Err`: a failure found after some bytes were consumed (the server's own
/// failure message, which is consumed whole, reason included) is returned by
/// the next call, so the consumed count never depends on how the input was
/// split. The machine has no timer: the driver bounds the login itself
/// (`poll_timeout` is always `None`).
pub struct Client {
    state: State,
    key: Option<[u8; KEY_LEN]>,
    tls: Tls,
    server_version: Option<(u16, u16)>,
    max_version: Version,
    version: Option<Version>,
    offered: [u8; 255],
    offered_len: usize,
    chosen: Option<u8>,
    subtypes: [u32; SUBTYPES_KEPT],
    subtypes_len: usize,
    /// Seen among the subtypes: X509None, X509Vnc, an anonymous one.
    x509_none: bool,
    x509_vnc: bool,
    anonymous: bool,
    subtype: Option<u32>,
    in_tls: bool,
    reason: Option<Reason>,
    out: Outbox<OUT_CAP>,
    event: Option<Event>,
    error: Option<Error>,
}

impl Client {
    /// A client that will log in with VNC Authentication using `password`
    /// (only its first 8 bytes count) if the server demands it, or that can
    /// only use None when `password` is `None`. Only the derived DES key is
    /// kept. Nothing is sent until the server's version arrives. No backend
    /// TLS ([`Tls::Off`]) unless [`Client::with_tls`] says otherwise.
    pub fn new(password: Option<&[u8]>) -> Client {
        Client {
            state: State::Version,
            key: password.map(des::key),
            tls: Tls::Off,
            server_version: None,
            max_version: Version::V3_8,
            version: None,
            offered: [0; 255],
            offered_len: 0,
            chosen: None,
            subtypes: [0; SUBTYPES_KEPT],
            subtypes_len: 0,
            x509_none: false,
            x509_vnc: false,
            anonymous: false,
            subtype: None,
            in_tls: false,
            reason: None,
            out: Outbox::new(),
            event: None,
            error: None,
        }
    }

    /// Caps the version this client answers with (e.g. [`Version::V3_3`]
    /// for a backend known to mishandle later ones); the default is 3.8.
    pub fn with_max_version(mut self, max: Version) -> Client {
        self.max_version = max;
        self
    }

    /// Whether to speak VeNCrypt (the driver can run TLS toward the backend
    /// and verify its certificate); the default is [`Tls::Off`].
    pub fn with_tls(mut self, tls: Tls) -> Client {
        self.tls = tls;
        self
    }

    /// The server's ProtocolVersion as `(major, minor)`, once read.
    pub fn server_version(&self) -> Option<(u16, u16)> {
        self.server_version
    }

    /// The version we answered with, once the server's is read.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The security types the server offered (3.3: the one it chose; types
    /// above 255 show as 255), in its order.
    pub fn offered_types(&self) -> &[u8] {
        self.offered.get(..self.offered_len).unwrap_or_default()
    }

    /// The security type in use (1 None, 2 VNC Authentication, 19
    /// VeNCrypt), once chosen.
    pub fn security_type(&self) -> Option<u8> {
        self.chosen
    }

    /// The VeNCrypt subtypes the server offered, in its order (the first 16).
    pub fn offered_subtypes(&self) -> &[u32] {
        self.subtypes.get(..self.subtypes_len).unwrap_or_default()
    }

    /// The VeNCrypt subtype in use (X509None 260 or X509Vnc 261), once
    /// chosen.
    pub fn subtype(&self) -> Option<u32> {
        self.subtype
    }

    /// Whether the session runs inside TLS (VeNCrypt, after
    /// [`Client::tls_established`]): then the relay must go through the
    /// driver's TLS stream too.
    pub fn is_tls(&self) -> bool {
        self.in_tls
    }

    /// The driver finished the TLS handshake after [`Event::StartTls`]: the
    /// machine goes on inside TLS (X509Vnc: waits for the challenge;
    /// X509None: for SecurityResult). Returns `false` (and changes nothing)
    /// at any other time.
    pub fn tls_established(&mut self) -> bool {
        if self.state != State::Tls {
            return false;
        }
        debug!("rfb client: TLS established");
        self.in_tls = true;
        self.state = match self.subtype {
            Some(vencrypt::X509_VNC) => State::Challenge,
            _ => State::Result,
        };
        true
    }

    /// The reason the server gave for refusing (3.3 connection failed, zero
    /// security types, or a 3.8 SecurityResult failed), truncated to
    /// [`super::wire::REASON_MAX`] bytes, with any byte that is not printable
    /// ASCII shown as `?`. `None` if the server gave none.
    pub fn server_reason(&self) -> Option<&str> {
        self.reason.as_ref().map(Reason::as_str)
    }

    fn fail(&mut self, e: Error) -> Error {
        debug!("rfb client: {}", e.reason());
        self.state = State::Failed;
        self.error = Some(e);
        e
    }

    fn offer(&mut self, t: u8) {
        if let Some(slot) = self.offered.get_mut(self.offered_len) {
            *slot = t;
            self.offered_len += 1;
        }
    }

    fn offer_subtype(&mut self, t: u32) {
        if let Some(slot) = self.subtypes.get_mut(self.subtypes_len) {
            *slot = t;
            self.subtypes_len += 1;
        }
        match t {
            vencrypt::X509_NONE => self.x509_none = true,
            vencrypt::X509_VNC => self.x509_vnc = true,
            t if vencrypt::is_anonymous_tls(t) => self.anonymous = true,
            _ => {}
        }
    }

    /// Chooses among the offered types (3.7/3.8) and queues the choice.
    fn choose(&mut self) -> Result<(), Error> {
        let offered = self.offered_types();
        let vencrypt = offered.contains(&SECURITY_VENCRYPT);
        let t = match self.tls {
            Tls::Require if !vencrypt => return Err(self.fail(Error::TlsRequired)),
            Tls::Prefer | Tls::Require if vencrypt => SECURITY_VENCRYPT,
            _ if offered.contains(&SECURITY_NONE) => SECURITY_NONE,
            _ if offered.contains(&SECURITY_VNC_AUTH) => {
                if self.key.is_none() {
                    return Err(self.fail(Error::PasswordRequired));
                }
                SECURITY_VNC_AUTH
            }
            _ if vencrypt => return Err(self.fail(Error::TlsNotConfigured)),
            _ => return Err(self.fail(Error::NoCommonSecurityType)),
        };
        debug!("rfb client: security type {}", t);
        self.out.push(&[t]);
        self.chosen = Some(t);
        self.state = match t {
            SECURITY_VNC_AUTH => State::Challenge,
            SECURITY_VENCRYPT => State::VencryptVersion,
            _ if self.version == Some(Version::V3_8) => State::Result,
            _ => self.logged_in(),
        };
        Ok(())
    }

    /// Chooses among the offered VeNCrypt subtypes and queues the choice:
    /// X509None, else X509Vnc (with a password), else a refusal that says
    /// what to set.
    fn choose_subtype(&mut self) -> Result<(), Error> {
        let subtype = if self.x509_none {
            vencrypt::X509_NONE
        } else if self.x509_vnc {
            if self.key.is_none() {
                return Err(self.fail(Error::PasswordRequired));
            }
            vencrypt::X509_VNC
        } else if self.anonymous {
            return Err(self.fail(Error::AnonymousTls));
        } else {
            return Err(self.fail(Error::NoX509Subtype));
        };
        debug!(
            "rfb client: VeNCrypt subtype {}",
            vencrypt::subtype_name(subtype)
        );
        self.out.push_u32(subtype);
        self.subtype = Some(subtype);
        self.state = State::SubtypeAck;
        Ok(())
    }

    fn logged_in(&mut self) -> State {
        debug!("rfb client: logged in");
        self.event = Some(Event::LoggedIn);
        State::LoggedIn
    }

    /// Handles one message (or part of a list or reason) at the start of
    /// `input`; returns bytes used (0: needs more, or done).
    fn step(&mut self, input: &[u8]) -> Result<usize, Error> {
        match self.state {
            State::Version => {
                let Some(msg) = input.get(..VERSION_LEN) else {
                    return Ok(0);
                };
                let msg: &[u8; VERSION_LEN] = msg.try_into().map_err(|_| Error::NotRfb)?;
                let Some((major, minor)) = parse_version(msg) else {
                    return Err(self.fail(Error::NotRfb));
                };
                self.server_version = Some((major, minor));
                let version = match (major, minor) {
                    (3, 7) => Version::V3_7,
                    (3, 3..=6) => Version::V3_3,
                    (3, m) if m >= 8 => Version::V3_8,
                    (m, _) if m > 3 => Version::V3_8,
                    _ => return Err(self.fail(Error::UnsupportedVersion)),
                }
                .min(self.max_version);
                debug!(
                    "rfb client: server version {}.{}, using 3.{}",
                    major,
                    minor,
                    version.minor()
                );
                self.version = Some(version);
                self.out.push(version.message());
                self.state = if version == Version::V3_3 {
                    State::SecurityType33
                } else {
                    State::TypeCount
                };
                Ok(VERSION_LEN)
            }
            State::SecurityType33 => {
                let Some(t) = u32_at(input) else {
                    return Ok(0);
                };
                if t == 0 {
                    self.state = State::ReasonLen(Error::ConnectionFailed);
                    return Ok(4);
                }
                self.offer(u8::try_from(t).unwrap_or(u8::MAX));
                let tls = self.tls;
                match u8::try_from(t) {
                    Ok(SECURITY_VENCRYPT) if tls != Tls::Off => {
                        self.chosen = Some(SECURITY_VENCRYPT);
                        self.state = State::VencryptVersion;
                    }
                    Ok(SECURITY_VENCRYPT) => return Err(self.fail(Error::TlsNotConfigured)),
                    _ if tls == Tls::Require => return Err(self.fail(Error::TlsRequired)),
                    Ok(SECURITY_NONE) => {
                        self.chosen = Some(SECURITY_NONE);
                        self.state = self.logged_in();
                    }
                    Ok(SECURITY_VNC_AUTH) if self.key.is_some() => {
                        self.chosen = Some(SECURITY_VNC_AUTH);
                        self.state = State::Challenge;
                    }
                    Ok(SECURITY_VNC_AUTH) => return Err(self.fail(Error::PasswordRequired)),
                    _ => return Err(self.fail(Error::NoCommonSecurityType)),
                }
                Ok(4)
            }
            State::TypeCount => {
                let Some(&n) = input.first() else {
                    return Ok(0);
                };
                self.state = match n {
                    0 => State::ReasonLen(Error::ConnectionFailed),
                    n => State::Types(n),
                };
                Ok(1)
            }
            State::Types(remaining) => {
                let Some(&t) = input.first() else {
                    return Ok(0);
                };
                self.offer(t);
                match remaining.checked_sub(1) {
                    Some(0) | None => self.choose()?,
                    Some(r) => self.state = State::Types(r),
                }
                Ok(1)
            }
            State::VencryptVersion => {
                let Some(&[major, minor]) = input.get(..2) else {
                    return Ok(0);
                };
                debug!("rfb client: VeNCrypt version {}.{}", major, minor);
                if (major, minor) < (vencrypt::VERSION[0], vencrypt::VERSION[1]) {
                    // Consumed (the server's message), reported next call.
                    self.fail(Error::VencryptVersion);
                    return Ok(2);
                }
                self.out.push(&vencrypt::VERSION);
                self.state = State::VencryptVersionAck;
                Ok(2)
            }
            State::VencryptVersionAck => {
                let Some(&ack) = input.first() else {
                    return Ok(0);
                };
                if ack != vencrypt::VERSION_OK {
                    self.fail(Error::VencryptVersion);
                } else {
                    self.state = State::SubtypeCount;
                }
                Ok(1)
            }
            State::SubtypeCount => {
                let Some(&n) = input.first() else {
                    return Ok(0);
                };
                if n == 0 {
                    self.fail(Error::NoX509Subtype);
                } else {
                    self.state = State::Subtypes(n);
                }
                Ok(1)
            }
            State::Subtypes(remaining) => {
                let Some(t) = u32_at(input) else {
                    return Ok(0);
                };
                self.offer_subtype(t);
                match remaining.checked_sub(1) {
                    Some(0) | None => {
                        // The list is consumed either way; a refusal is
                        // reported next call.
                        let _ = self.choose_subtype();
                    }
                    Some(r) => self.state = State::Subtypes(r),
                }
                Ok(4)
            }
            State::SubtypeAck => {
                let Some(&ack) = input.first() else {
                    return Ok(0);
                };
                if ack != vencrypt::SUBTYPE_ACCEPTED {
                    self.fail(Error::SubtypeRefused);
                } else {
                    debug!("rfb client: subtype accepted; TLS handshake");
                    self.event = Some(Event::StartTls);
                    self.state = State::Tls;
                }
                Ok(1)
            }
            State::Tls => Ok(0),
            State::Challenge => {
                let Some(challenge) = input.get(..CHALLENGE_LEN) else {
                    return Ok(0);
                };
                let challenge: &[u8; CHALLENGE_LEN] =
                    challenge.try_into().map_err(|_| Error::NotRfb)?;
                let Some(key) = self.key else {
                    return Err(self.fail(Error::PasswordRequired));
                };
                self.out.push(&des::response_with_key(&key, challenge));
                self.state = State::Result;
                Ok(CHALLENGE_LEN)
            }
            State::Result => {
                let Some(result) = u32_at(input) else {
                    return Ok(0);
                };
                if result == SECURITY_RESULT_OK {
                    self.state = self.logged_in();
                } else if self.version == Some(Version::V3_8) {
                    self.state = State::ReasonLen(Error::AuthenticationFailed);
                } else {
                    // Consumed (the server's message), reported next call.
                    self.fail(Error::AuthenticationFailed);
                }
                Ok(4)
            }
            State::ReasonLen(e) => {
                let Some(len) = u32_at(input) else {
                    return Ok(0);
                };
                self.reason = Some(Reason::new());
                if len == 0 {
                    // The failure is complete: consumed, reported next call.
                    self.fail(e);
                    return Ok(4);
                }
                self.state = State::Reason(len, e);
                Ok(4)
            }
            State::Reason(remaining, e) => {
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                let Some(bytes) = input.get(..take) else {
                    return Ok(0);
                };
                if let Some(r) = self.reason.as_mut() {
                    for &b in bytes {
                        r.push_sanitized(b);
                    }
                }
                // `take` <= `remaining`, a u32.
                let left = remaining.saturating_sub(take as u32);
                if left == 0 {
                    // The failure is complete: consumed, reported next call.
                    self.fail(e);
                    return Ok(take);
                }
                self.state = State::Reason(left, e);
                Ok(take)
            }
            State::LoggedIn => Ok(0),
            State::Failed => Err(self.error.unwrap_or(Error::NotRfb)),
        }
    }
}

impl Machine for Client {
    type Event = Event;
    type Error = Error;

    fn handle_input(&mut self, input: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        crate::machine::run_steps(input, |rest| self.step(rest))
    }

    fn poll_output(&mut self, out: &mut [u8]) -> usize {
        self.out.poll(out)
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::rfb::testutil::{feed, reason, Run};
    use crate::rfb::wire::REASON_MAX;
    use std::vec::Vec;

    const CHALLENGE: [u8; 16] = *b"fedcba9876543210";
    const SERVER_INIT_START: &[u8] = &[0, 64, 0, 48, 32, 24];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Feeds the input whole and in every chunk size; all must agree.
    fn feed_all_ways(password: Option<&[u8]>, input: &[u8]) -> Run<Event, Error> {
        let whole = feed(&mut Client::new(password), input, input.len());
        for chunk in 1..input.len() {
            assert_eq!(
                feed(&mut Client::new(password), input, chunk),
                whole,
                "chunk {chunk}"
            );
        }
        whole
    }

    #[test]
    fn v3_8_none_reads_security_result() {
        let input = cat(&[b"RFB 003.008\n", &[1, 1], &[0, 0, 0, 0], SERVER_INIT_START]);
        let mut c = Client::new(None);
        let run = feed(&mut c, &input, input.len());
        assert_eq!(run.error, None);
        assert_eq!(run.events, [Event::LoggedIn]);
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[1]]));
        assert_eq!(run.consumed, input.len() - SERVER_INIT_START.len());
        assert_eq!(c.version(), Some(Version::V3_8));
        assert_eq!(c.server_version(), Some((3, 8)));
        assert_eq!(c.security_type(), Some(SECURITY_NONE));
        assert_eq!(c.offered_types(), [1]);
        assert_eq!(c.server_reason(), None);
        // Without SecurityResult yet, it is not logged in.
        let run = feed(&mut Client::new(None), b"RFB 003.008\n\x01\x01", 14);
        assert!(run.events.is_empty());
        feed_all_ways(None, &input);
    }

    #[test]
    fn v3_7_none_has_no_security_result() {
        let input = cat(&[b"RFB 003.007\n", &[1, 1], SERVER_INIT_START]);
        let mut c = Client::new(Some(b"unused"));
        let run = feed(&mut c, &input, input.len());
        assert_eq!(run.events, [Event::LoggedIn]);
        assert_eq!(run.output, cat(&[b"RFB 003.007\n", &[1]]));
        assert_eq!(run.consumed, 14, "what follows is not a SecurityResult");
        assert_eq!(c.version(), Some(Version::V3_7));
        feed_all_ways(None, &input);
    }

    #[test]
    fn v3_3_none_has_no_security_result() {
        let input = cat(&[b"RFB 003.003\n", &[0, 0, 0, 1], SERVER_INIT_START]);
        let mut c = Client::new(None);
        let run = feed(&mut c, &input, input.len());
        assert_eq!(run.events, [Event::LoggedIn]);
        assert_eq!(run.output, b"RFB 003.003\n");
        assert_eq!(run.consumed, 16);
        assert_eq!(c.security_type(), Some(SECURITY_NONE));
        assert_eq!(c.offered_types(), [1]);
        feed_all_ways(None, &input);
    }

    #[test]
    fn vnc_auth_answers_the_challenge_on_every_version() {
        let response = des::response(b"backend!", &CHALLENGE);
        for (server, types, answer) in [
            (
                &b"RFB 003.008\n"[..],
                &[1u8, 2][..],
                &b"RFB 003.008\n\x02"[..],
            ),
            (b"RFB 003.007\n", &[1, 2], b"RFB 003.007\n\x02"),
            (b"RFB 003.003\n", &[0, 0, 0, 2], b"RFB 003.003\n"),
        ] {
            let input = cat(&[server, types, &CHALLENGE, &[0, 0, 0, 0], &[9]]);
            let mut c = Client::new(Some(b"backend!extra"));
            let run = feed(&mut c, &input, 3);
            assert_eq!(run.error, None);
            assert_eq!(run.events, [Event::LoggedIn]);
            assert_eq!(run.output, cat(&[answer, &response]));
            assert_eq!(run.consumed, input.len() - 1);
            assert_eq!(c.security_type(), Some(SECURITY_VNC_AUTH));
            feed_all_ways(Some(b"backend!"), &input);
        }
    }

    #[test]
    fn prefers_none_over_vnc_auth_whatever_the_order() {
        let input = cat(&[b"RFB 003.008\n", &[3, 16, 2, 1]]);
        let mut c = Client::new(Some(b"pw"));
        let run = feed(&mut c, &input, 1);
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[1]]));
        assert_eq!(c.offered_types(), [16, 2, 1]);
        assert_eq!(c.security_type(), Some(SECURITY_NONE));
    }

    #[test]
    fn vnc_auth_without_a_password_is_a_clear_error() {
        let mut c = Client::new(None);
        let run = feed(&mut c, &cat(&[b"RFB 003.008\n", &[2, 16, 2]]), 1);
        assert_eq!(run.error, Some(Error::PasswordRequired));
        assert_eq!(run.output, b"RFB 003.008\n", "no choice sent");
        assert_eq!(c.offered_types(), [16, 2]);
        let run = feed(&mut Client::new(None), b"RFB 003.003\n\0\0\0\x02", 1);
        assert_eq!(run.error, Some(Error::PasswordRequired));
    }

    #[test]
    fn no_common_security_type_names_what_was_offered() {
        let mut c = Client::new(Some(b"pw"));
        let run = feed(&mut c, &cat(&[b"RFB 003.008\n", &[2, 16, 18]]), 16);
        assert_eq!(run.error, Some(Error::NoCommonSecurityType));
        assert_eq!(c.offered_types(), [16, 18]);
        assert_eq!(crate::rfb::wire::security_type_name(19), "VeNCrypt");
        // 3.3 with an unknown type, and one above 255.
        let mut c = Client::new(Some(b"pw"));
        let run = feed(&mut c, b"RFB 003.003\n\0\0\0\x10", 16);
        assert_eq!(run.error, Some(Error::NoCommonSecurityType));
        assert_eq!(c.offered_types(), [16]);
        let mut c = Client::new(Some(b"pw"));
        feed(&mut c, b"RFB 003.003\n\0\x01\0\x02", 16);
        assert_eq!(c.offered_types(), [255]);
    }

    #[test]
    fn connection_failed_reports_the_reason() {
        let why = "Too many security failures";
        for input in [
            cat(&[b"RFB 003.003\n", &[0, 0, 0, 0], &reason(why)]),
            cat(&[b"RFB 003.008\n", &[0], &reason(why)]),
            cat(&[b"RFB 003.007\n", &[0], &reason(why)]),
        ] {
            let mut c = Client::new(Some(b"pw"));
            let run = feed(&mut c, &input, 2);
            assert_eq!(run.error, Some(Error::ConnectionFailed));
            assert_eq!(c.server_reason(), Some(why));
            feed_all_ways(Some(b"pw"), &input);
        }
        let mut c = Client::new(None);
        let run = feed(&mut c, b"RFB 003.008\n\0\0\0\0\0", 64);
        assert_eq!(run.error, Some(Error::ConnectionFailed));
        assert_eq!(c.server_reason(), Some(""));
    }

    #[test]
    fn authentication_failed_reads_the_3_8_reason_only() {
        let input = cat(&[
            b"RFB 003.008\n",
            &[1, 2],
            &CHALLENGE,
            &[0, 0, 0, 1],
            &reason("Authentication failure"),
        ]);
        let mut c = Client::new(Some(b"pw"));
        let run = feed(&mut c, &input, 5);
        assert_eq!(run.error, Some(Error::AuthenticationFailed));
        assert_eq!(c.server_reason(), Some("Authentication failure"));
        assert!(run.events.is_empty());
        feed_all_ways(Some(b"pw"), &input);
        // 3.8 None with a failed SecurityResult reads the reason too.
        let mut c = Client::new(None);
        let run = feed(
            &mut c,
            &cat(&[b"RFB 003.008\n", &[1, 1], &[0, 0, 0, 1], &reason("no")]),
            64,
        );
        assert_eq!(run.error, Some(Error::AuthenticationFailed));
        assert_eq!(c.server_reason(), Some("no"));
        // 3.7 and 3.3 have no reason: the error comes with the result.
        for input in [
            cat(&[b"RFB 003.007\n", &[1, 2], &CHALLENGE, &[0, 0, 0, 1]]),
            cat(&[b"RFB 003.003\n", &[0, 0, 0, 2], &CHALLENGE, &[0, 0, 0, 2]]),
        ] {
            let mut c = Client::new(Some(b"pw"));
            let run = feed(&mut c, &input, 7);
            assert_eq!(run.error, Some(Error::AuthenticationFailed));
            assert_eq!(c.server_reason(), None);
        }
    }

    #[test]
    fn long_and_hostile_reasons_are_bounded_and_sanitized() {
        let mut long = Vec::from(1000u32.to_be_bytes());
        long.extend((0..1000).map(|i| if i % 10 == 0 { 0x1b } else { b'a' }));
        let input = cat(&[b"RFB 003.008\n", &[0], &long]);
        let mut c = Client::new(None);
        let run = feed(&mut c, &input, 1);
        assert_eq!(run.error, Some(Error::ConnectionFailed));
        let r = c.server_reason().unwrap();
        assert_eq!(r.len(), REASON_MAX);
        assert!(r.starts_with("?aaaaaaaaa?a"));
        // A reason that claims 4 GiB: consumed as it comes, never buffered.
        let mut c = Client::new(None);
        let input = cat(&[b"RFB 003.008\n", &[0], &[0xff; 4], &[b'x'; 300]]);
        assert_eq!(c.handle_input(&input), Ok(input.len()));
        assert_eq!(c.server_reason().map(str::len), Some(REASON_MAX));
    }

    #[test]
    fn versions() {
        for (server, answer) in [
            (b"RFB 003.889\n", Version::V3_8), // Apple
            (b"RFB 004.001\n", Version::V3_8), // RealVNC 4
            (b"RFB 005.000\n", Version::V3_8), // RealVNC 5+
            (b"RFB 003.005\n", Version::V3_3),
            (b"RFB 003.006\n", Version::V3_3),
        ] {
            let mut c = Client::new(None);
            let run = feed(&mut c, server, 12);
            assert_eq!(run.error, None);
            assert_eq!(run.output, answer.message());
        }
        for server in [b"RFB 002.000\n", b"RFB 003.002\n", b"RFB 000.000\n"] {
            let run = feed(&mut Client::new(None), server, 12);
            assert_eq!(run.error, Some(Error::UnsupportedVersion));
            assert!(run.output.is_empty());
        }
        let run = feed(&mut Client::new(None), b"SSH-2.0-OpenSSH_9\r\n", 1);
        assert_eq!(run.error, Some(Error::NotRfb));
        assert!(run.output.is_empty());
    }

    #[test]
    fn truncated_input_waits_and_errors_are_sticky() {
        let mut c = Client::new(Some(b"pw"));
        assert_eq!(c.handle_input(b"RFB 003"), Ok(0));
        assert_eq!(c.handle_input(b"RFB 003.008\n\x02\x01"), Ok(14));
        assert_eq!(c.security_type(), None, "the list is not complete");
        assert_eq!(c.handle_input(&[2]), Ok(1));
        assert_eq!(c.security_type(), Some(SECURITY_NONE));
        assert_eq!(c.handle_input(&[0, 0, 0]), Ok(0));
        assert_eq!(c.poll_event(), None);
        assert_eq!(c.handle_input(&[0, 0, 0, 0, 42]), Ok(4));
        assert_eq!(c.poll_event(), Some(Event::LoggedIn));
        assert_eq!(c.handle_input(&[42]), Ok(0));
        assert_eq!(c.poll_timeout(), None);
        let mut c = Client::new(None);
        assert_eq!(c.handle_input(b"xxxxxxxxxxxx"), Err(Error::NotRfb));
        assert_eq!(c.handle_input(b"RFB 003.008\n"), Err(Error::NotRfb));
    }

    /// QEMU's VeNCrypt greeting up to its subtype list (one subtype).
    fn vencrypt_offer(version: &[u8], subtypes: &[u32]) -> Vec<u8> {
        let mut v = cat(&[version, &[1, 19], &[0, 2], &[0], &[subtypes.len() as u8]]);
        for t in subtypes {
            v.extend_from_slice(&t.to_be_bytes());
        }
        v
    }

    /// Feeds `before` (plain), expects StartTls, calls tls_established, then
    /// feeds `inside` (the plaintext), in chunks of `chunk`.
    fn run_vencrypt(
        c: &mut Client,
        before: &[u8],
        inside: &[u8],
        chunk: usize,
    ) -> (Run<Event, Error>, Run<Event, Error>) {
        let plain = feed(c, before, chunk);
        if plain.error.is_some() {
            return (plain, feed(c, &[], 1));
        }
        assert!(!c.is_tls());
        assert!(c.tls_established() || plain.events != [Event::StartTls]);
        (plain, feed(c, inside, chunk))
    }

    #[test]
    fn vencrypt_x509_vnc_hands_off_tls_then_answers_the_challenge_inside() {
        let before = vencrypt_offer(b"RFB 003.008\n", &[vencrypt::X509_VNC]);
        let before = cat(&[&before, &[1]]);
        let inside = cat(&[&CHALLENGE, &[0, 0, 0, 0], SERVER_INIT_START]);
        let response = des::response(b"cluster!", &CHALLENGE);
        for chunk in 1..=before.len() {
            let mut c = Client::new(Some(b"cluster!")).with_tls(Tls::Prefer);
            // Nothing is consumed past the acknowledgement: TLS records follow.
            let tls_hello = [0x16, 3, 3, 0, 5];
            let (plain, tls) = run_vencrypt(&mut c, &cat(&[&before, &tls_hello]), &inside, chunk);
            assert_eq!(plain.error, None);
            assert_eq!(plain.events, [Event::StartTls]);
            assert_eq!(plain.consumed, before.len(), "chunk {chunk}");
            assert_eq!(
                plain.output,
                cat(&[b"RFB 003.008\n", &[19], &[0, 2], &261u32.to_be_bytes()])
            );
            assert!(c.is_tls());
            assert!(!c.tls_established(), "only once");
            assert_eq!(tls.error, None);
            assert_eq!(tls.events, [Event::LoggedIn]);
            assert_eq!(tls.output, response);
            assert_eq!(tls.consumed, inside.len() - SERVER_INIT_START.len());
            assert_eq!(c.security_type(), Some(SECURITY_VENCRYPT));
            assert_eq!(c.subtype(), Some(vencrypt::X509_VNC));
            assert_eq!(c.offered_subtypes(), [vencrypt::X509_VNC]);
        }
    }

    #[test]
    fn vencrypt_x509_none_reads_security_result_on_3_7_too() {
        for version in [&b"RFB 003.008\n"[..], b"RFB 003.007\n"] {
            let before = cat(&[&vencrypt_offer(version, &[vencrypt::X509_NONE]), &[1]]);
            let mut c = Client::new(None).with_tls(Tls::Require);
            let (plain, tls) = run_vencrypt(&mut c, &before, &[0, 0, 0, 0, 1], 3);
            assert_eq!(plain.events, [Event::StartTls]);
            assert_eq!(tls.events, [Event::LoggedIn]);
            assert_eq!(tls.output, b"");
            assert_eq!(tls.consumed, 4);
            assert_eq!(c.subtype(), Some(vencrypt::X509_NONE));
        }
    }

    #[test]
    fn vencrypt_failures_inside_tls_read_the_3_8_reason() {
        let before = cat(&[
            &vencrypt_offer(b"RFB 003.008\n", &[vencrypt::X509_VNC]),
            &[1],
        ]);
        let inside = cat(&[&CHALLENGE, &[0, 0, 0, 1], &reason("Authentication failed")]);
        let mut c = Client::new(Some(b"wrong")).with_tls(Tls::Prefer);
        let (_, tls) = run_vencrypt(&mut c, &before, &inside, 4);
        assert_eq!(tls.error, Some(Error::AuthenticationFailed));
        assert_eq!(c.server_reason(), Some("Authentication failed"));
    }

    #[test]
    fn vencrypt_is_preferred_over_none_only_with_tls() {
        let offer = cat(&[b"RFB 003.008\n", &[3, 1, 19, 2]]);
        let mut c = Client::new(Some(b"pw")).with_tls(Tls::Prefer);
        let run = feed(&mut c, &offer, 1);
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[19]]));
        let mut c = Client::new(Some(b"pw"));
        let run = feed(&mut c, &offer, 1);
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[1]]), "Tls::Off");
        // Prefer falls back to None or VNC auth when VeNCrypt is not offered.
        let mut c = Client::new(Some(b"pw")).with_tls(Tls::Prefer);
        let run = feed(&mut c, &cat(&[b"RFB 003.008\n", &[1, 2]]), 1);
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[2]]));
        assert_eq!(run.error, None);
    }

    #[test]
    fn vencrypt_refusals_name_what_to_set() {
        let required = |input: &[u8]| {
            let mut c = Client::new(Some(b"pw")).with_tls(Tls::Require);
            feed(&mut c, input, 1).error
        };
        assert_eq!(
            required(&cat(&[b"RFB 003.008\n", &[2, 1, 2]])),
            Some(Error::TlsRequired)
        );
        assert_eq!(
            required(b"RFB 003.003\n\0\0\0\x01"),
            Some(Error::TlsRequired)
        );
        let off = Client::new(Some(b"pw"));
        let mut c = off;
        let run = feed(&mut c, &cat(&[b"RFB 003.008\n", &[1, 19]]), 1);
        assert_eq!(run.error, Some(Error::TlsNotConfigured));
        for (subtypes, error) in [
            (&[vencrypt::TLS_NONE][..], Error::AnonymousTls),
            (&[vencrypt::TLS_VNC, vencrypt::PLAIN], Error::AnonymousTls),
            (&[vencrypt::PLAIN], Error::NoX509Subtype),
            (&[vencrypt::X509_PLAIN, 0xdead_beef], Error::NoX509Subtype),
            (&[], Error::NoX509Subtype),
        ] {
            let input = vencrypt_offer(b"RFB 003.008\n", subtypes);
            let mut c = Client::new(Some(b"pw")).with_tls(Tls::Prefer);
            let run = feed(&mut c, &input, 1);
            assert_eq!(run.error, Some(error), "{subtypes:?}");
            assert_eq!(run.consumed, input.len(), "the whole list is read");
            assert_eq!(c.offered_subtypes(), subtypes);
            assert!(error.reason().contains("vnc_x509_path"));
            assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[19], &[0, 2]]));
        }
        // X509Vnc without a password; X509None preferred when both are offered.
        let input = vencrypt_offer(b"RFB 003.008\n", &[vencrypt::X509_VNC]);
        let mut c = Client::new(None).with_tls(Tls::Prefer);
        assert_eq!(feed(&mut c, &input, 2).error, Some(Error::PasswordRequired));
        let input = vencrypt_offer(b"RFB 003.008\n", &[vencrypt::X509_VNC, vencrypt::X509_NONE]);
        let mut c = Client::new(Some(b"pw")).with_tls(Tls::Prefer);
        feed(&mut c, &input, 2);
        assert_eq!(c.subtype(), Some(vencrypt::X509_NONE));
    }

    #[test]
    fn every_reason_fits_an_rfb_reason_with_the_daemons_prefix() {
        for e in [
            Error::TlsRequired,
            Error::TlsNotConfigured,
            Error::VencryptVersion,
            Error::AnonymousTls,
            Error::NoX509Subtype,
            Error::SubtypeRefused,
            Error::PasswordRequired,
        ] {
            assert!("backend: ".len() + e.reason().len() <= REASON_MAX, "{e}");
        }
    }

    #[test]
    fn vencrypt_version_and_subtype_refusals() {
        // A server at 0.1, and one that refuses our 0.2.
        for input in [
            cat(&[b"RFB 003.008\n", &[1, 19], &[0, 1]]),
            cat(&[b"RFB 003.008\n", &[1, 19], &[0, 2], &[0xff]]),
        ] {
            let mut c = Client::new(None).with_tls(Tls::Prefer);
            let run = feed(&mut c, &input, 1);
            assert_eq!(run.error, Some(Error::VencryptVersion));
            assert_eq!(run.consumed, input.len());
        }
        let input = cat(&[&vencrypt_offer(b"RFB 003.008\n", &[260]), &[0]]);
        let mut c = Client::new(None).with_tls(Tls::Prefer);
        let run = feed(&mut c, &input, 1);
        assert_eq!(run.error, Some(Error::SubtypeRefused));
        assert!(run.events.is_empty());
        assert!(!c.tls_established());
        // A later version (0.3) is answered with ours.
        let input = cat(&[b"RFB 003.008\n", &[1, 19], &[0, 3]]);
        let run = feed(&mut Client::new(None).with_tls(Tls::Prefer), &input, 1);
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[19], &[0, 2]]));
        // A 3.3 server that chose VeNCrypt itself.
        let input = cat(&[
            b"RFB 003.003\n",
            &[0, 0, 0, 19],
            &[0, 2],
            &[0, 1],
            &260u32.to_be_bytes(),
            &[1],
        ]);
        let mut c = Client::new(None).with_tls(Tls::Prefer);
        let run = feed(&mut c, &input, 5);
        assert_eq!(run.events, [Event::StartTls]);
        let mut c = Client::new(None);
        let run = feed(&mut c, &input, 5);
        assert_eq!(run.error, Some(Error::TlsNotConfigured));
    }

    #[test]
    fn many_subtypes_are_read_without_storing_them_all() {
        let mut subtypes: Vec<u32> = (1000..1200).collect();
        subtypes.push(vencrypt::X509_NONE);
        let mut input = cat(&[b"RFB 003.008\n", &[1, 19], &[0, 2], &[0], &[201]]);
        for t in &subtypes {
            input.extend_from_slice(&t.to_be_bytes());
        }
        input.push(1);
        let mut c = Client::new(None).with_tls(Tls::Prefer);
        let run = feed(&mut c, &input, 7);
        assert_eq!(run.events, [Event::StartTls]);
        assert_eq!(c.offered_subtypes().len(), SUBTYPES_KEPT);
        assert_eq!(c.subtype(), Some(vencrypt::X509_NONE));
    }
}
