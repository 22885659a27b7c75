//! `vncap serve`: checks the command line against itself and the host (every
//! error starts with the option it is about, so a settings file can name the
//! line), builds the daemon, binds the control channel (or takes it from
//! systemd) and `--metrics`, writes the pidfile, tells systemd it is ready,
//! runs until SIGTERM or SIGINT (SIGHUP reloads the TLS certificate, the
//! backend TLS files, the backend password, the ticket keys and the control
//! users), then shuts down: console requests are refused, every entry
//! listener and pending ticket closed, live sessions drain for
//! `--drain-timeout` (SIGTERM only; a second SIGTERM or SIGINT cuts at
//! once), the rest are cut (WebSocket viewers told the proxy is
//! restarting), and what it created is removed. Exit 0.

use crate::backend::ConnectPolicy;
use crate::cli;
use crate::config;
use crate::control;
use crate::daemon::Daemon;
use crate::entry;
use crate::settings::Settings;
use futures_lite::StreamExt;
use smol::net::TcpListener;
use smol::LocalExecutor;
use std::net::SocketAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::time::Duration;
use vncap_core::ticket;

/// Relay buffer of a streaming direction (taken from a free list only while
/// data flows: relay.rs); as large as a tuned socat's `-b 262144`.
const RELAY_BUFFER: usize = 256 * 1024;

/// Longest the cut sessions get to close at shutdown.
const CUT_WAIT: Duration = Duration::from_secs(2);

/// `--ping-*`, `--tcp-keepalive`, `--idle-timeout`, `--max-session-secs`
/// (0 is off).
fn limits(args: &cli::Serve) -> crate::settings::Limits {
    let secs = |s: u32| (s > 0).then(|| Duration::from_secs(s.into()));
    crate::settings::Limits {
        ping: (args.ping_interval > 0).then(|| vncap_core::ws::Keepalive {
            interval_ms: u64::from(args.ping_interval) * 1000,
            timeout_ms: u64::from(args.ping_timeout) * 1000,
        }),
        tcp_keepalive: secs(args.tcp_keepalive),
        idle: secs(args.idle_timeout),
        max_life: secs(args.max_session_secs),
    }
}

/// Runs the daemon; returns the process exit code. `origins` says which
/// options came from `--config`, to name their line in an error.
pub fn run(args: cli::Serve, origins: &config::Origins) -> i32 {
    crate::logger::init(args.log_level);
    raise_fd_limit();
    let passed = crate::systemd::take_listeners();
    crate::run_local(|ex| async move {
        serve(args, passed, ex)
            .await
            .map_err(|e| origins.annotate(e))
    })
}

/// Listen backlog of the control and single-port listeners (std binds with
/// 128; the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 4096;

/// Raises the soft open-file limit to the hard one: each session is two
/// sockets, and 10,000 of them must fit (the default soft limit is often
/// 1024).
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current != lim.maximum {
        lim.current = lim.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, lim) {
            log::warn!("cannot raise the open-file limit: {e}");
        }
    }
}

/// Re-listens with [`BACKLOG`] (Linux resizes a listening socket's backlog).
fn widen_backlog(l: impl std::os::fd::AsFd) {
    if let Err(e) = rustix::net::listen(l, BACKLOG) {
        log::warn!("cannot widen the listen backlog: {e}");
    }
}

