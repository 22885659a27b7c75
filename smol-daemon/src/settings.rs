//! The settings every task reads, fixed at start (but for the TLS
//! certificate, which SIGHUP replaces inside its acceptor): what
//! `serve.rs` makes of the command line. A session needs only these and the
//! clock, not the daemon.

use std::net::IpAddr;
use std::time::Duration;

/// Settings every task reads, fixed at start (but for the TLS certificate).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where entry listeners bind.
    pub listen: IpAddr,
    /// Seconds a viewer has to authenticate.
    pub handshake_timeout: Duration,
    /// How backends are reached.
    pub connect: crate::backend::ConnectPolicy,
    /// Most concurrent sessions (authenticated viewers).
    pub max_sessions: usize,
    /// Most viewer connections not yet authenticated.
    pub max_handshakes: usize,
    /// Most of those from one source address (IPv6: its /64).
    pub max_handshakes_per_ip: usize,
    /// Relay buffer per direction, bytes.
    pub relay_buffer: usize,
    /// The Flash policy served on entry points.
    pub policy_domain: String,
    /// The ports the Flash policy allows.
    pub policy_ports: (u16, u16),
    /// TLS on entry points, when configured (its certificate is replaced on
    /// SIGHUP).
    pub tls: Option<crate::tls::Acceptor>,
    /// `Origin` values a WebSocket viewer must send (empty: any).
    pub allowed_origins: Vec<String>,
    /// Longest control request.
    pub max_request_bytes: usize,
    /// Longest HTTP request header block (WebSocket upgrade).
    pub max_header_bytes: usize,
    /// Longest WebSocket message from a viewer.
    pub max_message_bytes: u64,
    /// `--record`: the directory every connection's RFB bytes go to.
    pub record: Option<std::path::PathBuf>,
    /// VeNCrypt toward backends (`--backend-tls-dir`; reloaded on SIGHUP).
    pub backend_tls: Option<crate::backend::Tls>,
}
