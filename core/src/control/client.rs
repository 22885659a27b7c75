//! The client side of the control channel: write one request, read its
//! reply (DESIGN.md, "The control channel"; issue 13's actions).
//!
//! What it is: the operator CLI's and the tests' way in. The messages
//! themselves, and both their parse and their emit, are in
//! [`super::request`] (a console request is written from an [`Ask`], an
//! action with [`Request::emit`](super::Request::emit)) and
//! [`super::reply`] ([`Answer`], [`List`], [`parse_killed`], [`Stats`]);
//! this file names the errors ([`ClientError`]) and keeps the two calls
//! the CLI makes, [`write_request`] and [`parse_reply`]. What it is not: a
//! socket, a retry policy, or the server side ([`super::Control`]).

use core::fmt;

pub use super::reply::{
    parse_killed, Answer, Door, Key, Layers, List, Outcome, Reason, Row, SessionRow, Stats,
    TicketRow, REASON_CAP,
};
pub use super::request::Ask;
use super::Dialect;

/// Why a request could not be written or a reply not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientError {
    /// The request does not fit in the buffer given to [`write_request`].
    BufferTooSmall,
    /// A console request goes out through [`Ask`], not
    /// [`super::Request::emit`].
    NotAnAction,
    /// Asking the proxy to generate a password is a dialect 2 extension.
    GeneratedPasswordNeedsSnf,
    /// Control credentials (`auth_user`, `auth_password`) are dialect 2's
    /// keys.
    CredentialsNeedSnf,
    /// Dialect 2's `type` has no value for this transport (only plain,
    /// WebSocket, and WebSocket over TLS).
    TransportNotExpressible,
    /// Dialect 1: neither a port nor a line starting `FAIL`.
    NotAReply,
    /// Dialect 1: a port of 0 or over 65535; dialect 2: `source_port` out of
    /// 0..=65535, or 0 with `"status": "OK"`.
    PortOutOfRange,
    /// Bytes other than whitespace after the reply.
    TrailingBytes,
    /// The reply is longer than [`super::MAX_INPUT`] bytes.
    ReplyTooLong,
    /// Dialect 2: not a JSON object (syntax, another JSON value, or cut
    /// short).
    BadJson,
    /// Dialect 2: nesting deeper than [`super::request::MAX_DEPTH`].
    NestedTooDeep,
    /// Dialect 2: a string with a bad escape, a `\u` surrogate, or invalid
    /// UTF-8.
    BadString,
    /// Dialect 2: `status` is neither `"OK"` nor `"FAILED"`.
    BadStatus,
    /// Dialect 2: a required key is absent or `null`.
    Missing(Key),
    /// Dialect 2: a key's value has the wrong JSON type.
    WrongType(Key),
    /// Dialect 2: a string is longer than its capacity.
    TooLong(Key),
    /// Dialect 2: a key appears twice.
    Duplicate(Key),
}

