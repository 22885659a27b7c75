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
    /// `--trusted-proxy`: sources whose connections may open with a PROXY
    /// protocol header naming the real client.
    pub trusted_proxy: vncap_core::cidr::CidrList,
    /// `--control-allow`: where TCP control clients may come from.
    pub control_allow: vncap_core::cidr::CidrList,
    /// `--max-control-connections`: control connections open at once.
    pub max_control_connections: usize,
    /// `--max-control-connections-per-ip`: of those, from one source.
    pub max_control_connections_per_ip: usize,
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
    /// `--ticket-key` (and `--ticket-key-previous`): single-port tickets
    /// are signed (re-read on SIGHUP).
    pub ticket_keys: Option<crate::ticket_key::TicketKeys>,
    /// Which backends tickets may reach (`--backend-allow`, never vncap's
    /// own listening sockets).
    pub backend_access: crate::backend::Access,
    /// `--web-root`: static files on the single port (the open directory).
    pub web_root: Option<std::sync::Arc<crate::web::WebRoot>>,
    /// Dead peers and session caps (`--ping-*`, `--tcp-keepalive`,
    /// `--idle-timeout`, `--max-session-secs`).
    pub limits: Limits,
}

/// How long peers may stay silent and sessions may live; `None` is off.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// WebSocket pings to viewers (`--ping-interval`, `--ping-timeout`).
    pub ping: Option<vncap_core::ws::Keepalive>,
    /// TCP keepalive idle time on both legs (`--tcp-keepalive`).
    pub tcp_keepalive: Option<Duration>,
    /// No byte either way for this long ends a session (`--idle-timeout`).
    pub idle: Option<Duration>,
    /// A session's longest life (`--max-session-secs`).
    pub max_life: Option<Duration>,
}
