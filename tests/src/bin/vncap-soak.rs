//! `vncap-soak`: the fault soak (issue 15, "Proof, with figures"). One
//! `vncap serve` on loopback holds `--sessions` relayed sessions (native RFB
//! and WebSocket, one in five streaming a screen) while a chaos driver
//! kills backends, drops viewers mid-handshake and mid-relay, half-opens
//! connections, holds slowloris handshakes and floods the control channel
//! from a second loopback address (127.0.0.2), and a probe from 127.0.0.1
//! logs in through a fresh ticket every 250 ms. It fails if a probe fails
//! or takes over a second, or if, once the load is gone, an entry port still
//! listens, a ticket or a session is left, or the daemon's descriptors or
//! RSS are not back within 10 % of the start. `bench/soak.sh` builds and
//! runs it; it prints a markdown table on stdout.
//!
//! "Start" is measured honestly: a warm-up of the same shape (the same
//! sessions and chaos, `--warmup` seconds) runs first, the load is taken
//! away, and when the daemon is idle again (no session, no ticket, no entry
//! port listening) its descriptors and RSS are the start; the same
//! measurement after the soak is the end. A fresh daemon's figures are
//! printed too ("cold").
//!
//! The harness's peers are its own and cheap: backends ("nodes", RFB 3.8
//! with security None, a thread per connection) that a chaos action kills
//! (every connection reset, the listener closed; a new node takes its
//! place), and one thread ([`keeper`]) that holds every session with
//! poll(2), drains streaming ones and answers WebSocket pings. Every loop is
//! bounded (by count and by the phase's clock); every socket operation has a
//! timeout; pacing the chaos with timers is load shape, never
//! synchronisation: what the checks wait for is read from the daemon
//! (`stats`, `/metrics`, `/proc`).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use argh::FromArgs;
use vncap_tests::backend::quick_handshake;
use vncap_tests::procfs::{fd_counts, listening_ports, proc_kb, quantile, raise_fd_limit, Proc};
use vncap_tests::viewer::{Viewer, ViewerConfig, WsOptions, WsStream};

/// Fault soak: sessions held through one vncap under chaos, with a probe.
#[derive(FromArgs)]
struct Args {
    /// seconds of chaos (default 300)
    #[argh(option, default = "300")]
    secs: u64,
    /// seconds of the warm-up of the same shape before "start" is measured
    /// (default: a tenth of --secs, 10 to 30)
    #[argh(option)]
    warmup: Option<u64>,
    /// concurrent relayed sessions to hold (default 1000)
    #[argh(option, default = "1000")]
    sessions: usize,
    /// the vncap binary (default: `vncap` beside this program)
    #[argh(option)]
    vncap: Option<PathBuf>,
    /// also write every line vncap logs to this file (default: only its
    /// warnings and errors are kept, for the report)
    #[argh(option)]
    daemon_log: Option<PathBuf>,
}

/// The address of the viewers, the probe and the front end.
const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// The hostile host: slowloris, half-open handshakes, the control flood.
const BAD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The chaos's own front end and clumsy viewers: the tickets the slowloris
/// and half-open connections aim at, and the viewers dropped mid-handshake
/// (kept off 127.0.0.1 so the probe's per-source budgets are the real
/// viewers' alone).
const CHAOS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The password of every ticket the soak asks for.
const PASSWORD: &str = "soakpass";
/// Longest any socket operation may take.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the probe logs in, and the most it may take.
const PROBE_EVERY: Duration = Duration::from_millis(250);
const PROBE_LIMIT: Duration = Duration::from_secs(1);
/// Threads opening sessions (each has one handshake in flight; with the
/// chaos dropper and the probe, well under `--max-handshakes-per-ip`).
const OPENERS: usize = 6;
/// Backends that sessions use (the chaos kills them); the probe has its own.
const NODES: usize = 16;
/// A streaming session's screen update and its period (±20 %).
const BURST: usize = 16 * 1024;
const BURST_MS: u64 = 100;
/// Entry-port pool: blocks of this many ports from 30000, below the
/// ephemeral range and above the daemon tests' blocks (20000-29599).
const POOL: u16 = 1024;
/// vncap's ticket timeout here (short: the flood's tickets expire quickly).
const TICKET_SECS: u64 = 10;
/// Most a wind-down may take: tickets expire, handshakes time out.
const WIND_DOWN: Duration = Duration::from_secs(60);
/// How long vncap may take to give free heap memory back once idle (its
/// trim period is 5 s).
const TRIM_WAIT: Duration = Duration::from_secs(7);
/// The most RSS an idle daemon may keep after the load, in multiples of its
/// cold RSS (4-5 MiB; 6-7 MiB after the load when measured, ~75 MiB when
/// glibc kept every freed chunk).
const IDLE_RSS_TIMES_COLD: u64 = 4;
/// Slowloris connections held at once from 127.0.0.2 (above the default
/// per-source cap of 16, so the cap is exercised).
const SLOWLORIS: usize = 24;
/// Silent control connections held at once from 127.0.0.2.
const SILENT_CONTROL: usize = 32;

type Res<T> = Result<T, String>;

fn main() {
    let args: Args = argh::from_env();
    raise_fd_limit();
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("vncap-soak: {e}");
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------- sockets

/// A TCP connection to `dst` from `src` (bound before connect, so the
/// daemon sees that source), with [`IO_TIMEOUT`] on reads and writes.
fn connect_from(src: Ipv4Addr, dst: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&fd, &SocketAddr::new(IpAddr::V4(src), 0))?;
    connect(&fd, &dst)?;
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Closes `s` with a reset (SO_LINGER 0) instead of a FIN.
fn reset(s: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO));
    drop(s);
}

/// One control request from `src`; the whole reply.
fn control(ctl: SocketAddr, src: Ipv4Addr, request: &[u8]) -> io::Result<String> {
    let mut s = connect_from(src, ctl)?;
    s.write_all(request)?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

/// A ticket (twisted-vncauthproxy's dialect, as GWM asks) to `node`,
/// asked from `src`; its entry port.
fn ticket(ctl: SocketAddr, src: Ipv4Addr, node: SocketAddr, ws: bool, timeout: u64) -> Res<u16> {
    let line = format!(
        "{{\"daddr\": \"{}\", \"dport\": {}, \"password\": \"{PASSWORD}\", \"ws\": {ws}, \"timeout\": {timeout}}}\r\n",
        node.ip(),
        node.port()
    );
    let reply = control(ctl, src, line.as_bytes()).map_err(|e| format!("control: {e}"))?;
    reply
        .trim_end()
        .parse()
        .map_err(|_| format!("ticket refused: {}", reply.trim_end()))
}

fn entry(port: u16) -> SocketAddr {
    SocketAddr::from((GOOD, port))
}

/// A viewer logged in through a fresh ticket to `node` (RFB handshake with
/// the ticket's password, ServerInit read), from `src`. Returns the TCP
/// socket underneath (for a WebSocket viewer, the frames go on over it).
fn login(ctl: SocketAddr, node: SocketAddr, ws: bool, src: Ipv4Addr) -> Res<TcpStream> {
    login_marked(ctl, node, ws, src, &mut Vec::new())
}

/// [`login`], pushing the time each step ended to `marks`: the ticket, the
/// TCP connect, the WebSocket upgrade (for WebSocket), the RFB login.
fn login_marked(
    ctl: SocketAddr,
    node: SocketAddr,
    ws: bool,
    src: Ipv4Addr,
    marks: &mut Vec<Instant>,
) -> Res<TcpStream> {
    let port = ticket(ctl, src, node, ws, TICKET_SECS)?;
    marks.push(Instant::now());
    let tcp = connect_from(src, entry(port)).map_err(|e| format!("connect: {e}"))?;
    marks.push(Instant::now());
    let config = ViewerConfig::password(PASSWORD);
    if ws {
        let options = WsOptions {
            protocols: vec!["binary".into()],
            origin: None,
        };
        let url = format!("ws://127.0.0.1:{port}/websockify");
        let w = WsStream::handshake(tcp, &url, &options).map_err(|e| format!("ws: {e}"))?;
        marks.push(Instant::now());
        let v = Viewer::handshake(w, &config).map_err(|e| format!("rfb: {e}"))?;
        let w = v.into_inner();
        w.tcp().try_clone().map_err(|e| e.to_string())
    } else {
        let v = Viewer::handshake(tcp, &config).map_err(|e| format!("rfb: {e}"))?;
        Ok(v.into_inner())
    }
}

/// A client-to-server WebSocket binary frame (masked, as a browser masks;
/// the zero key leaves the payload as it is).
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A small xorshift generator (load shape, not secrets).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

// ---------------------------------------------------------------- tallies

/// Counts by name, for the report.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, u64>>);

impl Tally {
    fn add(&self, name: impl Into<String>) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(name.into()).or_default() += 1;
        }
    }
    fn take(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }
}

