//! The RFB server side of the handshake: vncap authenticating a viewer with
//! the ticket password (RFC 6143 §7.1 ProtocolVersion, §7.1.2 Security,
//! §7.2.2 VNC Authentication, §7.1.3 SecurityResult).
//!
//! It sends `RFB 003.008\n`, offers exactly one security type, VNC
//! Authentication (2), sends the caller's challenge and checks the viewer's
//! response in constant time. Then it stops *before* SecurityResult and reports
//! [`Event::Authenticated`]: the driver reaches the backend first and calls
//! [`Server::accept`] or [`Server::reject`], so the viewer sees "backend
//! unreachable" instead of a hang. It is not the relay: bytes after the
//! viewer's response (an early ClientInit) are never consumed.
//!
//! Version choices (what TigerVNC's server does): a viewer version of 3.3,
//! 3.7 or 3.8 is used as is; any other 3.x is an unofficial one, used as 3.8
//! when its minor is above 8 (Apple's 3.889) and as 3.3 below 7 (RFC 6143
//! §7.1.1). Any other major is refused with TigerVNC's answer, a zero number
//! of security types and a reason (what 3.7/3.8 viewers, all modern ones,
//! display); a message that is not `RFB xxx.yyy\n` at all gets no answer.
//!
//! A viewer that picks any security type but 2 is refused: accepting None
//! here is CVE-2022-36436 (twisted-vncauthproxy let viewers skip the password).
//!
//! With [`Offer::VencryptAndVncAuth`] or [`Offer::VencryptOnly`] a 3.7/3.8
//! viewer is also (or only) offered VeNCrypt (19, [`super::vencrypt`]) with
//! the one subtype X509Vnc: version 0.2, the subtype list, then the TLS
//! handshake is handed to the driver ([`Event::StartTls`]; vncap's
//! certificate, rustls), and inside TLS the same VNC authentication with the
//! ticket password. None, Plain and the anonymous-TLS subtypes are never
//! offered; a viewer that asks for anything else is refused. A 3.3 viewer
//! (the server picks the type, and VeNCrypt needs a list) gets VNC
//! Authentication, or with [`Offer::VencryptOnly`] "connection failed" with
//! [`Error::TlsRequired`]'s reason.

use subtle::ConstantTimeEq;

use super::des::{self, CHALLENGE_LEN};
use super::vencrypt;
use super::wire::{
    parse_version, u32_at, Outbox, Reason, Version, REASON_MAX, SECURITY_RESULT_FAILED,
    SECURITY_RESULT_OK, SECURITY_VENCRYPT, SECURITY_VNC_AUTH, VERSION_LEN,
};
use crate::machine::Machine;

/// The most input the machine ever needs at once (the challenge response):
/// a caller buffer of this size never stalls it.
pub const MAX_INPUT: usize = CHALLENGE_LEN;

/// Everything the server can ever queue before it is drained: its version,
/// the 3.3 security type (4 bytes, more than 3.7/3.8's list), VeNCrypt's
/// version, verdict, subtype list and acknowledgement (9 bytes), the
/// challenge, and SecurityResult with the longest reason.
const OUT_CAP: usize = VERSION_LEN + 4 + 9 + CHALLENGE_LEN + 8 + REASON_MAX;

/// Which security types a 3.7/3.8 viewer is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// VNC Authentication only (the default).
    VncAuth,
    /// VeNCrypt X509Vnc first, and VNC Authentication: the driver can run
    /// TLS (it has a certificate), and the ticket allows plain RFB too.
    VencryptAndVncAuth,
    /// VeNCrypt X509Vnc only: a TLS-only ticket.
    VencryptOnly,
}

/// What the server reports to its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The viewer chose VeNCrypt X509Vnc: the driver runs the TLS server
    /// handshake on the connection now (what the machine left unconsumed
    /// is the viewer's first TLS bytes), then calls
    /// [`Server::tls_established`], and from then on feeds the machine the
    /// plaintext and sends its output inside TLS. Nothing is consumed until
    /// then.
    StartTls,
    /// The viewer's response is right. The machine waits for
    /// [`Server::accept`] or [`Server::reject`]; nothing more is consumed.
    Authenticated,
}

