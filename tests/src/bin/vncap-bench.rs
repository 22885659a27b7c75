//! `vncap-bench`: the benchmark harness. It measures, for each relay under
//! test, in one run on one machine: bulk throughput both ways (and the
//! relay's CPU per GiB moved), small-message round trips, session setups per
//! second, and the relay's memory idle and with N idle sessions; optionally
//! how many sessions one vncap holds (`--hold`). It prints markdown tables
//! (medians, spreads, ratios against a tuned `socat` relay) on stdout.
//! `bench/run.sh` builds it and runs it; `bench/RESULTS.md` holds a run.
//!
//! The relays: `direct` (the viewer on the backend: the ceiling of this
//! harness on this machine), `socat` tuned as a careful operator runs it
//! (`-b 262144`, `backlog=1024`), `websockify` (the program named by
//! `--websockify`; `bench/run.sh` installs 0.13 with numpy from PyPI), and
//! vncap's plain RFB, WebSocket and wss entry points (a fresh ticket from
//! the control channel and a VNC authentication login per connection; for
//! wss, vncap serves a self-signed certificate made at start and the viewer
//! is rustls trusting exactly it). The TLS anchors, as users deploy TLS
//! consoles: `nginx-websockify` (Debian's nginx, one worker, terminating
//! TLS as an `http` proxy passing the Upgrade, in front of websockify) and
//! `stunnel-socat` (Debian's stunnel4 in front of tuned socat), serving the
//! same kind of certificate.
//!
//! `--console` is the console-shaped load (issue 18): N sessions receive
//! framebuffer-sized bursts at a human rate while a probe session measures
//! keystroke echoes, open loop.
//!
//! The harness must not be the bottleneck, so both of its peers are its own
//! and do no per-byte work: the fake RFB backend ([`Backend`]: RFB 3.8,
//! security None, then bulk, sink, echo or idle) writes one prepared 1 MiB
//! block over and over and counts what it reads; the viewer reads and writes
//! 1 MiB at a time, over TCP or over a minimal WebSocket client ([`Ws`]:
//! binary frames, masked as a browser masks them) so no WebSocket library's
//! copying is measured. The RFB handshake on the viewer side is
//! [`vncap_tests::viewer::Viewer`]. Correctness of what is relayed is the
//! tests' business (`smol-daemon/tests/e2e.rs` checks checksums); here only
//! the byte counts are checked.
//!
//! It is not a test: it asserts nothing about speed, and it is never run by
//! `cargo test` (`tests/run.sh` runs `bench/run.sh --smoke` so it cannot rot).
//! Everything runs on 127.0.0.1; every process it starts is killed when it
//! ends; every loop is bounded.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use argh::FromArgs;
use vncap_tests::procfs::{
    fd_counts, open_file_limit, proc_kb, quantile, raise_fd_limit, sorted, stat_fields, tree, Proc,
};
use vncap_tests::viewer::{Viewer, ViewerConfig};

/// Benchmarks vncap against a direct connection, socat and websockify.
#[derive(FromArgs)]
struct Args {
    /// the vncap binary (default: `vncap` beside this program)
    #[argh(option)]
    vncap: Option<PathBuf>,
    /// the websockify program (default `websockify` on PATH)
    #[argh(option, default = "String::from(\"websockify\")")]
    websockify: String,
    /// repetitions of each bulk transfer (default 5)
    #[argh(option, default = "5")]
    reps: usize,
    /// mebibytes per bulk transfer (default 1024)
    #[argh(option, default = "1024")]
    mib: u64,
    /// round trips of 8 bytes (default 10000)
    #[argh(option, default = "10000")]
    pings: usize,
    /// session setups per relay for the setup rate (default 2000)
    #[argh(option, default = "2000")]
    setups: usize,
    /// concurrent viewers for setups and for opening idle sessions (default 16)
    #[argh(option, default = "16")]
    concurrency: usize,
    /// idle session counts for the memory figures, comma separated
    /// (default 100,1000)
    #[argh(option, default = "String::from(\"100,1000\")")]
    sessions: String,
    /// then open this many WebSocket sessions through one vncap and report
    /// its memory (0: skip; default 0)
    #[argh(option, default = "0")]
    hold: usize,
    /// first port of vncap's entry-port pools (default 20100; below the
    /// ephemeral range, and free for the largest session count + 64)
    #[argh(option, default = "20100")]
    port_base: u16,
    /// relays to run, comma separated (default: direct,socat,websockify,
    /// vncap,vncap-ws,vncap-wss,nginx-websockify,stunnel-socat)
    #[argh(
        option,
        default = "String::from(\"direct,socat,websockify,vncap,vncap-ws,vncap-wss,nginx-websockify,stunnel-socat\")"
    )]
    relays: String,
    /// streaming console counts for the keystroke-latency load, comma
    /// separated (default 100,1000; each capped by the open-file limit). The
    /// harness spends two threads a console: 10,000 overloads a small
    /// machine (see bench/RESULTS.md)
    #[argh(option, default = "String::from(\"100,1000\")")]
    console: String,
    /// seconds the keystroke probe runs under each console load (default 10)
    #[argh(option, default = "10")]
    console_secs: u64,
    /// measurements to make, comma separated (default
    /// bulk,rtt,setups,memory,console)
    #[argh(option, default = "String::from(\"bulk,rtt,setups,memory,console\")")]
    phases: String,
}

/// Longest any single step may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// The viewer's and the backend's read and write size.
const CHUNK: usize = 1 << 20;
/// The ticket password vncap's viewers present.
const PASSWORD: &str = "benchpw1";
/// Round-trip message size.
const PING: usize = 8;
/// websockify forks a Python per connection and fails past ~508 sessions.
const WEBSOCKIFY_MAX_SESSIONS: usize = 500;
const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

type Res<T> = Result<T, String>;

fn main() {
    let args: Args = argh::from_env();
    raise_fd_limit();
    if let Err(e) = run(&args) {
        eprintln!("vncap-bench: {e}");
        std::process::exit(1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Direct,
    Socat,
    Websockify,
    Vncap,
    VncapWs,
    /// WebSocket over TLS (wss), a self-signed certificate made at start.
    VncapWss,
    /// The wss anchor: nginx terminating TLS (`http` proxy with Upgrade) in
    /// front of websockify.
    NginxWebsockify,
    /// The TLS anchor for native viewers: stunnel in front of tuned socat.
    StunnelSocat,
}

impl Kind {
    fn parse(s: &str) -> Res<Kind> {
        Ok(match s {
            "direct" => Kind::Direct,
            "socat" => Kind::Socat,
            "websockify" => Kind::Websockify,
            "vncap" => Kind::Vncap,
            "vncap-ws" => Kind::VncapWs,
            "vncap-wss" => Kind::VncapWss,
            "nginx-websockify" => Kind::NginxWebsockify,
            "stunnel-socat" => Kind::StunnelSocat,
            other => return Err(format!("unknown relay {other:?}")),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct (no relay)",
            Kind::Socat => "socat -b262144",
            Kind::Websockify => "websockify",
            Kind::Vncap => "vncap RFB",
            Kind::VncapWs => "vncap WebSocket",
            Kind::VncapWss => "vncap wss (TLS)",
            Kind::NginxWebsockify => "nginx TLS + websockify",
            Kind::StunnelSocat => "stunnel + socat (TLS)",
        }
    }

    fn ws(self) -> bool {
        matches!(
            self,
            Kind::Websockify | Kind::VncapWs | Kind::VncapWss | Kind::NginxWebsockify
        )
    }

    /// Whether websockify carries its sessions (it fails past ~508).
    fn websockify(self) -> bool {
        matches!(self, Kind::Websockify | Kind::NginxWebsockify)
    }
}

// ---------------------------------------------------------------- backend

/// What the fake backend does after ServerInit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Sends `len` bytes, then reads until EOF.
    Bulk(u64),
    /// Reads and counts until EOF.
    Sink,
    /// Sends back what it reads until EOF.
    Echo,
    /// Keeps the connection open, doing nothing (no thread).
    Idle,
    /// A console ([`console_session`]): the viewer's first byte picks a
    /// streaming screen or an echoing keyboard.
    Console,
}

#[derive(Default)]
struct Counts {
    sessions: usize,
    received: u64,
    ended: usize,
}

struct Shared {
    counts: Mutex<Counts>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut c) = self.counts.lock() {
            f(&mut c);
        }
        self.changed.notify_all();
    }

    /// Waits until `ok` holds of the counts, at most [`PATIENCE`].
    fn wait(&self, ok: impl Fn(&Counts) -> bool) -> bool {
        let until = Instant::now() + PATIENCE;
        let Ok(mut c) = self.counts.lock() else {
            return false;
        };
        while !ok(&c) {
            let now = Instant::now();
            if now >= until {
                return false;
            }
            match self.changed.wait_timeout(c, until - now) {
                Ok((g, _)) => c = g,
                Err(_) => return false,
            }
        }
        true
    }
}

