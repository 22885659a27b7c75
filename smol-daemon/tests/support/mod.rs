//! Running the real `vncap` binary in tests: start it on loopback with a
//! control port the OS picks (read back from its log), a private entry-port
//! range, and wait on its log lines (events) instead of sleeping. Stopped with
//! SIGTERM on drop.

#![allow(dead_code)]

pub mod browser;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vncap_tests::backend::{Backend, BackendConfig, BackendHandle, Mode, SessionEnd};
use vncap_tests::peer::bulk_sha256;

/// Longest a test waits for anything before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Blocks of 8 entry ports below the kernel's ephemeral range.
const BLOCKS: u16 = 1200;

/// A private block of 8 entry ports for one daemon, below the kernel's
/// ephemeral range: claimed with an exclusive `flock` on a file per block
/// (in the temporary directory), held until this process ends, so no two
/// test processes on the machine — of this checkout or another — ever get
/// the same block, and a crashed one frees its blocks. The daemon skips
/// ports another program holds.
pub fn port_block() -> (u16, u16) {
    use rustix::fs::{flock, FlockOperation};
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("vncap-test-port-blocks");
    std::fs::create_dir_all(&dir).expect("port block directory");
    let start = (std::process::id() % u32::from(BLOCKS)) as u16;
    for i in 0..BLOCKS {
        let block = (start + i) % BLOCKS;
        let base = 20000 + block * 8;
        let Ok(file) = std::fs::File::create(dir.join(base.to_string())) else {
            continue;
        };
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
            HELD.lock().unwrap().push(file);
            return (base, base + 7);
        }
    }
    panic!("no free block of entry ports in 20000-29599");
}

/// A running daemon.
pub struct Daemon {
    child: Child,
    lines: Receiver<String>,
    /// Every line it logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Its control address.
    pub control: SocketAddr,
    /// Its entry-port range.
    pub ports: (u16, u16),
}