/// The first words of an error, so that like failures count together.
fn class(e: &str) -> String {
    let e: String = e.chars().filter(|c| !c.is_ascii_digit()).collect();
    e.chars().take(70).collect()
}

// ---------------------------------------------------------------- backends

/// A backend VNC server ("node"): RFB 3.8, security None, a thread per
/// connection. After ServerInit the viewer's first byte picks the part:
/// `S` streams [`BURST`] bytes every [`BURST_MS`], anything else idles
/// (reads until EOF).
struct Node {
    addr: SocketAddr,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next: AtomicU64,
    dead: AtomicBool,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Node {
    fn spawn(block: Arc<Vec<u8>>) -> Res<Arc<Node>> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("node: {e}"))?;
        let node = Arc::new(Node {
            addr: l.local_addr().map_err(|e| e.to_string())?,
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            dead: AtomicBool::new(false),
            accept: Mutex::new(None),
        });
        let n = node.clone();
        let t = std::thread::Builder::new()
            .name("soak-node".into())
            .spawn(move || {
                for s in l.incoming() {
                    if n.dead.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(s) = s else { continue };
                    let (n, block) = (n.clone(), block.clone());
                    let _ = std::thread::Builder::new()
                        .stack_size(128 * 1024)
                        .spawn(move || n.session(s, &block));
                }
            })
            .map_err(|e| e.to_string())?;
        *node.accept.lock().map_err(|_| "node lock")? = Some(t);
        Ok(node)
    }

    fn session(&self, mut s: TcpStream, block: &[u8]) {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        if let (Ok(c), Ok(mut conns)) = (s.try_clone(), self.conns.lock()) {
            conns.insert(id, c);
        }
        if self.dead.load(Ordering::SeqCst) {
            return self.forget(id);
        }
        let mut first = [0u8; 1];
        let ok = quick_handshake(&mut s, IO_TIMEOUT).is_ok()
            && s.set_read_timeout(None).is_ok()
            && matches!(s.read(&mut first), Ok(1));
        if ok && first[0] == b'S' {
            let mut rng = Rng::new(id ^ u64::from(self.addr.port()) << 20);
            let _ = s.set_write_timeout(Some(IO_TIMEOUT));
            std::thread::sleep(Duration::from_millis(rng.below(BURST_MS)));
            while !self.dead.load(Ordering::SeqCst) && s.write_all(&block[..BURST]).is_ok() {
                let wait = BURST_MS * 8 / 10 + rng.below(BURST_MS * 4 / 10 + 1);
                std::thread::sleep(Duration::from_millis(wait));
            }
        } else if ok {
            let mut buf = [0u8; 4096];
            while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        }
        self.forget(id);
    }

    fn forget(&self, id: u64) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&id);
        }
    }

    /// Kills the node as a crashed VNC server dies: every connection reset,
    /// the listener closed. Returns how many sessions it cut.
    fn kill(&self) -> usize {
        self.dead.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.lock().ok().and_then(|mut a| a.take()) {
            let _ = t.join();
        }
        let conns: Vec<TcpStream> = self
            .conns
            .lock()
            .map(|mut c| c.drain().map(|(_, s)| s).collect())
            .unwrap_or_default();
        let n = conns.len();
        for c in conns {
            let _ = c.shutdown(Shutdown::Both);
            reset(c);
        }
        n
    }
}

// ---------------------------------------------------------------- the keeper

/// A held session: the viewer's socket, and for WebSocket its frame reader.
struct Held {
    tcp: TcpStream,
    ws: Option<WsIn>,
    /// When the viewer shut down its sending half (the chaos did).
    half_open: Option<Instant>,
}

/// Reads the server's WebSocket frames well enough to skip data and
/// answer pings (the daemon closes viewers that do not).
#[derive(Default)]
struct WsIn {
    head: Vec<u8>,
    left: u64,
    ping: Option<Vec<u8>>,
}

impl WsIn {
    /// Consumes `data`; pongs due go to `out`.
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            if self.left > 0 {
                let n = (self.left.min(data.len() as u64)) as usize;
                if let Some(p) = &mut self.ping {
                    p.extend_from_slice(&data[..n]);
                }
                self.left -= n as u64;
                data = &data[n..];
                if self.left == 0 {
                    self.pong(out);
                }
                continue;
            }
            self.head.push(data[0]);
            data = &data[1..];
            let h = &self.head;
            if h.len() < 2 {
                continue;
            }
            let ext = match h[1] & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            };
            let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
            if h.len() < 2 + ext + mask {
                continue;
            }
            self.left = match ext {
                0 => u64::from(h[1] & 0x7f),
                _ => h[2..2 + ext]
                    .iter()
                    .fold(0u64, |a, &b| a << 8 | u64::from(b)),
            };
            self.ping = (h[0] & 0x0f == 0x9).then(Vec::new);
            self.head.clear();
            if self.left == 0 {
                self.pong(out);
            }
        }
    }

    fn pong(&mut self, out: &mut Vec<u8>) {
        if let Some(p) = self.ping.take() {
            out.extend_from_slice(&ws_frame(0xA, &p[..p.len().min(125)]));
        }
    }
}

/// What the keeper is told.
enum Cmd {
    Add(Held),
    /// Close a random session: with a FIN, with a reset, or shut down
    /// its sending half and keep reading.
    Close,
    Reset,
    HalfOpen,
    /// Close every session (the end of a phase).
    CloseAll,
    Quit,
}

