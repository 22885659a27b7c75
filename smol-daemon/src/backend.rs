//! Reaching a backend VNC server: resolve its name (IPv4 and IPv6), try each
//! address with a connect timeout, and retry the whole list a bounded number
//! of times with a short backoff. Logging in is the core's `rfb::client`,
//! driven by `session.rs`.

use smol::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct ConnectPolicy {
    /// Per-address connect timeout.
    pub timeout: Duration,
    /// Further rounds after the first.
    pub retries: u32,
    /// Wait before retry `n` is `backoff * n`.
    pub backoff: Duration,
}

/// Connects to `host:port`, returning the stream (TCP_NODELAY set) or the last error.
pub async fn connect(host: &str, port: u16, policy: ConnectPolicy) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for round in 0..=policy.retries {
        if round > 0 {
            smol::Timer::after(policy.backoff * round).await;
        }
        let addrs: Vec<SocketAddr> = match smol::net::resolve((host, port)).await {
            Ok(a) if !a.is_empty() => a,
            Ok(_) => continue,
            Err(e) => {
                last = e;
                continue;
            }
        };
        for addr in addrs {
            match with_timeout(policy.timeout, TcpStream::connect(addr)).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => {
                    log::debug!("backend {addr}: {e}");
                    last = e;
                }
            }
        }
    }
    Err(last)
}

/// Runs `fut`, or fails with `TimedOut` after `limit`.
pub async fn with_timeout<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    futures_lite::future::or(fut, async {
        smol::Timer::after(limit).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    })
    .await
}
