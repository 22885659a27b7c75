//! `vncap request`: asks a running daemon for a console over its control
//! channel and prints the port and password. The request and the reply are
//! the core's (`control::client`); this file only connects and prints.

use crate::cli;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::unix::UnixStream;
use smol::net::TcpStream;
use vncap_core::control::client::{parse_reply, write_request, Ask};
use vncap_core::control::{Dialect, Need, Transport};

/// Runs the request; returns the process exit code (0 granted, 1 refused or failed).
pub fn run(args: cli::Request) -> i32 {
    match smol::block_on(request(&args)) {
        Ok(lines) => {
            println!("{lines}");
            0
        }
        Err(e) => {
            eprintln!("vncap request: {e}");
            1
        }
    }
}

async fn request(args: &cli::Request) -> Result<String, String> {
    let need = |yes: bool| if yes { Need::Yes } else { Need::No };
    let transport = Transport {
        tls: need(args.tls),
        websocket: need(args.ws),
    };
    // A generated password is a dialect-2 extension; with a password, speak
    // GWM's dialect, which can also say "plain RFB over TLS".
    let dialect = if args.password.is_some() {
        Dialect::Twisted
    } else {
        Dialect::Snf
    };
    let ask = Ask {
        dialect,
        host: &args.daddr,
        port: args.dport,
        password: args.password.as_deref(),
        transport,
        preferred_port: args.sport,
        timeout_secs: args.timeout,
    };
    let mut line = [0u8; 4096];
    let n = write_request(&ask, &mut line).map_err(|e| e.reason().to_string())?;
    let mut reply = Vec::new();
    if let Some(path) = args.control.strip_prefix("unix:") {
        let mut s = UnixStream::connect(path)
            .await
            .map_err(|e| format!("{}: {e}", args.control))?;
        s.write_all(&line[..n]).await.map_err(|e| e.to_string())?;
        s.read_to_end(&mut reply).await.map_err(|e| e.to_string())?;
    } else {
        let mut s = TcpStream::connect(&args.control)
            .await
            .map_err(|e| format!("{}: {e}", args.control))?;
        s.write_all(&line[..n]).await.map_err(|e| e.to_string())?;
        s.read_to_end(&mut reply).await.map_err(|e| e.to_string())?;
    }
    let answer = parse_reply(dialect, &reply).map_err(|e| e.reason().to_string())?;
    if !answer.ok {
        return Err(format!(
            "refused: {}",
            answer.reason.as_deref().unwrap_or("no reason given")
        ));
    }
    let port = answer.port.ok_or("the reply has no port")?;
    let password = answer
        .password
        .as_deref()
        .or(args.password.as_deref())
        .unwrap_or("");
    let mut out = format!("port {port}\npassword {password}");
    if let Some(e) = answer.expires_in {
        out.push_str(&format!("\nexpires_in {e}"));
    }
    if let Some(p) = answer.url_path.as_deref() {
        out.push_str(&format!("\nurl_path {p}"));
    }
    Ok(out)
}
