//! `vncap request`, `vncap sessions`, `vncap kill`: one request to a
//! running daemon over its control channel (over TLS with
//! `--control-tls`; with `--user` and `--password-file`, carrying
//! `auth_user` and `auth_password` for a daemon with `--control-users`), its answer printed for a person: a console's port and
//! password, the sessions and tickets as a table, how many were killed.
//! The requests and the replies are the core's (`control::client`); this
//! file only connects and prints.

use crate::cli;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::unix::UnixStream;
use smol::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use vncap_core::control::client::{parse_killed, parse_reply, Ask, List, Row};
use vncap_core::control::{Credentials, Dialect, Door, Host, Kill, Need, Request, Transport};

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

/// `vncap sessions`: prints the live sessions and pending tickets.
pub fn run_sessions(args: cli::Sessions) -> i32 {
    report("sessions", smol::block_on(sessions(&args)))
}

/// `vncap kill`: ends a session or ticket (or a backend's), prints how many.
pub fn run_kill(args: cli::Kill) -> i32 {
    report("kill", smol::block_on(kill(&args)))
}

fn report(command: &str, outcome: Result<String, String>) -> i32 {
    match outcome {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(e) => {
            eprintln!("vncap {command}: {e}");
            1
        }
    }
}

/// Where the daemon's control channel is (`--control`, `--control-tls`,
/// `--ca`).
struct Channel<'a> {
    control: &'a str,
    control_tls: bool,
    ca: Option<&'a Path>,
    /// `--user` and the password from `--password-file`.
    login: Option<(String, String)>,
}

/// `--user` with `--password-file` (both or neither).
fn login(
    user: &Option<String>,
    file: &Option<PathBuf>,
) -> Result<Option<(String, String)>, String> {
    match (user, file) {
        (Some(u), Some(f)) => Ok(Some((u.clone(), crate::passwd::read_password_file(f)?))),
        (None, None) => Ok(None),
        _ => Err("--user and --password-file go together: give both or neither".into()),
    }
}

impl Channel<'_> {
    /// Sends `request`, returns everything the daemon answered.
    async fn ask(&self, request: &[u8]) -> Result<Vec<u8>, String> {
        let connecting = |e: std::io::Error| format!("--control {}: {e}", self.control);
        if let Some(path) = self.control.strip_prefix("unix:") {
            if self.control_tls {
                return Err("--control-tls is for a HOST:PORT control channel".into());
            }
            return exchange(
                UnixStream::connect(path).await.map_err(connecting)?,
                request,
            )
            .await;
        }
        let s = TcpStream::connect(self.control).await.map_err(connecting)?;
        if self.control_tls {
            let ca = self.ca.ok_or("--control-tls needs --ca PATH")?;
            // The name the certificate must carry: the host part of HOST:PORT.
            let host = self.control.rsplit_once(':').map_or("", |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            exchange(crate::tls::connect(ca, host, s).await?, request).await
        } else {
            exchange(s, request).await
        }
    }

    /// The credentials to send, when `--user` is given.
    fn credentials(&self) -> Option<Credentials<'_>> {
        self.login
            .as_ref()
            .map(|(user, password)| Credentials { user, password })
    }

    /// Sends the action `req`, returns the reply.
    async fn act(&self, req: &Request) -> Result<Vec<u8>, String> {
        let mut line = [0u8; 1024];
        let n = req
            .emit_with(self.credentials(), &mut line)
            .map_err(|e| e.reason().to_string())?;
        self.ask(&line[..n]).await
    }
}

async fn sessions(args: &cli::Sessions) -> Result<String, String> {
    let channel = Channel {
        control: &args.control,
        control_tls: args.control_tls,
        ca: args.ca.as_deref(),
        login: login(&args.user, &args.password_file)?,
    };
    let reply = channel.act(&Request::List).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut sessions = Vec::new();
    let mut tickets = Vec::new();
    let outcome = List::parse(&reply, |row| match row {
        Row::Session(s) => sessions.push([
            s.id.to_string(),
            backend(s.backend_host, s.backend_port),
            s.viewer.to_string(),
            match s.door {
                Door::Port(p) => p.to_string(),
                Door::Single => "single".into(),
            },
            s.transport.name().into(),
            format!("{}s", now.saturating_sub(s.started)),
            s.bytes_to_viewer.to_string(),
            s.bytes_to_backend.to_string(),
        ]),
        Row::Ticket(t) => tickets.push([
            t.id.to_string(),
            backend(t.backend_host, t.backend_port),
            t.port.to_string(),
            format!("{}s", t.expires_in),
        ]),
    })
    .map_err(|e| e.reason().to_string())?;
    refused(outcome)?;
    let mut out = String::new();
    table(
        &mut out,
        "sessions",
        [
            "ID",
            "BACKEND",
            "VIEWER",
            "DOOR",
            "TRANSPORT",
            "AGE",
            "TO VIEWER",
            "TO BACKEND",
        ],
        &sessions,
    );
    out.push('\n');
    table(
        &mut out,
        "pending tickets",
        ["ID", "BACKEND", "PORT", "EXPIRES IN"],
        &tickets,
    );
    Ok(out.trim_end().to_string())
}

