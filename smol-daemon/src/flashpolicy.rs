//! `vncap flashpolicy`: the port-843 Flash socket-policy server. Each
//! connection is answered by the core's `policy::Policy` and closed; it has
//! [`POLICY_TIMEOUT`] to ask. Under systemd the socket comes from
//! `vncap-flashpolicy.socket` (socket activation), so no process needs root.

use crate::buffer::InBuf;
use crate::cli;
use crate::clock::Clock;
use crate::drive::drive;
use crate::transport::{ByteWrite, Plain};
use smol::net::TcpListener;
use smol::LocalExecutor;
use std::rc::Rc;
use std::time::Duration;
use vncap_core::policy;

/// How long a client has to send its request.
pub const POLICY_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the policy server; returns the process exit code.
pub fn run(args: cli::FlashPolicy) -> i32 {
    crate::logger::init(args.log_level);
    crate::run_local(|ex| serve(args, ex))
}

/// The socket systemd passed (socket activation; `--listen` then unused), or
/// `--listen` bound here.
async fn listener(args: &cli::FlashPolicy) -> Result<TcpListener, String> {
    let mut passed = crate::systemd::take_listeners().into_iter();
    if let Some(p) = passed.next() {
        for extra in passed {
            log::warn!("socket {} from systemd: not used", extra.name);
        }
        let name = p.name.clone();
        if !matches!(p.family()?, crate::systemd::Family::Inet) {
            return Err(format!("socket {name} from systemd: not a TCP socket"));
        }
        log::info!(
            "socket {name} from systemd; --listen {} not used",
            args.listen
        );
        return TcpListener::try_from(std::net::TcpListener::from(p.fd))
            .map_err(|e| format!("socket {name} from systemd: {e}"));
    }
    TcpListener::bind(args.listen)
        .await
        .map_err(|e| crate::bind_failed(&format!("--listen {}", args.listen), &e))
}

async fn serve(args: cli::FlashPolicy, ex: Rc<LocalExecutor<'static>>) -> Result<(), String> {
    let config = policy::Config {
        domain: &args.domain,
        ports: (args.ports.lo, args.ports.hi),
    };
    // Checked once here, so every connection can build its responder.
    policy::Policy::new(&config).map_err(|e| format!("policy: {e:?}"))?;
    let listener = listener(&args).await?;
    log::info!(
        "flash policy server on {}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    crate::systemd::notify("READY=1");
    let clock = Clock::new();
    let domain: Rc<str> = args.domain.clone().into();
    let ports = (args.ports.lo, args.ports.hi);
    let mut signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(|e| format!("signals: {e}"))?;
    let accept = async {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    crate::accept_failed("flash policy", e).await;
                    continue;
                }
            };
            let domain = domain.clone();
            ex.spawn(async move {
                let config = policy::Config {
                    domain: &domain,
                    ports,
                };
                let Ok(mut responder) = policy::Policy::new(&config) else {
                    return;
                };
                let (mut r, mut w) = (Plain(stream.clone()), Plain(stream));
                let mut input = InBuf::new(64);
                let res = crate::backend::with_timeout(POLICY_TIMEOUT, async {
                    Ok(drive(&mut responder, &mut r, &mut w, &mut input, &clock).await)
                })
                .await;
                match res {
                    Ok(Ok(_)) => log::info!("{peer}: policy sent"),
                    Ok(Err(e)) => log::info!("{peer}: {e}"),
                    Err(_) => log::info!("{peer}: no request within {}s", POLICY_TIMEOUT.as_secs()),
                }
                w.close().await;
            })
            .detach();
        }
    };
    futures_lite::future::or(accept, async {
        let signal = futures_lite::StreamExt::next(&mut signals).await;
        log::info!("{signal:?}: shutting down");
    })
    .await;
    Ok(())
}
