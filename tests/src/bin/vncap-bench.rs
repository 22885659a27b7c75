//! `vncap-bench`: the benchmark harness. It measures, for each relay under
//! test, what a console costs and how fast it is: bulk throughput in both
//! directions, small-message round trips, the relay's memory idle and with N
//! established sessions, and its CPU time per GiB relayed. It prints markdown
//! tables (medians, spreads, ratios against a plain `socat` relay) on stdout.
//! `bench/run.sh` builds it and runs it; `bench/RESULTS.md` holds a run.
//!
//! The relays: `direct` (the viewer talks to the backend: the ceiling of the
//! test peers), `socat` (`TCP-LISTEN:…,fork TCP:backend`), `websockify`
//! (Debian's, with the WebSocket viewer), and vncap's plain RFB and WebSocket
//! entry points (a fresh ticket and an RFB login per connection). The backend
//! is [`vncap_tests::backend`] (bulk mode for throughput, echo mode for round
//! trips, the test pattern for idle sessions). A second socat row runs it
//! with `-b 65536` (vncap's relay buffer size; socat's default is 8 KiB), to
//! tell buffer size apart from the rest; ratios stay against plain socat.
//!
//! The viewer side is the same code for every relay: [`Viewer::handshake`]
//! over a `TcpStream` or over the one WebSocket client ([`WsStream`], used
//! for websockify and vncap alike), then 64 KiB reads and writes, no
//! checksums in the timed loop (the upload's checksum is checked by the
//! backend afterwards). A download ends when the viewer has read every byte,
//! an upload when the backend has ([`BackendHandle::wait_received`]).
//!
//! It is not a test: it asserts nothing about speed, and it is never run by
//! `cargo test` (`tests/run.sh` runs `bench/run.sh --smoke` so it cannot rot).
//! Everything runs on 127.0.0.1; every process it starts is killed when it
//! ends; every loop is bounded.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argh::FromArgs;
use sha2::{Digest, Sha256};
use vncap_tests::backend::{Backend, BackendConfig, BackendHandle, Mode};
use vncap_tests::peer::BulkStream;
use vncap_tests::viewer::{Viewer, ViewerConfig, WsOptions, WsStream};

/// Benchmarks vncap against a direct connection, socat and websockify.
#[derive(FromArgs)]
struct Args {
    /// the vncap binary (default: `vncap` beside this program)
    #[argh(option)]
    vncap: Option<PathBuf>,
    /// repetitions of each bulk transfer (default 15)
    #[argh(option, default = "15")]
    reps: usize,
    /// mebibytes per bulk transfer (default 64)
    #[argh(option, default = "64")]
    mib: u64,
    /// round trips of 16 bytes (default 1000)
    #[argh(option, default = "1000")]
    pings: usize,
    /// concurrent established sessions for the memory figure (default 50)
    #[argh(option, default = "50")]
    sessions: usize,
    /// first port of vncap's entry-port pool (default 30100; the pool is
    /// sessions + 64 ports wide and must be free)
    #[argh(option, default = "30100")]
    port_base: u16,
    /// relays to run, comma separated (default:
    /// direct,socat,socat-64k,websockify,vncap,vncap-ws)
    #[argh(
        option,
        default = "String::from(\"direct,socat,socat-64k,websockify,vncap,vncap-ws\")"
    )]
    relays: String,
}

/// Longest any single step may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(30);
/// The viewer's read and write size, the same for every relay.
const CHUNK: usize = 64 * 1024;
/// The ticket password vncap's viewers present.
const PASSWORD: &str = "benchpw1";
const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

type Res<T> = Result<T, String>;

