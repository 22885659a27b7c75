//! `vncap`: the daemon that drives `vncap-core` with real sockets on a
//! single-threaded smol executor. It owns sockets, timers, signals, the
//! pidfile and the command line; every protocol decision is the core's.
//!
//! | file | what |
//! | --- | --- |
//! | `cli.rs` | the command line |
//! | `clock.rs` | the one clock |
//! | `logger.rs` | stderr logging |
//! | `transport.rs` | byte halves: plain, WebSocket |
//! | `tls.rs` | TLS (rustls, feature `tls`): certificate loading and reloading, server and client handshakes, backend TLS (`--backend-tls-dir`); `tls_off.rs` without the feature |
//! | `drive.rs` | the generic machine driver loop |
//! | `buffer.rs` | a session's fixed input buffer |
//! | `relay.rs` | the two-way copy after authentication |
//! | `record.rs` | `--record`: transport halves that copy RFB bytes to files |
//! | `splice.rs` | the same for plain TCP on both sides, with `splice(2)` |
//! | `ws.rs` | WebSocket as a transport (the core's codec over a socket) |
//! | `viewer.rs` | an authenticated viewer's halves: plain or WebSocket |
//! | `config.rs` | `serve --config FILE`: TOML settings as arguments, the option list from argh |
//! | `serve.rs` | `vncap serve`: startup checks, signals, pidfile |
//! | `systemd.rs` | readiness notification and socket activation (`LISTEN_FDS`) |
//! | `settings.rs` | what the command line fixed: the settings every task reads |
//! | `budget.rs` | budgets of connections before authentication: all of them, per source |
//! | `daemon.rs` | shared state: the ticket table, entry listeners' tasks, connection slots, expiry |
//! | `control.rs` | the control channel |
//! | `access.rs` | who may use the control channel and how many at once (`--control-allow`, connection limits, PROXY headers, `--control-users`) |
//! | `users.rs` | the `--control-users` file (snf-vncauthproxy's `user:HASH`) and the lines `vncap passwd` writes |
//! | `passwd.rs` | `vncap passwd` |
//! | `entry.rs` | entry points (opening a ticket's port, the single port): the driver of the core's entry machine, one viewer up to its authentication |
//! | `session.rs` | an authenticated viewer: backend login, SecurityResult, relay, and its end by vncap (kill, restart, idle, max life, pings) (settings, clock and session registry: `session::Place`, no daemon) |
//! | `backend.rs` | reaching a backend (resolve within the timeout, `--backend-allow`, retries) and logging in (`backend::login`: the core's `rfb::client`, VeNCrypt's TLS hand-off) |
//! | `backend_access.rs` | `--backend-allow` and vncap's own listening sockets, gathered at start |
//! | `flashpolicy.rs` | `vncap flashpolicy` |
//! | `request.rs` | `vncap request` |
//! | `sessions.rs` | the session registry (live sessions, `kill`, the drain) and the counters |
//! | `meter.rs` | a session's byte counts and last activity |
//! | `keepalive.rs` | `--tcp-keepalive` on both legs |
//! | `metrics.rs` | `--metrics`: Prometheus text format at `GET /metrics` |
//! | `refusals.rs` | refused connections logged once per burst |
//! | `trim.rs` | free heap memory back to the system after a load |

mod access;
mod backend;
mod backend_access;
mod budget;
mod buffer;
mod cli;
mod clock;
mod config;
mod control;
mod daemon;
mod drive;
mod entry;
mod flashpolicy;
mod keepalive;
mod logger;
mod meter;
mod metrics;
mod passwd;
mod record;
mod refusals;
mod relay;
mod request;
mod serve;
mod session;
mod sessions;
mod settings;
mod splice;
mod systemd;
mod ticket_key;
#[cfg_attr(not(feature = "tls"), path = "tls_off.rs")]
mod tls;
mod transport;
mod trim;
mod users;
mod viewer;
mod web;
mod ws;