/// Holds every session in one thread: poll(2) over all of them, reads and
/// drops what arrives (answering WebSocket pings), notices when the daemon
/// ends one, and acts on [`Cmd`]s. `live` is the number held.
fn keeper(rx: Receiver<Cmd>, soak: Arc<Soak>) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut held: Vec<Held> = Vec::new();
    let mut rng = Rng::new(7);
    let mut buf = vec![0u8; 64 * 1024];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    };
    loop {
        loop {
            let cmd = match rx.try_recv() {
                Ok(c) => c,
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            };
            let pick = |held: &Vec<Held>, rng: &mut Rng| {
                let open: Vec<usize> = (0..held.len())
                    .filter(|&i| held[i].half_open.is_none())
                    .collect();
                (!open.is_empty()).then(|| open[rng.below(open.len() as u64) as usize])
            };
            match cmd {
                Cmd::Add(h) => {
                    let _ = h.tcp.set_nonblocking(true);
                    held.push(h);
                }
                Cmd::Close | Cmd::Reset => {
                    if let Some(i) = pick(&held, &mut rng) {
                        let h = held.swap_remove(i);
                        soak.live.fetch_sub(1, Ordering::SeqCst);
                        if matches!(cmd, Cmd::Reset) {
                            reset(h.tcp);
                            soak.tally.add("chaos: viewer reset mid-relay");
                        } else {
                            soak.tally.add("chaos: viewer closed mid-relay");
                        }
                    }
                }
                Cmd::HalfOpen => {
                    if let Some(i) = pick(&held, &mut rng) {
                        let _ = held[i].tcp.shutdown(Shutdown::Write);
                        held[i].half_open = Some(Instant::now());
                        soak.tally.add("chaos: viewer half-closed mid-relay");
                    }
                }
                Cmd::CloseAll => {
                    soak.live.fetch_sub(held.len(), Ordering::SeqCst);
                    held.clear();
                }
                Cmd::Quit => return,
            }
        }
        let ended: Vec<usize> = {
            let mut fds: Vec<PollFd> = held
                .iter()
                .map(|h| PollFd::new(&h.tcp, PollFlags::IN))
                .collect();
            if fds.is_empty() {
                drop(fds);
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if poll(&mut fds, Some(&timeout)).is_err() {
                continue;
            }
            fds.iter()
                .enumerate()
                .filter(|(_, f)| !f.revents().is_empty())
                .map(|(i, _)| i)
                .collect()
        };
        let mut gone = Vec::new();
        for i in ended {
            let h = &mut held[i];
            let mut pongs = Vec::new();
            // At most a few reads per wake-up, so one stream cannot starve the rest.
            for _ in 0..4 {
                match h.tcp.read(&mut buf) {
                    Ok(0) => {
                        gone.push(i);
                        break;
                    }
                    Ok(n) => {
                        soak.received.fetch_add(n as u64, Ordering::Relaxed);
                        if let Some(w) = &mut h.ws {
                            w.feed(&buf[..n], &mut pongs);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        gone.push(i);
                        break;
                    }
                }
            }
            if !pongs.is_empty() && h.half_open.is_none() {
                let _ = h.tcp.write_all(&pongs);
            }
        }
        gone.sort_unstable();
        gone.dedup();
        for &i in gone.iter().rev() {
            let h = held.swap_remove(i);
            soak.live.fetch_sub(1, Ordering::SeqCst);
            match h.half_open {
                Some(t) => {
                    let ms = t.elapsed().as_millis() as u64;
                    soak.half_close_ms.fetch_max(ms, Ordering::SeqCst);
                    soak.tally.add("sessions ended by vncap after a half-close");
                }
                None => soak.tally.add("sessions ended by vncap (backend gone)"),
            }
        }
    }
}

// ---------------------------------------------------------------- the soak

/// What every thread of a run shares.
struct Soak {
    ctl: SocketAddr,
    target: usize,
    /// The phase's load runs (openers, chaos, probe).
    running: AtomicBool,
    /// Sessions held by the keeper (counted by openers when they hand one
    /// over, so they never overshoot).
    live: AtomicUsize,
    opening: AtomicUsize,
    nodes: Mutex<Vec<Arc<Node>>>,
    probe_node: Arc<Node>,
    block: Arc<Vec<u8>>,
    keeper: Mutex<Sender<Cmd>>,
    tally: Tally,
    /// Longest a half-closed session took to be ended, ms.
    half_close_ms: AtomicU64,
    /// Probe latencies (ms) and failures of the phase.
    probes: Mutex<Vec<f64>>,
    probe_failures: Mutex<Vec<String>>,
    /// Probes over [`PROBE_SLOW`]: (ms, what took the time).
    slow_probes: Mutex<Vec<(f64, String)>>,
    last_kill: Mutex<Option<Instant>>,
    /// Slowest answer to a half-open handshake, ms.
    half_open_hs_ms: AtomicU64,
    /// Longest a slowloris connection was held, ms.
    loris_ms: AtomicU64,
    /// Bytes the held viewers received (screens, WebSocket framing).
    received: AtomicU64,
    /// Sessions held, summed over the samples taken while full, and the
    /// number of those samples.
    live_sum: AtomicU64,
    live_samples: AtomicU64,
    /// Daemon samples of the phase: peak descriptors, peak RSS KiB, and
    /// the fewest sessions held once the phase was full.
    peak_fds: AtomicUsize,
    peak_rss: AtomicU64,
    /// Most entry ports vncap listened on at once.
    peak_ports: AtomicUsize,
    min_live: AtomicUsize,
    full: AtomicBool,
}

impl Soak {
    fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    fn send(&self, cmd: Cmd) {
        if let Ok(k) = self.keeper.lock() {
            let _ = k.send(cmd);
        }
    }

    fn node(&self, rng: &mut Rng) -> Option<SocketAddr> {
        let nodes = self.nodes.lock().ok()?;
        nodes
            .get(rng.below(nodes.len() as u64) as usize)
            .map(|n| n.addr)
    }

    /// Sleeps up to `d`, less if the phase ends (pacing, not synchronisation).
    fn pace(&self, d: Duration) {
        let until = Instant::now() + d;
        while self.running() {
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(100)));
        }
    }
}

/// Runs `f` on a named thread.
fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> Res<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(256 * 1024)
        .spawn(f)
        .map_err(|e| format!("thread {name}: {e}"))
}

