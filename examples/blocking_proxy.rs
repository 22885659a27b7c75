//! Embedding `vncap-core` without the daemon: a one-shot VNC authentication
//! proxy in plain blocking `std` (no async runtime), in the style of a C
//! program or an RTOS task. It accepts one native viewer, checks its password
//! with `rfb::server`, logs in to the backend with `rfb::client`, and relays
//! with two threads. Every protocol decision is the core's; this file only
//! moves bytes, exactly as `vncap_core::machine` describes.
//!
//! ```sh
//! cargo run -p vncap-tests --bin testvnc -- --listen 127.0.0.1:5901 --none &
//! cargo run -p vncap-examples --example blocking_proxy -- 127.0.0.1:5999 127.0.0.1:5901 secret
//! vncviewer 127.0.0.1::5999   # password: secret
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use vncap_core::rfb::{client, server};
use vncap_core::Machine;

/// Drives `m` over `stream` until its first event; `pending` keeps bytes the
/// machine did not consume (they belong to the next stage).
fn drive<M: Machine>(
    m: &mut M,
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> Result<M::Event, String> {
    let mut buf = [0u8; 4096];
    loop {
        loop {
            let n = m.poll_output(&mut buf);
            if n == 0 {
                break;
            }
            stream.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        }
        if let Some(event) = m.poll_event() {
            return Ok(event);
        }
        match m.handle_input(pending) {
            Ok(0) => {}
            Ok(n) => {
                pending.drain(..n);
                continue;
            }
            Err(e) => {
                // The machine queued its answer (an RFB reason): send it.
                let n = m.poll_output(&mut buf);
                let _ = stream.write_all(&buf[..n]);
                return Err(e.to_string());
            }
        }
        let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("peer closed".into());
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, backend, password] = args.as_slice() else {
        return Err("usage: blocking_proxy LISTEN_ADDR BACKEND_ADDR PASSWORD".into());
    };
    let listener = TcpListener::bind(listen).map_err(|e| e.to_string())?;
    eprintln!("waiting for one viewer on {listen}");
    let (mut viewer, peer) = listener.accept().map_err(|e| e.to_string())?;

    let mut challenge = [0u8; 16];
    getrandom::fill(&mut challenge).map_err(|e| e.to_string())?;
    let mut auth = server::Server::new(password.as_bytes(), challenge);
    let mut from_viewer = Vec::new();
    drive(&mut auth, &mut viewer, &mut from_viewer).map_err(|e| format!("{peer}: {e}"))?;

    // The password was right; reach the backend before answering the viewer.
    let mut login = client::Client::new(None);
    let mut from_backend = Vec::new();
    let logged_in = TcpStream::connect(backend)
        .map_err(|e| format!("backend unreachable: {e}"))
        .and_then(|mut b| drive(&mut login, &mut b, &mut from_backend).map(|_| b));
    let mut backend = match logged_in {
        Ok(b) => b,
        Err(reason) => {
            auth.reject(&reason);
            let mut out = [0u8; 256];
            let n = auth.poll_output(&mut out);
            let _ = viewer.write_all(&out[..n]);
            return Err(reason);
        }
    };
    auth.accept();
    let mut out = [0u8; 16];
    let n = auth.poll_output(&mut out);
    viewer.write_all(&out[..n]).map_err(|e| e.to_string())?;
    backend.write_all(&from_viewer).map_err(|e| e.to_string())?;
    viewer.write_all(&from_backend).map_err(|e| e.to_string())?;
    eprintln!(
        "{peer}: authenticated, relaying to {}",
        backend.peer_addr().map_err(|e| e.to_string())?
    );

    let (v2, b2) = (
        viewer.try_clone().map_err(|e| e.to_string())?,
        backend.try_clone().map_err(|e| e.to_string())?,
    );
    let up = std::thread::spawn(move || pump(v2, b2));
    pump(backend, viewer);
    let _ = up.join();
    Ok(())
}