impl ClientError {
    /// What went wrong, for the operator.
    pub fn reason(&self) -> &'static str {
        match *self {
            ClientError::BufferTooSmall => "request does not fit in the buffer",
            ClientError::NotAnAction => "a console request is written from an Ask",
            ClientError::GeneratedPasswordNeedsSnf => {
                "a generated password needs the snf (JSON reply) dialect"
            }
            ClientError::CredentialsNeedSnf => {
                "control credentials (auth_user) need the snf (JSON reply) dialect"
            }
            ClientError::TransportNotExpressible => {
                "the snf dialect expresses only vnc, vnc-ws and vnc-wss"
            }
            ClientError::NotAReply => "reply is neither a port nor FAILED",
            ClientError::PortOutOfRange => "port in reply out of range",
            ClientError::TrailingBytes => "bytes after the reply",
            ClientError::ReplyTooLong => "reply longer than 4096 bytes",
            ClientError::BadJson => "reply is not a JSON object",
            ClientError::NestedTooDeep => "reply JSON nested too deeply",
            ClientError::BadString => "bad string in reply (escape, UTF-8 or length)",
            ClientError::BadStatus => "reply status is neither OK nor FAILED",
            ClientError::Missing(k) => k.missing(),
            ClientError::WrongType(k) => k.wrong_type(),
            ClientError::TooLong(k) => k.too_long(),
            ClientError::Duplicate(k) => k.duplicate(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// Writes one console request line (a JSON object and `\n`) into `out`
/// ([`Ask::emit`]). Returns the bytes written.
pub fn write_request(ask: &Ask<'_>, out: &mut [u8]) -> Result<usize, ClientError> {
    ask.emit(out)
}

/// Parses the proxy's reply to a console request of `dialect`
/// ([`Answer::parse`]). `reply` is everything the proxy sent.
pub fn parse_reply(dialect: Dialect, reply: &[u8]) -> Result<Answer, ClientError> {
    Answer::parse(dialect, reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{
        Config, Console, Control, Event, Granted, Need, Request, Transport, MAX_INPUT,
    };
    use crate::machine::Machine;

    fn ask(dialect: Dialect) -> Ask<'static> {
        Ask {
            dialect,
            host: "node1.example.org",
            port: 5901,
            password: Some("Ab3dE6gH"),
            transport: Transport::WEBSOCKET,
            preferred_port: None,
            timeout_secs: None,
        }
    }

    fn write(a: &Ask<'_>) -> heapless::Vec<u8, 4096> {
        let mut buf = [0u8; 4096];
        let n = write_request(a, &mut buf).unwrap();
        heapless::Vec::from_slice(&buf[..n]).unwrap()
    }

    fn config() -> Config {
        let mut c = Config::default();
        c.proxy_address.push_str("vnc.example.org").unwrap();
        c.max_timeout_ms = u64::MAX;
        c
    }

    /// The server side's reading of `bytes`, and the machine to reply with.
    fn serve(bytes: &[u8]) -> (Console, Control) {
        let mut c = Control::new(config(), crate::Instant::from_millis(0));
        assert_eq!(c.handle_input(bytes), Ok(bytes.len()));
        let Some(Event::Request(Request::Console(r))) = c.poll_event() else {
            panic!("no request")
        };
        (r, c)
    }

    fn output(c: &mut Control) -> heapless::Vec<u8, 4096> {
        let mut buf = [0u8; 4096];
        let n = c.poll_output(&mut buf);
        heapless::Vec::from_slice(&buf[..n]).unwrap()
    }

    #[test]
    fn exact_request_bytes() {
        assert_eq!(
            &write(&ask(Dialect::Twisted))[..],
            b"{\"daddr\": \"node1.example.org\", \"dport\": 5901, \"password\": \"Ab3dE6gH\", \"ws\": true, \"tls\": false}\n"
        );
        let a = Ask {
            preferred_port: Some(7000),
            timeout_secs: Some(30),
            transport: Transport::AUTO,
            password: Some("a\"b\\c\n\u{1}\u{e9}"),
            ..ask(Dialect::Twisted)
        };
        assert_eq!(
            &write(&a)[..],
            "{\"daddr\": \"node1.example.org\", \"dport\": 5901, \"password\": \"a\\\"b\\\\c\\n\\u0001\u{e9}\", \"sport\": 7000, \"timeout\": 30}\n".as_bytes()
        );
        assert_eq!(
            &write(&ask(Dialect::Snf))[..],
            &b"{\"source_port\": 0, \"destination_address\": \"node1.example.org\", \"destination_port\": 5901, \"password\": \"Ab3dE6gH\", \"type\": \"vnc-ws\"}\n"[..]
        );
        let a = Ask {
            password: None,
            transport: Transport::WEBSOCKET_TLS,
            preferred_port: Some(6000),
            timeout_secs: Some(5),
            ..ask(Dialect::Snf)
        };
        assert_eq!(
            &write(&a)[..],
            &b"{\"source_port\": 6000, \"destination_address\": \"node1.example.org\", \"destination_port\": 5901, \"type\": \"vnc-wss\", \"timeout\": 5}\n"[..]
        );
    }

    #[test]
    fn what_a_dialect_cannot_say() {
        let mut buf = [0u8; 512];
        let a = Ask {
            password: None,
            ..ask(Dialect::Twisted)
        };
        assert_eq!(
            write_request(&a, &mut buf),
            Err(ClientError::GeneratedPasswordNeedsSnf)
        );
        for transport in [
            Transport::AUTO,
            Transport {
                tls: Need::Yes,
                websocket: Need::No,
            },
            Transport {
                tls: Need::Either,
                websocket: Need::Yes,
            },
        ] {
            let a = Ask {
                transport,
                ..ask(Dialect::Snf)
            };
            assert_eq!(
                write_request(&a, &mut buf),
                Err(ClientError::TransportNotExpressible)
            );
        }
        // Every buffer too small is an error, never a panic or a cut line.
        let full = write(&ask(Dialect::Snf));
        for n in 0..full.len() {
            assert_eq!(
                write_request(&ask(Dialect::Snf), &mut buf[..n]),
                Err(ClientError::BufferTooSmall)
            );
        }
        assert_eq!(
            write_request(&ask(Dialect::Snf), &mut buf[..full.len()]),
            Ok(full.len())
        );
    }

    #[test]
    fn requests_read_back_by_the_server() {
        for dialect in [Dialect::Twisted, Dialect::Snf] {
            let a = Ask {
                host: "h\u{e9}st\"\\",
                password: Some("p\"\\\u{7f}\t\u{1F600}"),
                preferred_port: Some(7001),
                timeout_secs: Some(u32::MAX),
                transport: Transport::PLAIN,
                ..ask(dialect)
            };
            let (r, _) = serve(&write(&a));
            assert_eq!(r.dialect, dialect);
            assert_eq!(r.host.as_str(), a.host);
            assert_eq!(r.port, a.port);
            assert_eq!(r.password.as_ref().and_then(|s| s.as_str()), a.password);
            assert_eq!(r.transport, a.transport);
            assert_eq!(r.preferred_port, a.preferred_port);
            assert_eq!(r.timeout_ms, Some(u64::from(u32::MAX) * 1000));
        }
    }

    #[test]
    fn replies_from_the_server_side() {
        for dialect in [Dialect::Twisted, Dialect::Snf] {
            let (_, mut c) = serve(&write(&ask(dialect)));
            c.reply_ok(&Granted {
                port: 6080,
                password: Some("aB3dE6gH"),
                expires_in: Some(30),
                token: Some("00112233445566778899aabbccddeeff"),
                url_path: Some("websockify?token=00112233445566778899aabbccddeeff"),
            });
            let a = parse_reply(dialect, &output(&mut c)).unwrap();
            assert!(a.ok);
            assert_eq!(a.port, Some(6080));
            assert_eq!(a.reason, None);
            if dialect == Dialect::Snf {
                assert_eq!(
                    a.password.as_ref().and_then(|s| s.as_str()),
                    Some("aB3dE6gH")
                );
                assert_eq!(a.proxy_address.as_deref(), Some("vnc.example.org"));
                assert_eq!(a.expires_in, Some(30));
                assert_eq!(
                    a.token.as_ref().and_then(|s| s.as_str()),
                    Some("00112233445566778899aabbccddeeff")
                );
                assert_eq!(
                    a.url_path.as_ref().and_then(|s| s.as_str()),
                    Some("websockify?token=00112233445566778899aabbccddeeff")
                );
            } else {
                // Dialect 1 has room for the port only.
                assert_eq!(
                    a,
                    Answer {
                        ok: true,
                        port: Some(6080),
                        ..Answer::default()
                    }
                );
            }

            let (_, mut c) = serve(&write(&ask(dialect)));
            c.reply_failed("no \"free\" port\nin the pool");
            let a = parse_reply(dialect, &output(&mut c)).unwrap();
            assert!(!a.ok);
            assert_eq!(a.port, None);
            assert_eq!(a.reason.as_deref(), Some("no \"free\" port in the pool"));
        }
    }

    #[test]
    fn twisted_replies() {
        let ok = |p| Answer {
            ok: true,
            port: Some(p),
            ..Answer::default()
        };
        let failed = |r: Option<&str>| Answer {
            ok: false,
            reason: r.map(Reason::from_str_truncated),
            ..Answer::default()
        };
        let cases: &[(&[u8], Result<Answer, ClientError>)] = &[
            (b"7000\n", Ok(ok(7000))),
            (b"7000\r\n", Ok(ok(7000))),
            (b"7000", Ok(ok(7000))),
            (b"65535\n", Ok(ok(65535))),
            (b"00001\n", Ok(ok(1))),
            (b"FAILED\n", Ok(failed(None))),
            (b"FAILED\r\n", Ok(failed(None))),
            (b"FAILED", Ok(failed(None))),
            (b"FAILED  \n", Ok(failed(None))),
            (b"FAILED no free port\n", Ok(failed(Some("no free port")))),
            (b"FAILEDx\n", Ok(failed(Some("x")))),
            (b"FAIL\n", Ok(failed(None))),
            (b"FAILED a\x1b[2Jb\n", Ok(failed(Some("a [2Jb")))),
            (b"FAILED ok\xffjunk\n", Ok(failed(Some("ok")))),
            (b"0\n", Err(ClientError::PortOutOfRange)),
            (b"65536\n", Err(ClientError::PortOutOfRange)),
            (b"99999\n", Err(ClientError::PortOutOfRange)),
            (b"123456\n", Err(ClientError::NotAReply)),
            (b"-1\n", Err(ClientError::NotAReply)),
            (b"\n", Err(ClientError::NotAReply)),
            (b"", Err(ClientError::NotAReply)),
            (b"70 00\n", Err(ClientError::NotAReply)),
            (b"failed\n", Err(ClientError::NotAReply)),
            (b"{\"status\": \"OK\"}\n", Err(ClientError::NotAReply)),
            (b"7000\n7001\n", Err(ClientError::TrailingBytes)),
        ];
        for (reply, want) in cases {
            assert_eq!(
                parse_reply(Dialect::Twisted, reply),
                *want,
                "{:?}",
                core::str::from_utf8(reply)
            );
        }
        // A long reason is cut at a character boundary.
        let mut long: heapless::Vec<u8, 1024> = heapless::Vec::new();
        long.extend_from_slice(b"FAILED ").unwrap();
        for _ in 0..150 {
            long.extend_from_slice("\u{e9}".as_bytes()).unwrap();
        }
        let a = parse_reply(Dialect::Twisted, &long).unwrap();
        assert_eq!(a.reason.unwrap().len(), 200);
    }

    #[test]
    fn snf_replies() {
        // As snf-vncauthproxy writes them: json.dumps of a dict, no newline,
        // any key order.
        let a = parse_reply(
            Dialect::Snf,
            b"{\"source_port\": 25641, \"status\": \"OK\", \"proxy_address\": \"10.0.0.1\"}",
        )
        .unwrap();
        assert!(a.ok);
        assert_eq!(a.port, Some(25641));
        assert_eq!(a.proxy_address.as_deref(), Some("10.0.0.1"));
        // Other spacing, extra keys (nested too), null for absent.
        let a = parse_reply(
            Dialect::Snf,
            b"\r\n {\"extra\":[1,{\"a\":null}],\"status\":\"OK\",\"source_port\":7000.0,\"reason\":null,\"proxy_address\":\"\",\"password\":null}\r\n \n",
        )
        .unwrap();
        assert_eq!(
            a,
            Answer {
                ok: true,
                port: Some(7000),
                ..Answer::default()
            }
        );
        let a = parse_reply(
            Dialect::Snf,
            b"{\"status\": \"FAILED\", \"source_port\": 0}",
        )
        .unwrap();
        assert_eq!(a, Answer::default());
        let a = parse_reply(
            Dialect::Snf,
            b"{\"status\": \"FAILED\", \"reason\": \"a\\u001b[2J\\n\\u00e9\"}\n",
        )
        .unwrap();
        assert_eq!(a.reason.as_deref(), Some("a [2J \u{e9}"));
        assert_eq!(a.port, None);
    }

    #[test]
    fn snf_rejections() {
        use ClientError as E;
        let cases: &[(&[u8], ClientError)] = &[
            (b"", E::BadJson),
            (b"7000\n", E::BadJson),
            (b"FAILED\n", E::BadJson),
            (b"{\"status\": \"OK\", \"source_port\": 1", E::BadJson),
            (b"{\"status\": \"OK\", \"source_port\": 1,}", E::BadJson),
            (b"[1]", E::BadJson),
            (b"{\"a\": [[[[1]]]]}", E::NestedTooDeep),
            (
                b"{\"status\": \"OK\", \"source_port\": 1} x",
                E::TrailingBytes,
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": 1}\n{}",
                E::TrailingBytes,
            ),
            (b"{\"source_port\": 1}", E::Missing(Key::Status)),
            (
                b"{\"status\": null, \"source_port\": 1}",
                E::Missing(Key::Status),
            ),
            (b"{\"status\": \"OK\"}", E::Missing(Key::SourcePort)),
            (b"{\"status\": \"ok\", \"source_port\": 1}", E::BadStatus),
            (
                b"{\"status\": \"FAILED!\", \"source_port\": 1}",
                E::BadStatus,
            ),
            (
                b"{\"status\": 1, \"source_port\": 1}",
                E::WrongType(Key::Status),
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": 0}",
                E::PortOutOfRange,
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": 65536}",
                E::PortOutOfRange,
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": -1}",
                E::PortOutOfRange,
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": 1.5}",
                E::WrongType(Key::SourcePort),
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": \"1\"}",
                E::WrongType(Key::SourcePort),
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": 1, \"expires_in\": -1}",
                E::WrongType(Key::ExpiresIn),
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": 1, \"expires_in\": 99999999999999999999}",
                E::WrongType(Key::ExpiresIn),
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": 1, \"password\": true}",
                E::WrongType(Key::Password),
            ),
            (
                b"{\"status\": \"OK\", \"status\": \"OK\", \"source_port\": 1}",
                E::Duplicate(Key::Status),
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": 1, \"reason\": \"\\ud83d\\ude00\"}",
                E::BadString,
            ),
            (
                b"{\"status\": \"OK\", \"source_port\": 1, \"x\": \"\xff\"}",
                E::BadString,
            ),
        ];
        for (reply, want) in cases {
            assert_eq!(
                parse_reply(Dialect::Snf, reply),
                Err(*want),
                "{:?}",
                core::str::from_utf8(reply)
            );
        }
        assert_eq!(
            parse_reply(Dialect::Snf, &[b' '; MAX_INPUT + 1]),
            Err(E::ReplyTooLong)
        );
        // A token longer than the longest signed one (ticket::signed).
        let mut long: heapless::Vec<u8, 1024> = heapless::Vec::new();
        long.extend_from_slice(b"{\"status\": \"OK\", \"source_port\": 1, \"token\": \"")
            .unwrap();
        for _ in 0..=crate::ticket::signed::TOKEN_CAP {
            long.push(b'A').unwrap();
        }
        long.extend_from_slice(b"\"}").unwrap();
        assert_eq!(
            parse_reply(Dialect::Snf, &long),
            Err(E::TooLong(Key::Token))
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        use core::fmt::Write;
        let a = parse_reply(
            Dialect::Snf,
            b"{\"status\": \"OK\", \"source_port\": 1, \"password\": \"sekrit12\", \"token\": \"deadbeef\", \"url_path\": \"websockify?token=deadbeef\"}",
        )
        .unwrap();
        let mut s: heapless::String<1024> = heapless::String::new();
        write!(s, "{a:?} {:?}", ask(Dialect::Twisted)).unwrap();
        assert!(
            !s.contains("sekrit12") && !s.contains("deadbeef") && !s.contains("Ab3dE6gH"),
            "{s}"
        );
    }

    #[test]
    fn reasons_are_specific() {
        assert_eq!(
            ClientError::Missing(Key::SourcePort).reason(),
            "reply lacks source_port"
        );
        assert_eq!(
            ClientError::TooLong(Key::Token).reason(),
            "value too long for token in reply"
        );
    }
}
