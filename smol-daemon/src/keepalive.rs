//! TCP keepalive (`--tcp-keepalive`) on both legs of a session, so a dead
//! native viewer or a dead backend is noticed even when nothing is sent:
//! the first probe after `idle` of silence, then one every `idle / 3` (at
//! least a second), and the connection fails after [`PROBES`] unanswered.

use std::time::Duration;

/// Unanswered probes before the kernel gives up on a connection.
pub const PROBES: u32 = 3;

/// Turns keepalive on for `sock` with `idle` (nothing when `None`); a
/// failure is logged, never fatal.
pub fn set(sock: &impl std::os::fd::AsFd, idle: Option<Duration>) {
    let Some(idle) = idle else { return };
    use rustix::net::sockopt;
    let interval = (idle / 3).max(Duration::from_secs(1));
    let result = sockopt::set_socket_keepalive(sock, true)
        .and_then(|()| sockopt::set_tcp_keepidle(sock, idle))
        .and_then(|()| sockopt::set_tcp_keepintvl(sock, interval))
        .and_then(|()| sockopt::set_tcp_keepcnt(sock, PROBES));
    if let Err(e) = result {
        log::debug!("TCP keepalive: {e}");
    }
}