/// Keeps `target` sessions held: log in (every second one over WebSocket,
/// one in five streaming), hand the socket to the keeper.
fn opener(soak: Arc<Soak>, seed: u64, cap: u64) {
    let mut rng = Rng::new(seed);
    // Bounded by `cap` attempts; waiting while the target is held is
    // bounded by the phase's clock (`running`).
    let mut attempts = 0;
    while soak.running() && attempts < cap {
        if soak.live.load(Ordering::SeqCst) + soak.opening.load(Ordering::SeqCst) >= soak.target {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        attempts += 1;
        soak.opening.fetch_add(1, Ordering::SeqCst);
        let ws = rng.below(2) == 0;
        let stream = rng.below(5) == 0;
        let r = soak
            .node(&mut rng)
            .ok_or_else(|| "no node".to_string())
            .and_then(|node| login(soak.ctl, node, ws, GOOD));
        let r = r.and_then(|mut tcp| {
            let first = if stream { b"S" } else { b"I" };
            let sent = if ws {
                tcp.write_all(&ws_frame(0x2, first))
            } else {
                tcp.write_all(first)
            };
            sent.map(|_| tcp).map_err(|e| format!("first message: {e}"))
        });
        match r {
            Ok(tcp) => {
                soak.live.fetch_add(1, Ordering::SeqCst);
                soak.opening.fetch_sub(1, Ordering::SeqCst);
                soak.tally.add("sessions opened");
                soak.send(Cmd::Add(Held {
                    tcp,
                    ws: ws.then(WsIn::default),
                    half_open: None,
                }));
            }
            Err(e) => {
                soak.opening.fetch_sub(1, Ordering::SeqCst);
                soak.tally
                    .add(format!("session opens failed: {}", class(&e)));
            }
        }
    }
}

/// Every [`PROBE_EVERY`] from 127.0.0.1: a ticket to the probe's own node
/// and a full login through it (native and WebSocket in turn), timed.
/// Probes slower than this are listed with their steps.
const PROBE_SLOW: Duration = Duration::from_millis(250);

fn probe(soak: Arc<Soak>, cap: u32) {
    let t0 = Instant::now();
    for k in 0..cap {
        if !soak.running() {
            return;
        }
        let due = t0 + PROBE_EVERY * k;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let start = Instant::now();
        let ws = k % 2 == 1;
        let mut marks = Vec::new();
        let r = login_marked(soak.ctl, soak.probe_node.addr, ws, GOOD, &mut marks);
        let took = start.elapsed();
        let ms = took.as_secs_f64() * 1000.0;
        match r {
            Ok(tcp) => {
                drop(tcp);
                if let Ok(mut p) = soak.probes.lock() {
                    p.push(ms);
                }
                if took > PROBE_SLOW {
                    let steps = if ws {
                        &["ticket", "connect", "upgrade", "login"][..]
                    } else {
                        &["ticket", "connect", "login"][..]
                    };
                    marks.push(Instant::now());
                    let mut last = start;
                    let parts: Vec<String> = steps
                        .iter()
                        .zip(&marks)
                        .map(|(name, &m)| {
                            let d = m.duration_since(last).as_secs_f64() * 1000.0;
                            last = m;
                            format!("{name} {d:.0}")
                        })
                        .collect();
                    let kill = soak
                        .last_kill
                        .lock()
                        .ok()
                        .and_then(|k| *k)
                        .map(|k| {
                            format!(
                                "; {:.0} ms after a backend kill",
                                start.saturating_duration_since(k).as_secs_f64() * 1000.0
                            )
                        })
                        .unwrap_or_default();
                    if let Ok(mut slow) = soak.slow_probes.lock() {
                        slow.push((
                            ms,
                            format!(
                                "{ms:.0} ms at {:.1} s ({}; {}){kill}",
                                start.duration_since(t0).as_secs_f64(),
                                if ws { "WebSocket" } else { "native" },
                                parts.join(", ")
                            ),
                        ));
                    }
                }
            }
            Err(e) => {
                if let Ok(mut f) = soak.probe_failures.lock() {
                    f.push(format!("after {:.1} s: {e}", t0.elapsed().as_secs_f64()));
                }
            }
        }
    }
}

/// Kills a session node every 5 s (a new one takes its place at once).
fn chaos_kill_backends(soak: Arc<Soak>, cap: u64) {
    let mut rng = Rng::new(11);
    for _ in 0..cap {
        soak.pace(Duration::from_secs(5));
        if !soak.running() {
            return;
        }
        let Ok(fresh) = Node::spawn(soak.block.clone()) else {
            continue;
        };
        let old = {
            let Ok(mut nodes) = soak.nodes.lock() else {
                return;
            };
            let i = rng.below(nodes.len() as u64) as usize;
            std::mem::replace(&mut nodes[i], fresh)
        };
        if let Ok(mut k) = soak.last_kill.lock() {
            *k = Some(Instant::now());
        }
        let cut = old.kill();
        soak.tally.add("chaos: backend killed");
        for _ in 0..cut {
            soak.tally.add("chaos: backend sessions cut");
        }
    }
}

/// Tells the keeper every `every` to do `cmd` to a random session.
fn chaos_keeper(soak: Arc<Soak>, every: Duration, cap: u64, cmd: fn(u64) -> Cmd) {
    for i in 0..cap {
        soak.pace(every);
        if !soak.running() {
            return;
        }
        soak.send(cmd(i));
    }
}

/// From 127.0.0.3 every 150 ms: a ticket, then a viewer that goes away at
/// some point of its handshake.
fn chaos_drop_handshakes(soak: Arc<Soak>, cap: u64) {
    let mut rng = Rng::new(13);
    for i in 0..cap {
        soak.pace(Duration::from_millis(150));
        if !soak.running() {
            return;
        }
        let Some(node) = soak.node(&mut rng) else {
            continue;
        };
        let stage = i % 6;
        let ws = stage >= 3;
        let what = match drop_at(soak.ctl, node, ws, stage) {
            Ok(what) => format!("chaos: viewer dropped {what}"),
            Err(e) => format!("chaos: handshake drop failed: {}", class(&e)),
        };
        soak.tally.add(what);
    }
}

fn drop_at(ctl: SocketAddr, node: SocketAddr, ws: bool, stage: u64) -> Res<&'static str> {
    let port = ticket(ctl, CHAOS, node, ws, 5)?;
    let mut s = connect_from(CHAOS, entry(port)).map_err(|e| format!("connect: {e}"))?;
    let io = |e: io::Error| format!("i/o: {e}");
    let mut buf = [0u8; 64];
    Ok(match stage {
        0 => "on connect",
        1 => {
            s.read_exact(&mut buf[..12]).map_err(io)?;
            "after the RFB version"
        }
        2 => {
            s.read_exact(&mut buf[..12]).map_err(io)?;
            s.write_all(b"RFB 003.008\n").map_err(io)?;
            s.read_exact(&mut buf[..2]).map_err(io)?;
            s.write_all(&[2]).map_err(io)?;
            s.read_exact(&mut buf[..16]).map_err(io)?;
            reset(s);
            return Ok("at the challenge (reset)");
        }
        3 => {
            s.write_all(b"GET /websockify HTTP/1.1\r\nHost: 127.0.0.1\r\nUpg")
                .map_err(io)?;
            "in the HTTP upgrade"
        }
        _ => {
            let url = format!("ws://127.0.0.1:{port}/websockify");
            let options = WsOptions {
                protocols: vec!["binary".into()],
                origin: None,
            };
            let w = WsStream::handshake(s, &url, &options).map_err(|e| format!("ws: {e}"))?;
            drop(w);
            "after the WebSocket upgrade"
        }
    })
}

/// From 127.0.0.2 every 400 ms: a connection to a pending ticket's port
/// that sends part of a handshake, shuts down its sending half and reads
/// until the daemon closes; the slowest close is kept.
fn chaos_half_open_handshakes(soak: Arc<Soak>, cap: u64) {
    let mut rng = Rng::new(17);
    for i in 0..cap {
        soak.pace(Duration::from_millis(400));
        if !soak.running() {
            return;
        }
        let Some(node) = soak.node(&mut rng) else {
            continue;
        };
        let ws = i % 2 == 0;
        let r = (|| -> Res<()> {
            let port = ticket(soak.ctl, CHAOS, node, ws, 5)?;
            let mut s = connect_from(BAD, entry(port)).map_err(|e| format!("connect: {e}"))?;
            let t = Instant::now();
            if ws {
                let _ = s.write_all(b"GET /websockify HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            } else {
                let _ = s.write_all(b"RFB 003.0");
            }
            let _ = s.shutdown(Shutdown::Write);
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                    Err(e) => return Err(format!("not closed: {e}")),
                }
            }
            let ms = t.elapsed().as_millis() as u64;
            soak.half_open_hs_ms.fetch_max(ms, Ordering::SeqCst);
            Ok(())
        })();
        soak.tally.add(match r {
            Ok(()) => "chaos: half-open handshake (127.0.0.2)".to_string(),
            Err(e) => format!("chaos: half-open handshake failed: {}", class(&e)),
        });
    }
}