/// `::` where this host has IPv6 (dual-stack), else `0.0.0.0`.
fn default_listen() -> IpAddr {
    let v6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    match std::net::TcpListener::bind((v6, 0)) {
        Ok(_) => v6,
        Err(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}

/// Refuses what each option allows on its own but not with the others
/// (argh's `from_str_fn`s in cli.rs check each value's range).
fn check_options(args: &cli::Serve) -> Result<(), String> {
    if args.ticket_timeout > args.max_ticket_timeout {
        return Err(format!(
            "--ticket-timeout {}: must be 1-{} (at most --max-ticket-timeout)",
            args.ticket_timeout, args.max_ticket_timeout
        ));
    }
    if args.max_control_connections_per_ip > args.max_control_connections {
        return Err(format!(
            "--max-control-connections-per-ip {}: must be 1-{} (at most --max-control-connections)",
            args.max_control_connections_per_ip, args.max_control_connections
        ));
    }
    if args.max_handshakes_per_ip > args.max_handshakes {
        return Err(format!(
            "--max-handshakes-per-ip {}: must be 1-{} (at most --max-handshakes)",
            args.max_handshakes_per_ip, args.max_handshakes
        ));
    }
    if let Some(dir) = &args.record {
        if !dir.is_dir() {
            return Err(format!("--record {}: not a directory", dir.display()));
        }
    }
    Ok(())
}

/// Checks that this host has `--listen`'s address, and how many ports of
/// `--ports` are free there: none is an error, some busy a warning.
fn check_listen(args: &cli::Serve, listen: IpAddr) -> Result<(), String> {
    std::net::TcpListener::bind((listen, 0)).map_err(|e| {
        format!("--listen {listen}: cannot listen there ({e}); give an address of this host, or leave --listen out for all")
    })?;
    let (lo, hi) = (args.ports.lo, args.ports.hi);
    let total = usize::from(hi - lo) + 1;
    let free = (lo..=hi)
        .filter(|&p| std::net::TcpListener::bind((listen, p)).is_ok())
        .count();
    if free == 0 {
        return Err(format!(
            "--ports {lo}-{hi}: all {total} ports are in use on {listen} (or need privileges)"
        ));
    }
    if free < total {
        log::warn!(
            "--ports {lo}-{hi}: {} of {total} ports are in use on {listen}; {free} free for consoles",
            total - free
        );
    }
    Ok(())
}

/// Refuses TLS options that cannot work: `--require-tls` and `--control-tls`
/// without a certificate, `--control-tls` on a Unix socket.
fn check_tls(args: &cli::Serve, have_tls: bool) -> Result<(), String> {
    for (name, on) in [
        ("--require-tls", args.require_tls),
        ("--control-tls", args.control_tls),
    ] {
        if on && !have_tls {
            return Err(format!("{name} needs --cert and --key"));
        }
    }
    if args.control_tls && args.control.starts_with("unix:") {
        return Err("--control-tls is for a HOST:PORT control channel, not unix:PATH".into());
    }
    Ok(())
}

/// SIGHUP: reads the control users, the TLS certificate and key, the
/// backend TLS directory, the backend password file and the ticket keys
/// again; a bad file keeps the old ones.
fn reload(d: &Daemon, backend_password_file: Option<&std::path::Path>) {
    d.control_access.reload_users();
    if let Some(path) = backend_password_file {
        match read_backend_password(path) {
            Ok(pw) => {
                d.with_tickets(|t| t.set_backend_password(Some(pw)));
                log::info!("reloaded the backend password from {}", path.display());
            }
            Err(e) => log::warn!("SIGHUP: kept the old backend password: {e}"),
        }
    }
    if let Some(k) = &d.settings.ticket_keys {
        match k.reload() {
            Ok(()) => log::info!("reloaded the ticket keys from {}", k.describe()),
            Err(e) => log::warn!("SIGHUP: kept the old ticket keys: {e}"),
        }
    }
    if let Some(b) = &d.settings.backend_tls {
        match b.files.reload() {
            Ok(()) => log::info!(
                "reloaded the backend TLS files from {}",
                b.files.dir().display()
            ),
            Err(e) => log::warn!("SIGHUP: kept the old backend TLS files: {e}"),
        }
    }
    let Some(tls) = &d.settings.tls else {
        log::info!("SIGHUP: no TLS certificate to reload");
        return;
    };
    match tls.reload() {
        Ok(()) => log::info!(
            "reloaded the TLS certificate from {}",
            tls.cert_path().display()
        ),
        Err(e) => log::warn!("SIGHUP: kept the old TLS certificate: {e}"),
    }
}

/// `--ticket-key` (with `--ticket-key-previous`), which signs single-port
/// tickets: so it needs `--single-port`.
fn ticket_keys(args: &cli::Serve) -> Result<Option<crate::ticket_key::TicketKeys>, String> {
    let Some(current) = &args.ticket_key else {
        if args.ticket_key_previous.is_some() {
            return Err("--ticket-key-previous needs --ticket-key".into());
        }
        return Ok(None);
    };
    if args.single_port.is_none() {
        return Err(format!(
            "--ticket-key {}: signs single-port tickets; needs --single-port",
            current.display()
        ));
    }
    let keys = crate::ticket_key::TicketKeys::load(current, args.ticket_key_previous.as_deref())?;
    log::info!("single-port tickets signed with {}", keys.describe());
    Ok(Some(keys))
}

/// `--backend-tls-dir` (with `--backend-tls-name`, `--backend-tls-required`).
fn backend_tls(args: &cli::Serve) -> Result<Option<crate::backend::Tls>, String> {
    let Some(dir) = &args.backend_tls_dir else {
        if args.backend_tls_required {
            return Err("--backend-tls-required needs --backend-tls-dir".into());
        }
        if args.backend_tls_name.is_some() {
            return Err("--backend-tls-name needs --backend-tls-dir".into());
        }
        return Ok(None);
    };
    let files = crate::tls::BackendTls::load(dir, args.backend_tls_name.clone())?;
    Ok(Some(crate::backend::Tls {
        files,
        required: args.backend_tls_required,
    }))
}

/// The first line of the cluster password file, without its line ending.
fn read_backend_password(path: &std::path::Path) -> Result<ticket::Secret, String> {
    let at = |what: String| format!("--backend-password-file {}: {what}", path.display());
    let text = std::fs::read(path).map_err(|e| at(e.to_string()))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(at("the first line is empty (it holds the password)".into()));
    }
    ticket::Secret::from_slice(line).map_err(|_| at("password too long".into()))
}

/// The control listener: the socket systemd passed (socket activation,
/// `--control` then unused), else `--control` bound here. `true` when it
/// came from systemd (which then owns a Unix socket's file).
async fn control_listener(
    spec: &str,
    passed: Vec<crate::systemd::Passed>,
) -> Result<(control::Listener, bool), String> {
    let mut passed = passed.into_iter();
    if let Some(p) = passed.next() {
        for extra in passed {
            log::warn!(
                "socket {} from systemd: not used (vncap serve takes one, the control channel)",
                extra.name
            );
        }
        let name = p.name.clone();
        let bad = |e: std::io::Error| format!("socket {name} from systemd: {e}");
        let l = match p.family()? {
            crate::systemd::Family::Inet => control::Listener::Tcp(
                TcpListener::try_from(std::net::TcpListener::from(p.fd)).map_err(bad)?,
            ),
            crate::systemd::Family::Unix => {
                let std_l = std::os::unix::net::UnixListener::from(p.fd);
                let path = std_l
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
                    .unwrap_or_default();
                let l = smol::net::unix::UnixListener::try_from(std_l).map_err(bad)?;
                control::Listener::Unix(l, path)
            }
        };
        log::info!("control channel from systemd ({name}); --control {spec} not used");
        return Ok((l, true));
    }
    let l = control::Listener::bind(spec)
        .await
        .map_err(|e| crate::bind_failed(&format!("--control {spec}"), &e))?;
    Ok((l, false))
}

async fn serve(
    args: cli::Serve,
    passed: Vec<crate::systemd::Passed>,
    ex: Rc<LocalExecutor<'static>>,
) -> Result<(), String> {
    check_options(&args)?;
    if let Some(path) = &args.config {
        log::info!("settings from {}", path.display());
    }
    let backend_password = args
        .backend_password_file
        .as_deref()
        .map(read_backend_password)
        .transpose()?;
    let tls = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Some(crate::tls::Acceptor::load(cert, key)?),
        (None, None) => None,
        _ => return Err("--cert and --key go together: give both or neither".into()),
    };
    check_tls(&args, tls.is_some())?;
    let backend_tls = backend_tls(&args)?;
    let ticket_keys = ticket_keys(&args)?;
    let listen = args.listen.unwrap_or_else(default_listen);
    check_listen(&args, listen)?;
    let single = match args.single_port {
        Some(port) => {
            let l = TcpListener::bind(SocketAddr::new(listen, port))
                .await
                .map_err(|e| crate::bind_failed(&format!("--single-port {port}"), &e))?;
            let port = l.local_addr().map_err(|e| e.to_string())?.port();
            widen_backlog(&l);
            Some((l, port))
        }
        None => None,
    };
    let web_root = match (&args.web_root, &single) {
        (Some(dir), Some(_)) => Some(crate::web::WebRoot::open(dir)?),
        (Some(_), None) => return Err("--web-root needs --single-port".into()),
        (None, _) => None,
    };
    let secs = |s: u32| u64::from(s) * 1000;
    let limits = limits(&args);
    let metrics = match &args.metrics {
        Some(addr) => Some(
            TcpListener::bind(addr.as_str())
                .await
                .map_err(|e| format!("--metrics {addr}: {e}"))?,
        ),
        None => None,
    };
    // Every field is set today; the update keeps fields added later at
    // their defaults.
    #[allow(clippy::needless_update)]
    let table = ticket::Config {
        first_port: args.ports.lo,
        last_port: args.ports.hi,
        default_timeout_ms: secs(args.ticket_timeout),
        max_timeout_ms: secs(args.max_ticket_timeout),
        backend_password,
        single_port: single.as_ref().map(|(_, port)| *port),
        tls: tls.is_some(),
        require_tls: args.require_tls,
        max_tickets: args.max_tickets,
        attempts: args.ticket_attempts,
        failing_sources: args.ticket_failing_sources,
        ..ticket::Config::default()
    };
    // The control channel is bound before the daemon exists: its address
    // is one no ticket may point at.
    let (listener, activated) = control_listener(&args.control, passed).await?;
    let backend_access = crate::backend_access::build(
        &args,
        listen,
        &listener,
        single.as_ref().map(|(_, port)| *port),
        metrics.as_ref(),
    );
    let settings = Settings {
        listen,
        handshake_timeout: Duration::from_secs(args.handshake_timeout.into()),
        connect: ConnectPolicy {
            timeout: Duration::from_secs(args.connect_timeout.into()),
            retries: args.connect_retries,
            backoff: Duration::from_millis(250),
            keepalive: limits.tcp_keepalive,
        },
        max_sessions: args.max_sessions,
        max_handshakes: args.max_handshakes,
        max_handshakes_per_ip: args.max_handshakes_per_ip,
        trusted_proxy: args.trusted_proxy.clone(),
        control_allow: args.control_allow.clone(),
        max_control_connections: args.max_control_connections,
        max_control_connections_per_ip: args.max_control_connections_per_ip,
        relay_buffer: RELAY_BUFFER,
        policy_domain: "*".into(),
        policy_ports: (args.ports.lo, args.ports.hi),
        tls,
        allowed_origins: args.allowed_origin.clone(),
        max_request_bytes: args.max_request_bytes,
        max_header_bytes: args.max_header_bytes,
        max_message_bytes: args.max_message_bytes,
        record: args.record.clone(),
        backend_tls,
        ticket_keys,
        backend_access,
        web_root,
        limits,
    };
    let control_users = match &args.control_users {
        Some(path) => Some((path.clone(), crate::users::Users::load(path)?)),
        None => None,
    };
    let d = Daemon::new(settings, table, ex.clone())
        .map_err(|e| format!("configuration: {}", e.reason()))?;
    if let Some((path, users)) = control_users {
        log::info!(
            "control requests need credentials: {} users from {}",
            users.len(),
            path.display()
        );
        d.control_access.set_users(path, users);
    }

    let listener = Rc::new(listener);
    match &*listener {
        control::Listener::Tcp(l) => widen_backlog(l),
        control::Listener::Unix(l, _) => widen_backlog(l),
    }
    if let Some(path) = &args.pidfile {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("--pidfile {}: {e}", path.display()))?;
    }
    use async_signal::Signal;
    let mut signals = async_signal::Signals::new([Signal::Term, Signal::Int, Signal::Hup])
        .map_err(|e| format!("signals: {e}"))?;

    let expiry = ex.spawn(d.clone().expiry_loop());
    let trim = ex.spawn(crate::trim::give_back(d.clone()));
    let single_task = single.map(|(l, port)| ex.spawn(entry::single_port_loop(d.clone(), l, port)));
    let control_task = ex.spawn(control::accept_loop(
        d.clone(),
        listener.clone(),
        args.public_address.clone(),
        d.settings.tls.clone().filter(|_| args.control_tls),
    ));
    let metrics_note = match &metrics {
        Some(l) => format!(
            "; metrics on {}",
            l.local_addr().map(|a| a.to_string()).unwrap_or_default()
        ),
        None => String::new(),
    };
    let metrics_task = metrics.map(|l| ex.spawn(crate::metrics::serve(d.clone(), l)));
    let single_note = d
        .single_port()
        .map(|p| format!("; single port {p}"))
        .unwrap_or_default();
    let single_note = match &d.settings.web_root {
        Some(root) => format!("{single_note} with --web-root {}", root.path().display()),
        None => single_note,
    };
    let tls_note = match (&d.settings.tls, args.require_tls, args.control_tls) {
        (None, ..) => "",
        (Some(_), false, false) => "; TLS on",
        (Some(_), true, false) => "; TLS on (required)",
        (Some(_), false, true) => "; TLS on, control over TLS",
        (Some(_), true, true) => "; TLS on (required), control over TLS",
    };
    let backend_note = match &d.settings.backend_tls {
        None => String::new(),
        Some(b) => format!(
            "; backend TLS from {}{}{}",
            b.files.dir().display(),
            if b.files.has_client_cert() {
                " with a client certificate"
            } else {
                ""
            },
            if b.required { " (required)" } else { "" }
        ),
    };
    log::info!(
        "vncap {} ready: control on {}, entry ports {}-{} on {}{single_note}{tls_note}{backend_note}{metrics_note}",
        env!("CARGO_PKG_VERSION"),
        listener.describe(),
        args.ports.lo,
        args.ports.hi,
        d.settings.listen
    );
    crate::systemd::notify(&format!(
        "READY=1\nSTATUS=control on {}, entry ports {}-{}",
        listener.describe(),
        args.ports.lo,
        args.ports.hi
    ));

    let password_file = args.backend_password_file.as_deref();
    let first = loop {
        match signals.next().await {
            Some(Ok(Signal::Hup)) => reload(&d, password_file),
            Some(Ok(signal)) => break Some(signal),
            Some(Err(e)) => {
                log::warn!("signals: {e}");
                break None;
            }
            None => break None,
        }
    };
    // Stop taking consoles; close every entry port and pending ticket.
    d.sessions.shut_down();
    crate::systemd::notify("STOPPING=1");
    drop(single_task);
    d.close_all_listeners();
    let withdrawn = d.with_tickets(|t| {
        let ids: Vec<u64> = t.tickets().map(|x| x.id).collect();
        ids.into_iter()
            .filter(|&id| t.find_id(id).is_some_and(|h| t.withdraw(h).is_ok()))
            .count()
    });
    let live = d.sessions.len();
    let name = match first {
        Some(Signal::Term) => "SIGTERM",
        Some(Signal::Int) => "SIGINT",
        _ => "no more signals",
    };
    log::info!("{name}: shutting down; {withdrawn} pending tickets closed, {live} sessions live");
    let drain = Duration::from_secs(args.drain_timeout.into());
    if first == Some(Signal::Term) && !drain.is_zero() && live > 0 {
        log::info!(
            "draining {live} sessions for up to {}s (SIGTERM again or SIGINT: at once)",
            drain.as_secs()
        );
        let drained = async {
            d.sessions.wait_empty().await;
            "every session ended"
        };
        let timeout = async {
            smol::Timer::after(drain).await;
            "drain timeout"
        };
        let again = async {
            loop {
                match signals.next().await {
                    Some(Ok(Signal::Hup)) => reload(&d, password_file),
                    Some(Ok(Signal::Int)) => return "SIGINT",
                    _ => return "second SIGTERM",
                }
            }
        };
        let why = futures_lite::future::or(drained, futures_lite::future::or(timeout, again)).await;
        log::info!("drain over: {why}");
    }
    let cut = d.sessions.kill_all(crate::sessions::Ending::Restart);
    log::info!("{cut} sessions cut");
    if cut > 0 {
        // Let them send their close frames and close both legs.
        futures_lite::future::or(d.sessions.wait_empty(), async {
            smol::Timer::after(CUT_WAIT).await;
        })
        .await;
    }
    drop(metrics_task);
    drop(control_task);
    drop(expiry);
    drop(trim);
    if !activated {
        listener.cleanup();
    }
    if let Some(path) = &args.pidfile {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
