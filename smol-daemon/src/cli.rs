//! The command line (`argh`): `vncap serve`, `vncap flashpolicy`,
//! `vncap request`, `vncap sessions`, `vncap kill`. Option names are an interface: tools and users rely on
//! them, so keep them stable. Parsing only; what each command does lives in
//! `serve.rs`, `flashpolicy.rs` and `request.rs` (also `sessions`, `kill`).

use argh::FromArgs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// vncap: a VNC authentication proxy. A front end (Ganeti Web Manager,
/// Synnefo) asks for a console over the control channel; vncap opens a
/// one-time entry point guarded by a temporary password, authenticates the
/// viewer (noVNC over WebSocket, or a native VNC viewer), logs in to the real
/// VNC server and relays the session.
#[derive(FromArgs, Debug)]
pub struct Cli {
    #[argh(subcommand)]
    pub command: Command,
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
}

/// run the proxy in the foreground (the service manager daemonizes); logs to
/// stderr; SIGHUP re-reads --cert, --key, --backend-tls-dir and
/// --backend-password-file; SIGTERM closes the listeners and lets live
/// sessions drain (--drain-timeout), SIGINT cuts them at once; exits 0
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "serve")]
pub struct Serve {
    /// control channel: HOST:PORT, or unix:PATH for a Unix socket (mode 0600)
    #[argh(option, default = "String::from(\"127.0.0.1:8888\")")]
    pub control: String,
    /// address the entry points listen on (default :: dual-stack, falling back
    /// to 0.0.0.0 where IPv6 is absent)
    #[argh(option)]
    pub listen: Option<IpAddr>,
    /// entry-port pool LO-HI (default 7000-8000)
    #[argh(option, default = "PortRange { lo: 7000, hi: 8000 }")]
    pub ports: PortRange,
    /// also serve WebSocket consoles on this one port (0: any free port), each
    /// named by a token in its URL (`websockify?token=...`); snf-dialect
    /// requests for WebSocket consoles then get a token instead of a port
    #[argh(option)]
    pub single_port: Option<u16>,
    /// PEM certificate chain (end-entity first) for TLS on every entry point,
    /// the single port and (--control-tls) the control channel; with --key,
    /// entry points also accept TLS (and requests may require it)
    #[argh(option)]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert (PKCS#8, PKCS#1 or SEC1); both files are
    /// read again on SIGHUP
    #[argh(option)]
    pub key: Option<PathBuf>,
    /// entry points accept TLS connections only, whatever a request asked
    /// (needs --cert and --key); a plain viewer is told why
    #[argh(switch)]
    pub require_tls: bool,
    /// the control channel (HOST:PORT only) speaks TLS with --cert and --key
    /// (snf-vncauthproxy's --enable-ssl)
    #[argh(switch)]
    pub control_tls: bool,
    /// an `Origin` a browser's WebSocket must come from, e.g.
    /// https://gwm.example.org (repeat for several; default: any); others get
    /// HTTP 403
    #[argh(option)]
    pub allowed_origin: Vec<String>,
    /// host name or address put in JSON replies as `proxy_address` (default:
    /// the address the control request arrived on)
    #[argh(option)]
    pub public_address: Option<String>,
    /// seconds a ticket waits for its viewer (default 30)
    #[argh(option, default = "30")]
    pub ticket_timeout: u32,
    /// the most seconds a request may ask a ticket to wait (default 300)
    #[argh(option, default = "300")]
    pub max_ticket_timeout: u32,
    /// file holding Ganeti's cluster VNC password, given to backends that
    /// demand VNC authentication (first line; trailing newline ignored)
    #[argh(option)]
    pub backend_password_file: Option<PathBuf>,
    /// reach backends over VeNCrypt (TLS, X509None/X509Vnc) when they offer
    /// it: a directory in QEMU's layout (Ganeti's vnc_x509_path):
    /// ca-cert.pem verifies the nodes, and client-cert.pem + client-key.pem,
    /// when present, are shown to nodes that verify peers; re-read on SIGHUP
    #[argh(option)]
    pub backend_tls_dir: Option<PathBuf>,
    /// refuse backends that do not offer VeNCrypt (needs --backend-tls-dir)
    #[argh(switch)]
    pub backend_tls_required: bool,
    /// the name every node's certificate must be valid for (e.g. the one
    /// certificate a Ganeti cluster shares); default: the request's daddr
    #[argh(option)]
    pub backend_tls_name: Option<String>,
    /// seconds to wait for a backend's TCP connection (default 5)
    #[argh(option, default = "5")]
    pub connect_timeout: u32,
    /// further connection attempts toward a backend (default 3)
    #[argh(option, default = "3")]
    pub connect_retries: u32,
    /// seconds a viewer has to finish authentication (default 10)
    #[argh(option, default = "10")]
    pub handshake_timeout: u32,
    /// most concurrent viewer connections, handshakes and sessions (default 256)
    #[argh(option, default = "256")]
    pub max_sessions: usize,
    /// longest control request in bytes (default 4096; 64-65536)
    #[argh(option, default = "4096")]
    pub max_request_bytes: usize,
    /// longest HTTP request header block of a WebSocket upgrade in bytes
    /// (default 8192; 256-65536); larger ones get HTTP 431
    #[argh(option, default = "8192")]
    pub max_header_bytes: usize,
    /// longest WebSocket message from a viewer in bytes (default 16 MiB);
    /// larger ones close the connection with code 1009
    #[argh(option, default = "16 << 20")]
    pub max_message_bytes: u64,
    /// most consoles waiting for their viewer at once (default and at most
    /// 1024; a running session does not count: see --max-sessions)
    #[argh(option, default = "1024")]
    pub max_tickets: usize,
    /// record every connection's RFB bytes (viewer leg and backend leg, both
    /// directions) as text files in this directory (mode 0600; they hold the
    /// VNC challenge and response: treat them like a password file)
    #[argh(option)]
    pub record: Option<PathBuf>,
    // Operating vncap (issue 13): dead peers, session caps, metrics, drain.
    /// seconds between WebSocket pings to a viewer (default 20; 0: no pings)
    #[argh(option, default = "20")]
    pub ping_interval: u32,
    /// seconds a WebSocket viewer has to send any frame after a ping before
    /// its session is closed (code 1011, "viewer stopped answering";
    /// default 10)
    #[argh(option, default = "10")]
    pub ping_timeout: u32,
    /// TCP keepalive on both legs of every session: seconds idle before the
    /// first probe (then every SECS/3, at least 1, 3 probes; default 60;
    /// 0: off)
    #[argh(option, default = "60")]
    pub tcp_keepalive: u32,
    /// seconds without a byte in either direction after which a session is
    /// ended (default 0: never)
    #[argh(option, default = "0")]
    pub idle_timeout: u32,
    /// longest a session may last, in seconds (default 0: no limit)
    #[argh(option, default = "0")]
    pub max_session_secs: u32,
    /// serve Prometheus metrics at GET /metrics on this HOST:PORT (its own
    /// listener; nothing else is served there)
    #[argh(option)]
    pub metrics: Option<String>,
    /// seconds live sessions may go on after SIGTERM before they are cut
    /// (default 10; 0: cut at once); a second SIGTERM, or SIGINT, cuts at
    /// once
    #[argh(option, default = "10")]
    pub drain_timeout: u32,
    /// write the process id here while running
    #[argh(option)]
    pub pidfile: Option<PathBuf>,
    /// error, warn, info, debug or trace (default info)
    #[argh(option, default = "log::LevelFilter::Info")]
    pub log_level: log::LevelFilter,
}