/// Why the server stopped. The answer on the wire (if the protocol has one)
/// is already queued in `poll_output` when the error is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The viewer's first 12 bytes are not `RFB xxx.yyy\n`. No answer.
    NotRfb,
    /// The viewer's major version is not 3. Answer: zero security types and
    /// this reason (3.7/3.8 style, as TigerVNC sends it).
    UnsupportedVersion,
    /// The viewer chose a security type other than VNC Authentication (e.g.
    /// None: CVE-2022-36436). Answer: SecurityResult failed, plus this reason
    /// on 3.8.
    SecurityTypeRefused,
    /// The viewer's response does not match the ticket password. Answer:
    /// SecurityResult failed, plus this reason on 3.8 (TigerVNC's words).
    AuthenticationFailed,
    /// The driver called [`Server::reject`]. Answer: SecurityResult failed,
    /// plus the driver's reason on 3.8.
    Rejected,
    /// The server was made with [`Server::refusing`]: the viewer may not
    /// authenticate at all (its ticket is gone, or it comes from the wrong
    /// address). Answer: "connection failed" (zero security types, or type 0
    /// on 3.3) with the driver's reason, which every version shows.
    Refused,
    /// The driver's handshake deadline passed ([`Server::time_out`]). Answer:
    /// SecurityResult failed with the driver's reason to a 3.8 viewer that
    /// was answering the challenge; nothing in earlier states.
    TimedOut,
    /// [`Offer::VencryptOnly`] and a 3.3 viewer, which cannot be offered
    /// VeNCrypt. Answer: security type 0 and this reason.
    TlsRequired,
    /// The viewer asked for a VeNCrypt version other than 0.2 (answer: 255)
    /// or a subtype other than X509Vnc (answer: 0, the subtype refused).
    VencryptRefused,
}

impl Error {
    /// What went wrong, in protocol words; also the reason string sent to a
    /// 3.8 viewer (except for [`Error::Rejected`], which sends the driver's).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotRfb => "not an RFB ProtocolVersion message",
            Error::UnsupportedVersion => "unsupported RFB protocol version",
            Error::SecurityTypeRefused => "security type not offered",
            Error::AuthenticationFailed => "Authentication failure",
            Error::Rejected => "rejected by the proxy",
            Error::Refused => "refused by the proxy",
            Error::TimedOut => "handshake timed out",
            Error::TlsRequired => "this console requires TLS (VeNCrypt X509Vnc, RFB 3.7 or later)",
            Error::VencryptRefused => "VeNCrypt version or subtype not offered",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

/// The outcome of the viewer's one password attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordAttempt {
    /// No response received yet (nothing to burn).
    NotMade,
    /// The response matched.
    Correct,
    /// The response did not match.
    Wrong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the viewer's ProtocolVersion.
    Version,
    /// 3.7/3.8: waiting for the viewer's security type.
    SecurityType,
    /// VeNCrypt: waiting for the viewer's version (2 bytes).
    VencryptVersion,
    /// VeNCrypt: waiting for the viewer's subtype (u32).
    Subtype,
    /// VeNCrypt: the driver runs TLS; nothing is consumed until
    /// [`Server::tls_established`].
    Tls,
    /// Waiting for the 16-byte response.
    Response,
    /// Authenticated; waiting for the driver's accept or reject.
    Decision,
    /// SecurityResult OK queued; the relay takes over.
    Accepted,
    /// Stopped with `error`.
    Failed,
}

/// The RFB server handshake machine (see the module docs).
///
/// Driver order: drain [`Machine::poll_output`], feed the viewer's bytes to
/// [`Machine::handle_input`] (keeping what it does not consume), and on
/// [`Event::Authenticated`] log in to the backend, then call
/// [`Server::accept`] or [`Server::reject`] and drain `poll_output` again.
/// Call `handle_input` again after every `Ok(n)` with `n > 0` (with the
/// rest, even if empty) until it returns `Ok(0)` or `Err`: a failure found
/// after some bytes were consumed is returned by the next call, so the
/// consumed count never depends on how the input was split.
/// The machine has no timer: the driver bounds the handshake itself (RFB has
/// no way to tell a viewer "too slow"), so `poll_timeout` is always `None`.
pub struct Server {
    state: State,
    version: Option<Version>,
    challenge: [u8; CHALLENGE_LEN],
    expected: [u8; CHALLENGE_LEN],
    attempt: PasswordAttempt,
    out: Outbox<OUT_CAP>,
    event: Option<Event>,
    error: Option<Error>,
    /// Set by [`Server::refusing`]: the answer to any viewer version.
    refusal: Option<Reason>,
    offer: Offer,
    in_tls: bool,
}

impl Server {
    /// A server that will accept a viewer knowing `password` (only its first
    /// 8 bytes count, as in every viewer) and that sends `challenge`, which
    /// the caller draws from a secure RNG. `RFB 003.008\n` is queued at once.
    /// The password itself is not kept, only the expected response.
    pub fn new(password: &[u8], challenge: [u8; CHALLENGE_LEN]) -> Server {
        let mut out = Outbox::new();
        out.push(Version::V3_8.message());
        Server {
            state: State::Version,
            version: None,
            challenge,
            expected: des::response(password, &challenge),
            attempt: PasswordAttempt::NotMade,
            out,
            event: None,
            error: None,
            refusal: None,
            offer: Offer::VncAuth,
            in_tls: false,
        }
    }

