//! The command line (`argh`): `vncap serve`, `vncap flashpolicy`,
//! `vncap request`, `vncap sessions`, `vncap kill`, `vncap passwd`. Option names are an interface: tools and users rely on
//! them, so keep them stable. Parsing only; what each command does lives in
//! `serve.rs`, `flashpolicy.rs` and `request.rs` (also `sessions`, `kill`).

use argh::FromArgs;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use vncap_core::backend_allow::AllowList;
use vncap_core::cidr::CidrList;

/// vncap: a VNC authentication proxy. A front end (Ganeti Web Manager,
/// Synnefo) asks for a console over the control channel; vncap opens a
/// one-time entry point guarded by a temporary password, authenticates the
/// viewer (noVNC over WebSocket, or a native VNC viewer), logs in to the real
/// VNC server and relays the session. Manual: vncap(8).
#[derive(FromArgs, Debug)]
pub struct Cli {
    /// print the version (`vncap X.Y.Z`) and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
// Parsed once at start: the size of `Serve` costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    Serve(Serve),
    FlashPolicy(FlashPolicy),
    Request(Request),
    Sessions(Sessions),
    Kill(Kill),
    Passwd(Passwd),
}

/// run the proxy in the foreground (the service manager daemonizes); logs to
/// stderr; SIGHUP re-reads --cert, --key, --backend-tls-dir,
/// --backend-password-file, the --ticket-key files and --control-users; SIGTERM closes the listeners and lets live
/// sessions drain (--drain-timeout), SIGINT cuts them at once; exits 0.
/// Under systemd it reports readiness (Type=notify) and takes the control
/// socket from socket activation (LISTEN_FDS).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
pub struct Serve {
    /// settings file: TOML whose keys are these long option names
    /// (`max-sessions = 256`, `require-tls = true`, `allowed-origin = [...]`);
    /// the command line overrides it (default: none)
    #[argh(option, arg_name = "file")]
    pub config: Option<PathBuf>,
    /// control channel: HOST:PORT, or unix:PATH for a Unix socket (mode 0600)
    /// (default 127.0.0.1:8888)
    #[argh(
        option,
        arg_name = "addr",
        default = "String::from(\"127.0.0.1:8888\")",
        from_str_fn(control_address)
    )]
    pub control: String,
    /// address the entry points listen on, one this host has (default ::
    /// dual-stack, falling back to 0.0.0.0 where IPv6 is absent)
    #[argh(option, arg_name = "ip")]
    pub listen: Option<IpAddr>,
    /// entry-port pool LO-HI (default 7000-8000)
    #[argh(
        option,
        arg_name = "lo-hi",
        default = "PortRange { lo: 7000, hi: 8000 }"
    )]
    pub ports: PortRange,
    /// also serve WebSocket consoles on this one port (0: any free port), each
    /// named by a token in its URL (`websockify?token=...`); snf-dialect
    /// requests for WebSocket consoles then get a token instead of a port
    /// (default: off)
    #[argh(option, arg_name = "port")]
    pub single_port: Option<u16>,
    /// serve the static files of this directory (a noVNC checkout) on
    /// --single-port beside the consoles, so the page and its WebSocket
    /// share one origin: GET and HEAD, index.html for directories, no
    /// listings, nothing outside it (no `..`, no symlink out) (default: off)
    #[argh(option, arg_name = "dir")]
    pub web_root: Option<PathBuf>,
    /// PEM certificate chain (end-entity first) for TLS on every entry point,
    /// the single port and (--control-tls) the control channel; with --key,
    /// entry points also accept TLS (and requests may require it) (default:
    /// no TLS)
    #[argh(option, arg_name = "file")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert (PKCS#8, PKCS#1 or SEC1); both files are
    /// read again on SIGHUP (default: no TLS)
    #[argh(option, arg_name = "file")]
    pub key: Option<PathBuf>,
    /// entry points accept TLS connections only, whatever a request asked
    /// (needs --cert and --key); a plain viewer is told why (default: off)
    #[argh(switch)]
    pub require_tls: bool,
    /// the control channel (HOST:PORT only) speaks TLS with --cert and --key
    /// (snf-vncauthproxy's --enable-ssl) (default: off)
    #[argh(switch)]
    pub control_tls: bool,
    /// an `Origin` a browser's WebSocket must come from, e.g.
    /// https://gwm.example.org (repeat for several; default: any); others get
    /// HTTP 403
    #[argh(option, arg_name = "origin")]
    pub allowed_origin: Vec<String>,
    /// host name or address put in JSON replies as `proxy_address` (ASCII, at
    /// most 255 bytes; default: the address the control request arrived on)
    #[argh(option, arg_name = "host", from_str_fn(public_address))]
    pub public_address: Option<String>,
    /// seconds a ticket waits for its viewer (default 30; 1 to
    /// --max-ticket-timeout)
    #[argh(option, arg_name = "secs", default = "30", from_str_fn(ticket_secs))]
    pub ticket_timeout: u32,
    /// the most seconds a request may ask a ticket to wait (default 300;
    /// 1-86400)
    #[argh(option, arg_name = "secs", default = "300", from_str_fn(ticket_secs))]
    pub max_ticket_timeout: u32,
    /// file holding Ganeti's cluster VNC password, given to backends that
    /// demand VNC authentication (first line; trailing newline ignored)
    /// (default: the request's password)
    #[argh(option, arg_name = "file")]
    pub backend_password_file: Option<PathBuf>,
    /// reach backends over VeNCrypt (TLS, X509None/X509Vnc) when they offer
    /// it: a directory in QEMU's layout (Ganeti's vnc_x509_path):
    /// ca-cert.pem verifies the nodes, and client-cert.pem + client-key.pem,
    /// when present, are shown to nodes that verify peers; re-read on SIGHUP
    #[argh(option, arg_name = "dir")]
    pub backend_tls_dir: Option<PathBuf>,
    /// refuse backends that do not offer VeNCrypt (needs --backend-tls-dir)
    #[argh(switch)]
    pub backend_tls_required: bool,
    /// the name every node's certificate must be valid for (e.g. the one
    /// certificate a Ganeti cluster shares); default: the request's daddr
    #[argh(option, arg_name = "name")]
    pub backend_tls_name: Option<String>,
    /// seconds to wait for a backend's TCP connection (default 5; 1-300)
    #[argh(option, arg_name = "secs", default = "5", from_str_fn(connect_secs))]
    pub connect_timeout: u32,
    /// further connection attempts toward a backend (default 3; 0-100)
    #[argh(option, arg_name = "n", default = "3", from_str_fn(retries))]
    pub connect_retries: u32,
    // Backends and tickets on a hostile network (issue 15).
    /// backends a console may point at: CIDR[:LO-HI],... (e.g.
    /// 10.0.0.0/8:5900-5999,[2001:db8::7]:5901) (default: any address and
    /// port); vncap's own listening sockets are never one, and a refused
    /// backend is "backend unreachable" to the viewer like any other
    #[argh(
        option,
        arg_name = "cidr[:lo-hi],...",
        default = "AllowList::any()",
        from_str_fn(allow_list)
    )]
    pub backend_allow: AllowList,
    /// wrong passwords a console takes from one source (an address; IPv6: a
    /// /64) before it refuses that source (default 1; 1-3)
    #[argh(option, arg_name = "n", default = "1", from_str_fn(ticket_attempts))]
    pub ticket_attempts: u8,
    /// sources that may use up their wrong passwords before the console is
    /// gone (default 3; 1-8; 1: a wrong password burns the console)
    #[argh(
        option,
        arg_name = "n",
        default = "vncap_core::ticket::DEFAULT_FAILING_SOURCES",
        from_str_fn(failing_sources)
    )]
    pub ticket_failing_sources: u8,
    /// seconds a viewer has to finish authentication (default 10; 1-3600)
    #[argh(option, arg_name = "secs", default = "10", from_str_fn(handshake_secs))]
    pub handshake_timeout: u32,
    /// most concurrent sessions: viewers that authenticated (default 256;
    /// 1-1000000); one more is told "the proxy is full" and keeps its ticket
    #[argh(option, arg_name = "n", default = "256", from_str_fn(sessions))]
    pub max_sessions: usize,
    /// most viewer connections not yet authenticated, from all sources
    /// (default 256; 1-1000000); counted apart from --max-sessions
    #[argh(option, arg_name = "n", default = "256", from_str_fn(sessions))]
    pub max_handshakes: usize,
    /// most of those from one source address (an IPv6 /64) (default 16;
    /// 1-1000000), so one host's flood cannot keep another's viewer out
    #[argh(option, arg_name = "n", default = "16", from_str_fn(sessions))]
    pub max_handshakes_per_ip: usize,
    /// load balancers whose connections (entry ports, the single port, the
    /// control channel) may start with a PROXY protocol header (v1 or v2):
    /// CIDR,... (default: none; from anywhere else such a header is refused)
    #[argh(
        option,
        arg_name = "cidr,...",
        default = "CidrList::none()",
        from_str_fn(cidr_list)
    )]
    pub trusted_proxy: CidrList,
    // The control channel on a hostile network (issue 15).
    /// where TCP control clients may come from: CIDR,... (default: loopback,
    /// 127.0.0.0/8,::1); others are closed before a byte is read (a
    /// --trusted-proxy's client is checked by the address its PROXY header
    /// names; a unix:PATH channel is not address-checked)
    #[argh(
        option,
        arg_name = "cidr,...",
        default = "CidrList::loopback()",
        from_str_fn(cidr_list)
    )]
    pub control_allow: CidrList,
    /// most control connections open at once (default 64; 1-1000000); one
    /// more is closed at once
    #[argh(option, arg_name = "n", default = "64", from_str_fn(sessions))]
    pub max_control_connections: usize,
    /// most of those from one source address (an IPv6 /64) (default 8;
    /// 1-1000000), so one host's flood cannot keep another's request out
    #[argh(option, arg_name = "n", default = "8", from_str_fn(sessions))]
    pub max_control_connections_per_ip: usize,
    /// snf-vncauthproxy's users file (`user:HASH` lines, crypt(3) $6$ or $5$;
    /// `vncap passwd` writes them): every control request (console, list,
    /// kill, stats) must then carry a matching auth_user and auth_password,
    /// so GWM's requests, which cannot, are refused; re-read on SIGHUP
    /// (default: none, any client the other limits admit may ask)
    #[argh(option, arg_name = "file")]
    pub control_users: Option<PathBuf>,
    /// longest control request in bytes (default 4096; 64-65536)
    #[argh(
        option,
        arg_name = "bytes",
        default = "4096",
        from_str_fn(request_bytes)
    )]
    pub max_request_bytes: usize,
    /// longest HTTP request header block of a WebSocket upgrade in bytes
    /// (default 8192; 256-65536); larger ones get HTTP 431
    #[argh(
        option,
        arg_name = "bytes",
        default = "8192",
        from_str_fn(header_bytes)
    )]
    pub max_header_bytes: usize,
    /// longest WebSocket message from a viewer in bytes (default 16777216,
    /// 16 MiB; 1-1073741824); larger ones close the connection with code 1009
    #[argh(
        option,
        arg_name = "bytes",
        default = "16 << 20",
        from_str_fn(message_bytes)
    )]
    pub max_message_bytes: u64,
    /// most consoles waiting for their viewer at once (default and at most
    /// 1024; a running session does not count: see --max-sessions)
    #[argh(option, arg_name = "n", default = "1024", from_str_fn(tickets))]
    pub max_tickets: usize,
    // Signed tickets (issue 16).
    /// sign single-port tickets with the key in this file (at least 32
    /// random bytes, all of them the key; the same file on every instance):
    /// any vncap holding it admits them, once per instance; read again on
    /// SIGHUP (default: tickets live in this process only)
    #[argh(option, arg_name = "file")]
    pub ticket_key: Option<PathBuf>,
    /// the key before the last rotation: its tickets are still admitted,
    /// none are signed with it (needs --ticket-key; read again on SIGHUP)
    /// (default: none)
    #[argh(option, arg_name = "file")]
    pub ticket_key_previous: Option<PathBuf>,
    /// record every connection's RFB bytes (viewer leg and backend leg, both
    /// directions) as text files in this directory (mode 0600; they hold the
    /// VNC challenge and response: treat them like a password file) (default:
    /// off)
    #[argh(option, arg_name = "dir")]
    pub record: Option<PathBuf>,
    // Operating vncap (issue 13): dead peers, session caps, metrics, drain.
    /// seconds between WebSocket pings to a viewer (default 20; 0-3600, 0:
    /// no pings)
    #[argh(option, arg_name = "secs", default = "20", from_str_fn(ping_secs))]
    pub ping_interval: u32,
    /// seconds a WebSocket viewer has to send any frame after a ping before
    /// its session is closed (code 1011, "viewer stopped answering";
    /// default 10; 1-3600)
    #[argh(
        option,
        arg_name = "secs",
        default = "10",
        from_str_fn(ping_timeout_secs)
    )]
    pub ping_timeout: u32,
    /// TCP keepalive on both legs of every session: seconds idle before the
    /// first probe (then every SECS/3, at least 1, 3 probes; default 60;
    /// 0-32767, 0: off)
    #[argh(option, arg_name = "secs", default = "60", from_str_fn(keepalive_secs))]
    pub tcp_keepalive: u32,
    /// seconds without a byte in either direction after which a session is
    /// ended (default 0: never)
    #[argh(option, arg_name = "secs", default = "0")]
    pub idle_timeout: u32,
    /// longest a session may last, in seconds (default 0: no limit)
    #[argh(option, arg_name = "secs", default = "0")]
    pub max_session_secs: u32,
    /// serve Prometheus metrics at GET /metrics on this HOST:PORT (its own
    /// listener; nothing else is served there) (default: none)
    #[argh(option, arg_name = "addr")]
    pub metrics: Option<String>,
    /// seconds live sessions may go on after SIGTERM before they are cut
    /// (default 10; 0-3600, 0: cut at once); a second SIGTERM, or SIGINT,
    /// cuts at once
    #[argh(option, arg_name = "secs", default = "10", from_str_fn(drain_secs))]
    pub drain_timeout: u32,
    /// write the process id here while running (default: none)
    #[argh(option, arg_name = "file")]
    pub pidfile: Option<PathBuf>,
    /// error, warn, info, debug or trace (default info)
    #[argh(option, arg_name = "level", default = "log::LevelFilter::Info")]
    pub log_level: log::LevelFilter,
}

