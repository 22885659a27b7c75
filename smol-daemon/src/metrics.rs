//! `--metrics ADDR`: the listener that serves the Prometheus text format at
//! `GET /metrics` and nothing else. Which answer a request head gets and
//! the text itself are the core's (`vncap_core::metrics`); this file reads
//! the head (bounded in size and time), writes the answer and closes. The
//! numbers are the ones `stats` answers on the control channel
//! (`Daemon::stats`).

use crate::daemon::Daemon;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;
use vncap_core::metrics;

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

/// One scrape: the request head (until the core has an answer), then the
/// answer, then close.
async fn one(d: &Daemon, mut s: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let answer = loop {
        if let Some(answer) = metrics::answer(&head) {
            break answer;
        }
        let n = s.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    };
    let body = match answer {
        metrics::Answer::Metrics => {
            let mut text = String::new();
            let _ = metrics::write_text(&d.stats(), &mut text);
            text
        }
        metrics::Answer::Refused { body, .. } => body.to_string(),
    };
    let mut out = String::new();
    let _ = metrics::write_head(&answer, body.len(), &mut out);
    out.push_str(&body);
    s.write_all(out.as_bytes()).await?;
    s.flush().await?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}
