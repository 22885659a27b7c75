//! Reaching a backend VNC server and logging in to it: resolve its name
//! (IPv4 and IPv6) within the connect timeout, check each address against
//! `--backend-allow` and vncap's own sockets (the core's
//! `backend_allow::check`, [`Access`]), try each allowed address with a
//! connect timeout, retry the whole list a bounded number of times with a
//! short backoff ([`connect`]); then
//! drive the core's `rfb::client` over it, running the TLS handshake when
//! the machine hands it over (VeNCrypt, `--backend-tls-dir`), all within
//! the handshake deadline ([`login`]). `session.rs` calls [`login`] and
//! relays what it returns; the words a viewer sees when it fails are made
//! here and in `tls.rs`.
//!
//! Not here: the RFB login itself (the core's), TLS (rustls, `tls.rs`).

use crate::buffer::InBuf;
use crate::clock::Clock;
use crate::drive::{drive, DriveError};
use crate::record::{self, Recording, Tag, Tap};
use crate::tls;
use crate::transport::{ByteRead, ByteWrite, Plain};
use smol::net::TcpStream;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::rc::Rc;
use std::time::Duration;
use vncap_core::backend_allow::{self, AllowList, Own, Refusal};
use vncap_core::entry::Rejection;
use vncap_core::rfb::client;

/// VeNCrypt toward backends (`--backend-tls-dir`, `--backend-tls-required`).
#[derive(Debug, Clone)]
pub struct Tls {
    /// The CA, client certificate and name rule (reloaded on SIGHUP).
    pub files: tls::BackendTls,
    /// Refuse backends that do not offer VeNCrypt.
    pub required: bool,
}

/// How vncap logs in to a backend.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// The backend's host (the request's `daddr`) and port.
    pub host: &'a str,
    /// The backend's port.
    pub port: u16,
    /// The password for VNC authentication, if the backend asks.
    pub password: Option<&'a [u8]>,
    /// How to connect.
    pub connect: ConnectPolicy,
    /// The whole RFB login (TLS included) must end within this.
    pub timeout: Duration,
    /// VeNCrypt, when configured.
    pub tls: Option<&'a Tls>,
    /// Which addresses it may be.
    pub access: &'a Access,
}

/// Which backends a ticket may reach: `--backend-allow`, and never one of
/// vncap's own listening sockets.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `--backend-allow`.
    pub allow: AllowList,
    /// The control channel, the entry ports, the single port, the metrics
    /// port, the Flash policy port.
    pub own: Own,
}

impl Access {
    /// Whether a ticket may reach `to` (the core decides; whether an
    /// address is this host's is asked of the system: it can be bound).
    pub fn check(&self, to: SocketAddr) -> Result<(), Refusal> {
        backend_allow::check(&self.allow, &self.own, to, |ip| {
            std::net::UdpSocket::bind((ip, 0)).is_ok()
        })
    }

    /// At request time: a backend written as an address is checked at once
    /// (a name is checked on what it resolves to, when connecting).
    pub fn check_literal(&self, host: &str, port: u16) -> Result<(), Refusal> {
        match literal(host) {
            Some(ip) => self.check(SocketAddr::new(ip, port)),
            None => Ok(()),
        }
    }
}

/// `host` as an IP address, if it is one (`[::1]` too).
fn literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// A backend's reading half: plain TCP, or TLS over it.
pub enum BackendRead {
    /// Plain RFB over TCP.
    Plain(Plain<TcpStream>),
    /// RFB inside TLS (VeNCrypt), and how many plaintext bytes came so far.
    Tls(Plain<tls::BackendRead<TcpStream>>, u64),
}

impl BackendRead {
    /// Whether the node said nothing inside TLS yet: a close then is the
    /// node refusing the TLS session itself (its client-certificate check).
    fn silent_inside_tls(&self) -> bool {
        matches!(self, BackendRead::Tls(_, 0))
    }
}

/// A backend's writing half: plain TCP, or TLS over it.
pub enum BackendWrite {
    /// Plain RFB over TCP.
    Plain(Plain<TcpStream>),
    /// RFB inside TLS (VeNCrypt).
    Tls(Plain<tls::BackendWrite<TcpStream>>),
}

impl ByteRead for BackendRead {
    async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BackendRead::Plain(r) => r.read_bytes(buf).await,
            BackendRead::Tls(r, read) => {
                let n = r.read_bytes(buf).await?;
                *read += n as u64;
                Ok(n)
            }
        }
    }
}