/// answer Flash socket-policy requests (the port-843 policy server). Port 843
/// needs root, CAP_NET_BIND_SERVICE, or systemd's socket activation
/// (vncap-flashpolicy.socket; vncap takes the socket from LISTEN_FDS)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "flashpolicy")]
pub struct FlashPolicy {
    /// address to listen on: IP or IP:PORT, port 843 when left out (default
    /// [::]:843)
    #[argh(
        option,
        arg_name = "addr",
        default = "SocketAddr::from((Ipv6Addr::UNSPECIFIED, 843))",
        from_str_fn(policy_listen)
    )]
    pub listen: SocketAddr,
    /// ports the policy allows, LO-HI (default 7000-8000, the entry range)
    #[argh(
        option,
        arg_name = "lo-hi",
        default = "PortRange { lo: 7000, hi: 8000 }"
    )]
    pub ports: PortRange,
    /// domain the policy allows (default *)
    #[argh(option, arg_name = "domain", default = "String::from(\"*\")")]
    pub domain: String,
    /// error, warn, info, debug or trace (default info)
    #[argh(option, arg_name = "level", default = "log::LevelFilter::Info")]
    pub log_level: log::LevelFilter,
}

/// ask a running daemon for a console and print its port and password
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "request")]
pub struct Request {
    /// the daemon's control channel: HOST:PORT or unix:PATH (default
    /// 127.0.0.1:8888)
    #[argh(
        option,
        arg_name = "addr",
        default = "String::from(\"127.0.0.1:8888\")",
        from_str_fn(control_address)
    )]
    pub control: String,
    /// the VNC server's host
    #[argh(option, arg_name = "host")]
    pub daddr: String,
    /// the VNC server's port
    #[argh(option, arg_name = "port")]
    pub dport: u16,
    /// the password the viewer must present (default: the daemon generates one)
    #[argh(option, arg_name = "pw")]
    pub password: Option<String>,
    /// the viewer comes over WebSocket (noVNC) (default: native RFB)
    #[argh(switch)]
    pub ws: bool,
    /// the viewer comes over TLS (default: plain)
    #[argh(switch)]
    pub tls: bool,
    /// the control channel speaks TLS (serve --control-tls); needs --ca
    /// (default: plain)
    #[argh(switch)]
    pub control_tls: bool,
    /// PEM certificates to trust for --control-tls: the CA, or the daemon's
    /// self-signed --cert itself (default: none)
    #[argh(option, arg_name = "file")]
    pub ca: Option<PathBuf>,
    /// preferred entry port (default: the daemon picks one)
    #[argh(option, arg_name = "port")]
    pub sport: Option<u16>,
    /// seconds the ticket waits for its viewer (1 to the daemon's
    /// --max-ticket-timeout, 300 unless configured; default: the daemon's
    /// --ticket-timeout)
    #[argh(option, arg_name = "secs", from_str_fn(ticket_secs))]
    pub timeout: Option<u32>,
    /// ask for a single-port WebSocket console and print its noVNC URL: URL
    /// is the noVNC page (https://vnc.example.org/vnc.html); vncap adds
    /// autoconnect=1, path=websockify?token=... and password=... in the
    /// URL's fragment (#...), which noVNC reads first and browsers never
    /// send to a server or in a Referer, so the token and password stay out
    /// of web server logs; the URL opens the console in one click until it
    /// is used or expires: hand it only to its user (default: off)
    #[argh(option, arg_name = "url", from_str_fn(novnc_url))]
    pub single_port: Option<String>,
    /// control user for a daemon with --control-users (sent as auth_user,
    /// with the password from --password-file) (default: none)
    #[argh(option, arg_name = "user")]
    pub user: Option<String>,
    /// file whose first line is --user's password (default: none)
    #[argh(option, arg_name = "file")]
    pub password_file: Option<PathBuf>,
}

