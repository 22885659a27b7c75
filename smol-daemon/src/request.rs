//! `vncap request`: asks a running daemon for a console over its control
//! channel (over TLS with `--control-tls`) and prints the port and password.
//! The request and the reply are the core's (`control::client`); this file
//! only connects and prints.

use crate::cli;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

/// Sends `request` and reads the reply to the end.
async fn exchange<S>(mut s: S, request: &[u8]) -> Result<Vec<u8>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut reply = Vec::new();
    s.write_all(request).await.map_err(|e| e.to_string())?;
    s.flush().await.map_err(|e| e.to_string())?;
    s.read_to_end(&mut reply).await.map_err(|e| e.to_string())?;
    Ok(reply)
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
    let request = &line[..n];
    let connecting = |e: std::io::Error| format!("--control {}: {e}", args.control);
    let reply = if let Some(path) = args.control.strip_prefix("unix:") {
        if args.control_tls {
            return Err("--control-tls is for a HOST:PORT control channel".into());
        }
        exchange(
            UnixStream::connect(path).await.map_err(connecting)?,
            request,
        )
        .await
    } else {
        let s = TcpStream::connect(&args.control)
            .await
            .map_err(connecting)?;
        if args.control_tls {
            let ca = args.ca.as_deref().ok_or("--control-tls needs --ca PATH")?;
            // The name the certificate must carry: the host part of HOST:PORT.
            let host = args.control.rsplit_once(':').map_or("", |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            exchange(crate::tls::connect(ca, host, s).await?, request).await
        } else {
            exchange(s, request).await
        }
    }?;
    let answer = parse_reply(dialect, &reply).map_err(|e| e.reason().to_string())?;
    if !answer.ok {
        let reason = answer.reason.as_deref().unwrap_or("no reason given");
        // The daemon knows its maximum; name the option and the usual one.
        let hint = match args.timeout {
            Some(t) if reason.contains("timeout") => format!(
                " (--timeout {t}: at most the daemon's --max-ticket-timeout, 300 unless configured)"
            ),
            _ => String::new(),
        };
        return Err(format!("refused: {reason}{hint}"));
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