impl ByteWrite for BackendWrite {
    async fn write_payload(&mut self, buf: &mut [u8], payload: Range<usize>) -> io::Result<()> {
        match self {
            BackendWrite::Plain(w) => w.write_payload(buf, payload).await,
            BackendWrite::Tls(w) => w.write_payload(buf, payload).await,
        }
    }

    async fn close(&mut self) {
        match self {
            BackendWrite::Plain(w) => w.close().await,
            BackendWrite::Tls(w) => w.close().await,
        }
    }
}

/// A backend vncap is logged in to, just before the viewer's ClientInit.
pub struct LoggedIn {
    /// Its reading half (recorded with `--record`: the RFB bytes, inside
    /// TLS once TLS runs).
    pub reader: Tap<BackendRead>,
    /// Its writing half (recorded likewise).
    pub writer: Tap<BackendWrite>,
    /// Bytes the backend sent after the login (ServerInit's start): for the
    /// viewer, before the relay.
    pub early: InBuf,
    /// The TCP socket when the session is plain RFB (the relay may splice
    /// it); `None` inside TLS.
    pub tcp: Option<TcpStream>,
}

/// Why a backend login failed; the core words what the viewer is told
/// ([`Failure::rejection`]).
#[derive(Debug)]
pub enum Failure {
    /// The connection could not be made (the error).
    Unreachable(String),
    /// The RFB login was refused: the machine's error and the backend's
    /// reason, if it gave one.
    Refused(client::Error, Option<String>),
    /// The connection broke during the login.
    Broken(String),
    /// TLS toward the node failed: what the TLS layer found (certificate
    /// not trusted, name mismatch, a client certificate demanded...).
    Tls(String),
    /// The backend did not finish the login in time.
    TimedOut,
    /// vncap could not take what the connection needs: which resource
    /// ("file descriptors", "memory") and the error.
    OutOfResources(&'static str, String),
}

impl std::fmt::Display for Failure {
    /// The detail, for the log (the viewer is told [`Failure::rejection`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(e) | Failure::Broken(e) | Failure::Tls(e) => f.write_str(e),
            Failure::Refused(e, Some(r)) => write!(f, "{e}: {r}"),
            Failure::Refused(e, None) => write!(f, "{e}"),
            Failure::TimedOut => f.write_str("no RFB login within the handshake timeout"),
            Failure::OutOfResources(what, e) => write!(f, "out of {what}: {e}"),
        }
    }
}

/// Which resource an error says vncap ran out of, if it says so (EMFILE,
/// ENFILE: descriptors; ENOMEM, ENOBUFS: memory).
pub fn exhausted(e: &io::Error) -> Option<&'static str> {
    match rustix::io::Errno::from_io_error(e)? {
        rustix::io::Errno::MFILE | rustix::io::Errno::NFILE => Some("file descriptors"),
        rustix::io::Errno::NOMEM | rustix::io::Errno::NOBUFS => Some("memory"),
        _ => None,
    }
}

impl Failure {
    /// The entry machine's rejection for it.
    pub fn rejection(&self) -> Rejection<'_> {
        match self {
            Failure::Unreachable(e) => Rejection::Unreachable(e),
            Failure::Refused(e, reason) => Rejection::LoginFailed(*e, reason.as_deref()),
            Failure::Broken(e) => Rejection::LoginBroken(e),
            Failure::Tls(why) => Rejection::BackendTls(why),
            Failure::TimedOut => Rejection::LoginTimedOut,
            Failure::OutOfResources(what, _) => Rejection::OutOfResources(what),
        }
    }
}