/// list a running daemon's live sessions and pending tickets
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "sessions")]
pub struct Sessions {
    /// the daemon's control channel: HOST:PORT or unix:PATH (default 127.0.0.1:8888)
    #[argh(option, default = "String::from(\"127.0.0.1:8888\")")]
    pub control: String,
    /// the control channel speaks TLS (serve --control-tls); needs --ca
    #[argh(switch)]
    pub control_tls: bool,
    /// PEM certificates to trust for --control-tls: the CA, or the daemon's
    /// self-signed --cert itself
    #[argh(option)]
    pub ca: Option<PathBuf>,
    /// control user for a daemon with --control-users (sent as auth_user,
    /// with the password from --password-file) (default: none)
    #[argh(option, arg_name = "user")]
    pub user: Option<String>,
    /// file whose first line is --user's password (default: none)
    #[argh(option, arg_name = "file")]
    pub password_file: Option<PathBuf>,
}

/// end a session or pending ticket by its ID (as `vncap sessions` shows
/// it), or every one of a backend with --backend HOST:PORT
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "kill")]
pub struct Kill {
    /// the session's or ticket's ID
    #[argh(positional)]
    pub id: Option<u64>,
    /// every console and pending ticket of this backend, HOST:PORT
    #[argh(option)]
    pub backend: Option<String>,
    /// the daemon's control channel: HOST:PORT or unix:PATH (default 127.0.0.1:8888)
    #[argh(option, default = "String::from(\"127.0.0.1:8888\")")]
    pub control: String,
    /// the control channel speaks TLS (serve --control-tls); needs --ca
    #[argh(switch)]
    pub control_tls: bool,
    /// PEM certificates to trust for --control-tls: the CA, or the daemon's
    /// self-signed --cert itself
    #[argh(option)]
    pub ca: Option<PathBuf>,
    /// control user for a daemon with --control-users (sent as auth_user,
    /// with the password from --password-file) (default: none)
    #[argh(option, arg_name = "user")]
    pub user: Option<String>,
    /// file whose first line is --user's password (default: none)
    #[argh(option, arg_name = "file")]
    pub password_file: Option<PathBuf>,
}

