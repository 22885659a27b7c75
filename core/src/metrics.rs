//! The metrics endpoint's protocol (`--metrics ADDR`): which answer a
//! scraper's HTTP request head gets ([`answer`]: only `GET /metrics`; any
//! other path 404, any other method 405, anything that is not HTTP/1.x
//! 400), and the Prometheus text exposition format (version 0.0.4) of
//! [`Stats`], the counters the control channel's `stats` action also
//! answers ([`write_text`], into any `core::fmt::Write`). The names are
//! the ones issue 13 fixed, which dashboards and alerts rely on. It is not
//! the listener: the driver reads the head (bounded), writes the answer and
//! closes.

use core::fmt::{self, Write};

use crate::control::Stats;

/// The media type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The only path served.
pub const PATH: &str = "/metrics";

/// What a request head gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the text format.
    Metrics,
    /// A refusal: the status line's rest (`404 Not Found`) and a short body.
    Refused {
        /// Status code and reason phrase.
        status: &'static str,
        /// The body, a line of text.
        body: &'static str,
    },
}

impl Answer {
    /// The status line's rest (`200 OK`, `404 Not Found`, ...).
    pub const fn status(&self) -> &'static str {
        match self {
            Answer::Metrics => "200 OK",
            Answer::Refused { status, .. } => status,
        }
    }
}

/// The answer for a request head, parsed with `httparse`: `None` while the
/// head is not complete (read more, within the driver's bounds).
pub fn answer(head: &[u8]) -> Option<Answer> {
    const BAD: Answer = Answer::Refused {
        status: "400 Bad Request",
        body: "bad request\n",
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(BAD),
    }
    let path = req.path.unwrap_or("");
    if path != PATH {
        return Some(Answer::Refused {
            status: "404 Not Found",
            body: "only /metrics is served here\n",
        });
    }
    if req.method != Some("GET") {
        return Some(Answer::Refused {
            status: "405 Method Not Allowed",
            body: "GET only\n",
        });
    }
    Some(Answer::Metrics)
}

/// Writes the response head for `answer` with a body of `body_len` bytes
/// (the connection closes after the body).
pub fn write_head(answer: &Answer, body_len: usize, out: &mut impl Write) -> fmt::Result {
    write!(out, "HTTP/1.1 {}\r\nConnection: close\r\n", answer.status())?;
    if let Answer::Refused {
        status: "405 Method Not Allowed",
        ..
    } = answer
    {
        out.write_str("Allow: GET\r\n")?;
    }
    write!(
        out,
        "Content-Type: {CONTENT_TYPE}\r\nContent-Length: {body_len}\r\n\r\n"
    )
}

/// Writes `s` in the text format: every metric with its `HELP` and `TYPE`.
pub fn write_text(s: &Stats, out: &mut impl Write) -> fmt::Result {
    let mut one = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}")?;
        for (labels, v) in samples {
            writeln!(out, "{name}{labels} {v}")?;
        }
        Ok::<(), fmt::Error>(())
    };
    one(
        "vncap_sessions_active",
        "gauge",
        "Sessions relaying now.",
        &[("", s.sessions_active)],
    )?;
    one(
        "vncap_tickets_pending",
        "gauge",
        "Tickets waiting for their viewer.",
        &[("", s.tickets_pending)],
    )?;
    one(
        "vncap_tickets_issued_total",
        "counter",
        "Tickets issued since start.",
        &[("", s.tickets_issued_total)],
    )?;
    one(
        "vncap_tickets_expired_total",
        "counter",
        "Tickets that expired unused.",
        &[("", s.tickets_expired_total)],
    )?;
    let l = &s.logins_total;
    one(
        "vncap_logins_total",
        "counter",
        "Viewer logins by result.",
        &[
            ("{result=\"ok\"}", l.ok),
            ("{result=\"wrong_password\"}", l.wrong_password),
            ("{result=\"backend_unreachable\"}", l.backend_unreachable),
            ("{result=\"backend_refused\"}", l.backend_refused),
            ("{result=\"refused\"}", l.refused),
        ],
    )?;
    one(
        "vncap_bytes_total",
        "counter",
        "Bytes relayed, by direction.",
        &[
            ("{direction=\"to_viewer\"}", s.bytes_to_viewer),
            ("{direction=\"to_backend\"}", s.bytes_to_backend),
        ],
    )?;
    one(
        "vncap_control_requests_total",
        "counter",
        "Control requests by result.",
        &[
            ("{result=\"ok\"}", s.control_ok),
            ("{result=\"failed\"}", s.control_failed),
        ],
    )?;
    one(
        "vncap_connections_refused_total",
        "counter",
        "Connections closed before a request or handshake, by channel.",
        &[
            ("{channel=\"control\"}", s.refused_control),
            ("{channel=\"entry\"}", s.refused_entry),
        ],
    )
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    #[test]
    fn only_get_metrics_is_served() {
        let status = |h: &[u8]| answer(h).map(|a| a.status());
        assert_eq!(
            status(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some("200 OK")
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Some("404 Not Found"));
        assert_eq!(
            status(b"GET /metricsx HTTP/1.0\r\n\r\n"),
            Some("404 Not Found")
        );
        assert_eq!(
            status(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"),
            Some("404 Not Found")
        );
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some("405 Method Not Allowed")
        );
        assert_eq!(
            status(b"\x16\x03\x01\x02\x00\r\n\r\n"),
            Some("400 Bad Request")
        );
        // Not complete yet: read more.
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\n"), None);
        assert_eq!(status(b""), None);
    }

    #[test]
    fn response_heads() {
        let head = |a: Answer| {
            let mut s = String::new();
            write_head(&a, 7, &mut s).unwrap();
            s
        };
        let ok = head(Answer::Metrics);
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\nConnection: close\r\n"));
        assert!(ok.ends_with("Content-Length: 7\r\n\r\n"));
        assert!(ok.contains(CONTENT_TYPE));
        let post = answer(b"POST /metrics HTTP/1.1\r\n\r\n").unwrap();
        assert!(head(post).contains("\r\nAllow: GET\r\n"));
    }

    #[test]
    fn every_metric_is_there() {
        let mut t = String::new();
        write_text(&Stats::default(), &mut t).unwrap();
        for name in [
            "vncap_sessions_active 0",
            "vncap_tickets_pending 0",
            "vncap_tickets_issued_total 0",
            "vncap_tickets_expired_total 0",
            "vncap_logins_total{result=\"backend_unreachable\"} 0",
            "vncap_bytes_total{direction=\"to_backend\"} 0",
            "vncap_control_requests_total{result=\"failed\"} 0",
            "vncap_connections_refused_total{channel=\"entry\"} 0",
        ] {
            assert!(t.lines().any(|l| l == name), "{name}");
        }
    }
}