    /// Which security types a 3.7/3.8 viewer is offered (the default is
    /// [`Offer::VncAuth`]). Only before the viewer's ProtocolVersion is
    /// read; later calls change nothing.
    pub fn with_offer(mut self, offer: Offer) -> Server {
        if self.state == State::Version {
            self.offer = offer;
        }
        self
    }

    /// Whether the viewer came in over VeNCrypt and the TLS handshake is
    /// done: the rest of the session runs inside the driver's TLS stream.
    pub fn is_tls(&self) -> bool {
        self.in_tls
    }

    /// The driver finished the TLS handshake after [`Event::StartTls`]: the
    /// challenge is queued (to be sent inside TLS) and the machine waits for
    /// the response. Returns `false` (and changes nothing) at any other
    /// time.
    pub fn tls_established(&mut self) -> bool {
        if self.state != State::Tls {
            return false;
        }
        debug!("rfb server: TLS established");
        self.in_tls = true;
        self.out.push(&self.challenge);
        self.state = State::Response;
        true
    }

    /// A server that lets no viewer authenticate and tells it why: after the
    /// viewer's ProtocolVersion it sends RFB's "connection failed" (zero
    /// security types and `reason`, or security type 0 and `reason` on 3.3;
    /// RFC 6143 §7.1.2), which every viewer version displays, and
    /// `handle_input` returns [`Error::Refused`]. For a viewer whose ticket
    /// cannot be used (expired, taken, wrong client address): it learns
    /// nothing about the password.
    pub fn refusing(reason: &str) -> Server {
        let mut s = Server::new(&[], [0; CHALLENGE_LEN]);
        s.refusal = Some(Reason::from_str_truncated(reason));
        s
    }

    /// The version agreed with the viewer, once its ProtocolVersion is read.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// Whether the viewer has answered the challenge, and how.
    pub fn password_attempt(&self) -> PasswordAttempt {
        self.attempt
    }

    /// Whether [`Server::accept`] was called: the relay may start.
    pub fn is_accepted(&self) -> bool {
        self.state == State::Accepted
    }

    /// Sends SecurityResult OK. Only after [`Event::Authenticated`]; returns
    /// `false` (and queues nothing) otherwise or if already decided.
    pub fn accept(&mut self) -> bool {
        if self.state != State::Decision {
            return false;
        }
        self.out.push(&SECURITY_RESULT_OK.to_be_bytes());
        self.state = State::Accepted;
        true
    }

    /// Sends SecurityResult failed, with `reason` on 3.8 (truncated at a
    /// character boundary to [`REASON_MAX`] bytes), e.g. "backend
    /// unreachable". Only after [`Event::Authenticated`]; returns `false`
    /// (and queues nothing) otherwise or if already decided. Afterwards
    /// `handle_input` returns [`Error::Rejected`].
    pub fn reject(&mut self, reason: &str) -> bool {
        if self.state != State::Decision {
            return false;
        }
        self.security_result_failed(&Reason::from_str_truncated(reason));
        self.state = State::Failed;
        self.error = Some(Error::Rejected);
        true
    }

    /// Gives up on a viewer that has not authenticated (the driver's
    /// handshake deadline passed): one answering the challenge gets
    /// SecurityResult failed with `reason` (3.8); one that has not sent its
    /// version or security type gets nothing more (RFB has no message for
    /// it). Afterwards `handle_input` returns [`Error::TimedOut`]. Returns
    /// `false` (and does nothing) once authenticated or stopped.
    pub fn time_out(&mut self, reason: &str) -> bool {
        match self.state {
            State::Response => self.security_result_failed(&Reason::from_str_truncated(reason)),
            State::Version
            | State::SecurityType
            | State::VencryptVersion
            | State::Subtype
            | State::Tls => {}
            State::Decision | State::Accepted | State::Failed => return false,
        }
        self.state = State::Failed;
        self.error = Some(Error::TimedOut);
        true
    }

    fn security_result_failed(&mut self, reason: &Reason) {
        self.out.push(&SECURITY_RESULT_FAILED.to_be_bytes());
        if self.version == Some(Version::V3_8) {
            self.out.push_reason(reason);
        }
    }

    fn fail(&mut self, e: Error) -> Error {
        match e {
            Error::NotRfb | Error::Rejected | Error::Refused | Error::TimedOut => {}
            Error::TlsRequired => {
                self.out.push(&0u32.to_be_bytes());
                self.out
                    .push_reason(&Reason::from_str_truncated(e.reason()));
            }
            Error::VencryptRefused => {
                let answer = if self.state == State::VencryptVersion {
                    vencrypt::VERSION_REFUSED
                } else {
                    vencrypt::SUBTYPE_REFUSED
                };
                self.out.push(&[answer]);
            }
            Error::UnsupportedVersion => {
                self.out.push(&[0]);
                self.out
                    .push_reason(&Reason::from_str_truncated(e.reason()));
            }
            Error::SecurityTypeRefused | Error::AuthenticationFailed => {
                self.security_result_failed(&Reason::from_str_truncated(e.reason()));
            }
        }
        debug!("rfb server: {}", e.reason());
        self.state = State::Failed;
        self.error = Some(e);
        e
    }