/// print a line for a --control-users file (snf-vncauthproxy's format):
/// `USER:$6$SALT$HASH`, SHA-512 crypt(3) with a random salt; the password is
/// read from stdin (not echoed on a terminal) or --password-file
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "passwd")]
pub struct Passwd {
    /// the user name (no ':' or blanks)
    #[argh(positional)]
    pub user: String,
    /// read the password from this file's first line instead of stdin
    #[argh(option, arg_name = "file")]
    pub password_file: Option<PathBuf>,
}

/// A whole number within `lo..=hi`, or an error naming the range.
fn ranged<T>(s: &str, lo: T, hi: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match s.trim().parse::<T>() {
        Ok(v) if v >= lo && v <= hi => Ok(v),
        _ => Err(format!("must be a whole number {lo}-{hi}")),
    }
}

fn ticket_secs(s: &str) -> Result<u32, String> {
    ranged(s, 1, 86400)
}
fn connect_secs(s: &str) -> Result<u32, String> {
    ranged(s, 1, 300)
}
fn retries(s: &str) -> Result<u32, String> {
    ranged(s, 0, 100)
}
fn handshake_secs(s: &str) -> Result<u32, String> {
    ranged(s, 1, 3600)
}
fn sessions(s: &str) -> Result<usize, String> {
    ranged(s, 1, 1_000_000)
}
fn request_bytes(s: &str) -> Result<usize, String> {
    ranged(s, 64, 65536)
}
fn header_bytes(s: &str) -> Result<usize, String> {
    ranged(s, 256, 65536)
}
fn message_bytes(s: &str) -> Result<u64, String> {
    ranged(s, 1, 1 << 30)
}
fn tickets(s: &str) -> Result<usize, String> {
    ranged(s, 1, crate::daemon::MAX_TICKETS)
}
fn ping_secs(s: &str) -> Result<u32, String> {
    ranged(s, 0, 3600)
}
fn ping_timeout_secs(s: &str) -> Result<u32, String> {
    ranged(s, 1, 3600)
}
fn keepalive_secs(s: &str) -> Result<u32, String> {
    // TCP_KEEPIDLE's Linux maximum.
    ranged(s, 0, 32767)
}
fn drain_secs(s: &str) -> Result<u32, String> {
    ranged(s, 0, 3600)
}