async fn kill(args: &cli::Kill) -> Result<String, String> {
    let target = match (args.id, &args.backend) {
        (Some(id), None) => Kill::Id(id),
        (None, Some(b)) => {
            let (host, port) = b
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok().filter(|&p| p != 0)?)))
                .ok_or_else(|| format!("--backend {b:?}: expected HOST:PORT"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let mut h = Host::new();
            h.push_str(host)
                .map_err(|_| format!("--backend {b:?}: host too long"))?;
            Kill::Backend { host: h, port }
        }
        _ => return Err("give an ID or --backend HOST:PORT (one of them)".into()),
    };
    let channel = Channel {
        control: &args.control,
        control_tls: args.control_tls,
        ca: args.ca.as_deref(),
        login: login(&args.user, &args.password_file)?,
    };
    let reply = channel.act(&Request::Kill(target)).await?;
    let killed = parse_killed(&reply).map_err(|e| e.reason().to_string())?;
    match killed {
        Ok(n) => Ok(format!("killed {n}")),
        Err(why) => refused(Err(why)).map(|()| String::new()),
    }
}

/// An action's failure as the error to print.
fn refused(outcome: Result<(), Option<vncap_core::control::client::Reason>>) -> Result<(), String> {
    outcome.map_err(|why| format!("refused: {}", why.as_deref().unwrap_or("no reason given")))
}

fn backend(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `title:`, then the rows under a header, columns padded to their widest
/// (or `title: none`).
fn table<const N: usize>(out: &mut String, title: &str, header: [&str; N], rows: &[[String; N]]) {
    if rows.is_empty() {
        out.push_str(&format!("{title}: none\n"));
        return;
    }
    out.push_str(&format!("{title}:\n"));
    let mut width = header.map(str::len);
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (cell, w) in cells.zip(width) {
            l.push_str(&format!("{cell:<w$}  "));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
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
        websocket: need(args.ws || args.single_port.is_some()),
    };
    // A generated password and control credentials are dialect 2's; with a
    // password, speak GWM's dialect, which can also say "plain RFB over TLS".
    // Single-port tokens are dialect 2's.
    let dialect = if args.password.is_some() && args.user.is_none() && args.single_port.is_none() {
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
    let channel = Channel {
        control: &args.control,
        control_tls: args.control_tls,
        ca: args.ca.as_deref(),
        login: login(&args.user, &args.password_file)?,
    };
    let mut line = [0u8; 4096];
    let n = ask
        .emit_with(channel.credentials(), &mut line)
        .map_err(|e| e.reason().to_string())?;
    let reply = channel.ask(&line[..n]).await?;
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
        .as_ref()
        .and_then(|p| p.as_str())
        .or(args.password.as_deref())
        .unwrap_or("");
    let mut out = format!("port {port}\npassword {password}");
    if let Some(e) = answer.expires_in {
        out.push_str(&format!("\nexpires_in {e}"));
    }
    let url_path = answer.url_path.as_ref().and_then(|u| u.as_str());
    if let Some(p) = url_path {
        out.push_str(&format!("\nurl_path {p}"));
    }
    if let Some(page) = &args.single_port {
        let path = url_path
            .ok_or("the daemon gave a port, not a token: does it run with --single-port?")?;
        out.push_str(&format!("\nurl {}", novnc_url(page, path, password)));
    }
    Ok(out)
}

/// The noVNC page `page` opening the console at `url_path` with
/// `password`: `autoconnect=1`, `path` and `password` in the fragment
/// (noVNC reads the fragment before the query; browsers send neither the
/// fragment to the server nor in a Referer), after any fragment `page` has.
fn novnc_url(page: &str, url_path: &str, password: &str) -> String {
    let join = if page.contains('#') { '&' } else { '#' };
    let mut url = format!("{page}{join}autoconnect=1&path={}", percent(url_path));
    if !password.is_empty() {
        url.push_str(&format!("&password={}", percent(password)));
    }
    url
}

/// Percent-encodes every byte but RFC 3986's unreserved characters (what
/// noVNC's `decodeURIComponent` reads back as it was).
fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn novnc_urls_carry_the_path_and_password_in_the_fragment() {
        assert_eq!(
            novnc_url(
                "https://vnc.example.org/vnc.html",
                "websockify?token=Ab-_9",
                "p&w #1"
            ),
            "https://vnc.example.org/vnc.html#autoconnect=1&path=websockify%3Ftoken%3DAb-_9&password=p%26w%20%231"
        );
        assert_eq!(
            novnc_url("http://h/vnc.html?host=h&port=6080#view_only=1", "websockify?token=x", ""),
            "http://h/vnc.html?host=h&port=6080#view_only=1&autoconnect=1&path=websockify%3Ftoken%3Dx"
        );
        assert_eq!(percent("\u{e9}"), "%C3%A9");
    }
}