/// Runs `main` on a fresh single-threaded executor (every task of the
/// process runs there); logs its error. Returns the process exit code.
fn run_local<F>(main: impl FnOnce(std::rc::Rc<smol::LocalExecutor<'static>>) -> F) -> i32
where
    F: std::future::Future<Output = Result<(), String>>,
{
    let ex = std::rc::Rc::new(smol::LocalExecutor::new());
    match smol::block_on(ex.run(main(ex.clone()))) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

/// After an accept that failed: logs it and pauses 100 ms. Out of
/// descriptors (EMFILE) the connection stays queued and the listener stays
/// readable, so retrying at once would spin the single thread.
async fn accept_failed(listener: impl std::fmt::Display, e: std::io::Error) {
    log::warn!("{listener}: accept: {e}");
    smol::Timer::after(std::time::Duration::from_millis(100)).await;
}

/// argh's help wrapped at 80 columns: the usage line continued under its
/// first option, a description paragraph at word boundaries.
fn wrap_help(help: &str) -> String {
    let (usage, rest) = help.split_once('\n').unwrap_or((help, ""));
    let indent = usage
        .find(" [")
        .or_else(|| usage.find(" -"))
        .map_or(0, |i| i + 1);
    let mut out = String::new();
    let mut line = usage[..indent].to_string();
    // Words of one `[--name <value>]` stay together.
    for word in usage[indent..]
        .split(" [")
        .map(|w| w.trim_start_matches('['))
    {
        let word = format!("[{word}");
        if line.len() > indent && line.len() + 1 + word.len() > 80 {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
        }
        if line.len() > indent {
            line.push(' ');
        }
        line.push_str(&word);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    for text in rest.split_inclusive('\n') {
        if text.len() <= 81 || text.starts_with(' ') {
            out.push_str(text);
            continue;
        }
        let mut line = String::new();
        for word in text.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > 80 {
                out.push_str(&line);
                out.push('\n');
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `-h` as `--help` (argh knows only the long form), where it is not the
/// value of an option.
fn short_help(args: &mut [String]) {
    let options = match args.first().map(String::as_str) {
        Some("serve") => config::Options::of::<cli::Serve>("serve"),
        Some("flashpolicy") => config::Options::of::<cli::FlashPolicy>("flashpolicy"),
        Some("request") => config::Options::of::<cli::Request>("request"),
        _ => config::Options { list: Vec::new() },
    };
    let mut value_next = false;
    for a in args.iter_mut() {
        if a == "--" {
            break;
        }
        if !value_next && a == "-h" {
            *a = "--help".into();
        }
        value_next = !value_next
            && a.strip_prefix("--")
                .and_then(|n| options.get(n))
                .is_some_and(|o| o.takes_value);
    }
}

/// The command line, with `serve --config FILE` put in front of it; or the
/// exit code after printing help, the version or an error.
fn parse_args(argv: &[String]) -> Result<(cli::Command, config::Origins), i32> {
    let mut args: Vec<String> = argv.iter().skip(1).cloned().collect();
    let mut origins = config::Origins::default();
    if args.first().map(String::as_str) == Some("serve") {
        match config::expand::<cli::Serve>("serve", args.split_off(1)) {
            Ok((expanded, o)) => {
                args.extend(expanded);
                origins = o;
            }
            Err(e) => {
                eprintln!("vncap serve: {e}");
                return Err(1);
            }
        }
    }
    short_help(&mut args);
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    match <cli::Cli as argh::FromArgs>::from_args(&["vncap"], &strs) {
        Ok(cli::Cli { version: true, .. }) => {
            println!("vncap {}", env!("CARGO_PKG_VERSION"));
            Err(0)
        }
        Ok(cli::Cli {
            command: Some(command),
            ..
        }) => Ok((command, origins)),
        Ok(cli::Cli { command: None, .. }) => {
            eprintln!("vncap: a command is needed: serve, flashpolicy or request (vncap --help)");
            Err(1)
        }
        Err(argh::EarlyExit { output, status }) => match status {
            Ok(()) => {
                print!("{}", wrap_help(&output));
                Err(0)
            }
            Err(()) => {
                eprintln!("vncap: {}", config::tidy_error(&output));
                eprintln!("Run vncap --help (or vncap COMMAND --help) for more information.");
                Err(1)
            }
        },
    }
}

/// A bind that failed, as an error naming `what` (`--control ADDR`); a
/// privileged port says how to get the right.
fn bind_failed(what: &str, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        format!(
            "{what}: {e}: a port below 1024 needs root, the capability CAP_NET_BIND_SERVICE \
             (AmbientCapabilities= in a systemd unit, or setcap cap_net_bind_service=+ep on the binary), \
             or a systemd socket unit that passes the socket (vncap-flashpolicy.socket, vncap-control.socket)"
        )
    } else if e.kind() == std::io::ErrorKind::AddrInUse {
        format!("{what}: {e} (another program, or another vncap, listens there)")
    } else {
        format!("{what}: {e}")
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let code = match parse_args(&argv) {
        Ok((cli::Command::Serve(args), origins)) => serve::run(args, &origins),
        Ok((cli::Command::FlashPolicy(args), _)) => flashpolicy::run(args),
        Ok((cli::Command::Request(args), _)) => request::run(args),
        Ok((cli::Command::Sessions(args), _)) => request::run_sessions(args),
        Ok((cli::Command::Kill(args), _)) => request::run_kill(args),
        Ok((cli::Command::Passwd(args), _)) => passwd::run(args),
        Err(code) => code,
    };
    std::process::exit(code);
}