/// `HOST:PORT` or `unix:PATH`; a bare path gets the `unix:` hint.
fn control_address(s: &str) -> Result<String, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("unix: needs a path, e.g. unix:/run/vncap/control".into());
        }
        return Ok(s.to_string());
    }
    if s.starts_with('/') || s.starts_with('.') {
        return Err(format!(
            "expected HOST:PORT; a Unix socket is written unix:{s}"
        ));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_string()),
        _ => Err("expected HOST:PORT (e.g. 127.0.0.1:8888) or unix:PATH".into()),
    }
}

/// What `proxy_address` may hold: a host name or an address, ASCII (it goes
/// into JSON replies and a fixed-size field of the control codec).
fn public_address(s: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || ".-_:[]%".contains(c);
    if s.is_empty() || s.len() > vncap_core::control::HOST_CAP || !s.chars().all(ok) {
        return Err(format!(
            "must be a host name or IP address (letters, digits, . - _ : [ ] %; at most {} bytes)",
            vncap_core::control::HOST_CAP
        ));
    }
    Ok(s.to_string())
}

/// `vncap request --single-port URL`: an http(s) URL of the noVNC page,
/// without spaces or control characters.
fn novnc_url(s: &str) -> Result<String, String> {
    let scheme = s.starts_with("https://") || s.starts_with("http://");
    if !scheme || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(
            "must be the http(s) URL of the noVNC page, e.g. https://vnc.example.org/vnc.html"
                .into(),
        );
    }
    Ok(s.to_string())
}