    /// Handles one message at the start of `input`; returns bytes used (0:
    /// needs more, or done).
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
                if major != 3 {
                    return Err(self.fail(Error::UnsupportedVersion));
                }
                let version = match minor {
                    7 => Version::V3_7,
                    m if m >= 8 => Version::V3_8,
                    _ => Version::V3_3,
                };
                debug!(
                    "rfb server: viewer version 3.{}, using 3.{}",
                    minor,
                    version.minor()
                );
                self.version = Some(version);
                if let Some(reason) = self.refusal.take() {
                    if version == Version::V3_3 {
                        self.out.push(&0u32.to_be_bytes());
                    } else {
                        self.out.push(&[0]);
                    }
                    self.out.push_reason(&reason);
                    return Err(self.fail(Error::Refused));
                }
                match (version, self.offer) {
                    (Version::V3_3, Offer::VencryptOnly) => {
                        return Err(self.fail(Error::TlsRequired));
                    }
                    (Version::V3_3, _) => {
                        self.out.push(&u32::from(SECURITY_VNC_AUTH).to_be_bytes());
                        self.out.push(&self.challenge);
                        self.state = State::Response;
                    }
                    (_, Offer::VncAuth) => {
                        self.out.push(&[1, SECURITY_VNC_AUTH]);
                        self.state = State::SecurityType;
                    }
                    (_, Offer::VencryptAndVncAuth) => {
                        self.out.push(&[2, SECURITY_VENCRYPT, SECURITY_VNC_AUTH]);
                        self.state = State::SecurityType;
                    }
                    (_, Offer::VencryptOnly) => {
                        self.out.push(&[1, SECURITY_VENCRYPT]);
                        self.state = State::SecurityType;
                    }
                }
                Ok(VERSION_LEN)
            }
            State::SecurityType => {
                let Some(&t) = input.first() else {
                    return Ok(0);
                };
                let offered = match self.offer {
                    Offer::VncAuth => t == SECURITY_VNC_AUTH,
                    Offer::VencryptAndVncAuth => t == SECURITY_VNC_AUTH || t == SECURITY_VENCRYPT,
                    Offer::VencryptOnly => t == SECURITY_VENCRYPT,
                };
                if !offered {
                    debug!("rfb server: viewer chose security type {}", t);
                    return Err(self.fail(Error::SecurityTypeRefused));
                }
                if t == SECURITY_VENCRYPT {
                    self.out.push(&vencrypt::VERSION);
                    self.state = State::VencryptVersion;
                } else {
                    self.out.push(&self.challenge);
                    self.state = State::Response;
                }
                Ok(1)
            }
            State::VencryptVersion => {
                let Some(&[major, minor]) = input.get(..2) else {
                    return Ok(0);
                };
                if [major, minor] != vencrypt::VERSION {
                    debug!("rfb server: viewer VeNCrypt version {}.{}", major, minor);
                    return Err(self.fail(Error::VencryptRefused));
                }
                self.out.push(&[vencrypt::VERSION_OK, 1]);
                self.out.push_u32(vencrypt::X509_VNC);
                self.state = State::Subtype;
                Ok(2)
            }
            State::Subtype => {
                let Some(subtype) = u32_at(input) else {
                    return Ok(0);
                };
                if subtype != vencrypt::X509_VNC {
                    debug!(
                        "rfb server: viewer chose VeNCrypt subtype {} ({})",
                        subtype,
                        vencrypt::subtype_name(subtype)
                    );
                    return Err(self.fail(Error::VencryptRefused));
                }
                self.out.push(&[vencrypt::SUBTYPE_ACCEPTED]);
                self.event = Some(Event::StartTls);
                self.state = State::Tls;
                Ok(4)
            }
            State::Tls => Ok(0),
            State::Response => {
                let Some(response) = input.get(..CHALLENGE_LEN) else {
                    return Ok(0);
                };
                if bool::from(response.ct_eq(&self.expected)) {
                    self.attempt = PasswordAttempt::Correct;
                    self.event = Some(Event::Authenticated);
                    self.state = State::Decision;
                    Ok(CHALLENGE_LEN)
                } else {
                    self.attempt = PasswordAttempt::Wrong;
                    Err(self.fail(Error::AuthenticationFailed))
                }
            }
            State::Decision | State::Accepted => Ok(0),
            State::Failed => Err(self.error.unwrap_or(Error::NotRfb)),
        }
    }
}

impl Machine for Server {
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
    use crate::rfb::testutil::{drain, feed, reason, Run};
    use std::vec::Vec;

    const CHALLENGE: [u8; 16] = *b"0123456789abcdef";
    const PASSWORD: &[u8] = b"ticketpw";

