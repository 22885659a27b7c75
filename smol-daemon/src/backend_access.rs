//! What `--backend-allow` and vncap's own listening sockets make at start:
//! the [`Access`] every backend connection is checked against (the core's
//! `backend_allow` decides; `backend.rs` asks). Built once the control
//! channel, the single port and the metrics port are bound, so a port 0
//! given on the command line is the port really taken.
//!
//! Not here: the check itself (the core's), or connecting (`backend.rs`).

use crate::backend::Access;
use crate::cli;
use crate::control;
use smol::net::TcpListener;
use std::net::{IpAddr, Ipv6Addr};
use vncap_core::backend_allow::{Listening, Own, Ports};

/// The port `vncap flashpolicy` listens on by default (it runs apart, so
/// its address is not known here: every address of this host).
const FLASH_POLICY_PORT: u16 = 843;

/// `--backend-allow` with vncap's own sockets: the control channel (when on
/// TCP), the entry-port pool on `listen`, the single port, the metrics port
/// and the Flash policy port.
pub fn build(
    args: &cli::Serve,
    listen: IpAddr,
    control: &control::Listener,
    single_port: Option<u16>,
    metrics: Option<&TcpListener>,
) -> Access {
    let mut own = Own::new();
    if let control::Listener::Tcp(l) = control {
        if let Ok(a) = l.local_addr() {
            own.push(Listening {
                addr: a.ip(),
                ports: Ports::one(a.port()),
                what: "control channel",
            });
        }
    }
    own.push(Listening {
        addr: listen,
        ports: Ports {
            lo: args.ports.lo,
            hi: args.ports.hi,
        },
        what: "entry ports",
    });
    if let Some(port) = single_port {
        own.push(Listening {
            addr: listen,
            ports: Ports::one(port),
            what: "single port",
        });
    }
    if let Some(a) = metrics.and_then(|l| l.local_addr().ok()) {
        own.push(Listening {
            addr: a.ip(),
            ports: Ports::one(a.port()),
            what: "metrics port",
        });
    }
    own.push(Listening {
        addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ports: Ports::one(FLASH_POLICY_PORT),
        what: "Flash policy port",
    });
    Access {
        allow: args.backend_allow.clone(),
        own,
    }
}