/// `IP`, `[IPv6]` or a socket address; a bare address gets port 843.
fn policy_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 843))
        .map_err(|_| "expected IP or IP:PORT, e.g. 0.0.0.0, [::1]:8843".into())
}

/// An inclusive port range, written `LO-HI`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub lo: u16,
    /// Last port of the range (inclusive).
    pub hi: u16,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: expected LO-HI, e.g. 7000-8000"))?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
        };
        let (lo, hi) = (port(lo)?, port(hi)?);
        if lo > hi {
            return Err(format!("{s:?}: LO is above HI"));
        }
        Ok(PortRange { lo, hi })
    }
}

/// `--backend-allow`: `CIDR[:LO-HI],...`.
pub fn allow_list(s: &str) -> Result<AllowList, String> {
    s.parse().map_err(|e| {
        format!("expected CIDR[:LO-HI],... (like 10.0.0.0/8:5900-5999,::1): {s:?}: {e}")
    })
}
fn ticket_attempts(s: &str) -> Result<u8, String> {
    ranged(s, 1, 3)
}
fn failing_sources(s: &str) -> Result<u8, String> {
    ranged(s, 1, vncap_core::ticket::MAX_FAILING_SOURCES as u8)
}

/// A list of address ranges: `10.0.0.0/8,::1` (a bare address is one host).
pub fn cidr_list(s: &str) -> Result<CidrList, String> {
    s.parse()
        .map_err(|e| format!("expected CIDR,... (like 10.0.0.0/8,::1): {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!("7000-8000".parse(), Ok(PortRange { lo: 7000, hi: 8000 }));
        assert_eq!("5-5".parse(), Ok(PortRange { lo: 5, hi: 5 }));
        assert!("8000-7000".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
        assert!("7000".parse::<PortRange>().is_err());
        assert!("1-70000".parse::<PortRange>().is_err());
    }

    #[test]
    fn serve_defaults_match_the_seed() {
        let Cli {
            command: Some(Command::Serve(s)),
            ..
        } = Cli::from_args(&["vncap"], &["serve"]).unwrap()
        else {
            panic!("not serve")
        };
        assert_eq!(s.control, "127.0.0.1:8888");
        assert_eq!(s.ports, PortRange { lo: 7000, hi: 8000 });
        assert_eq!((s.ticket_timeout, s.max_ticket_timeout), (30, 300));
        assert_eq!(
            (s.connect_timeout, s.connect_retries, s.handshake_timeout),
            (5, 3, 10)
        );
    }
}
