//! `--metrics ADDR`: the Prometheus text format (version 0.0.4) at
//! `GET /metrics` on a listener of its own, and nothing else there (any
//! other path is 404, any other method 405). The numbers are the ones
//! `stats` answers on the control channel (`Daemon::stats`); the text is
//! small enough to write by hand (no crate: nothing added to the binary
//! but this file). One request per connection, bounded in size and time.

use crate::daemon::Daemon;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use std::fmt::Write;
use std::rc::Rc;
use std::time::Duration;
use vncap_core::control::Stats;

/// Longest request head read.
const MAX_REQUEST: usize = 4096;
/// Time a scraper has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `/metrics` on `listener` until cancelled.
pub async fn serve(d: Rc<Daemon>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                let d2 = d.clone();
                d.ex.spawn(async move {
                    let _ = crate::backend::with_timeout(REQUEST_TIMEOUT, one(&d2, s)).await;
                })
                .detach();
            }
            Err(e) => crate::accept_failed("metrics", e).await,
        }
    }
}

/// One scrape: the request head, then the answer, then close.
async fn one(d: &Daemon, mut s: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = answer(&head, || text(&d.stats()));
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    if status.starts_with("405") {
        out.push_str("Allow: GET\r\n");
    }
    let _ = write!(
        out,
        "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(out.as_bytes()).await?;
    s.flush().await?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// The status line's rest and the body for a request head.
fn answer(head: &[u8], metrics: impl FnOnce() -> String) -> (&'static str, String) {
    let line = head.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let mut parts = line.split(|&b| b == b' ');
    let (method, path, version) = (parts.next(), parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with(b"HTTP/1.")) || parts.next().is_some() {
        return ("400 Bad Request", "bad request\n".into());
    }
    if path != Some(b"/metrics") {
        return ("404 Not Found", "only /metrics is served here\n".into());
    }
    if method != Some(b"GET") {
        return ("405 Method Not Allowed", "GET only\n".into());
    }
    ("200 OK", metrics())
}

/// The counters in the text format.
pub fn text(s: &Stats) -> String {
    let mut out = String::new();
    let mut one = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    one(
        "vncap_sessions_active",
        "gauge",
        "Sessions relaying now.",
        &[("", s.sessions_active)],
    );
    one(
        "vncap_tickets_pending",
        "gauge",
        "Tickets waiting for their viewer.",
        &[("", s.tickets_pending)],
    );
    one(
        "vncap_tickets_issued_total",
        "counter",
        "Tickets issued since start.",
        &[("", s.tickets_issued_total)],
    );
    one(
        "vncap_tickets_expired_total",
        "counter",
        "Tickets that expired unused.",
        &[("", s.tickets_expired_total)],
    );
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
    );
    one(
        "vncap_bytes_total",
        "counter",
        "Bytes relayed, by direction.",
        &[
            ("{direction=\"to_viewer\"}", s.bytes_to_viewer),
            ("{direction=\"to_backend\"}", s.bytes_to_backend),
        ],
    );
    one(
        "vncap_control_requests_total",
        "counter",
        "Control requests by result.",
        &[
            ("{result=\"ok\"}", s.control_ok),
            ("{result=\"failed\"}", s.control_failed),
        ],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served() {
        let m = || "x".to_string();
        assert_eq!(answer(b"GET /metrics HTTP/1.1\r\n", m).0, "200 OK");
        assert_eq!(answer(b"GET / HTTP/1.1\r\n", m).0, "404 Not Found");
        assert_eq!(answer(b"GET /metricsx HTTP/1.0\r\n", m).0, "404 Not Found");
        assert_eq!(
            answer(b"POST /metrics HTTP/1.1\r\n", m).0,
            "405 Method Not Allowed"
        );
        assert_eq!(answer(b"\x16\x03\x01", m).0, "400 Bad Request");
        assert_eq!(answer(b"", m).0, "400 Bad Request");
    }

    #[test]
    fn every_metric_is_there() {
        let t = text(&Stats::default());
        for name in [
            "vncap_sessions_active 0",
            "vncap_tickets_pending 0",
            "vncap_tickets_issued_total 0",
            "vncap_tickets_expired_total 0",
            "vncap_logins_total{result=\"backend_unreachable\"} 0",
            "vncap_bytes_total{direction=\"to_backend\"} 0",
            "vncap_control_requests_total{result=\"failed\"} 0",
        ] {
            assert!(t.lines().any(|l| l == name), "{name}");
        }
    }
}