/// One of [`SLOWLORIS`] threads on 127.0.0.2: connect to a pending
/// ticket's port and either stay silent or dribble a handshake a byte
/// every 3 s, until the daemon closes; then again.
fn chaos_slowloris(soak: Arc<Soak>, id: u64, cap: u64) {
    let mut rng = Rng::new(100 + id);
    let silent = id.is_multiple_of(3);
    let ws = id.is_multiple_of(2);
    for _ in 0..cap {
        if !soak.running() {
            return;
        }
        let Some(node) = soak.node(&mut rng) else {
            return;
        };
        let r = (|| -> Res<Duration> {
            let port = ticket(soak.ctl, CHAOS, node, ws, TICKET_SECS)?;
            let mut s = connect_from(BAD, entry(port)).map_err(|e| format!("connect: {e}"))?;
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let t = Instant::now();
            let dribble: &[u8] = if ws {
                b"GET /websockify HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            } else {
                b"RFB 003.008\n"
            };
            let mut buf = [0u8; 256];
            // Bounded: the daemon's handshake deadline ends it long before.
            for i in 0..200 {
                match s.read(&mut buf) {
                    Ok(0) => return Ok(t.elapsed()),
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if !silent {
                            let b = dribble[i % dribble.len()];
                            if s.write_all(&[b]).is_err() {
                                return Ok(t.elapsed());
                            }
                        }
                    }
                    Err(_) => return Ok(t.elapsed()),
                }
                if !soak.running() {
                    return Ok(t.elapsed());
                }
            }
            Err("never closed".into())
        })();
        let kind = if silent { "silent" } else { "a byte every 3 s" };
        match r {
            Ok(d) if d < Duration::from_millis(500) => soak
                .tally
                .add(format!("chaos: slowloris ({kind}) closed at once (cap)")),
            Ok(d) => {
                soak.loris_ms
                    .fetch_max(d.as_millis() as u64, Ordering::SeqCst);
                soak.tally
                    .add(format!("chaos: slowloris ({kind}) held to its deadline"))
            }
            Err(e) => soak
                .tally
                .add(format!("chaos: slowloris failed: {}", class(&e))),
        }
        // A refused one retries after a pause, not in a tight loop.
        soak.pace(Duration::from_millis(500));
    }
}

/// The control flood from 127.0.0.2, one request every 50 ms: valid ones
/// of both dialects (their tickets expire), actions, and malformed ones.
fn chaos_control_flood(soak: Arc<Soak>, cap: u64) {
    let mut rng = Rng::new(19);
    for i in 0..cap {
        soak.pace(Duration::from_millis(50));
        if !soak.running() {
            return;
        }
        let Some(node) = soak.node(&mut rng) else {
            continue;
        };
        let (ip, port) = (node.ip(), node.port());
        let (valid, req): (bool, Vec<u8>) = match i % 10 {
            0 => (true, format!("{{\"daddr\": \"{ip}\", \"dport\": {port}, \"password\": \"floodpw1\", \"timeout\": 2}}\r\n").into_bytes()),
            1 => (true, format!("{{\"source_port\": 0, \"destination_address\": \"{ip}\", \"destination_port\": {port}, \"password\": \"floodpw1\", \"type\": \"vnc-ws\"}}\n").into_bytes()),
            2 => (true, b"{\"action\": \"stats\"}\n".to_vec()),
            3 => (false, b"{not json at all\n".to_vec()),
            4 => (false, format!("{{\"daddr\": \"{ip}\", \"dport\": {port}, \"password\": \"x\", \"destination_port\": 1}}\n").into_bytes()),
            5 => (false, vec![b'A'; 6000]),
            6 => (false, b"\x00\xff\xfe{\"daddr\"\x01}\r\n".to_vec()),
            7 => (false, format!("{{\"daddr\": \"{ip}\", \"dport\": 99999, \"password\": \"floodpw1\"}}\n").into_bytes()),
            8 => (false, b"{\"action\": \"kill\", \"id\": \"everything\"}\n".to_vec()),
            _ => (false, b"{\"daddr\": \"127.0.0.1\", \"dport\": 5900, \"passw".to_vec()),
        };
        let r = (|| -> io::Result<String> {
            let mut s = connect_from(BAD, soak.ctl)?;
            let _ = s.write_all(&req);
            // The last kind ends without a newline: EOF ends the request.
            let _ = s.shutdown(Shutdown::Write);
            let mut reply = String::new();
            s.read_to_string(&mut reply)?;
            Ok(reply)
        })();
        let what = match (valid, r) {
            (_, Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => "refused",
            (_, Err(_)) => "cut",
            (_, Ok(r)) if r.is_empty() => "closed without a reply",
            (true, Ok(r)) if r.starts_with("FAIL") || r.contains("FAILED") => "valid, FAILED",
            (true, Ok(_)) => "valid, answered",
            (false, Ok(r)) if r.starts_with("FAIL") || r.contains("FAILED") => "malformed, FAILED",
            (false, Ok(_)) => "malformed, answered (!)",
        };
        soak.tally.add(format!("chaos: control flood: {what}"));
    }
}

/// Up to [`SILENT_CONTROL`] silent control connections from 127.0.0.2,
/// each replaced when the daemon closes it; checked every second.
fn chaos_silent_control(soak: Arc<Soak>, cap: u64) {
    let mut open: Vec<TcpStream> = Vec::new();
    let mut buf = [0u8; 256];
    for _ in 0..cap {
        if !soak.running() {
            return;
        }
        open.retain_mut(|s| match s.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            _ => {
                soak.tally
                    .add("chaos: silent control connection closed by vncap");
                false
            }
        });
        while open.len() < SILENT_CONTROL {
            match connect_from(BAD, soak.ctl) {
                Ok(s) => {
                    let _ = s.set_nonblocking(true);
                    soak.tally.add("chaos: silent control connection opened");
                    open.push(s);
                }
                Err(_) => {
                    soak.tally.add("chaos: silent control connection refused");
                    break;
                }
            }
        }
        soak.pace(Duration::from_secs(1));
    }
}

// ---------------------------------------------------------------- the daemon

/// The running vncap, its log read by a thread.
struct Daemon {
    proc: Proc,
    /// Its entry-port pool.
    ports: (u16, u16),
    ctl: SocketAddr,
    metrics: SocketAddr,
    /// Log lines at warn or error, and lines that say "panicked".
    alarms: Arc<Mutex<Vec<String>>>,
    lines: Arc<AtomicU64>,
}