/// Connects to the backend and logs in (RFB, VeNCrypt's TLS hand-off
/// included). With `--record` (`viewer`: the viewer leg's recording) the
/// backend leg is recorded beside it once the backend is reached. Returns
/// the logged-in halves, or why not.
pub async fn login(
    how: Login<'_>,
    clock: &Clock,
    viewer: Option<&Rc<Recording>>,
) -> Result<LoggedIn, Failure> {
    let stream = connect(how.host, how.port, how.connect, how.access)
        .await
        .map_err(|e| match exhausted(&e) {
            Some(what) => Failure::OutOfResources(what, e.to_string()),
            None => Failure::Unreachable(e.to_string()),
        })?;
    let rec = viewer.and_then(|v| record::start(v.backend(how.host, how.port)));
    let rec = rec.as_ref();
    let tcp = stream.clone();
    let mut reader = Tap::new(BackendRead::Plain(Plain(stream.clone())), rec, Tag::Server);
    let mut writer = Tap::new(BackendWrite::Plain(Plain(stream)), rec, Tag::Client);
    let mut input = InBuf::new(1024);
    let policy = match how.tls {
        None => client::Tls::Off,
        Some(Tls {
            required: false, ..
        }) => client::Tls::Prefer,
        Some(Tls { required: true, .. }) => client::Tls::Require,
    };
    let mut machine = client::Client::new(how.password).with_tls(policy);
    let mut handshake = None;
    // A backend that accepts but never speaks RFB (or TLS) must not hold
    // the viewer.
    let run = with_timeout(how.timeout, async {
        loop {
            match drive(&mut machine, &mut reader, &mut writer, &mut input, clock).await {
                Ok(client::Event::LoggedIn) => return Ok(Ok(())),
                Ok(client::Event::StartTls) => {
                    let Some(t) = how.tls else {
                        return Ok(Err(Stop::Tls(
                            "backend: VeNCrypt without backend TLS".into(),
                        )));
                    };
                    // What the machine left unconsumed is the node's first
                    // TLS bytes.
                    let early = input.data().to_vec();
                    input.consume(early.len());
                    match t.files.connect(how.host, &early, tcp.clone()).await {
                        Ok((r, w, h)) => {
                            reader.inner = BackendRead::Tls(Plain(r), 0);
                            writer.inner = BackendWrite::Tls(Plain(w));
                            handshake = Some(h);
                            machine.tls_established();
                        }
                        Err(why) => return Ok(Err(Stop::Tls(why))),
                    }
                }
                Err(e) => return Ok(Err(Stop::Drive(e))),
            }
        }
    })
    .await;
    // A node that closes (or stalls) before it said anything inside TLS is
    // refusing the session: its client-certificate check explains why.
    let refused_tls = handshake
        .as_ref()
        .filter(|_| reader.inner.silent_inside_tls())
        .and_then(tls::BackendHandshake::explain_close);
    let failure = match run {
        Ok(Ok(())) => None,
        Ok(Err(Stop::Drive(e))) => Some(explain(e, &machine, refused_tls)),
        Ok(Err(Stop::Tls(why))) => Some(Failure::Tls(why)),
        Err(_) => Some(refused_tls.map_or(Failure::TimedOut, Failure::Tls)),
    };
    if let Some(why) = failure {
        return Err(why);
    }
    let plain = !machine.is_tls();
    Ok(LoggedIn {
        reader,
        writer,
        early: input,
        tcp: plain.then_some(tcp),
    })
}

/// Why a login stopped short.
enum Stop {
    /// The RFB login failed (its machine's error, or the socket).
    Drive(DriveError<client::Error>),
    /// The TLS hand-off failed; the viewer-visible reason.
    Tls(String),
}

/// What a failed RFB login was (`refused_tls`: what TLS found when the
/// node closed a TLS session it had said nothing in).
fn explain(
    e: DriveError<client::Error>,
    machine: &client::Client,
    refused_tls: Option<String>,
) -> Failure {
    match e {
        DriveError::Protocol(e) => Failure::Refused(e, machine.server_reason().map(str::to_string)),
        other => refused_tls.map_or_else(|| Failure::Broken(other.to_string()), Failure::Tls),
    }
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct ConnectPolicy {
    /// Per-address connect timeout.
    pub timeout: Duration,
    /// Further rounds after the first.
    pub retries: u32,
    /// Wait before retry `n` is `backoff * n`.
    pub backoff: Duration,
    /// TCP keepalive on the backend leg (`--tcp-keepalive`).
    pub keepalive: Option<Duration>,
}

/// Connects to `host:port`, returning the stream (TCP_NODELAY and keepalive
/// set) or the last error. Only addresses `access` allows are tried (if it
/// allows none, the error says why, at once); running out of descriptors
/// or memory is returned at once too ([`exhausted`]).
pub async fn connect(
    host: &str,
    port: u16,
    policy: ConnectPolicy,
    access: &Access,
) -> io::Result<TcpStream> {
    connect_via(host, port, policy, access, |host, port| async move {
        smol::net::resolve((host.as_str(), port)).await
    })
    .await
}

/// [`connect`] with the resolver given: a name's lookup is bounded by the
/// connect timeout. The system's resolver (`getaddrinfo`, on one of
/// `blocking`'s threads: at most 500, each bounded by resolv.conf's own
/// timeouts) may go on after that; the session does not wait for it.
async fn connect_via<F, R>(
    host: &str,
    port: u16,
    policy: ConnectPolicy,
    access: &Access,
    resolve: R,
) -> io::Result<TcpStream>
where
    R: Fn(String, u16) -> F,
    F: std::future::Future<Output = io::Result<Vec<SocketAddr>>>,
{
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    // An address the name gave that may not be reached, for the log.
    let mut not_tried: Option<String> = None;
    for round in 0..=policy.retries {
        if round > 0 {
            smol::Timer::after(policy.backoff * round).await;
        }
        let addrs: Vec<SocketAddr> = match literal(host) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => match with_timeout(policy.timeout, resolve(host.to_string(), port)).await {
                Ok(a) if !a.is_empty() => a,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    last = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("resolving {host}: timed out"),
                    );
                    continue;
                }
                Err(e) => {
                    last = e;
                    continue;
                }
            },
        };
        let (allowed, refused): (Vec<_>, Vec<_>) =
            addrs.into_iter().partition(|a| access.check(*a).is_ok());
        if allowed.is_empty() {
            let why = refused
                .first()
                .and_then(|a| access.check(*a).err().map(|r| format!("{a}: {r}")))
                .unwrap_or_else(|| "no address".into());
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("refused: {why}"),
            ));
        }
        if let Some(a) = refused.first() {
            if let Err(why) = access.check(*a) {
                not_tried = Some(format!("{a}: {why}"));
            }
        }
        for addr in allowed {
            match with_timeout(policy.timeout, TcpStream::connect(addr)).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    crate::keepalive::set(&stream, policy.keepalive);
                    return Ok(stream);
                }
                Err(e) => {
                    log::debug!("backend {addr}: {e}");
                    if exhausted(&e).is_some() {
                        return Err(e);
                    }
                    last = e;
                }
            }
        }
    }
    Err(match not_tried {
        Some(why) => io::Error::new(last.kind(), format!("{last}; not tried: {why}")),
        None => last,
    })
}

