//! `testvnc`: the test backend ([`vncap_tests::backend`]) as a program, for
//! demos and manual runs — a stand-in for the VNC server on a Ganeti node.
//!
//! ```text
//! cargo run -p vncap-tests --bin testvnc -- --listen 127.0.0.1:5901 --password secret
//! cargo run -p vncap-tests --bin testvnc -- --listen 127.0.0.1:5901 --none
//! ```
//!
//! It prints `testvnc listening on ADDR` once bound, then one line per
//! finished connection, and runs until killed. It is not a VNC server for
//! people: it shows a static colour-bar test pattern (or streams bulk bytes).

use std::net::SocketAddr;
use std::time::Duration;

use argh::FromArgs;
use vncap_tests::backend::{Backend, BackendConfig, Mode, Security};
use vncap_tests::peer::{hex, Version};

/// A small RFB 3.8 test server showing a colour-bar test pattern.
#[derive(FromArgs)]
struct Args {
    /// address to listen on (default 127.0.0.1:5901; port 0 picks a free one)
    #[argh(option, default = "SocketAddr::from(([127, 0, 0, 1], 5901))")]
    listen: SocketAddr,
    /// VNC authentication password
    #[argh(option)]
    password: Option<String>,
    /// offer security type None (no password)
    #[argh(switch)]
    none: bool,
    /// offer VNC authentication, then always fail it with this reason
    #[argh(option)]
    reject: Option<String>,
    /// RFB version to announce: 3.3, 3.7 or 3.8 (default)
    #[argh(option, default = "String::from(\"3.8\")")]
    rfb: String,
    /// framebuffer size WIDTHxHEIGHT (default 640x480)
    #[argh(option, default = "String::from(\"640x480\")")]
    geometry: String,
    /// desktop name
    #[argh(option, default = "String::from(\"vncap test backend\")")]
    name: String,
    /// bulk mode: stream this many pseudo-random bytes after ServerInit
    #[argh(option)]
    bulk: Option<u64>,
    /// seed of the bulk stream (default 1)
    #[argh(option, default = "1")]
    seed: u64,
}

fn main() {
    let args: Args = argh::from_env();
    if let Err(e) = run(args) {
        eprintln!("testvnc: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    let security = match (&args.password, args.none, &args.reject) {
        (Some(p), false, None) => Security::VncAuth {
            password: p.as_bytes().to_vec(),
        },
        (None, true, None) => Security::None,
        (None, false, Some(reason)) => Security::RejectAuth {
            reason: reason.clone(),
        },
        _ => return Err("give exactly one of --password, --none, --reject".to_string()),
    };
    let version = match args.rfb.as_str() {
        "3.3" => Version::V3_3,
        "3.7" => Version::V3_7,
        "3.8" => Version::V3_8,
        other => return Err(format!("unknown RFB version {other:?}")),
    };
    let (width, height) = args
        .geometry
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| format!("bad geometry {:?}", args.geometry))?;
    let mode = match args.bulk {
        Some(len) => Mode::Bulk {
            len,
            seed: args.seed,
        },
        None => Mode::TestPattern,
    };
    let backend = Backend::spawn(BackendConfig {
        listen: args.listen,
        version,
        security,
        width,
        height,
        name: args.name,
        mode,
        io_timeout: None,
    })
    .map_err(|e| format!("listen on {}: {e}", args.listen))?;
    println!("testvnc listening on {}", backend.addr());
    let mut seen = 0;
    loop {
        let Some(reports) = backend.wait_reports(seen + 1, Duration::from_secs(3600)) else {
            continue;
        };
        for r in &reports[seen..] {
            println!(
                "testvnc: {} rfb {} security {:?} authenticated {} received {} bytes sha256 {} \
                 bulk sent {} updates {} end {:?}",
                r.peer,
                r.version.map_or("-".to_string(), |v| v.to_string()),
                r.security_type,
                r.authenticated,
                r.received_len,
                hex(&r.received_sha256),
                r.bulk_sent,
                r.updates_sent,
                r.end
            );
        }
        seen = reports.len();
    }
}