impl Daemon {
    fn start(
        vncap: &str,
        ports: (u16, u16),
        sessions: usize,
        log: Option<&PathBuf>,
    ) -> Res<Daemon> {
        let mut log = match log {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
            )),
            None => None,
        };
        let args: Vec<String> = [
            "serve",
            "--control",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1",
            "--ports",
            &format!("{}-{}", ports.0, ports.1),
            "--max-sessions",
            &(sessions + 64).to_string(),
            "--max-tickets",
            "1024",
            "--ticket-timeout",
            &TICKET_SECS.to_string(),
            "--metrics",
            "127.0.0.1:0",
            "--log-level",
            "info",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut child = Command::new(vncap)
            .args(&args)
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {vncap}: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        // vncap writes its log synchronously: a full pipe would stall it
        // whenever this reader is not scheduled (1 MiB is many seconds).
        let _ = rustix::pipe::fcntl_setpipe_size(&stderr, 1 << 20);
        let proc = Proc { child };
        let (tx, rx) = mpsc::channel();
        let alarms = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::new(AtomicU64::new(0));
        let (a, n) = (alarms.clone(), lines.clone());
        thread("soak-log", move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                n.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = &mut log {
                    let _ = writeln!(f, "{line}");
                }
                if line.contains("ready: control on ") {
                    let _ = tx.send(line.clone());
                }
                if line.contains(" WARN") || line.contains(" ERROR") || line.contains("panicked") {
                    if let Ok(mut a) = a.lock() {
                        if a.len() < 10_000 {
                            a.push(line);
                        }
                    }
                }
            }
        })?;
        let ready = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "vncap did not log its ready line within 30 s".to_string())?;
        let after = |key: &str| -> Res<SocketAddr> {
            ready
                .split(key)
                .nth(1)
                .and_then(|s| s.split([',', ';', ' ']).next())
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("no {key:?} in {ready:?}"))
        };
        Ok(Daemon {
            ports,
            ctl: after("control on ")?,
            metrics: after("metrics on ")?,
            proc,
            alarms,
            lines,
        })
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn alive(&mut self) -> bool {
        matches!(self.proc.child.try_wait(), Ok(None))
    }

    /// (descriptors, RSS KiB).
    fn usage(&self) -> (usize, u64) {
        let pid = self.pid();
        (
            fd_counts(pid).0,
            proc_kb(&format!("/proc/{pid}/status"), "VmRSS:"),
        )
    }

    /// `{"action": "stats"}`: (sessions active, tickets pending).
    fn stats(&self) -> Res<(u64, u64)> {
        let reply = control(self.ctl, GOOD, b"{\"action\": \"stats\"}\n")
            .map_err(|e| format!("stats: {e}"))?;
        let s = vncap_core::control::client::Stats::parse(reply.trim_end().as_bytes())
            .map_err(|e| format!("stats reply {reply:?}: {e}"))?
            .map_err(|_| format!("stats refused: {reply:?}"))?;
        Ok((s.sessions_active, s.tickets_pending))
    }

    /// `GET /metrics`: (sessions active, tickets pending).
    fn metrics(&self) -> Res<(u64, u64)> {
        let mut s = connect_from(GOOD, self.metrics).map_err(|e| format!("metrics: {e}"))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .map_err(|e| format!("metrics: {e}"))?;
        let mut text = String::new();
        s.read_to_string(&mut text)
            .map_err(|e| format!("metrics: {e}"))?;
        let value = |name: &str| -> Res<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .ok_or_else(|| format!("no {name} in /metrics"))
        };
        Ok((
            value("vncap_sessions_active")?,
            value("vncap_tickets_pending")?,
        ))
    }
}

/// An exclusive claim (flock on a file in the temporary directory) on a
/// block of [`POOL`] entry ports from 30000, held while the run lasts.
fn claim_ports() -> Res<((u16, u16), std::fs::File)> {
    use rustix::fs::{flock, FlockOperation};
    let dir = std::env::temp_dir().join("vncap-soak-port-blocks");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for block in 0..2u16 {
        let lo = 30000 + block * POOL;
        let file =
            std::fs::File::create(dir.join(lo.to_string())).map_err(|e| format!("claim: {e}"))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            return Ok(((lo, lo + POOL - 1), file));
        }
    }
    Err("both entry-port blocks (30000-32047) are claimed by other soaks".into())
}

// ---------------------------------------------------------------- phases

/// What one phase measured.
struct Phase {
    secs: f64,
    fill_secs: f64,
    tally: BTreeMap<String, u64>,
    probes: Vec<f64>,
    probe_failures: Vec<String>,
    slow_probes: Vec<(f64, String)>,
    min_live: usize,
    peak_fds: usize,
    peak_rss: u64,
    peak_ports: usize,
    half_close_ms: u64,
    half_open_hs_ms: u64,
    loris_ms: u64,
    /// MiB the held viewers received.
    received_mib: f64,
    /// Mean sessions held while full.
    mean_live: f64,
    /// Idle again: (descriptors, RSS KiB), seconds it took, and what was
    /// left when it did not get there.
    idle: (usize, u64),
    wind_down_secs: f64,
    leftovers: Vec<String>,
}

