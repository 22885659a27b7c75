//! `vncap serve --single-port --web-root DIR` through the real binary on
//! loopback: the single port serves DIR's files (right type and length,
//! HEAD, directories' index.html) beside the WebSocket consoles, and
//! nothing outside DIR: no traversal in any encoding, no symlink out (a
//! symlink that stays inside DIR is followed: openat2's RESOLVE_BENEATH),
//! no directory listing, no FIFO or other non-regular file, no redirect.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use support::{json_field, startup_fails, tcp, Daemon};
use vncap_tests::backend::{Backend, BackendConfig};
use vncap_tests::viewer::{Viewer, ViewerConfig, WsOptions, WsStream};

/// A web root in a fresh scratch directory, with a secret beside it.
struct Root {
    base: PathBuf,
    big: Vec<u8>,
}

impl Root {
    fn new(name: &str) -> Root {
        let base =
            std::env::temp_dir().join(format!("vncap-web-root-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("www");
        for sub in ["core", "app/styles", "empty", "app/sub"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let write = |rel: &str, text: &[u8]| std::fs::write(dir.join(rel), text).unwrap();
        write("index.html", b"<!DOCTYPE html><title>root</title>");
        write("vnc.html", b"<!DOCTYPE html><title>noVNC</title>");
        write("core/rfb.js", b"export default class RFB {}\n");
        write("app/styles/base.css", b"body { margin: 0 }\n");
        write("app/index.html", b"<p>app</p>");
        write("app/sub/data.json", b"{}");
        write("Makefile", b"all:\n");
        // Larger than one chunk of the daemon's reads and the socket buffers.
        let big: Vec<u8> = (0..700_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        write("core/big.wasm", &big);
        std::fs::write(base.join("secret.txt"), b"the cluster password").unwrap();
        let link =
            |target: &str, rel: &str| std::os::unix::fs::symlink(target, dir.join(rel)).unwrap();
        link("../secret.txt", "out.txt");
        link("/etc/passwd", "passwd");
        link("..", "up");
        link("vnc.html", "in.html");
        link("../vnc.html", "app/vnc.html");
        let fifo = std::process::Command::new("mkfifo")
            .arg(dir.join("fifo"))
            .status()
            .unwrap();
        assert!(fifo.success());
        Root { base, big }
    }

    fn dir(&self) -> PathBuf {
        self.base.join("www")
    }

    fn start(&self) -> (Daemon, u16) {
        let dir = self.dir();
        let mut d = Daemon::start(&["--single-port", "0", "--web-root", dir.to_str().unwrap()]);
        let port = d.single_port();
        (d, port)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// One HTTP response.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// Sends `request` raw on a new connection to `port` and reads the answer
/// to the end (the daemon closes after one).
fn http(port: u16, request: &[u8]) -> Response {
    let mut s = tcp(port);
    s.write_all(request).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("read the answer");
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8(all[..end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Response {
        status,
        head,
        body: all[end + 4..].to_vec(),
    }
}

fn get(port: u16, target: &str) -> Response {
    http(
        port,
        format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    )
}

fn file(dir: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap()
}

#[test]
fn files_are_served_with_their_type_and_length() {
    let root = Root::new("types");
    let (_d, port) = root.start();
    for (target, rel, ty) in [
        ("/", "index.html", "text/html; charset=utf-8"),
        (
            "/vnc.html?host=127.0.0.1&path=websockify%3Ftoken%3Dx",
            "vnc.html",
            "text/html; charset=utf-8",
        ),
        (
            "/core/rfb.js",
            "core/rfb.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/app/styles/base.css",
            "app/styles/base.css",
            "text/css; charset=utf-8",
        ),
        (
            "/app/sub/data.json",
            "app/sub/data.json",
            "application/json",
        ),
        ("/Makefile", "Makefile", "application/octet-stream"),
        ("/app/", "app/index.html", "text/html; charset=utf-8"),
        // A directory without the slash: its index, never a redirect.
        ("/app", "app/index.html", "text/html; charset=utf-8"),
    ] {
        let r = get(port, target);
        let want = file(&root.dir(), rel);
        assert_eq!(r.status, 200, "{target}: {}", r.head);
        assert_eq!(r.header("Content-Type"), Some(ty), "{target}");
        assert_eq!(
            r.header("Content-Length"),
            Some(&*want.len().to_string()),
            "{target}"
        );
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(r.header("Connection"), Some("close"));
        assert_eq!(r.header("Cache-Control"), Some("no-cache"));
        assert_eq!(r.body, want, "{target}");
    }
    let r = get(port, "/core/big.wasm");
    assert_eq!(r.header("Content-Type"), Some("application/wasm"));
    assert_eq!(r.body.len(), root.big.len());
    assert!(r.body == root.big, "the big file's bytes");
    // HEAD: the same head, no body.
    let r = http(port, b"HEAD /core/big.wasm HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("700000"));
    assert!(r.body.is_empty());
    // HTTP/1.0 too.
    let r = http(port, b"GET /vnc.html HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn nothing_outside_the_directory_and_no_listing() {
    let root = Root::new("outside");
    let (mut d, port) = root.start();
    for target in [
        "/out.txt",
        "/passwd",
        "/up/secret.txt",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2e/secret.txt",
        "/..%2fsecret.txt",
        "/app/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/app%5c..%5c..%5csecret.txt",
        "//evil.example",
        "//evil.example/%2e%2e",
        "/%2fevil.example",
        "/vnc.html%00.js",
        "/empty",
        "/empty/",
        "/fifo",
        "/nope.html",
        "/core//rfb.js",
        "/./vnc.html",
    ] {
        let r = get(port, target);
        assert_eq!(r.status, 404, "{target}: {}", r.head);
        assert!(r.header("Location").is_none(), "{target}");
        assert!(!String::from_utf8_lossy(&r.body).contains("cluster password"));
    }
    // Symlinks that stay inside the directory are followed.
    assert_eq!(get(port, "/in.html").body, file(&root.dir(), "vnc.html"));
    assert_eq!(
        get(port, "/app/vnc.html").body,
        file(&root.dir(), "vnc.html")
    );
    // A bad escape is 400, another method 405 with Allow.
    assert_eq!(get(port, "/%zz").status, 400);
    let r = http(
        port,
        b"POST /vnc.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    let r = http(port, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
    // Each refusal is logged once, naming the peer and why.
    d.wait_log(|l| l.contains("127.0.0.1:") && l.contains("static file: 404 path refused"));
    // Still serving after all that.
    assert_eq!(get(port, "/vnc.html").status, 200);
}

#[test]
fn websocket_consoles_still_open_on_the_same_port() {
    let root = Root::new("console");
    let (d, port) = root.start();
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let req = format!(
        "{{\"destination_address\": \"127.0.0.1\", \"destination_port\": {}, \"type\": \"vnc-ws\"}}\n",
        backend.addr().port()
    );
    let reply = d.control_raw(req.as_bytes());
    let url_path = json_field(&reply, "url_path");
    let password = json_field(&reply, "password");
    assert_eq!(json_field(&reply, "source_port"), port.to_string());
    // The page first, then its console, on one origin.
    assert_eq!(get(port, "/vnc.html").status, 200);
    let url = format!("ws://127.0.0.1:{port}/{url_path}");
    let viewer = Viewer::handshake(
        WsStream::connect(&url, &WsOptions::default()).unwrap(),
        &ViewerConfig::password(&password),
    )
    .expect("login by token beside the files");
    assert_eq!(viewer.server_init().width, 640);
    // An unknown token is still the ticket table's 404.
    let unknown = format!("ws://127.0.0.1:{port}/websockify?token={}", "0".repeat(32));
    let err = WsStream::connect(&unknown, &WsOptions::default()).expect_err("unknown token");
    assert!(err.to_string().contains("404"), "{err}");
}

#[test]
fn web_root_needs_the_single_port_and_a_directory() {
    let root = Root::new("startup");
    let dir = root.dir();
    startup_fails(
        &["--web-root", dir.to_str().unwrap()],
        "--web-root needs --single-port",
    );
    let file = dir.join("vnc.html");
    startup_fails(
        &["--single-port", "0", "--web-root", file.to_str().unwrap()],
        "not a directory",
    );
    let missing = dir.join("missing");
    startup_fails(
        &[
            "--single-port",
            "0",
            "--web-root",
            missing.to_str().unwrap(),
        ],
        "--web-root",
    );
}

#[test]
fn a_request_for_a_file_is_a_handshake_for_the_budget_and_the_deadline() {
    let root = Root::new("budget");
    let dir = root.dir();
    let mut d = Daemon::start(&[
        "--single-port",
        "0",
        "--web-root",
        dir.to_str().unwrap(),
        "--max-handshakes",
        "1",
        "--max-handshakes-per-ip",
        "1",
        "--handshake-timeout",
        "1",
    ]);
    let port = d.single_port();
    // One connection still sending its request holds the one pass...
    let mut first = tcp(port);
    first.write_all(b"GET /vnc.html HTTP/1.1\r\n").unwrap();
    let mut second = tcp(port);
    let mut got = Vec::new();
    let _ = second.write_all(b"GET /vnc.html HTTP/1.1\r\nHost: x\r\n\r\n");
    let _ = second.read_to_end(&mut got);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    d.wait_log(|l| l.contains("on single port") && l.contains("refused"));
    // ...until the handshake deadline answers it with 408.
    let mut answer = Vec::new();
    first.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8(answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
}