impl Daemon {
    /// Starts `vncap serve` with test defaults plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Daemon {
        let ports = port_block();
        let range = format!("{}-{}", ports.0, ports.1);
        let mut args = vec![
            "serve",
            "--control",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1",
            "--ports",
            &range,
            "--log-level",
            "debug",
        ];
        args.extend_from_slice(extra);
        Self::spawn(&args, ports)
    }

    /// Starts the binary with exactly `args` and waits for its ready line.
    pub fn spawn(args: &[&str], ports: (u16, u16)) -> Daemon {
        let mut d = Self::spawn_until(args, ports, "ready: control on ");
        let ready = d.wait_log(|l| l.contains("ready: control on "));
        let addr = ready
            .split("control on ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .expect("control address in the ready line");
        if let Ok(a) = addr.parse() {
            d.control = a;
        }
        d
    }

    /// Starts the binary with exactly `args` and waits for a line containing `ready`.
    pub fn spawn_until(args: &[&str], ports: (u16, u16), ready: &str) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vncap"))
            .args(args)
            // Not the journal: lines carry their timestamp (operations.rs).
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vncap");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                log2.lock().unwrap().push(line.clone());
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut d = Daemon {
            child,
            lines: rx,
            log,
            control: SocketAddr::from(([127, 0, 0, 1], 0)),
            ports,
        };
        d.wait_log(|l| l.contains(ready));
        d
    }

    /// Whether any logged line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// How many logged lines contain `needle`.
    pub fn count_logged(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits for a log line matching `pred` (lines already seen count too)
    /// and returns it; panics after [`PATIENCE`].
    pub fn wait_log(&mut self, pred: impl Fn(&str) -> bool) -> String {
        if let Some(l) = self.log.lock().unwrap().iter().find(|l| pred(l)) {
            return l.clone();
        }
        let until = Instant::now() + PATIENCE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no such log line within {PATIENCE:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("vncap exited: {:?}", self.child.try_wait())
                }
            }
        }
    }

    /// Sends one raw control request and returns the whole reply.
    pub fn control_raw(&self, request: &[u8]) -> String {
        let mut s = TcpStream::connect(self.control).expect("connect control");
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(request).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).expect("read reply");
        reply
    }

    /// A GWM (dialect 1) request, spelt as GWM's `json.dumps` does, with
    /// `"tls": false`; returns the port.
    pub fn gwm_request(&self, backend: SocketAddr, password: &str, ws: bool) -> u16 {
        self.gwm_request_tls(backend, password, ws, false)
    }

    /// A GWM (dialect 1) request with the given `ws` and `tls`; returns the port.
    pub fn gwm_request_tls(&self, backend: SocketAddr, password: &str, ws: bool, tls: bool) -> u16 {
        let reply = self.control_raw(gwm_line(backend, password, ws, tls).as_bytes());
        reply
            .trim_end()
            .parse()
            .unwrap_or_else(|_| panic!("expected a port, got {reply:?}"))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for its exit (SIGKILL after [`PATIENCE`]).
    pub fn wait_exit(mut self) -> ExitStatus {
        let (done, watch) = channel::<()>();
        let pid = self.child.id();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = watch.recv_timeout(PATIENCE) {
                signal(pid, "KILL");
            }
        });
        let status = self.child.wait().expect("wait for vncap");
        let _ = done.send(());
        status
    }

    /// Sends the signal `sig` (`HUP`, `TERM`, ...).
    pub fn signal(&self, sig: &str) {
        signal(self.child.id(), sig);
    }

    /// The single port (`--single-port 0`), as the ready line says.
    pub fn single_port(&mut self) -> u16 {
        let ready = self.wait_log(|l| l.contains("ready: control on "));
        let after = ready.split("single port ").nth(1).expect("a single port");
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().expect("the single port's number")
    }

    /// Sends SIGTERM and waits for the exit (a watchdog sends SIGKILL after
    /// [`PATIENCE`], so a hung daemon fails the test instead of hanging it).
    pub fn terminate(self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        self.wait_exit()
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether a TCP connection to `port` on loopback is refused (listener closed).
pub fn port_closed(port: u16) -> bool {
    match TcpStream::connect(("127.0.0.1", port)) {
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Ok(_) => false,
    }
}

/// A GWM (vapclient) request line, as Ganeti Web Manager sends it.
pub fn gwm_line(backend: SocketAddr, password: &str, ws: bool, tls: bool) -> String {
    format!(
        "{{\"daddr\": \"{}\", \"dport\": {}, \"password\": \"{password}\", \"ws\": {ws}, \"tls\": {tls}}}\r\n",
        backend.ip(),
        backend.port()
    )
}

/// A backend that sends `len` bytes of the bulk stream seeded with `seed`
/// after ServerInit and reports what it receives.
pub fn bulk_backend(password: &str, len: u64, seed: u64) -> BackendHandle {
    Backend::spawn(BackendConfig {
        mode: Mode::Bulk { len, seed },
        ..BackendConfig::with_password(password)
    })
    .unwrap()
}

/// Checks both directions of a bulk exchange against the backend's report.
pub fn check_bulk(
    backend: &BackendHandle,
    report: &vncap_tests::viewer::BulkReport,
    down_len: u64,
    down_seed: u64,
) {
    assert_eq!(report.received_len, down_len);
    assert_eq!(
        report.received_sha256,
        bulk_sha256(down_seed, down_len),
        "backend→viewer bytes intact"
    );
    let reports = backend
        .wait_reports(1, PATIENCE)
        .expect("backend session report");
    let r = &reports[0];
    assert_eq!(r.end, SessionEnd::Eof);
    assert_eq!(r.received_len, report.sent_len);
    assert_eq!(
        r.received_sha256, report.sent_sha256,
        "viewer→backend bytes intact"
    );
}

/// The value of `"name": …` in a one-line JSON reply (string or number), as
/// text; panics if it is absent.
pub fn json_field(reply: &str, name: &str) -> String {
    let at = reply
        .find(&format!("\"{name}\": "))
        .unwrap_or_else(|| panic!("{name} in {reply}"));
    let rest = &reply[at + name.len() + 4..];
    rest.trim_start_matches('"')
        .split(['"', ',', '}'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `vncap serve` with test defaults plus `extra` must refuse to start: it
/// exits with status 1 by itself, and its error names `expect`.
pub fn startup_fails(extra: &[&str], expect: &str) {
    let ports = port_block();
    let range = format!("{}-{}", ports.0, ports.1);
    let out = Command::new(env!("CARGO_BIN_EXE_vncap"))
        .args([
            "serve",
            "--control",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1",
            "--ports",
            &range,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run vncap");
    assert_eq!(out.status.code(), Some(1), "{extra:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(expect), "{extra:?}: {err}");
}

/// A TCP connection to an entry port on loopback, reads and writes bounded by
/// [`PATIENCE`].
pub fn tcp(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect entry port");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// A WebSocket viewer's connection to an entry port (`/websockify`), reads
/// bounded by [`PATIENCE`].
pub fn ws(port: u16) -> vncap_tests::viewer::WsStream {
    let s = vncap_tests::viewer::WsStream::connect(
        &format!("ws://127.0.0.1:{port}/websockify"),
        &vncap_tests::viewer::WsOptions::default(),
    )
    .expect("websocket connect");
    s.tcp().set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// Runs the `vncap` binary with `args`: whether it succeeded, its stdout and
/// its stderr.
pub fn vncap(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vncap"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