/// Fills to the target, runs the chaos and the probe for `secs`, takes the
/// load away and waits (bounded) until the daemon is idle.
fn phase(soak: &Arc<Soak>, d: &mut Daemon, ports: (u16, u16), secs: u64) -> Res<Phase> {
    soak.tally.take();
    if let Ok(mut p) = soak.probes.lock() {
        p.clear();
    }
    if let Ok(mut f) = soak.probe_failures.lock() {
        f.clear();
    }
    if let Ok(mut f) = soak.slow_probes.lock() {
        f.clear();
    }
    soak.half_close_ms.store(0, Ordering::SeqCst);
    soak.half_open_hs_ms.store(0, Ordering::SeqCst);
    soak.loris_ms.store(0, Ordering::SeqCst);
    soak.received.store(0, Ordering::SeqCst);
    soak.live_sum.store(0, Ordering::SeqCst);
    soak.live_samples.store(0, Ordering::SeqCst);
    soak.peak_fds.store(0, Ordering::SeqCst);
    soak.peak_rss.store(0, Ordering::SeqCst);
    soak.peak_ports.store(0, Ordering::SeqCst);
    soak.min_live.store(usize::MAX, Ordering::SeqCst);
    soak.full.store(false, Ordering::SeqCst);
    soak.running.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let mut threads = Vec::new();
    // Each opener may open this many sessions in the phase (the drops
    // replace about ten a second).
    let open_cap = (soak.target as u64 + secs * 40) / OPENERS as u64 + 100;
    for i in 0..OPENERS {
        let s = soak.clone();
        threads.push(thread("soak-open", move || {
            opener(s, i as u64 + 1, open_cap)
        })?);
    }
    let s = soak.clone();
    let probe_cap = (secs as u32 + 300) * 4;
    threads.push(thread("soak-probe", move || probe(s, probe_cap))?);
    let fill_until = Instant::now() + Duration::from_secs(120);
    while soak.live.load(Ordering::SeqCst) < soak.target {
        if Instant::now() > fill_until {
            soak.running.store(false, Ordering::SeqCst);
            for t in threads {
                let _ = t.join();
            }
            return Err(format!(
                "held only {} of {} sessions after 120 s: {:?}",
                soak.live.load(Ordering::SeqCst),
                soak.target,
                soak.tally.take()
            ));
        }
        sample(soak, d);
        std::thread::sleep(Duration::from_millis(100));
    }
    let fill_secs = t0.elapsed().as_secs_f64();
    soak.full.store(true, Ordering::SeqCst);
    // The chaos, each action paced and capped (about 1.5× what its pace allows).
    let cap = move |every_ms: u64| secs * 1500 / every_ms + 2;
    let s = soak.clone();
    threads.push(thread("soak-kill", move || {
        chaos_kill_backends(s, cap(5000))
    })?);
    let s = soak.clone();
    threads.push(thread("soak-close", move || {
        chaos_keeper(s, Duration::from_millis(100), cap(100), |i| {
            if i % 2 == 0 {
                Cmd::Close
            } else {
                Cmd::Reset
            }
        })
    })?);
    let s = soak.clone();
    threads.push(thread("soak-half", move || {
        chaos_keeper(s, Duration::from_millis(500), cap(500), |_| Cmd::HalfOpen)
    })?);
    let s = soak.clone();
    threads.push(thread("soak-drop", move || {
        chaos_drop_handshakes(s, cap(150))
    })?);
    let s = soak.clone();
    threads.push(thread("soak-halfhs", move || {
        chaos_half_open_handshakes(s, cap(400))
    })?);
    for id in 0..SLOWLORIS as u64 {
        let s = soak.clone();
        threads.push(thread("soak-loris", move || {
            chaos_slowloris(s, id, cap(3000))
        })?);
    }
    let s = soak.clone();
    threads.push(thread("soak-flood", move || {
        chaos_control_flood(s, cap(50))
    })?);
    let s = soak.clone();
    threads.push(thread("soak-silent", move || {
        chaos_silent_control(s, cap(1000))
    })?);
    let chaos_start = Instant::now();
    let end = chaos_start + Duration::from_secs(secs);
    while Instant::now() < end {
        sample(soak, d);
        if !d.alive() {
            soak.running.store(false, Ordering::SeqCst);
            return Err("vncap exited during the soak".into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let secs_run = chaos_start.elapsed().as_secs_f64();
    soak.running.store(false, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    soak.send(Cmd::CloseAll);
    // Idle: no session, no ticket, no entry port listening (stats and
    // /metrics agree). Tickets expire within --ticket-timeout, handshakes
    // within --handshake-timeout.
    let wind = Instant::now();
    let mut leftovers;
    loop {
        leftovers = Vec::new();
        match d.stats() {
            Ok((0, 0)) => {}
            Ok((s, t)) => leftovers.push(format!("stats: {s} sessions, {t} tickets")),
            Err(e) => leftovers.push(e),
        }
        match d.metrics() {
            Ok((0, 0)) => {}
            Ok((s, t)) => leftovers.push(format!("/metrics: {s} sessions, {t} tickets")),
            Err(e) => leftovers.push(e),
        }
        let l = listening_ports(d.pid(), ports.0, ports.1);
        if !l.is_empty() {
            leftovers.push(format!("entry ports still listening: {l:?}"));
        }
        if leftovers.is_empty() || wind.elapsed() > WIND_DOWN {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let wind_down_secs = wind.elapsed().as_secs_f64();
    // vncap gives its free heap back to the system within TRIM_WAIT of a
    // load's fall (smol-daemon/src/trim.rs): watch the RSS that long, and
    // stop once it has dropped.
    let at_idle = d.usage();
    let trim = Instant::now();
    let mut idle = at_idle;
    while trim.elapsed() < TRIM_WAIT && idle.1 * 10 > at_idle.1 * 9 {
        std::thread::sleep(Duration::from_millis(200));
        idle = d.usage();
    }
    Ok(Phase {
        secs: secs_run,
        fill_secs,
        tally: soak.tally.take(),
        probes: soak.probes.lock().map(|p| p.clone()).unwrap_or_default(),
        probe_failures: soak
            .probe_failures
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default(),
        slow_probes: soak
            .slow_probes
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default(),
        min_live: soak.min_live.load(Ordering::SeqCst),
        peak_fds: soak.peak_fds.load(Ordering::SeqCst),
        peak_rss: soak.peak_rss.load(Ordering::SeqCst),
        peak_ports: soak.peak_ports.load(Ordering::SeqCst),
        half_close_ms: soak.half_close_ms.load(Ordering::SeqCst),
        half_open_hs_ms: soak.half_open_hs_ms.load(Ordering::SeqCst),
        loris_ms: soak.loris_ms.load(Ordering::SeqCst),
        received_mib: soak.received.load(Ordering::SeqCst) as f64 / 1048576.0,
        mean_live: soak.live_sum.load(Ordering::SeqCst) as f64
            / soak.live_samples.load(Ordering::SeqCst).max(1) as f64,
        idle,
        wind_down_secs,
        leftovers,
    })
}

/// One sample of the daemon's descriptors and RSS, and the sessions held.
fn sample(soak: &Soak, d: &Daemon) {
    let (fds, rss) = d.usage();
    soak.peak_fds.fetch_max(fds, Ordering::SeqCst);
    soak.peak_rss.fetch_max(rss, Ordering::SeqCst);
    let ports = listening_ports(d.pid(), d.ports.0, d.ports.1).len();
    soak.peak_ports.fetch_max(ports, Ordering::SeqCst);
    if soak.full.load(Ordering::SeqCst) {
        let live = soak.live.load(Ordering::SeqCst);
        soak.min_live.fetch_min(live, Ordering::SeqCst);
        soak.live_sum.fetch_add(live as u64, Ordering::SeqCst);
        soak.live_samples.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------- run and report

fn run(args: &Args) -> Res<bool> {
    let vncap = match &args.vncap {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("vncap"),
    };
    let (ports, _claim) = claim_ports()?;
    let mut d = Daemon::start(
        &vncap.to_string_lossy(),
        ports,
        args.sessions,
        args.daemon_log.as_ref(),
    )?;
    let cold = d.usage();
    let block: Arc<Vec<u8>> = Arc::new((0..BURST).map(|i| (i * 7 + 3) as u8).collect());
    let nodes = (0..NODES)
        .map(|_| Node::spawn(block.clone()))
        .collect::<Res<Vec<_>>>()?;
    let (tx, rx) = mpsc::channel();
    let soak = Arc::new(Soak {
        ctl: d.ctl,
        target: args.sessions,
        running: AtomicBool::new(false),
        live: AtomicUsize::new(0),
        opening: AtomicUsize::new(0),
        nodes: Mutex::new(nodes),
        probe_node: Node::spawn(block.clone())?,
        block,
        keeper: Mutex::new(tx),
        tally: Tally::default(),
        half_close_ms: AtomicU64::new(0),
        probes: Mutex::new(Vec::new()),
        probe_failures: Mutex::new(Vec::new()),
        slow_probes: Mutex::new(Vec::new()),
        last_kill: Mutex::new(None),
        half_open_hs_ms: AtomicU64::new(0),
        loris_ms: AtomicU64::new(0),
        received: AtomicU64::new(0),
        live_sum: AtomicU64::new(0),
        live_samples: AtomicU64::new(0),
        peak_fds: AtomicUsize::new(0),
        peak_rss: AtomicU64::new(0),
        peak_ports: AtomicUsize::new(0),
        min_live: AtomicUsize::new(usize::MAX),
        full: AtomicBool::new(false),
    });
    let s = soak.clone();
    let keeper_thread = thread("soak-keeper", move || keeper(rx, s))?;
    let warmup = args.warmup.unwrap_or((args.secs / 10).clamp(10, 30));
    let t0 = Instant::now();
    eprintln!(
        "vncap-soak: vncap {} (pid {}), entry ports {}-{}; warm-up {warmup} s, then {} s",
        vncap.display(),
        d.pid(),
        ports.0,
        ports.1,
        args.secs
    );
    let warm = phase(&soak, &mut d, ports, warmup)?;
    eprintln!(
        "vncap-soak: warm-up done in {:.0} s; start: {} fds, {} KiB",
        t0.elapsed().as_secs_f64(),
        warm.idle.0,
        warm.idle.1
    );
    let main = phase(&soak, &mut d, ports, args.secs)?;
    soak.send(Cmd::Quit);
    let _ = keeper_thread.join();
    let alive = d.alive();
    let alarms = d.alarms.lock().map(|a| a.clone()).unwrap_or_default();
    let total = t0.elapsed().as_secs_f64();

    // The verdict.
    let mut failed = Vec::new();
    let start = warm.idle;
    let end = main.idle;
    for (name, p) in [("warm-up", &warm), ("soak", &main)] {
        for f in &p.probe_failures {
            failed.push(format!("{name}: probe failed {f}"));
        }
        let slow = p
            .probes
            .iter()
            .filter(|&&ms| ms > PROBE_LIMIT.as_secs_f64() * 1000.0);
        let slow: Vec<f64> = slow.copied().collect();
        if !slow.is_empty() {
            failed.push(format!(
                "{name}: {} probes over {PROBE_LIMIT:?} (max {:.0} ms)",
                slow.len(),
                slow.iter().cloned().fold(0.0, f64::max)
            ));
        }
        for l in &p.leftovers {
            failed.push(format!(
                "{name}: after {:.0} s of wind-down: {l}",
                p.wind_down_secs
            ));
        }
    }
    if main.probes.is_empty() {
        failed.push("no probe completed".into());
    }
    let within = |a: f64, b: f64| (b - a).abs() <= a * 0.10;
    if !within(start.0 as f64, end.0 as f64) {
        failed.push(format!(
            "descriptors not back: {} at the start, {} at the end",
            start.0, end.0
        ));
    }
    if !within(start.1 as f64, end.1 as f64) {
        failed.push(format!(
            "RSS not back: {} KiB at the start, {} KiB at the end",
            start.1, end.1
        ));
    }
    // The heap a load used is given back (trim.rs), not kept at its peak.
    if end.1 > cold.1 * IDLE_RSS_TIMES_COLD {
        failed.push(format!(
            "memory not given back: {} KiB idle at the end, {} KiB cold",
            end.1, cold.1
        ));
    }
    if !alive {
        failed.push("vncap is not running at the end".into());
    }
    let panics: Vec<&String> = alarms.iter().filter(|l| l.contains("panicked")).collect();
    if !panics.is_empty() {
        failed.push(format!("vncap panicked: {}", panics[0]));
    }

    report(
        args,
        &warm,
        &main,
        cold,
        ports,
        &alarms,
        d.lines.load(Ordering::Relaxed),
        total,
    );
    if failed.is_empty() {
        println!("\nvncap-soak: passed");
        Ok(true)
    } else {
        println!("\nvncap-soak: FAILED");
        for f in &failed {
            println!("- {f}");
        }
        eprintln!(
            "vncap-soak: failed ({} problems; see the table)",
            failed.len()
        );
        Ok(false)
    }
}

/// Entry ports left listening after a phase (0 unless its wind-down failed).
fn left_ports(p: &Phase) -> usize {
    p.leftovers
        .iter()
        .find_map(|l| l.strip_prefix("entry ports still listening: "))
        .map_or(0, |l| l.matches(',').count() + 1)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    warm: &Phase,
    main: &Phase,
    cold: (usize, u64),
    ports: (u16, u16),
    alarms: &[String],
    lines: u64,
    total: f64,
) {
    let q = |p: &Phase, x: f64| quantile(&p.probes, x);
    let max = |p: &Phase| p.probes.iter().cloned().fold(0.0, f64::max);
    println!("## vncap fault soak\n");
    println!(
        "- {} s of chaos after a {:.0} s warm-up of the same shape ({:.0} s in all); {} sessions held; entry ports {}-{}",
        args.secs, warm.secs, total, args.sessions, ports.0, ports.1
    );
    println!(
        "- sessions filled in {:.1} s; held during the chaos: {:.0} on average, {} at the fewest (cut sessions are replaced as they go)",
        main.fill_secs,
        main.mean_live,
        if main.min_live == usize::MAX { 0 } else { main.min_live }
    );
    println!(
        "- \"start\" is the daemon idle after the warm-up (no session, ticket or listening entry port), \"end\" the same after the soak; \"cold\" is the fresh daemon\n"
    );
    println!("| | warm-up | soak |");
    println!("|---|---:|---:|");
    let row = |name: &str, a: String, b: String| println!("| {name} | {a} | {b} |");
    row(
        "probe logins (every 250 ms, 127.0.0.1)",
        warm.probes.len().to_string(),
        main.probes.len().to_string(),
    );
    row(
        "probe failures",
        warm.probe_failures.len().to_string(),
        main.probe_failures.len().to_string(),
    );
    row(
        "probe p50 / p99 / max ms",
        format!(
            "{:.1} / {:.1} / {:.1}",
            q(warm, 0.5),
            q(warm, 0.99),
            max(warm)
        ),
        format!(
            "{:.1} / {:.1} / {:.1}",
            q(main, 0.5),
            q(main, 0.99),
            max(main)
        ),
    );
    row(
        "slowest close of a half-closed session / half-open handshake, ms",
        format!("{} / {}", warm.half_close_ms, warm.half_open_hs_ms),
        format!("{} / {}", main.half_close_ms, main.half_open_hs_ms),
    );
    row(
        "MiB relayed to the held viewers",
        format!("{:.0}", warm.received_mib),
        format!("{:.0}", main.received_mib),
    );
    row(
        "longest slowloris connection, ms",
        warm.loris_ms.to_string(),
        main.loris_ms.to_string(),
    );
    row(
        "daemon fds cold / peak / idle after",
        format!("{} / {} / {}", cold.0, warm.peak_fds, warm.idle.0),
        format!("— / {} / {}", main.peak_fds, main.idle.0),
    );
    row(
        "daemon RSS cold / peak / idle after",
        format!(
            "{} / {} / {}",
            mib(cold.1),
            mib(warm.peak_rss),
            mib(warm.idle.1)
        ),
        format!("— / {} / {}", mib(main.peak_rss), mib(main.idle.1)),
    );
    row(
        "entry ports listening, peak / at the end",
        format!("{} / {}", warm.peak_ports, left_ports(warm)),
        format!("{} / {}", main.peak_ports, left_ports(main)),
    );
    row(
        "wind-down to idle, s",
        format!("{:.1}", warm.wind_down_secs),
        format!("{:.1}", main.wind_down_secs),
    );
    let left = |p: &Phase| {
        if p.leftovers.is_empty() {
            "0 sessions, 0 tickets, 0 ports".to_string()
        } else {
            p.leftovers.join("; ")
        }
    };
    row("left at the end", left(warm), left(main));
    println!(
        "\nStart → end: descriptors {} → {}, RSS {} → {} KiB.\n",
        warm.idle.0, main.idle.0, warm.idle.1, main.idle.1
    );
    println!("| event | warm-up | soak |");
    println!("|---|---:|---:|");
    let mut names: Vec<&String> = warm.tally.keys().chain(main.tally.keys()).collect();
    names.sort();
    names.dedup();
    for n in names {
        let g = |p: &Phase| p.tally.get(n).copied().unwrap_or(0);
        println!("| {n} | {} | {} |", g(warm), g(main));
    }
    for (name, p) in [("warm-up", warm), ("soak", main)] {
        let mut slow = p.slow_probes.clone();
        slow.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!(
            "\n{name}: {} probes over {} ms{}",
            slow.len(),
            PROBE_SLOW.as_millis(),
            if slow.is_empty() {
                "."
            } else {
                "; the slowest (time from the phase's start; each step's ms):"
            }
        );
        for (_, what) in slow.iter().take(5) {
            println!("- {what}");
        }
    }
    let warns = alarms.iter().filter(|l| !l.contains("panicked")).count();
    println!(
        "\nvncap logged {lines} lines, {warns} at warn or error{}",
        if warns > 0 { "; the first:" } else { "." }
    );
    for l in alarms.iter().take(5) {
        println!("    {l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keeper's frame reader answers a ping however the server's frames
    /// are split across reads, and skips data frames of every length form.
    #[test]
    fn pings_are_answered_across_any_split() {
        let mut stream = vec![0x82, 126, 0x01, 0x00];
        stream.extend(std::iter::repeat_n(7u8, 256));
        stream.extend_from_slice(&[0x89, 3, b'a', b'b', b'c']);
        stream.extend_from_slice(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2]);
        stream.extend_from_slice(&[0x89, 0]);
        let want = [ws_frame(0xA, b"abc"), ws_frame(0xA, b"")].concat();
        for split in 1..stream.len() {
            let (mut ws, mut out) = (WsIn::default(), Vec::new());
            for chunk in stream.chunks(split) {
                ws.feed(chunk, &mut out);
            }
            assert_eq!(out, want, "split every {split} bytes");
        }
    }
}