/// Runs `fut`, or fails with `TimedOut` after `limit`.
pub async fn with_timeout<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    futures_lite::future::or(fut, async {
        smol::Timer::after(limit).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(timeout: Duration) -> ConnectPolicy {
        ConnectPolicy {
            timeout,
            retries: 1,
            backoff: Duration::from_millis(10),
            keepalive: None,
        }
    }

    #[test]
    fn a_name_that_never_resolves_takes_no_longer_than_the_connect_timeout() {
        smol::block_on(async {
            let started = std::time::Instant::now();
            // A resolver that never answers (a black-holed DNS server).
            let never = |_: String, _: u16| futures_lite::future::pending();
            let limit = Duration::from_millis(200);
            let any = Access::default();
            let run = connect_via("slow.invalid", 5900, policy(limit), &any, never);
            let guard = async {
                smol::Timer::after(Duration::from_secs(5)).await;
                Err(io::Error::other("still resolving after 5 s"))
            };
            let e = futures_lite::future::or(run, guard).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
            assert!(e.to_string().contains("resolving slow.invalid"), "{e}");
            // Two rounds of 200 ms and the backoff.
            assert!(started.elapsed() < Duration::from_secs(2));
        });
    }

    #[test]
    fn a_name_resolving_to_a_refused_address_is_not_connected() {
        smol::block_on(async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let at = l.local_addr().unwrap();
            let access = Access {
                allow: "10.0.0.0/8".parse().unwrap(),
                own: Own::new(),
            };
            let to_listener = move |_: String, _: u16| async move { Ok(vec![at]) };
            let e = connect_via(
                "node1",
                at.port(),
                policy(Duration::from_secs(1)),
                &access,
                to_listener,
            )
            .await
            .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
            assert!(e.to_string().contains("not in --backend-allow"), "{e}");
            l.set_nonblocking(true).unwrap();
            assert!(l.accept().is_err(), "nothing connected");
        });
    }

    #[test]
    fn a_refused_address_beside_an_unreachable_one_is_named_in_the_error() {
        smol::block_on(async {
            // localhost as Debian's /etc/hosts has it: ::1 and 127.0.0.1.
            let closed = std::net::TcpListener::bind("[::1]:0")
                .map(|l| l.local_addr().unwrap().port())
                .unwrap_or(1);
            let own_port = closed;
            let mut own = Own::new();
            own.push(backend_allow::Listening {
                addr: "127.0.0.1".parse().unwrap(),
                ports: backend_allow::Ports::one(own_port),
                what: "control channel",
            });
            let access = Access {
                allow: AllowList::any(),
                own,
            };
            let both = move |_: String, port: u16| async move {
                Ok(vec![
                    SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port)),
                    SocketAddr::from(([127, 0, 0, 1], port)),
                ])
            };
            let e = connect_via(
                "localhost",
                own_port,
                policy(Duration::from_secs(1)),
                &access,
                both,
            )
            .await
            .unwrap_err();
            assert!(e.to_string().contains("not tried: 127.0.0.1:"), "{e}");
            assert!(e.to_string().contains("control channel"), "{e}");
        });
    }
}