fn main() {
    let args: Args = argh::from_env();
    if let Err(e) = run(&args) {
        eprintln!("vncap-bench: {e}");
        std::process::exit(1);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Direct,
    Socat,
    /// socat with 64 KiB transfer blocks (its default is 8 KiB), as vncap uses.
    Socat64k,
    Websockify,
    Vncap,
    VncapWs,
}

impl Kind {
    fn parse(s: &str) -> Res<Kind> {
        Ok(match s {
            "direct" => Kind::Direct,
            "socat" => Kind::Socat,
            "socat-64k" => Kind::Socat64k,
            "websockify" => Kind::Websockify,
            "vncap" => Kind::Vncap,
            "vncap-ws" => Kind::VncapWs,
            other => return Err(format!("unknown relay {other:?}")),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct (no relay)",
            Kind::Socat => "socat",
            Kind::Socat64k => "socat -b65536",
            Kind::Websockify => "websockify",
            Kind::Vncap => "vncap RFB",
            Kind::VncapWs => "vncap WebSocket",
        }
    }
}

// ---------------------------------------------------------------- processes

/// A process tree the harness started; killed (the whole tree) on drop.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let mut pids = descendants(self.pid());
        pids.push(self.pid());
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// Fields of /proc/PID/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    // Field 3 (state) is a letter: keep its place with a 0.
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// Every live descendant of `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            if let Some(f) = stat_fields(pid) {
                if let Some(&ppid) = f.get(1) {
                    parent.entry(ppid as u32).or_default().push(pid);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        if let Some(children) = parent.get(&p) {
            for &c in children {
                if !out.contains(&c) && out.len() < 10_000 {
                    out.push(c);
                    todo.push(c);
                }
            }
        }
    }
    out
}

fn tree(root: u32) -> Vec<u32> {
    let mut t = vec![root];
    t.extend(descendants(root));
    t
}

/// A `kB` line of a /proc file.
fn proc_kb(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
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
}

/// What the viewer's byte stream must also do: end its sending half.
trait Conn: Read + Write + Send {
    fn finish_send(&mut self) -> io::Result<()>;
}

impl Conn for TcpStream {
    fn finish_send(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Conn for WsStream {
    fn finish_send(&mut self) -> io::Result<()> {
        let ws = self.websocket();
        let _ = ws.close(None);
        match ws.flush() {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => Ok(()),
            Err(e) => Err(io::Error::other(e.to_string())),
        }
    }
}

impl Relay {
    /// Starts `kind` in front of `backend`; `slot` picks a private range of
    /// entry ports for a vncap (several run side by side).
    fn start(kind: Kind, backend: SocketAddr, args: &Args, vncap: &str, slot: usize) -> Res<Relay> {
        let mut relay = Relay {
            kind,
            backend,
            proc: None,
            port: 0,
            control: None,
        };
        match kind {
            Kind::Direct => {}
            Kind::Socat | Kind::Socat64k => {
                let port = free_port()?;
                let mut socat_args = Vec::new();
                if kind == Kind::Socat64k {
                    socat_args.extend(["-b".to_string(), "65536".to_string()]);
                }
                socat_args.extend([
                    format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
                    format!("TCP:{backend}"),
                ]);
                let mut p = spawn("socat", &socat_args, "socat", false)?;
                wait_listening(port, &mut p, "socat")?;
                relay.port = port;
                relay.proc = Some(p);
            }
            Kind::Websockify => {
                let port = free_port()?;
                let mut p = spawn(
                    "websockify",
                    &[format!("127.0.0.1:{port}"), backend.to_string()],
                    "websockify",
                    true,
                )?;
                wait_listening(port, &mut p, "websockify")?;
                relay.port = port;
                relay.proc = Some(p);
            }
            Kind::Vncap | Kind::VncapWs => {
                let control = free_port()?;
                let width = args.sessions + 64;
                let lo = usize::from(args.port_base) + slot * width;
                let hi = lo + width - 1;
                if hi > usize::from(u16::MAX) {
                    return Err("--port-base too high".into());
                }
                let mut p = spawn(
                    vncap,
                    &[
                        "serve".into(),
                        "--control".into(),
                        format!("127.0.0.1:{control}"),
                        "--listen".into(),
                        "127.0.0.1".into(),
                        "--ports".into(),
                        format!("{lo}-{hi}"),
                        "--max-sessions".into(),
                        (args.sessions + 16).to_string(),
                        "--log-level".into(),
                        "warn".into(),
                    ],
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

    /// Asks vncap for a ticket to the backend (twisted-vncauthproxy's
    /// dialect, as Ganeti Web Manager sends it); returns the entry port.
    fn ticket(&self, control: SocketAddr, ws: bool) -> Res<u16> {
        let mut s = TcpStream::connect(control).map_err(|e| format!("control: {e}"))?;
        s.set_read_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        let line = format!(
            "{{\"daddr\": \"{}\", \"dport\": {}, \"password\": \"{PASSWORD}\", \"ws\": {ws}, \"tls\": false}}\r\n",
            self.backend.ip(),
            self.backend.port()
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
        let (port, ws, config) = match self.kind {
            Kind::Direct => (self.backend.port(), false, ViewerConfig::none()),
            Kind::Socat | Kind::Socat64k => (self.port, false, ViewerConfig::none()),
            Kind::Websockify => (self.port, true, ViewerConfig::none()),
            Kind::Vncap | Kind::VncapWs => {
                let control = self.control.ok_or("vncap without control")?;
                let ws = self.kind == Kind::VncapWs;
                (
                    self.ticket(control, ws)?,
                    ws,
                    ViewerConfig::password(PASSWORD),
                )
            }
        };
        let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(PATIENCE))
            .map_err(|e| e.to_string())?;
        let stream: Box<dyn Conn> = if ws {
            let options = WsOptions {
                protocols: vec!["binary".into()],
                origin: None,
            };
            let url = format!("ws://127.0.0.1:{port}/websockify");
            Box::new(WsStream::handshake(tcp, &url, &options).map_err(|e| format!("ws: {e}"))?)
        } else {
            Box::new(tcp)
        };
        let viewer = Viewer::handshake(stream, &config)
            .map_err(|e| format!("{}: RFB handshake: {e}", self.kind.name()))?;
        Ok(viewer.into_inner())
    }

    fn cpu_ticks(&self) -> Option<u64> {
        self.proc.as_ref().map(|p| tree_cpu_ticks(p.pid()))
    }
}

fn backend(mode: Mode) -> Res<BackendHandle> {
    Backend::spawn(BackendConfig {
        mode,
        ..BackendConfig::default()
    })
    .map_err(|e| format!("backend: {e}"))
}

/// Waits for the backend's `n`th finished session and returns its report.
fn wait_report(b: &BackendHandle, n: usize) -> Res<vncap_tests::backend::SessionReport> {
    b.wait_reports(n, PATIENCE)
        .and_then(|r| r.get(n - 1).cloned())
        .ok_or_else(|| format!("backend session {n} did not end within {PATIENCE:?}"))
}

// ---------------------------------------------------------------- measurements

#[derive(Debug, Default, Clone)]
struct Results {
    down: Vec<f64>,
    up: Vec<f64>,
    /// CPU seconds per GiB (down, up).
    cpu: Option<(f64, f64)>,
    rtt_us: Vec<f64>,
    memory: Option<Memory>,
}

/// Every relay in front of one backend.
fn start_all(kinds: &[Kind], b: &BackendHandle, args: &Args, vncap: &str) -> Res<Vec<Relay>> {
    kinds
        .iter()
        .enumerate()
        .map(|(slot, &k)| Relay::start(k, b.addr(), args, vncap, slot))
        .collect()
}

/// Throughput in MiB/s of each repetition, and CPU seconds per GiB, for each
/// relay. The relays take turns within each round, so a burst of load from
/// elsewhere on the machine falls on all of them alike.
fn throughput(
    kinds: &[Kind],
    up: bool,
    args: &Args,
    vncap: &str,
    hz: f64,
) -> Res<Vec<(Vec<f64>, Option<f64>)>> {
    let len = args.mib * (1 << 20);
    let mode = Mode::Bulk {
        len: if up { 0 } else { len },
        seed: 1,
    };
    let b = backend(mode)?;
    let relays = start_all(kinds, &b, args, vncap)?;
    let mut pattern = vec![0u8; CHUNK];
    BulkStream::new(2).fill(&mut pattern);
    let mut h = Sha256::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        h.update(&pattern[..n]);
        left -= n as u64;
    }
    let expected: [u8; 32] = h.finalize().into();
    let mut buf = vec![0u8; CHUNK];
    let mut rates = vec![Vec::new(); relays.len()];
    let cpu0: Vec<Option<u64>> = relays.iter().map(Relay::cpu_ticks).collect();
    let mut sessions = 0;
    for _ in 0..args.reps {
        for (i, relay) in relays.iter().enumerate() {
            sessions += 1;
            let name = relay.kind.name();
            let mut conn = relay.connect()?;
            let received0 = b.received();
            let t0 = Instant::now();
            if up {
                let mut left = len;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    conn.write_all(&pattern[..n])
                        .map_err(|e| format!("{name}: upload: {e}"))?;
                    left -= n as u64;
                }
                conn.flush().map_err(|e| e.to_string())?;
                if !b.wait_received(received0 + len, PATIENCE) {
                    return Err(format!("{name}: upload not received"));
                }
                let dt = t0.elapsed();
                conn.finish_send().map_err(|e| e.to_string())?;
                let r = wait_report(&b, sessions)?;
                if r.received_len != len || r.received_sha256 != expected {
                    return Err(format!(
                        "{name}: backend received {} of {len} bytes, checksum {}",
                        r.received_len,
                        if r.received_sha256 == expected {
                            "ok"
                        } else {
                            "WRONG"
                        }
                    ));
                }
                rates[i].push(len as f64 / MIB / dt.as_secs_f64());
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
                let dt = t0.elapsed();
                rates[i].push(len as f64 / MIB / dt.as_secs_f64());
                drop(conn);
                wait_report(&b, sessions)?;
            }
        }
    }
    let gib = (len as f64 * args.reps as f64) / GIB;
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

/// Round-trip times in µs of 16-byte messages through an echoing backend,
/// for each relay, one session each, taking turns in rounds of 50.
fn round_trips(kinds: &[Kind], args: &Args, vncap: &str) -> Res<Vec<Vec<f64>>> {
    let b = backend(Mode::Echo)?;
    let relays = start_all(kinds, &b, args, vncap)?;
    let mut conns = relays.iter().map(Relay::connect).collect::<Res<Vec<_>>>()?;
    let mut rtts = vec![Vec::with_capacity(args.pings); relays.len()];
    let warmup = (args.pings / 10).min(100);
    let total = warmup + args.pings;
    let mut done = 0;
    while done < total {
        let round = (total - done).min(50);
        for (i, conn) in conns.iter_mut().enumerate() {
            let name = relays[i].kind.name();
            for j in done..done + round {
                let ping = [(j % 251) as u8; 16];
                let t0 = Instant::now();
                conn.write_all(&ping).map_err(|e| e.to_string())?;
                conn.flush().map_err(|e| e.to_string())?;
                let mut pong = [0u8; 16];
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

/// A relay's memory, KiB, summed over its process tree.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss_idle: u64,
    pss_idle: u64,
    rss: u64,
    pss: u64,
}

/// The relay's memory idle and with `--sessions` established sessions.
fn memory(kind: Kind, args: &Args, vncap: &str) -> Res<Memory> {
    let b = backend(Mode::TestPattern)?;
    let relay = Relay::start(kind, b.addr(), args, vncap, 0)?;
    let pid = relay.proc.as_ref().ok_or("no relay process")?.pid();
    let (rss_idle, pss_idle) = tree_memory(pid);
    // A few logins at a time: socat listens with a backlog of 5.
    let mut conns: Vec<Box<dyn Conn>> = Vec::with_capacity(args.sessions);
    while conns.len() < args.sessions {
        let batch = (args.sessions - conns.len()).min(4);
        let opened = std::thread::scope(|s| {
            let handles: Vec<_> = (0..batch).map(|_| s.spawn(|| relay.connect())).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("viewer panicked".into())))
                .collect::<Res<Vec<_>>>()
        })?;
        conns.extend(opened);
    }
    if !b.wait_sessions(args.sessions, PATIENCE) {
        return Err(format!("{}: sessions did not all open", kind.name()));
    }
    let (rss, pss) = tree_memory(pid);
    drop(conns);
    Ok(Memory {
        rss_idle,
        pss_idle,
        rss,
        pss,
    })
}

/// Every measurement of every relay.
fn measure(kinds: &[Kind], args: &Args, vncap: &str, hz: f64) -> Res<Vec<Results>> {
    let mut results = vec![Results::default(); kinds.len()];
    let t0 = Instant::now();
    let took = |what: &str| {
        eprintln!(
            "vncap-bench: {what} done at {:.1} s",
            t0.elapsed().as_secs_f64()
        )
    };
    for (r, (rates, cpu)) in results
        .iter_mut()
        .zip(throughput(kinds, false, args, vncap, hz)?)
    {
        r.down = rates;
        r.cpu = cpu.map(|d| (d, f64::NAN));
    }
    took("backend→viewer");
    for (r, (rates, cpu)) in results
        .iter_mut()
        .zip(throughput(kinds, true, args, vncap, hz)?)
    {
        r.up = rates;
        r.cpu = r.cpu.zip(cpu).map(|((d, _), u)| (d, u));
    }
    took("viewer→backend");
    for (r, rtts) in results.iter_mut().zip(round_trips(kinds, args, vncap)?) {
        r.rtt_us = rtts;
    }
    took("round trips");
    for (r, &kind) in results.iter_mut().zip(kinds) {
        if kind != Kind::Direct {
            r.memory = Some(memory(kind, args, vncap)?);
        }
    }
    took("memory");
    Ok(results)
}

// ---------------------------------------------------------------- report

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let s = sorted(v);
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i.min(s.len() - 1)]
}

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

fn report(args: &Args, rows: &[(Kind, Results)]) {
    let socat = rows.iter().find(|(k, _)| *k == Kind::Socat).map(|(_, r)| r);
    let base = |f: &dyn Fn(&Results) -> Option<f64>| socat.and_then(f);
    println!(
        "### Throughput and round trips\n\n{} MiB per transfer, median of {} (min–max); round trips: {} × 16 bytes after {} warm-up. Ratios are against socat.\n",
        args.mib,
        args.reps,
        args.pings,
        (args.pings / 10).min(100)
    );
    println!("| relay | backend→viewer MiB/s | ×socat | viewer→backend MiB/s | ×socat | RTT median µs | RTT p99 µs | ×socat (median) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, r) in rows {
        let (d, u, m) = (median(&r.down), median(&r.up), median(&r.rtt_us));
        println!(
            "| {} | {d:.0}{} | {} | {u:.0}{} | {} | {m:.1} | {:.1} | {} |",
            kind.name(),
            spread(&r.down),
            ratio(d, base(&|s| Some(median(&s.down)))),
            spread(&r.up),
            ratio(u, base(&|s| Some(median(&s.up)))),
            quantile(&r.rtt_us, 0.99),
            ratio(m, base(&|s| Some(median(&s.rtt_us)))),
        );
    }
    println!(
        "\n### Relay process: memory and CPU\n\nMemory summed over the relay's process tree (socat and websockify fork one process per connection); \
         PSS divides shared pages between the processes that share them. CPU is user+system time of the tree over all bulk repetitions, per GiB relayed.\n"
    );
    println!(
        "| relay | RSS idle MiB | PSS idle MiB | RSS with {n} sessions MiB | PSS with {n} sessions MiB | ×socat (PSS) | PSS per session KiB | CPU s/GiB ↓ | CPU s/GiB ↑ | ×socat (CPU ↓) |",
        n = args.sessions
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, r) in rows {
        let Some(m) = r.memory else {
            continue;
        };
        let per = (m.pss as f64 - m.pss_idle as f64).max(0.0) / args.sessions as f64;
        let (cd, cu) = r
            .cpu
            .map(|(d, u)| (format!("{d:.2}"), format!("{u:.2}")))
            .unwrap_or(("—".into(), "—".into()));
        println!(
            "| {} | {} | {} | {} | {} | {} | {per:.0} | {cd} | {cu} | {} |",
            kind.name(),
            mib(m.rss_idle),
            mib(m.pss_idle),
            mib(m.rss),
            mib(m.pss),
            ratio(m.pss as f64, base(&|s| s.memory.map(|m| m.pss as f64))),
            match (r.cpu, socat.and_then(|s| s.cpu)) {
                (Some((d, _)), Some((sd, _))) => ratio(d, Some(sd)),
                _ => "—".into(),
            },
        );
    }
}

fn run(args: &Args) -> Res<()> {
    if args.reps == 0 || args.mib == 0 || args.pings == 0 || args.sessions == 0 {
        return Err("--reps, --mib, --pings and --sessions must be positive".into());
    }
    let vncap = match &args.vncap {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("vncap"),
    };
    let vncap = vncap.to_string_lossy().into_owned();
    let kinds = args
        .relays
        .split(',')
        .map(|s| Kind::parse(s.trim()))
        .collect::<Res<Vec<_>>>()?;
    let hz = clock_ticks_per_second();
    let results = measure(&kinds, args, &vncap, hz)?;
    let rows: Vec<(Kind, Results)> = kinds.into_iter().zip(results).collect();
    report(args, &rows);
    Ok(())
}
