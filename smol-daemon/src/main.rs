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
//! | `serve.rs` | `vncap serve`: startup, signals, pidfile |
//! | `settings.rs` | what the command line fixed: the settings every task reads |
//! | `daemon.rs` | shared state: the ticket table, entry listeners' tasks, connection slots, expiry |
//! | `control.rs` | the control channel |
//! | `entry.rs` | entry points (opening a ticket's port, the single port): the driver of the core's entry machine, one viewer up to its authentication |
//! | `session.rs` | an authenticated viewer: backend login, SecurityResult, relay, and its end by vncap (kill, restart, idle, max life, pings) (settings, clock and session registry: `session::Place`, no daemon) |
//! | `backend.rs` | reaching a backend (resolve, timeout, retries) and logging in (`backend::login`: the core's `rfb::client`, VeNCrypt's TLS hand-off) |
//! | `flashpolicy.rs` | `vncap flashpolicy` |
//! | `request.rs` | `vncap request` |
//! | `sessions.rs` | the session registry (live sessions, `kill`, the drain) and the counters |
//! | `meter.rs` | a session's byte counts and last activity |
//! | `keepalive.rs` | `--tcp-keepalive` on both legs |
//! | `metrics.rs` | `--metrics`: Prometheus text format at `GET /metrics` |

mod backend;
mod buffer;
mod cli;
mod clock;
mod control;
mod daemon;
mod drive;
mod entry;
mod flashpolicy;
mod keepalive;
mod logger;
mod meter;
mod metrics;
mod record;
mod relay;
mod request;
mod serve;
mod session;
mod sessions;
mod settings;
mod splice;
#[cfg_attr(not(feature = "tls"), path = "tls_off.rs")]
mod tls;
mod transport;
mod viewer;
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

fn main() {
    let cli: cli::Cli = argh::from_env();
    let code = match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::FlashPolicy(args) => flashpolicy::run(args),
        cli::Command::Request(args) => request::run(args),
        cli::Command::Sessions(args) => request::run_sessions(args),
        cli::Command::Kill(args) => request::run_kill(args),
    };
    std::process::exit(code);
}