/// The fake RFB backend: RFB 3.8 with security None, then [`Mode`]. Each
/// connection gets a thread (small stack) for its handshake and, but for idle
/// sessions (kept open by the backend, no thread), for its whole session.
struct Backend {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Backend {
    fn spawn(mode: Mode) -> Res<Backend> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("backend: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("bench-backend".into())
            .spawn(move || {
                let block = Arc::new(pattern_block());
                let idle = Arc::new(Mutex::new(Vec::new()));
                for stream in listener.incoming() {
                    if s.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (s, block, idle) = (s.clone(), block.clone(), idle.clone());
                    let _ = std::thread::Builder::new()
                        .stack_size(256 * 1024)
                        .spawn(move || {
                            let mut stream = stream;
                            if vncap_tests::backend::quick_handshake(&mut stream, PATIENCE).is_err()
                            {
                                return;
                            }
                            s.update(|c| c.sessions += 1);
                            if mode == Mode::Idle {
                                if let Ok(mut idle) = idle.lock() {
                                    idle.push(stream);
                                }
                                return;
                            }
                            backend_session(stream, mode, &s, &block);
                        });
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Backend {
            addr,
            shared,
            accept: Some(accept),
        })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// 1 MiB of bytes that are not all alike.
fn pattern_block() -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..CHUNK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn backend_session(mut s: TcpStream, mode: Mode, shared: &Shared, block: &[u8]) {
    if mode == Mode::Console {
        console_session(s, shared, block);
        shared.update(|c| c.ended += 1);
        return;
    }
    let mut buf = vec![0u8; if mode == Mode::Echo { 64 * 1024 } else { CHUNK }];
    if let Mode::Bulk(len) = mode {
        let mut sent = 0u64;
        while sent < len {
            let n = (len - sent).min(block.len() as u64) as usize;
            if s.write_all(&block[..n]).is_err() {
                break;
            }
            sent += n as u64;
        }
    }
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) if mode == Mode::Echo => {
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Ok(n) => shared.update(|c| c.received += n as u64),
        }
    }
    shared.update(|c| c.ended += 1);
}

/// The first byte a streaming console's viewer sends (a probe's first
/// byte is [`PROBE`]).
const STREAM: u8 = b'S';
/// The first byte of every keystroke probe message.
const PROBE: u8 = b'P';
/// A streaming console's framebuffer update, bytes.
const BURST: usize = 64 * 1024;
/// Mean time between a streaming console's bursts, ms (±20 % jitter).
const BURST_MS: u64 = 100;

/// [`Mode::Console`]: the viewer's first message picks the session's part.
/// [`STREAM`] asks for a screen that changes at a human rate: [`BURST`]
/// bytes every [`BURST_MS`] ±20 %, the first after a random part of a
/// period, until the run stops (then the backend closes, which ends the
/// viewer's session through the relay). Anything else is a keyboard: every
/// byte read is echoed.
fn console_session(mut s: TcpStream, shared: &Shared, block: &[u8]) {
    let mut buf = vec![0u8; 4096];
    let n = match s.read(&mut buf) {
        Ok(0) | Err(_) => return,
        Ok(n) => n,
    };
    if buf[0] != STREAM {
        let mut n = n;
        while s.write_all(&buf[..n]).is_ok() {
            n = match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
        }
        return;
    }
    let port = s.peer_addr().map(|a| a.port()).unwrap_or(1);
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(port) << 17;
    let mut next = |range: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % range
    };
    let mut wait = next(BURST_MS);
    while !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(wait));
        if s.write_all(&block[..BURST]).is_err() {
            break;
        }
        wait = BURST_MS * 8 / 10 + next(BURST_MS * 4 / 10 + 1);
    }
    let _ = s.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------- viewer streams

/// What the viewer's byte stream must also do: end its sending half.
trait Conn: Read + Write + Send {
    fn finish_send(&mut self) -> io::Result<()>;
    /// The TCP socket underneath (for read timeouts).
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn finish_send(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn finish_send(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush()?;
        self.sock.shutdown(Shutdown::Write)
    }
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A byte stream with a TCP socket underneath.
trait OverTcp {
    fn tcp(&self) -> &TcpStream;
}

impl OverTcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl OverTcp for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// A minimal WebSocket client (RFC 6455, client role): one upgrade request
/// offering `binary`, then every write is one masked binary frame and reads
/// return frame payloads (reading large payloads straight into the caller's
/// buffer). Enough for the benchmark; the tests use tungstenite.
struct Ws<S> {
    tcp: S,
    /// Bytes read but not yet consumed, `rbuf[rpos..rend]`.
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// Payload bytes left in the current data frame.
    left: u64,
    closed: bool,
    wbuf: Vec<u8>,
    key: u64,
}

impl<S: Read + Write> Ws<S> {
    fn handshake(mut tcp: S, port: u16) -> io::Result<Ws<S>> {
        let req = format!(
            "GET /websockify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n"
        );
        tcp.write_all(req.as_bytes())?;
        let mut ws = Ws {
            tcp,
            rbuf: vec![0; 64 * 1024],
            rpos: 0,
            rend: 0,
            left: 0,
            closed: false,
            wbuf: Vec::new(),
            key: 0x2545_F491_4F6C_DD1D ^ u64::from(port),
        };
        loop {
            if let Some(i) = ws.rbuf[..ws.rend].windows(4).position(|w| w == b"\r\n\r\n") {
                if !ws.rbuf.starts_with(b"HTTP/1.1 101") {
                    return Err(io::Error::other(format!(
                        "upgrade refused: {}",
                        String::from_utf8_lossy(&ws.rbuf[..i])
                    )));
                }
                ws.rpos = i + 4;
                return Ok(ws);
            }
            if ws.rend == ws.rbuf.len() {
                return Err(io::Error::other("upgrade answer too long"));
            }
            let n = ws.tcp.read(&mut ws.rbuf[ws.rend..])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            ws.rend += n;
        }
    }

    /// Makes at least `n` unconsumed bytes available in `rbuf`.
    fn need(&mut self, n: usize) -> io::Result<()> {
        if self.rend - self.rpos >= n {
            return Ok(());
        }
        self.rbuf.copy_within(self.rpos..self.rend, 0);
        self.rend -= self.rpos;
        self.rpos = 0;
        while self.rend < n {
            let got = self.tcp.read(&mut self.rbuf[self.rend..])?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.rend += got;
        }
        Ok(())
    }

    /// Reads frame headers until a data frame with payload starts (or Close).
    fn next_frame(&mut self) -> io::Result<()> {
        while self.left == 0 && !self.closed {
            self.need(2)?;
            let (b0, b1) = (self.rbuf[self.rpos], self.rbuf[self.rpos + 1]);
            let (mut len, mut hdr) = (u64::from(b1 & 0x7f), 2);
            if len == 126 {
                self.need(4)?;
                len = u64::from(u16::from_be_bytes([
                    self.rbuf[self.rpos + 2],
                    self.rbuf[self.rpos + 3],
                ]));
                hdr = 4;
            } else if len == 127 {
                self.need(10)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.rbuf[self.rpos + 2..self.rpos + 10]);
                len = u64::from_be_bytes(b);
                hdr = 10;
            }
            if b1 & 0x80 != 0 {
                return Err(io::Error::other("masked frame from the server"));
            }
            self.rpos += hdr;
            match b0 & 0x0f {
                0 | 2 => self.left = len,
                8 => self.closed = true,
                9 | 10 => {
                    // Ping/pong: skip the payload (a ping goes unanswered).
                    let len = usize::try_from(len).map_err(io::Error::other)?;
                    self.need(len)?;
                    self.rpos += len;
                }
                op => return Err(io::Error::other(format!("unexpected opcode {op}"))),
            }
        }
        Ok(())
    }
}

impl<S: Read + Write> Read for Ws<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.next_frame()?;
        if self.closed {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = if self.rpos < self.rend {
            let n = want.min(self.rend - self.rpos);
            buf[..n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
            self.rpos += n;
            n
        } else {
            let n = self.tcp.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

impl<S: Read + Write> Write for Ws<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(0x82, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: Read + Write> Ws<S> {
    /// Sends one frame with FIN and `opcode`, masked with a fresh key.
    fn send(&mut self, b0: u8, payload: &[u8]) -> io::Result<()> {
        self.key ^= self.key << 13;
        self.key ^= self.key >> 7;
        self.key ^= self.key << 17;
        let key = (self.key as u32).to_ne_bytes();
        let w = &mut self.wbuf;
        w.clear();
        w.push(b0);
        let len = payload.len();
        if len < 126 {
            w.push(0x80 | len as u8);
        } else if len <= 0xffff {
            w.push(0x80 | 126);
            w.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            w.push(0x80 | 127);
            w.extend_from_slice(&(len as u64).to_be_bytes());
        }
        w.extend_from_slice(&key);
        let start = w.len();
        w.extend_from_slice(payload);
        // Eight bytes at a time: the masking must not slow the viewer down.
        let key8 = u64::from_ne_bytes([
            key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
        ]);
        let mut words = w[start..].chunks_exact_mut(8);
        for c in &mut words {
            let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ key8;
            c.copy_from_slice(&v.to_ne_bytes());
        }
        for (i, b) in words.into_remainder().iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
        self.tcp.write_all(&self.wbuf)
    }
}

impl<S: Read + Write + Send + OverTcp> Conn for Ws<S> {
    fn finish_send(&mut self) -> io::Result<()> {
        self.send(0x88, &1000u16.to_be_bytes())
    }
    fn tcp(&self) -> &TcpStream {
        self.tcp.tcp()
    }
}

/// Summed (RSS, PSS) in KiB of `root` and its descendants (a forking relay
/// is all of them; RSS counts shared pages once per process, PSS divides them).
fn tree_memory(root: u32) -> (u64, u64) {
    tree(root).iter().fold((0, 0), |(rss, pss), pid| {
        (
            rss + proc_kb(&format!("/proc/{pid}/status"), "VmRSS:"),
            pss + proc_kb(&format!("/proc/{pid}/smaps_rollup"), "Pss:"),
        )
    })
}

/// CPU ticks (user + system) used by `root`, its live descendants and the
/// children it has reaped.
fn tree_cpu_ticks(root: u32) -> u64 {
    let mut ticks = 0;
    for pid in tree(root) {
        if let Some(f) = stat_fields(pid) {
            // After the name: state=0 ppid=1 … utime=11 stime=12 cutime=13 cstime=14.
            ticks += f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0);
            if pid == root {
                ticks += f.get(13).unwrap_or(&0) + f.get(14).unwrap_or(&0);
            }
        }
    }
    ticks
}

/// CPU time in ns of `root` and its live descendants, every thread
/// (`/proc/PID/task/TID/schedstat`): exact where the tick counts of
/// /proc/PID/stat round a thousand lightly loaded forked relays to zero.
fn tree_cpu_ns(root: u32) -> u64 {
    tree(root)
        .iter()
        .map(|pid| {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return 0;
            };
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Whether some socket listens on 127.0.0.1:`port` (from /proc/net/tcp, so
/// that asking does not open a connection a forking relay would pass on).
fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|s| {
            s.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1] == want && f[3] == "0A"
            })
        })
        .unwrap_or(false)
}

fn wait_listening(port: u16, proc: &mut Proc, what: &str) -> Res<()> {
    let until = Instant::now() + PATIENCE;
    while !listening(port) {
        if let Ok(Some(status)) = proc.child.try_wait() {
            return Err(format!("{what} exited ({status}) before listening"));
        }
        if Instant::now() > until {
            return Err(format!(
                "{what} not listening on {port} within {PATIENCE:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A port free right now on 127.0.0.1 (the OS picks it).
fn free_port() -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// Starts `program`; its stderr is kept only if `quiet` is false
/// (websockify logs every connection there).
fn spawn(program: &str, args: &[String], what: &str, quiet: bool) -> Res<Proc> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if quiet {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .map_err(|e| format!("start {what} ({program}): {e}"))?;
    Ok(Proc { child })
}

// ---------------------------------------------------------------- relays

/// A relay running in front of one backend.
struct Relay {
    kind: Kind,
    backend: SocketAddr,
    proc: Option<Proc>,
    /// Where viewers connect (socat, websockify).
    port: u16,
    /// vncap's control channel.
    control: Option<SocketAddr>,
    /// The certificate a wss vncap serves, and a client trusting it.
    tls: Option<Tls>,
    /// A second process of the relay (websockify behind nginx, socat
    /// behind stunnel), counted with the first for CPU and memory.
    inner: Option<Proc>,
}

/// A self-signed certificate for `localhost` in a temporary directory
/// (removed on drop) and a rustls client configuration trusting only it.
struct Tls {
    dir: PathBuf,
    config: Arc<rustls::ClientConfig>,
}

impl Tls {
    fn new() -> Res<Tls> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("vncap-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .map_err(|e| format!("certificate: {e}"))?;
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem())
            .map_err(|e| e.to_string())?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(made.cert.der().clone())
            .map_err(|e| format!("certificate: {e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls {
            dir,
            config: Arc::new(config),
        })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Relay {
    /// Starts `kind` in front of `backend`; `slot` picks a private range of
    /// `width` entry ports for a vncap (several run side by side).
    fn start(
        kind: Kind,
        backend: SocketAddr,
        args: &Args,
        slot: usize,
        width: usize,
    ) -> Res<Relay> {
        let mut relay = Relay {
            kind,
            backend,
            proc: None,
            port: 0,
            control: None,
            tls: None,
            inner: None,
        };
        match kind {
            Kind::Direct => {}
            Kind::Socat => {
                let port = free_port()?;
                let socat_args = [
                    "-b".to_string(),
                    "262144".to_string(),
                    format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=1024"),
                    format!("TCP:{backend}"),
                ];
                let mut p = spawn("socat", &socat_args, "socat", false)?;
                wait_listening(port, &mut p, "socat")?;
                relay.port = port;
                relay.proc = Some(p);
            }
            Kind::NginxWebsockify | Kind::StunnelSocat => relay.start_tls_anchor(args)?,
            Kind::Websockify => {
                let port = free_port()?;
                let mut p = spawn(
                    &args.websockify,
                    &[format!("127.0.0.1:{port}"), backend.to_string()],
                    "websockify",
                    true,
                )?;
                wait_listening(port, &mut p, "websockify")?;
                relay.port = port;
                relay.proc = Some(p);
            }
            Kind::Vncap | Kind::VncapWs | Kind::VncapWss => {
                let control = free_port()?;
                let lo = usize::from(args.port_base) + slot * width;
                let hi = lo + width - 1;
                if hi > usize::from(u16::MAX) {
                    return Err("--port-base too high".into());
                }
                let vncap = vncap_path(args)?;
                let mut tls_args = Vec::new();
                if kind == Kind::VncapWss {
                    let tls = Tls::new()?;
                    tls_args = vec![
                        "--cert".to_string(),
                        tls.path("cert.pem"),
                        "--key".to_string(),
                        tls.path("key.pem"),
                    ];
                    relay.tls = Some(tls);
                }
                let mut p = spawn(
                    &vncap,
                    &[
                        "serve".into(),
                        "--control".into(),
                        format!("127.0.0.1:{control}"),
                        "--listen".into(),
                        "127.0.0.1".into(),
                        "--ports".into(),
                        format!("{lo}-{hi}"),
                        "--max-sessions".into(),
                        (width + 16).to_string(),
                        // One host asking from many threads at once (the
                        // defaults, 64 and 8 per source, are for strangers).
                        "--max-control-connections".into(),
                        "4096".into(),
                        "--max-control-connections-per-ip".into(),
                        "4096".into(),
                        "--log-level".into(),
                        "warn".into(),
                    ]
                    .into_iter()
                    .chain(tls_args)
                    .collect::<Vec<_>>(),
                    "vncap",
                    false,
                )?;
                wait_listening(control, &mut p, "vncap")?;
                relay.control = Some(SocketAddr::from(([127, 0, 0, 1], control)));
                relay.proc = Some(p);
            }
        }
        Ok(relay)
    }

    /// nginx (TLS, `http` proxy passing the Upgrade) in front of websockify,
    /// or stunnel in front of tuned socat; both serve the run's self-signed
    /// certificate.
    fn start_tls_anchor(&mut self, args: &Args) -> Res<()> {
        let backend = self.backend;
        let inner_port = free_port()?;
        let (inner, program) = if self.kind == Kind::NginxWebsockify {
            let p = spawn(
                &args.websockify,
                &[format!("127.0.0.1:{inner_port}"), backend.to_string()],
                "websockify",
                true,
            )?;
            (p, "websockify")
        } else {
            let p = spawn(
                "socat",
                &[
                    "-b".to_string(),
                    "262144".to_string(),
                    format!("TCP-LISTEN:{inner_port},bind=127.0.0.1,reuseaddr,fork,backlog=1024"),
                    format!("TCP:{backend}"),
                ],
                "socat",
                // Killing stunnel first makes every child complain.
                true,
            )?;
            (p, "socat")
        };
        let mut inner = inner;
        wait_listening(inner_port, &mut inner, program)?;
        self.inner = Some(inner);
        let tls = Tls::new()?;
        let port = free_port()?;
        let dir = PathBuf::from(tls.path("conf"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let (cert, key) = (tls.path("cert.pem"), tls.path("key.pem"));
        let d = dir.to_string_lossy().into_owned();
        let (program, argv) = if self.kind == Kind::NginxWebsockify {
            // One worker, like vncap's one thread (users run `auto`: one per core).
            let conf = format!(
                "daemon off;\nmaster_process on;\nworker_processes 1;\nworker_rlimit_nofile 65536;\n\
                 pid {d}/nginx.pid;\nerror_log {d}/error.log error;\n\
                 events {{ worker_connections 30000; }}\n\
                 http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
                 fastcgi_temp_path {d}/fastcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
                 server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {cert};\n  ssl_certificate_key {key};\n\
                 location / {{\n   proxy_pass http://127.0.0.1:{inner_port};\n   proxy_http_version 1.1;\n\
                 proxy_set_header Upgrade $http_upgrade;\n   proxy_set_header Connection \"upgrade\";\n\
                 proxy_buffering off;\n   proxy_read_timeout 3600s;\n   proxy_send_timeout 3600s;\n  }}\n }}\n}}\n"
            );
            std::fs::write(dir.join("nginx.conf"), conf).map_err(|e| e.to_string())?;
            (
                "nginx",
                vec![
                    "-p".to_string(),
                    d.clone(),
                    "-c".to_string(),
                    format!("{d}/nginx.conf"),
                ],
            )
        } else {
            let conf = format!(
                "foreground = yes\npid =\ndebug = 3\n[vnc]\naccept = 127.0.0.1:{port}\n\
                 connect = 127.0.0.1:{inner_port}\ncert = {cert}\nkey = {key}\n"
            );
            std::fs::write(dir.join("stunnel.conf"), conf).map_err(|e| e.to_string())?;
            ("stunnel4", vec![format!("{d}/stunnel.conf")])
        };
        let mut p = spawn(program, &argv, program, true)?;
        wait_listening(port, &mut p, program)?;
        self.proc = Some(p);
        self.port = port;
        self.tls = Some(tls);
        Ok(())
    }

    /// Asks vncap for a ticket to the backend (twisted-vncauthproxy's
    /// dialect, one connection per request, as Ganeti Web Manager does);
    /// returns the entry port.
    fn ticket(&self, control: SocketAddr) -> Res<u16> {
        let mut s = TcpStream::connect(control).map_err(|e| format!("control: {e}"))?;
        s.set_read_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        let line = format!(
            "{{\"daddr\": \"{}\", \"dport\": {}, \"password\": \"{PASSWORD}\", \"ws\": {}, \"tls\": {}}}\r\n",
            self.backend.ip(),
            self.backend.port(),
            self.kind.ws(),
            self.tls.is_some(),
        );
        s.write_all(line.as_bytes())
            .map_err(|e| format!("control: {e}"))?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .map_err(|e| format!("control: {e}"))?;
        reply
            .trim_end()
            .parse()
            .map_err(|_| format!("vncap refused a ticket: {reply:?}"))
    }

    /// A viewer logged in through the relay (RFB handshake done, ServerInit read).
    fn connect(&self) -> Res<Box<dyn Conn>> {
        let (port, config) = match self.kind {
            Kind::Direct => (self.backend.port(), ViewerConfig::none()),
            Kind::Socat | Kind::Websockify | Kind::NginxWebsockify | Kind::StunnelSocat => {
                (self.port, ViewerConfig::none())
            }
            Kind::Vncap | Kind::VncapWs | Kind::VncapWss => {
                let control = self.control.ok_or("vncap without control")?;
                (self.ticket(control)?, ViewerConfig::password(PASSWORD))
            }
        };
        let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        let stream: Box<dyn Conn> = if let Some(tls) = &self.tls {
            let name =
                rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
            let conn = rustls::ClientConnection::new(tls.config.clone(), name)
                .map_err(|e| format!("tls: {e}"))?;
            let tls = rustls::StreamOwned::new(conn, tcp);
            if self.kind.ws() {
                Box::new(Ws::handshake(tls, port).map_err(|e| format!("wss: {e}"))?)
            } else {
                Box::new(tls)
            }
        } else if self.kind.ws() {
            Box::new(Ws::handshake(tcp, port).map_err(|e| format!("ws: {e}"))?)
        } else {
            Box::new(tcp)
        };
        let viewer = Viewer::handshake(stream, &config)
            .map_err(|e| format!("{}: RFB handshake: {e}", self.kind.name()))?;
        Ok(viewer.into_inner())
    }

    fn cpu_ticks(&self) -> Option<u64> {
        let inner = self.inner.as_ref().map_or(0, |p| tree_cpu_ticks(p.pid()));
        self.proc.as_ref().map(|p| tree_cpu_ticks(p.pid()) + inner)
    }

    /// CPU ns of the relay's live processes and threads ([`tree_cpu_ns`]).
    fn cpu_ns(&self) -> Option<u64> {
        let inner = self.inner.as_ref().map_or(0, |p| tree_cpu_ns(p.pid()));
        self.proc.as_ref().map(|p| tree_cpu_ns(p.pid()) + inner)
    }

    /// (RSS, PSS) KiB of the relay's process trees.
    fn memory(&self) -> (u64, u64) {
        let (a, b) = self.proc.as_ref().map_or((0, 0), |p| tree_memory(p.pid()));
        let (c, d) = self.inner.as_ref().map_or((0, 0), |p| tree_memory(p.pid()));
        (a + c, b + d)
    }

    fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }
}

fn vncap_path(args: &Args) -> Res<String> {
    let p = match &args.vncap {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("vncap"),
    };
    Ok(p.to_string_lossy().into_owned())
}

/// Every relay in front of one backend.
fn start_all(kinds: &[Kind], b: &Backend, args: &Args, width: usize) -> Res<Vec<Relay>> {
    kinds
        .iter()
        .enumerate()
        .map(|(slot, &k)| Relay::start(k, b.addr, args, slot, width))
        .collect()
}

/// Opens `n` sessions through `relay`, `concurrency` at a time; returns them
/// and the time each took.
/// Open sessions and the seconds each took to open.
type Opened = (Vec<Box<dyn Conn>>, Vec<f64>);

fn open_many(relay: &Relay, n: usize, concurrency: usize) -> Res<Opened> {
    let next = AtomicUsize::new(0);
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..concurrency.clamp(1, n.max(1)))
            .map(|_| {
                s.spawn(|| -> Res<Opened> {
                    let (mut conns, mut times) = (Vec::new(), Vec::new());
                    while next.fetch_add(1, Ordering::SeqCst) < n {
                        let t0 = Instant::now();
                        conns.push(relay.connect()?);
                        times.push(t0.elapsed().as_secs_f64());
                    }
                    Ok((conns, times))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("viewer panicked".into())))
            .collect::<Vec<_>>()
    });
    let (mut conns, mut times) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for r in results {
        let (c, t) = r?;
        conns.extend(c);
        times.extend(t);
    }
    Ok((conns, times))
}

// ---------------------------------------------------------------- measurements

#[derive(Debug, Default, Clone)]
struct Results {
    down: Vec<f64>,
    up: Vec<f64>,
    /// CPU seconds per GiB (down, up).
    cpu: Option<(f64, f64)>,
    rtt_us: Vec<f64>,
    setups: Option<Setups>,
    /// Per idle-session count: the memory, or why not measured.
    memory: Vec<(usize, Result<Memory, String>)>,
    /// Per streaming-console count: the load's figures, or why not measured.
    console: Vec<(usize, Result<Console, String>)>,
}

/// What one relay did under one console load.
#[derive(Debug, Clone)]
struct Console {
    /// Each keystroke probe message's echo time, ms, from when it was due
    /// to be sent (open loop: a stall delays every message due during it).
    lat_ms: Vec<f64>,
    /// The relay's CPU seconds per second of load.
    cpu: Option<f64>,
    /// Bytes the streaming viewers received over the bytes offered.
    delivered: f64,
    /// PSS per streaming session, KiB ((PSS under load − PSS idle) / N).
    kib_per_session: f64,
}

/// How many consoles fit the open-file limits: the harness holds a viewer
/// and a backend socket per session, and so does the relay.
fn console_fit(n: usize) -> usize {
    let own = open_file_limit(std::process::id()).unwrap_or(1024);
    n.min(own.saturating_sub(256) / 2)
}

/// `n` streaming consoles through `kind` (each viewer asks for bursts, and
/// a thread drains it) and one keystroke probe: an 8-byte message every
/// millisecond for `--console-secs`, open loop, echoed by the backend.
fn console(kind: Kind, n: usize, args: &Args) -> Res<Console> {
    let name = kind.name();
    let b = Backend::spawn(Mode::Console)?;
    let relay = Relay::start(kind, b.addr, args, 0, n + 64)?;
    let pss_idle = relay.memory().1;
    let (conns, _) = open_many(&relay, n, args.concurrency)?;
    let delivered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut drains = Vec::with_capacity(n);
    for mut conn in conns {
        conn.write_all(&[STREAM])
            .map_err(|e| format!("{name}: console: {e}"))?;
        let delivered = delivered.clone();
        let drain = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = vec![0u8; BURST];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    delivered.fetch_add(n as u64, Ordering::Relaxed);
                }
            })
            .map_err(|e| format!("drain thread: {e}"))?;
        drains.push(drain);
    }
    if !b.shared.wait(|c| c.sessions >= n) {
        return Err(format!("{name}: consoles did not all open"));
    }
    let mut probe = relay.connect()?;
    // One period so every stream has started.
    std::thread::sleep(Duration::from_millis(BURST_MS));
    let cpu0 = relay.cpu_ns();
    let got0 = delivered.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let lat_ms = keystrokes(&mut *probe, args.console_secs * 1000)
        .map_err(|e| format!("{name}: probe under {n} consoles: {e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    let got = delivered.load(Ordering::Relaxed) - got0;
    let cpu = cpu0
        .zip(relay.cpu_ns())
        .map(|(a, b)| b.saturating_sub(a) as f64 / 1e9 / secs);
    let pss = relay.memory().1;
    // The backend closes every console; the relay passes the ends on.
    b.shared.stop.store(true, Ordering::SeqCst);
    drop(probe);
    for d in drains {
        let _ = d.join();
    }
    let offered = n as f64 * BURST as f64 * secs * 1000.0 / BURST_MS as f64;
    Ok(Console {
        lat_ms,
        cpu,
        delivered: got as f64 / offered,
        kib_per_session: (pss as f64 - pss_idle as f64).max(0.0) / n as f64,
    })
}

/// Sends `count` probe messages, one due every millisecond, and returns
/// each echo's time in ms since the message was due. One thread: the socket
/// is non-blocking and `poll(2)` waits for an echo until the next message is
/// due (a socket read timeout would round up to the kernel's tick).
fn keystrokes(conn: &mut dyn Conn, count: u64) -> Res<Vec<f64>> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let period = Duration::from_millis(1);
    let t0 = Instant::now();
    let due = |i: u64| t0 + period * i as u32;
    let end = due(count) + PATIENCE;
    let mut lat = Vec::with_capacity(count as usize);
    let (mut sent, mut acc, mut buf) = (0u64, Vec::new(), [0u8; 4096]);
    conn.tcp()
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let retry = |e: &io::Error| e.kind() == io::ErrorKind::WouldBlock;
    while (lat.len() as u64) < count {
        let now = Instant::now();
        if now > end {
            return Err(format!("{} of {count} echoes came back", lat.len()));
        }
        while sent < count && due(sent) <= now {
            let mut msg = [0u8; PING];
            msg[0] = PROBE;
            msg[1..].copy_from_slice(&sent.to_be_bytes()[1..]);
            // Non-blocking: a full send buffer (the relay not reading)
            // waits here, counted in the latency of what follows.
            let mut left = &msg[..];
            while !left.is_empty() {
                match conn.write(left) {
                    Ok(n) => left = &left[n..],
                    Err(e) if retry(&e) => std::thread::sleep(Duration::from_micros(100)),
                    Err(e) => return Err(e.to_string()),
                }
            }
            sent += 1;
        }
        match conn.read(&mut buf) {
            Ok(0) => return Err("the probe's session ended".into()),
            Ok(n) => {
                let at = Instant::now();
                acc.extend_from_slice(&buf[..n]);
                let whole = acc.len() / PING * PING;
                for m in acc[..whole].chunks_exact(PING) {
                    let mut seq = [0u8; 8];
                    seq[1..].copy_from_slice(&m[1..]);
                    let seq = u64::from_be_bytes(seq);
                    if m[0] != PROBE || seq >= sent {
                        return Err("an echo came back changed".into());
                    }
                    lat.push(at.saturating_duration_since(due(seq)).as_secs_f64() * 1e3);
                }
                acc.drain(..whole);
                continue;
            }
            Err(e) if retry(&e) => {}
            Err(e) => return Err(e.to_string()),
        }
        let until = if sent < count { due(sent) } else { end };
        let wait = until.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: wait.as_secs() as _,
            tv_nsec: wait.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(conn.tcp(), PollFlags::IN)];
        poll(&mut fds, Some(&ts)).map_err(|e| e.to_string())?;
    }
    conn.tcp()
        .set_nonblocking(false)
        .map_err(|e| e.to_string())?;
    Ok(lat)
}

/// Throughput in MiB/s of each repetition, and CPU seconds per GiB, for each
/// relay. The relays take turns within each round, so a burst of load from
/// elsewhere on the machine falls on all of them alike.
fn throughput(kinds: &[Kind], up: bool, args: &Args) -> Res<Vec<(Vec<f64>, Option<f64>)>> {
    let len = args.mib * (1 << 20);
    let b = Backend::spawn(if up { Mode::Sink } else { Mode::Bulk(len) })?;
    let relays = start_all(kinds, &b, args, 64)?;
    let block = pattern_block();
    let mut buf = vec![0u8; CHUNK];
    let mut rates = vec![Vec::new(); relays.len()];
    let cpu0: Vec<Option<u64>> = relays.iter().map(Relay::cpu_ticks).collect();
    let mut sessions = 0;
    for _ in 0..args.reps {
        for (i, relay) in relays.iter().enumerate() {
            sessions += 1;
            let name = relay.kind.name();
            let mut conn = relay.connect()?;
            let received0 = b.shared.counts.lock().map(|c| c.received).unwrap_or(0);
            let t0 = Instant::now();
            if up {
                let mut left = len;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    conn.write_all(&block[..n])
                        .map_err(|e| format!("{name}: upload: {e}"))?;
                    left -= n as u64;
                }
                if !b.shared.wait(|c| c.received >= received0 + len) {
                    return Err(format!("{name}: upload not received"));
                }
                let dt = t0.elapsed();
                rates[i].push(len as f64 / MIB / dt.as_secs_f64());
                conn.finish_send().map_err(|e| e.to_string())?;
            } else {
                let mut got = 0u64;
                while got < len {
                    let want = (len - got).min(CHUNK as u64) as usize;
                    let n = conn
                        .read(&mut buf[..want])
                        .map_err(|e| format!("{name}: download: {e}"))?;
                    if n == 0 {
                        return Err(format!("{name}: EOF after {got} of {len}"));
                    }
                    got += n as u64;
                }
                rates[i].push(len as f64 / MIB / t0.elapsed().as_secs_f64());
            }
            drop(conn);
            if !b.shared.wait(|c| c.ended >= sessions) {
                return Err(format!("{name}: backend session did not end"));
            }
        }
    }
    let gib = (len as f64 * args.reps as f64) / GIB;
    let hz = clock_ticks_per_second();
    Ok(relays
        .iter()
        .zip(cpu0)
        .zip(rates)
        .map(|((relay, c0), r)| {
            let cpu = c0
                .zip(relay.cpu_ticks())
                .map(|(a, b)| b.saturating_sub(a) as f64 / hz / gib);
            (r, cpu)
        })
        .collect())
}

/// Round-trip times in µs of 8-byte messages through an echoing backend,
/// for each relay, one session each, taking turns in rounds of 500.
fn round_trips(kinds: &[Kind], args: &Args) -> Res<Vec<Vec<f64>>> {
    let b = Backend::spawn(Mode::Echo)?;
    let relays = start_all(kinds, &b, args, 64)?;
    let mut conns = relays.iter().map(Relay::connect).collect::<Res<Vec<_>>>()?;
    let mut rtts = vec![Vec::with_capacity(args.pings); relays.len()];
    let warmup = (args.pings / 10).min(1000);
    let total = warmup + args.pings;
    let mut done = 0;
    while done < total {
        let round = (total - done).min(500);
        for (i, conn) in conns.iter_mut().enumerate() {
            let name = relays[i].kind.name();
            for j in done..done + round {
                let ping = [(j % 251) as u8; PING];
                let t0 = Instant::now();
                conn.write_all(&ping).map_err(|e| e.to_string())?;
                let mut pong = [0u8; PING];
                conn.read_exact(&mut pong)
                    .map_err(|e| format!("{name}: echo: {e}"))?;
                let dt = t0.elapsed();
                if pong != ping {
                    return Err(format!("{name}: echo came back changed"));
                }
                if j >= warmup {
                    rtts[i].push(dt.as_secs_f64() * 1e6);
                }
            }
        }
        done += round;
    }
    Ok(rtts)
}

/// Session setups per second at `--concurrency`, each a fresh connection
/// through the whole handshake (for vncap: control request, connect,
/// WebSocket upgrade, VNC authentication, backend login), closed at once.
fn setup_rate(kind: Kind, args: &Args) -> Res<Setups> {
    let b = Backend::spawn(Mode::Echo)?;
    let relay = Relay::start(kind, b.addr, args, 0, args.concurrency * 4 + 64)?;
    // Bounded batches so closed sessions give their tickets and ports back.
    let batch = args.concurrency * 4;
    let (mut done, mut times) = (0, Vec::with_capacity(args.setups));
    let cpu0 = relay.cpu_ticks();
    let t0 = Instant::now();
    while done < args.setups {
        let n = batch.min(args.setups - done);
        let (conns, t) = open_many(&relay, n, args.concurrency)?;
        drop(conns);
        times.extend(t.iter().map(|s| s * 1e3));
        done += n;
        if !b.shared.wait(|c| c.ended >= done) {
            return Err(format!("{}: sessions did not end", kind.name()));
        }
    }
    let rate = args.setups as f64 / t0.elapsed().as_secs_f64();
    let cpu_us = cpu0.zip(relay.cpu_ticks()).map(|(a, b)| {
        b.saturating_sub(a) as f64 / clock_ticks_per_second() * 1e6 / args.setups as f64
    });
    Ok(Setups {
        rate,
        times,
        cpu_us,
    })
}

/// Setups per second, each setup's latency in ms, and the relay's CPU time
/// per setup in µs.
#[derive(Debug, Clone)]
struct Setups {
    rate: f64,
    times: Vec<f64>,
    cpu_us: Option<f64>,
}

/// A relay's memory, KiB, summed over its process tree.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss_idle: u64,
    pss_idle: u64,
    rss: u64,
    pss: u64,
    /// The relay process's open descriptors and how many are pipes.
    fds: (usize, usize),
}

/// The relay's memory idle and with `n` idle sessions (established, logged
/// in, no traffic).
fn memory(kind: Kind, n: usize, args: &Args) -> Res<Memory> {
    let b = Backend::spawn(Mode::Idle)?;
    let relay = Relay::start(kind, b.addr, args, 0, n + 64)?;
    let pid = relay.pid().ok_or("no relay process")?;
    let (rss_idle, pss_idle) = relay.memory();
    let (conns, _) = open_many(&relay, n, args.concurrency)?;
    if !b.shared.wait(|c| c.sessions >= n) {
        return Err(format!("{}: sessions did not all open", kind.name()));
    }
    let (rss, pss) = relay.memory();
    let fds = fd_counts(pid);
    drop(conns);
    Ok(Memory {
        rss_idle,
        pss_idle,
        rss,
        pss,
        fds,
    })
}

/// `--phases`, checked.
fn phases(args: &Args) -> Res<Vec<String>> {
    args.phases
        .split(',')
        .map(|p| match p.trim() {
            p @ ("bulk" | "rtt" | "setups" | "memory" | "console") => Ok(p.to_string()),
            p => Err(format!("--phases: unknown phase {p:?}")),
        })
        .collect()
}

/// `--console`, each count capped by the open-file limits (said in the report).
fn console_counts(args: &Args) -> Res<Vec<usize>> {
    let mut counts: Vec<usize> = Vec::new();
    for s in args.console.split(',') {
        let n: usize = s
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("--console: bad count {s:?}"))?;
        let n = console_fit(n);
        if !counts.contains(&n) {
            counts.push(n);
        }
    }
    Ok(counts)
}

fn session_counts(args: &Args) -> Res<Vec<usize>> {
    args.sessions
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("--sessions: bad count {s:?}"))
        })
        .collect()
}

/// Every measurement of every relay.
fn measure(kinds: &[Kind], args: &Args) -> Res<Vec<Results>> {
    let mut results = vec![Results::default(); kinds.len()];
    let t0 = Instant::now();
    let took = |what: &str| {
        eprintln!(
            "vncap-bench: {what} done at {:.1} s",
            t0.elapsed().as_secs_f64()
        )
    };
    let phases = phases(args)?;
    let on = |p: &str| phases.iter().any(|q| q == p);
    if on("bulk") {
        for (r, (rates, cpu)) in results.iter_mut().zip(throughput(kinds, false, args)?) {
            r.down = rates;
            r.cpu = cpu.map(|d| (d, f64::NAN));
        }
        took("backend→viewer");
        for (r, (rates, cpu)) in results.iter_mut().zip(throughput(kinds, true, args)?) {
            r.up = rates;
            r.cpu = r.cpu.zip(cpu).map(|((d, _), u)| (d, u));
        }
        took("viewer→backend");
    }
    if on("rtt") {
        for (r, rtts) in results.iter_mut().zip(round_trips(kinds, args)?) {
            r.rtt_us = rtts;
        }
        took("round trips");
    }
    if on("setups") {
        for (r, &kind) in results.iter_mut().zip(kinds) {
            // vncap RFB: a native viewer, silent until the server speaks, on a
            // `"ws": false` ticket. Whatever vncap does before it speaks (a
            // sniff's silence deadline, or nothing once the ticket says the
            // viewer cannot be WebSocket) is in the figure.
            r.setups = Some(setup_rate(kind, args)?);
        }
        took("setups");
    }
    if on("memory") {
        for n in session_counts(args)? {
            for (r, &kind) in results.iter_mut().zip(kinds) {
                if kind == Kind::Direct {
                    continue;
                }
                let m = if kind.websockify() && n > WEBSOCKIFY_MAX_SESSIONS {
                    Err("not run (fails past ~508 sessions)".to_string())
                } else {
                    Ok(memory(kind, n, args)?)
                };
                r.memory.push((n, m));
            }
            took(&format!("memory with {n} sessions"));
        }
    }
    if on("console") {
        for n in console_counts(args)? {
            for (r, &kind) in results.iter_mut().zip(kinds) {
                let c = if kind.websockify() && n > WEBSOCKIFY_MAX_SESSIONS {
                    Err("not run (fails past ~508 sessions)".to_string())
                } else {
                    console(kind, n, args)
                };
                if let Err(e) = &c {
                    eprintln!("vncap-bench: {}: {n} consoles: {e}", kind.name());
                }
                r.console.push((n, c));
            }
            took(&format!("{n} streaming consoles"));
        }
    }
    Ok(results)
}

/// `--hold`: how many WebSocket sessions one vncap holds (opened in batches
/// until one fails or all are open), and its memory then.
fn hold(args: &Args) -> Res<String> {
    let n = args.hold;
    let b = Backend::spawn(Mode::Idle)?;
    let relay = Relay::start(Kind::VncapWs, b.addr, args, 0, n + 64)?;
    let pid = relay.pid().ok_or("no relay process")?;
    let (_, pss_idle) = tree_memory(pid);
    // Two sockets a session, a few more for the daemon itself.
    let limit = open_file_limit(pid);
    let fit = limit.map_or(n, |l| l.saturating_sub(64) / 2);
    let capped = if fit < n {
        format!(
            " Capped at {fit}: vncap's open-file limit is {} here (two sockets a session).",
            limit.unwrap_or(0)
        )
    } else {
        String::new()
    };
    let n = n.min(fit);
    let t0 = Instant::now();
    let mut held = Vec::with_capacity(n);
    let mut failure = None;
    while held.len() < n {
        let batch = (n - held.len()).min(args.concurrency * 16);
        match open_many(&relay, batch, args.concurrency) {
            Ok((conns, _)) => held.extend(conns),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let open_s = t0.elapsed().as_secs_f64();
    let k = held.len();
    if !b.shared.wait(|c| c.sessions >= k) {
        return Err("held sessions did not all reach the backend".into());
    }
    let (rss, pss) = tree_memory(pid);
    let per = (pss as f64 - pss_idle as f64).max(0.0) / k.max(1) as f64;
    let mut out = format!(
        "### Holding sessions\n\nvncap (WebSocket viewers) held {k} of {} idle sessions, opened {} at a time in {open_s:.1} s: RSS {} MiB, PSS {} MiB ({} idle), {per:.1} KiB PSS per session.",
        args.hold,
        args.concurrency,
        mib(rss),
        mib(pss),
        mib(pss_idle),
    );
    if let Some(e) = failure {
        out += &format!(" The next batch failed: {e}.");
    }
    Ok(out + &capped + "\n")
}

// ---------------------------------------------------------------- report

fn median(v: &[f64]) -> f64 {
    let s = sorted(v);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn spread(v: &[f64]) -> String {
    let s = sorted(v);
    match (s.first(), s.last()) {
        (Some(lo), Some(hi)) if s.len() > 1 => format!(" ({lo:.0}–{hi:.0})"),
        _ => String::new(),
    }
}

fn ratio(x: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 && x.is_finite() => format!("{:.2}×", x / b),
        _ => "—".into(),
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn per_session(m: &Memory, n: usize) -> f64 {
    (m.pss as f64 - m.pss_idle as f64).max(0.0) / n as f64
}

fn report(args: &Args, rows: &[(Kind, Results)]) -> Res<()> {
    let socat = rows.iter().find(|(k, _)| *k == Kind::Socat).map(|(_, r)| r);
    let base = |f: &dyn Fn(&Results) -> Option<f64>| socat.and_then(f);
    let phases = phases(args)?;
    let on = |p: &str| phases.iter().any(|q| q == p);
    if on("bulk") {
        throughput_table(args, rows, socat);
    }
    if on("rtt") || on("setups") {
        trips_table(args, rows, socat);
    }
    if on("memory") {
        memory_table(args, rows, socat)?;
    }
    if on("console") {
        console_table(args, rows, socat);
    }
    let _ = base;
    Ok(())
}

fn throughput_table(args: &Args, rows: &[(Kind, Results)], socat: Option<&Results>) {
    let base = |f: &dyn Fn(&Results) -> Option<f64>| socat.and_then(f);
    println!(
        "### Throughput\n\n{} MiB per transfer after an RFB login, median of {} (min–max); CPU is user+system time of the relay's process tree per GiB moved. Ratios are against tuned socat.\n",
        args.mib, args.reps,
    );
    println!("| relay | backend→viewer MiB/s | ×socat | viewer→backend MiB/s | ×socat | CPU s/GiB ↓ | CPU s/GiB ↑ |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (kind, r) in rows {
        let (d, u) = (median(&r.down), median(&r.up));
        let (cd, cu) = r
            .cpu
            .map(|(d, u)| (format!("{d:.2}"), format!("{u:.2}")))
            .unwrap_or(("—".into(), "—".into()));
        println!(
            "| {} | {d:.0}{} | {} | {u:.0}{} | {} | {cd} | {cu} |",
            kind.name(),
            spread(&r.down),
            ratio(d, base(&|s| Some(median(&s.down)))),
            spread(&r.up),
            ratio(u, base(&|s| Some(median(&s.up)))),
        );
    }
}

fn trips_table(args: &Args, rows: &[(Kind, Results)], socat: Option<&Results>) {
    let base = |f: &dyn Fn(&Results) -> Option<f64>| socat.and_then(f);
    println!(
        "\n### Round trips and setups\n\nRound trips: {} × {PING}-byte messages through an echoing backend after {} warm-up. \
         Setups: {} sessions per relay, {} at a time, each a new connection through the whole handshake (vncap: a control \
         request on its own connection, connect, WebSocket upgrade, VNC authentication, backend login), closed at once; \
         vncap RFB is a native viewer (silent until the server speaks) on a `\"ws\": false` ticket: what vncap waits \
         before it speaks (a 300 ms sniff silence before the entry machine, none after it) is in its figures.\n",
        args.pings,
        (args.pings / 10).min(1000),
        args.setups,
        args.concurrency,
    );
    println!("| relay | RTT p50 µs | ×socat | RTT p99 µs | ×socat | setups/s | ×socat | setup p50 ms | setup p99 ms | relay CPU µs/setup |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, r) in rows {
        let (p50, p99) = (quantile(&r.rtt_us, 0.5), quantile(&r.rtt_us, 0.99));
        let (rate, l50, l99, cpu) = match &r.setups {
            Some(x) => (
                format!("{:.0}", x.rate),
                format!("{:.2}", quantile(&x.times, 0.5)),
                format!("{:.2}", quantile(&x.times, 0.99)),
                x.cpu_us
                    .map(|c| format!("{c:.0}"))
                    .unwrap_or_else(|| "—".into()),
            ),
            None => ("—".into(), "—".into(), "—".into(), "—".into()),
        };
        println!(
            "| {} | {p50:.1} | {} | {p99:.1} | {} | {rate} | {} | {l50} | {l99} | {cpu} |",
            kind.name(),
            ratio(p50, base(&|s| Some(quantile(&s.rtt_us, 0.5)))),
            ratio(p99, base(&|s| Some(quantile(&s.rtt_us, 0.99)))),
            r.setups
                .as_ref()
                .map(|x| ratio(x.rate, base(&|s| s.setups.as_ref().map(|t| t.rate))))
                .unwrap_or_else(|| "—".into()),
        );
    }
}

fn memory_table(args: &Args, rows: &[(Kind, Results)], socat: Option<&Results>) -> Res<()> {
    let counts = session_counts(args)?;
    println!(
        "\n### Memory\n\nThe relay's process tree (socat and websockify fork one process per connection) idle and with N established, \
         idle sessions; RSS summed over the tree, PSS divides shared pages between the processes sharing them. Per session: \
         (PSS with N − PSS idle) / N. Kernel socket buffers and pipes are not counted for anyone; fds (pipes): the open \
         descriptors of the relay's first process with N sessions (for a forking relay: its listener only).\n"
    );
    print!("| relay | RSS idle MiB | PSS idle MiB |");
    for n in &counts {
        print!(" RSS {n} MiB | PSS {n} MiB | KiB/session ({n}) | ×socat | fds (pipes) ({n}) |");
    }
    println!();
    print!("|---|---:|---:|");
    for _ in &counts {
        print!("---:|---:|---:|---:|---:|");
    }
    println!();
    for (kind, r) in rows {
        let Some((_, Ok(first))) = r.memory.iter().find(|(_, m)| m.is_ok()) else {
            continue;
        };
        print!(
            "| {} | {} | {} |",
            kind.name(),
            mib(first.rss_idle),
            mib(first.pss_idle)
        );
        for (n, m) in &r.memory {
            match m {
                Ok(m) => {
                    let socat_per = socat.and_then(|s| {
                        s.memory
                            .iter()
                            .find_map(|(k, sm)| (k == n).then_some(sm.as_ref().ok()).flatten())
                            .map(|sm| per_session(sm, *n))
                    });
                    let per = per_session(m, *n);
                    print!(
                        " {} | {} | {per:.0} | {} | {} ({}) |",
                        mib(m.rss),
                        mib(m.pss),
                        ratio(per, socat_per),
                        m.fds.0,
                        m.fds.1,
                    );
                }
                Err(e) => print!(" {e} | | | | |"),
            }
        }
        println!();
    }
    Ok(())
}

fn console_table(args: &Args, rows: &[(Kind, Results)], socat: Option<&Results>) {
    println!(
        "\n### Keystrokes under streaming consoles\n\nN sessions each receive {} KiB every {BURST_MS} ms (±20 %) \
         while one more session sends an {PING}-byte message every ms for {} s (open loop) to an echoing backend; \
         latency is from when a message was due to its echo. CPU: the relay's process tree, seconds per second of load. \
         Delivered: bytes the streaming viewers read over the bytes offered. PSS/session: (PSS under load − idle) / N. \
         Counts are capped by the open-file limit ({} here; two sockets a session on each side). Ratios against socat \
         under the same N.\n",
        BURST / 1024,
        args.console_secs,
        open_file_limit(std::process::id()).unwrap_or(0),
    );
    println!("| relay | N | p50 ms | ×socat | p99 ms | ×socat | p99.9 ms | max ms | > 100 ms | CPU s/s | ×socat | delivered | PSS KiB/session |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, r) in rows {
        for (n, c) in &r.console {
            let c = match c {
                Ok(c) => c,
                Err(e) => {
                    println!("| {} | {n} | {e} | | | | | | | | | | |", kind.name());
                    continue;
                }
            };
            let base = socat.and_then(|s| {
                s.console
                    .iter()
                    .find_map(|(m, sc)| (m == n).then_some(sc.as_ref().ok()).flatten())
            });
            let q = |c: &Console, q: f64| quantile(&c.lat_ms, q);
            let (p50, p99) = (q(c, 0.5), q(c, 0.99));
            let max = c.lat_ms.iter().copied().fold(0.0, f64::max);
            let slow = c.lat_ms.iter().filter(|&&l| l > 100.0).count();
            let cpu = c.cpu.map_or("—".into(), |x| format!("{x:.2}"));
            println!(
                "| {} | {n} | {p50:.2} | {} | {p99:.2} | {} | {:.2} | {max:.1} | {slow} | {cpu} | {} | {:.1} % | {:.0} |",
                kind.name(),
                ratio(p50, base.map(|b| q(b, 0.5))),
                ratio(p99, base.map(|b| q(b, 0.99))),
                q(c, 0.999),
                ratio(c.cpu.unwrap_or(f64::NAN), base.and_then(|b| b.cpu)),
                c.delivered * 100.0,
                c.kib_per_session,
            );
        }
    }
}

fn run(args: &Args) -> Res<()> {
    if args.reps == 0 || args.mib == 0 || args.pings == 0 || args.setups == 0 {
        return Err("--reps, --mib, --pings and --setups must be positive".into());
    }
    let kinds = args
        .relays
        .split(',')
        .map(|s| Kind::parse(s.trim()))
        .collect::<Res<Vec<_>>>()?;
    let results = measure(&kinds, args)?;
    let rows: Vec<(Kind, Results)> = kinds.into_iter().zip(results).collect();
    report(args, &rows)?;
    if args.hold > 0 {
        println!("\n{}", hold(args)?);
    }
    Ok(())
}