/// answer Flash socket-policy requests (the port-843 policy server; needs
/// root or CAP_NET_BIND_SERVICE for port 843)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "flashpolicy")]
pub struct FlashPolicy {
    /// address to listen on (default [::]:843)
    #[argh(option, default = "String::from(\"[::]:843\")")]
    pub listen: String,
    /// ports the policy allows, LO-HI (default 7000-8000, the entry range)
    #[argh(option, default = "PortRange { lo: 7000, hi: 8000 }")]
    pub ports: PortRange,
    /// domain the policy allows (default *)
    #[argh(option, default = "String::from(\"*\")")]
    pub domain: String,
    /// error, warn, info, debug or trace (default info)
    #[argh(option, default = "log::LevelFilter::Info")]
    pub log_level: log::LevelFilter,
}

/// ask a running daemon for a console and print its port and password
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "request")]
pub struct Request {
    /// the daemon's control channel: HOST:PORT or unix:PATH (default 127.0.0.1:8888)
    #[argh(option, default = "String::from(\"127.0.0.1:8888\")")]
    pub control: String,
    /// the VNC server's host
    #[argh(option)]
    pub daddr: String,
    /// the VNC server's port
    #[argh(option)]
    pub dport: u16,
    /// the password the viewer must present (default: the daemon generates one)
    #[argh(option)]
    pub password: Option<String>,
    /// the viewer comes over WebSocket (noVNC)
    #[argh(switch)]
    pub ws: bool,
    /// the viewer comes over TLS
    #[argh(switch)]
    pub tls: bool,
    /// the control channel speaks TLS (serve --control-tls); needs --ca
    #[argh(switch)]
    pub control_tls: bool,
    /// PEM certificates to trust for --control-tls: the CA, or the daemon's
    /// self-signed --cert itself
    #[argh(option)]
    pub ca: Option<PathBuf>,
    /// preferred entry port
    #[argh(option)]
    pub sport: Option<u16>,
    /// seconds the ticket waits for its viewer
    #[argh(option)]
    pub timeout: Option<u32>,
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
            command: Command::Serve(s),
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