    fn server() -> Server {
        Server::new(PASSWORD, CHALLENGE)
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn good_response() -> [u8; 16] {
        des::response(PASSWORD, &CHALLENGE)
    }

    /// Every byte-split gives the same run as the whole input.
    fn feed_all_ways(input: &[u8]) -> Run<Event, Error> {
        let whole = feed(&mut server(), input, input.len());
        for chunk in 1..input.len() {
            assert_eq!(feed(&mut server(), input, chunk), whole, "chunk {chunk}");
        }
        whole
    }

    #[test]
    fn v3_8_authenticates_then_waits_for_accept_leaving_client_init() {
        let r = good_response();
        let input = cat(&[b"RFB 003.008\n", &[2], &r, &[1]]);
        let mut s = server();
        let run = feed(&mut s, &input, input.len());
        assert_eq!(run.error, None);
        assert_eq!(run.events, [Event::Authenticated]);
        assert_eq!(run.consumed, input.len() - 1, "ClientInit is left over");
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[1, 2], &CHALLENGE]));
        assert_eq!(s.version(), Some(Version::V3_8));
        assert_eq!(s.password_attempt(), PasswordAttempt::Correct);
        assert!(!s.is_accepted());
        assert_eq!(s.handle_input(&[1]), Ok(0));
        assert!(s.accept());
        assert!(s.is_accepted());
        assert!(!s.accept(), "only once");
        assert!(!s.reject("late"), "already decided");
        let mut more = Run {
            output: Vec::new(),
            events: Vec::new(),
            error: None,
            consumed: 0,
        };
        drain(&mut s, &mut more);
        assert_eq!(more.output, [0, 0, 0, 0]);
        assert_eq!(s.handle_input(&[1]), Ok(0), "the relay owns what follows");
        feed_all_ways(&input);
    }

    #[test]
    fn v3_7_offers_vnc_auth_and_authenticates() {
        let input = cat(&[b"RFB 003.007\n", &[2], &good_response()]);
        let mut s = server();
        let run = feed(&mut s, &input, 1);
        assert_eq!(run.events, [Event::Authenticated]);
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[1, 2], &CHALLENGE]));
        assert_eq!(s.version(), Some(Version::V3_7));
        feed_all_ways(&input);
    }

    #[test]
    fn v3_3_announces_the_type_as_u32_and_sends_the_challenge() {
        let input = cat(&[b"RFB 003.003\n", &good_response()]);
        let mut s = server();
        let run = feed(&mut s, &input, input.len());
        assert_eq!(run.events, [Event::Authenticated]);
        assert_eq!(
            run.output,
            cat(&[b"RFB 003.008\n", &[0, 0, 0, 2], &CHALLENGE])
        );
        assert_eq!(s.version(), Some(Version::V3_3));
        feed_all_ways(&input);
    }

    #[test]
    fn unofficial_versions_map_like_tigervnc() {
        for (msg, v) in [
            (b"RFB 003.889\n", Version::V3_8), // Apple
            (b"RFB 003.010\n", Version::V3_8),
            (b"RFB 003.005\n", Version::V3_3),
            (b"RFB 003.006\n", Version::V3_3),
            (b"RFB 003.000\n", Version::V3_3),
        ] {
            let mut s = server();
            let run = feed(&mut s, msg, 12);
            assert_eq!(run.error, None);
            assert_eq!(s.version(), Some(v));
        }
    }

    #[test]
    fn other_major_versions_are_refused_with_a_reason() {
        for msg in [b"RFB 004.001\n", b"RFB 002.000\n", b"RFB 005.000\n"] {
            let run = feed(&mut server(), msg, 1);
            assert_eq!(run.error, Some(Error::UnsupportedVersion));
            assert_eq!(
                run.output,
                cat(&[
                    b"RFB 003.008\n",
                    &[0],
                    &reason("unsupported RFB protocol version")
                ])
            );
            assert!(run.events.is_empty());
        }
    }

    #[test]
    fn not_rfb_gets_no_answer() {
        for msg in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"RFB 003.008\r\n",
            b"RFB 3.8     \n",
        ] {
            let run = feed(&mut server(), msg, msg.len());
            assert_eq!(run.error, Some(Error::NotRfb));
            assert_eq!(run.output, b"RFB 003.008\n");
        }
    }

    #[test]
    fn refusing_server_tells_every_version_why() {
        for chunk in [1, 64] {
            let run = feed(
                &mut Server::refusing("console expired"),
                b"RFB 003.008\n\x02",
                chunk,
            );
            assert_eq!(run.error, Some(Error::Refused));
            assert!(run.events.is_empty());
            assert_eq!(
                run.output,
                cat(&[b"RFB 003.008\n", &[0], &reason("console expired")])
            );
            let run = feed(
                &mut Server::refusing("console expired"),
                b"RFB 003.003\n",
                chunk,
            );
            assert_eq!(run.error, Some(Error::Refused));
            assert_eq!(
                run.output,
                cat(&[b"RFB 003.008\n", &[0, 0, 0, 0], &reason("console expired")])
            );
        }
        let mut s = Server::refusing("x");
        assert_eq!(s.handle_input(b"RFB 003.007\n"), Err(Error::Refused));
        assert_eq!(s.handle_input(&[]), Err(Error::Refused), "sticky");
        assert!(!s.accept());
    }

    #[test]
    fn cve_2022_36436_security_type_none_is_refused() {
        // 3.8: SecurityResult failed with a reason; no challenge, no event.
        let input = cat(&[b"RFB 003.008\n", &[1], &[1]]);
        let mut s = server();
        let run = feed(&mut s, &input, 1);
        assert_eq!(run.error, Some(Error::SecurityTypeRefused));
        assert!(run.events.is_empty());
        assert_eq!(
            run.output,
            cat(&[
                b"RFB 003.008\n",
                &[1, 2],
                &[0, 0, 0, 1],
                &reason("security type not offered")
            ])
        );
        assert_eq!(s.password_attempt(), PasswordAttempt::NotMade);
        assert!(!s.accept(), "no way to be accepted after choosing None");
        assert_eq!(s.handle_input(&[]), Err(Error::SecurityTypeRefused));
        // 3.7: SecurityResult failed, no reason.
        let run = feed(&mut server(), b"RFB 003.007\n\x01", 1);
        assert_eq!(run.error, Some(Error::SecurityTypeRefused));
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[1, 2], &[0, 0, 0, 1]]));
    }

    #[test]
    fn any_other_security_type_is_refused() {
        for t in [0u8, 3, 16, 18, 19, 30, 255] {
            let run = feed(&mut server(), &cat(&[b"RFB 003.008\n", &[t]]), 13);
            assert_eq!(run.error, Some(Error::SecurityTypeRefused), "type {t}");
            assert!(run.events.is_empty());
        }
    }

    #[test]
    fn wrong_password_answers_security_result_failed() {
        let bad = des::response(b"guess", &CHALLENGE);
        let mut s = server();
        let input = cat(&[b"RFB 003.008\n", &[2], &bad, &[1]]);
        let run = feed(&mut s, &input, 1);
        assert_eq!(run.error, Some(Error::AuthenticationFailed));
        assert!(run.events.is_empty());
        assert_eq!(
            run.output,
            cat(&[
                b"RFB 003.008\n",
                &[1, 2],
                &CHALLENGE,
                &[0, 0, 0, 1],
                &reason("Authentication failure")
            ])
        );
        assert_eq!(s.password_attempt(), PasswordAttempt::Wrong);
        assert!(!s.accept());
        feed_all_ways(&input);
        // 3.7 and 3.3: no reason.
        let run = feed(&mut server(), &cat(&[b"RFB 003.007\n", &[2], &bad]), 4);
        assert_eq!(
            run.output,
            cat(&[b"RFB 003.008\n", &[1, 2], &CHALLENGE, &[0, 0, 0, 1]])
        );
        let run = feed(&mut server(), &cat(&[b"RFB 003.003\n", &bad]), 4);
        assert_eq!(run.error, Some(Error::AuthenticationFailed));
        assert_eq!(
            run.output,
            cat(&[b"RFB 003.008\n", &[0, 0, 0, 2], &CHALLENGE, &[0, 0, 0, 1]])
        );
    }

    #[test]
    fn only_the_first_8_password_bytes_count() {
        let mut s = Server::new(b"ticketpwEXTRA", CHALLENGE);
        let run = feed(&mut s, &cat(&[b"RFB 003.008\n", &[2], &good_response()]), 5);
        assert_eq!(run.events, [Event::Authenticated]);
    }

    #[test]
    fn reject_sends_the_reason_on_3_8_truncated() {
        let mut s = server();
        feed(
            &mut s,
            &cat(&[b"RFB 003.008\n", &[2], &good_response()]),
            64,
        );
        let long = "backend unreachable: ".repeat(20);
        assert!(s.reject(&long));
        assert!(!s.accept());
        let mut run = feed(&mut s, &[], 1);
        drain(&mut s, &mut run);
        assert_eq!(
            run.output,
            cat(&[&[0, 0, 0, 1], &reason(&long[..REASON_MAX])])
        );
        assert_eq!(s.handle_input(&[1]), Err(Error::Rejected));
        assert_eq!(s.handle_input(&[]), Err(Error::Rejected));
        // 3.3: no reason.
        let mut s = server();
        feed(&mut s, &cat(&[b"RFB 003.003\n", &good_response()]), 64);
        assert!(s.reject("backend unreachable"));
        let mut run = feed(&mut s, &[], 1);
        drain(&mut s, &mut run);
        assert_eq!(run.output, [0, 0, 0, 1]);
    }

    #[test]
    fn accept_and_reject_before_authentication_do_nothing() {
        let mut s = server();
        assert!(!s.accept());
        assert!(!s.reject("no"));
        let run = feed(&mut s, b"RFB 003.008\n\x02", 13);
        assert!(!s.accept());
        assert!(!s.reject("no"));
        assert_eq!(run.output, cat(&[b"RFB 003.008\n", &[1, 2], &CHALLENGE]));
    }

    #[test]
    fn truncated_input_waits() {
        let mut s = server();
        let mut out = [0u8; 64];
        assert_eq!(s.poll_output(&mut out), 12);
        assert_eq!(s.handle_input(b"RFB 003.00"), Ok(0));
        assert_eq!(s.poll_output(&mut out), 0);
        assert_eq!(s.handle_input(b"RFB 003.008\n"), Ok(12));
        assert_eq!(s.handle_input(&[]), Ok(0));
        assert_eq!(s.handle_input(&[2]), Ok(1));
        assert_eq!(s.handle_input(&good_response()[..15]), Ok(0));
        assert_eq!(s.poll_event(), None);
        assert_eq!(s.handle_input(&good_response()), Ok(16));
        assert_eq!(s.poll_event(), Some(Event::Authenticated));
        assert_eq!(s.poll_event(), None);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn a_failure_after_progress_shows_on_the_next_call_with_the_answer_queued() {
        let mut s = server();
        let input = b"RFB 003.008\n\x01";
        assert_eq!(s.handle_input(input), Ok(12), "the version was used");
        let mut out = [0u8; 128];
        let n = s.poll_output(&mut out);
        assert!(out[..n].ends_with(&reason("security type not offered")));
        assert_eq!(
            s.handle_input(&input[12..]),
            Err(Error::SecurityTypeRefused)
        );
        assert_eq!(s.handle_input(&[]), Err(Error::SecurityTypeRefused));
    }

    #[test]
    fn output_queue_holds_a_whole_handshake_never_drained() {
        let mut s = server();
        let input = cat(&[b"RFB 003.008\n", &[2], &good_response()]);
        assert_eq!(s.handle_input(&input), Ok(input.len()));
        assert_eq!(s.poll_event(), Some(Event::Authenticated));
        let long = "x".repeat(1000);
        assert!(s.reject(&long));
        let mut out = [0u8; 1024];
        let n = s.poll_output(&mut out);
        assert_eq!(
            out[..n],
            cat(&[
                b"RFB 003.008\n",
                &[1, 2],
                &CHALLENGE,
                &[0, 0, 0, 1],
                &reason(&long[..REASON_MAX])
            ])
        );
    }

    #[test]
    fn errors_display_their_reason() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(
            Error::AuthenticationFailed.to_string(),
            "Authentication failure"
        );
    }

    fn vencrypt(offer: Offer) -> Server {
        server().with_offer(offer)
    }

    /// The viewer's side of a VeNCrypt X509Vnc login up to the hand-off.
    fn vencrypt_viewer(version: &[u8]) -> Vec<u8> {
        cat(&[version, &[19], &[0, 2], &261u32.to_be_bytes()])
    }

    /// What the server sends up to the hand-off, after its version.
    fn vencrypt_server(types: &[u8]) -> Vec<u8> {
        cat(&[
            b"RFB 003.008\n",
            types,
            &[0, 2],
            &[0, 1],
            &261u32.to_be_bytes(),
            &[1],
        ])
    }

    #[test]
    fn vencrypt_x509vnc_hands_off_tls_then_authenticates_inside() {
        for (offer, types) in [
            (Offer::VencryptOnly, &[1u8, 19][..]),
            (Offer::VencryptAndVncAuth, &[2, 19, 2]),
        ] {
            for version in [&b"RFB 003.008\n"[..], b"RFB 003.007\n"] {
                let before = vencrypt_viewer(version);
                let tls_hello = [0x16, 3, 1, 0, 0xf4];
                for chunk in 1..=before.len() + 1 {
                    let mut s = vencrypt(offer);
                    let run = feed(&mut s, &cat(&[&before, &tls_hello]), chunk);
                    assert_eq!(run.error, None);
                    assert_eq!(run.events, [Event::StartTls]);
                    assert_eq!(run.consumed, before.len(), "the ClientHello stays");
                    assert_eq!(run.output, vencrypt_server(types));
                    assert!(!s.is_tls());
                    assert_eq!(
                        s.handle_input(&tls_hello),
                        Ok(0),
                        "nothing before TLS is up"
                    );
                    assert!(s.tls_established());
                    assert!(!s.tls_established(), "only once");
                    assert!(s.is_tls());
                    // Inside TLS: the challenge, then VNC authentication.
                    let inside = cat(&[&good_response(), &[1]]);
                    let run = feed(&mut s, &inside, chunk);
                    assert_eq!(run.output, CHALLENGE);
                    assert_eq!(run.events, [Event::Authenticated]);
                    assert_eq!(run.consumed, 16, "ClientInit is left over");
                    assert!(s.accept());
                    let mut more = feed(&mut s, &[], 1);
                    drain(&mut s, &mut more);
                    assert_eq!(more.output, [0, 0, 0, 0]);
                }
            }
        }
    }

    #[test]
    fn vencrypt_wrong_password_inside_tls_is_refused_as_ever() {
        let mut s = vencrypt(Offer::VencryptOnly);
        feed(&mut s, &vencrypt_viewer(b"RFB 003.008\n"), 64);
        assert!(s.tls_established());
        let run = feed(&mut s, &des::response(b"guess", &CHALLENGE), 3);
        assert_eq!(run.error, Some(Error::AuthenticationFailed));
        assert_eq!(
            run.output,
            cat(&[&CHALLENGE, &[0, 0, 0, 1], &reason("Authentication failure")])
        );
        assert_eq!(s.password_attempt(), PasswordAttempt::Wrong);
    }

    #[test]
    fn vencrypt_only_refuses_vnc_auth_none_and_3_3() {
        // VNC authentication (or None: CVE-2022-36436) on a TLS-only ticket.
        for t in [2u8, 1] {
            let mut s = vencrypt(Offer::VencryptOnly);
            let run = feed(&mut s, &cat(&[b"RFB 003.008\n", &[t], &good_response()]), 1);
            assert_eq!(run.error, Some(Error::SecurityTypeRefused));
            assert_eq!(
                run.output,
                cat(&[
                    b"RFB 003.008\n",
                    &[1, 19],
                    &[0, 0, 0, 1],
                    &reason("security type not offered")
                ])
            );
            assert_eq!(s.password_attempt(), PasswordAttempt::NotMade);
        }
        // 3.3 cannot be offered a list: connection failed, with the reason.
        let mut s = vencrypt(Offer::VencryptOnly);
        let run = feed(&mut s, b"RFB 003.003\n", 12);
        assert_eq!(run.error, Some(Error::TlsRequired));
        assert_eq!(
            run.output,
            cat(&[
                b"RFB 003.008\n",
                &[0, 0, 0, 0],
                &reason(Error::TlsRequired.reason())
            ])
        );
        // With VNC authentication also offered, 3.3 and type 2 work as ever.
        let mut s = vencrypt(Offer::VencryptAndVncAuth);
        let run = feed(&mut s, &cat(&[b"RFB 003.003\n", &good_response()]), 5);
        assert_eq!(run.events, [Event::Authenticated]);
        let mut s = vencrypt(Offer::VencryptAndVncAuth);
        let run = feed(&mut s, &cat(&[b"RFB 003.008\n", &[2], &good_response()]), 5);
        assert_eq!(run.events, [Event::Authenticated]);
        assert!(!s.is_tls());
        assert_eq!(
            run.output,
            cat(&[b"RFB 003.008\n", &[2, 19, 2], &CHALLENGE])
        );
    }

    #[test]
    fn vencrypt_refuses_other_versions_and_subtypes() {
        // Version 0.1: answered 255.
        let mut s = vencrypt(Offer::VencryptOnly);
        let run = feed(&mut s, &cat(&[b"RFB 003.008\n", &[19], &[0, 1]]), 1);
        assert_eq!(run.error, Some(Error::VencryptRefused));
        assert_eq!(
            run.output,
            cat(&[b"RFB 003.008\n", &[1, 19], &[0, 2], &[0xff]])
        );
        // Anything but X509Vnc (None, Plain, anonymous TLS, X509None): 0.
        for subtype in [
            vencrypt::PLAIN,
            vencrypt::TLS_NONE,
            vencrypt::TLS_VNC,
            vencrypt::X509_NONE,
            vencrypt::X509_PLAIN,
            1,
        ] {
            let mut s = vencrypt(Offer::VencryptAndVncAuth);
            let input = cat(&[b"RFB 003.008\n", &[19], &[0, 2], &subtype.to_be_bytes()]);
            let run = feed(&mut s, &input, 2);
            assert_eq!(run.error, Some(Error::VencryptRefused), "{subtype}");
            assert!(run.events.is_empty());
            assert_eq!(
                run.output,
                cat(&[
                    b"RFB 003.008\n",
                    &[2, 19, 2],
                    &[0, 2],
                    &[0, 1],
                    &261u32.to_be_bytes(),
                    &[0]
                ])
            );
            assert!(!s.tls_established());
        }
        // with_offer after the version is read changes nothing.
        let mut s = server();
        feed(&mut s, b"RFB 003.008\n", 12);
        let mut s = s.with_offer(Offer::VencryptOnly);
        let run = feed(&mut s, &cat(&[&[2], &good_response()]), 17);
        assert_eq!(run.events, [Event::Authenticated]);
    }
}
