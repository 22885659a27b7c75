//! Signed single-port tickets through the real `vncap` binary (issue 16):
//! two instances sharing `--ticket-key` — a ticket one issues, the other
//! admits; one-time use per instance; tampered and foreign-key tokens get
//! 403 before any upgrade; rotation with `--ticket-key-previous` and
//! SIGHUP; `vncap request --single-port URL`; the key file's checks.

mod support;

use std::path::{Path, PathBuf};
use support::{json_field, startup_fails, vncap, Daemon};
use vncap_tests::backend::{Backend, BackendConfig, BackendHandle};
use vncap_tests::viewer::{Viewer, ViewerConfig, WsOptions, WsStream};

/// A directory of key files for one test.
fn key_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vncap-signed-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` as a key file (mode 0600).
fn write_key(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A daemon on a single port with these key options; and that port.
fn instance(keys: &[&Path]) -> (Daemon, u16) {
    let mut args = vec!["--single-port".to_string(), "0".to_string()];
    let names = ["--ticket-key", "--ticket-key-previous"];
    for (name, path) in names.iter().zip(keys) {
        args.push(name.to_string());
        args.push(path.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Daemon::start(&args);
    let port = d.single_port();
    (d, port)
}

/// An snf-dialect WebSocket console request; the reply's token and
/// generated password.
fn console(d: &Daemon, backend: &BackendHandle) -> (String, String) {
    let req = format!(
        "{{\"destination_address\": \"127.0.0.1\", \"destination_port\": {}, \"type\": \"vnc-ws\"}}\n",
        backend.addr().port()
    );
    let reply = d.control_raw(req.as_bytes());
    let token = json_field(&reply, "token");
    assert_eq!(
        json_field(&reply, "url_path"),
        format!("websockify?token={token}")
    );
    (token, json_field(&reply, "password"))
}

/// Logs in over the single port with `token`; the server's width, or the
/// WebSocket handshake's error.
fn login(port: u16, token: &str, password: &str) -> Result<u16, String> {
    let url = format!("ws://127.0.0.1:{port}/websockify?token={token}");
    let ws = WsStream::connect(&url, &WsOptions::default()).map_err(|e| e.to_string())?;
    let viewer =
        Viewer::handshake(ws, &ViewerConfig::password(password)).map_err(|e| format!("{e:?}"))?;
    Ok(viewer.server_init().width)
}

fn refused_with(result: Result<u16, String>, status: &str) {
    match result {
        Err(e) => assert!(e.contains(status), "expected HTTP {status}, got {e}"),
        Ok(_) => panic!("expected HTTP {status}, got a session"),
    }
}

#[test]
fn a_ticket_one_instance_issues_the_other_admits_once() {
    let dir = key_dir("share");
    let key = dir.join("ticket.key");
    write_key(&key, &[0x5a; 32]);
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let (a, _) = instance(&[&key]);
    let (b, b_port) = instance(&[&key]);
    let (token, password) = console(&a, &backend);
    assert!(token.len() > 32, "a signed token, not a table's: {token}");

    assert_eq!(login(b_port, &token, &password), Ok(640));
    // One-time per instance: B refuses it now.
    refused_with(login(b_port, &token, &password), "404");
    for d in [&a, &b] {
        assert!(!d.logged(&token), "no token in the log");
        assert!(!d.logged(&password), "no password in the log");
    }
    assert!(b.logged("signed ticket"), "its fingerprint is logged");
    // Another instance admits it once more (one-time is per instance).
    let (c, c_port) = instance(&[&key]);
    assert_eq!(login(c_port, &token, &password), Ok(640));
    drop(c);
    assert_eq!(backend.connections(), 2);
}

#[test]
fn tampered_and_foreign_tokens_get_403_before_any_upgrade() {
    let dir = key_dir("tamper");
    let (key, other) = (dir.join("ticket.key"), dir.join("other.key"));
    write_key(&key, &[1; 40]);
    write_key(&other, &[2; 32]);
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let (a, a_port) = instance(&[&key]);
    let (stranger, _) = instance(&[&other]);
    let (token, password) = console(&a, &backend);

    // One character changed in the middle (the tag no longer matches).
    let mut bytes = token.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    refused_with(login(a_port, &tampered, &password), "403");
    // Signed with another key.
    let (foreign, foreign_pw) = console(&stranger, &backend);
    refused_with(login(a_port, &foreign, &foreign_pw), "403");
    // Not a signed ticket at all (a table's hex token, garbage).
    refused_with(login(a_port, &"0".repeat(32), &password), "403");
    refused_with(login(a_port, "AAAA", &password), "403");
    assert_eq!(backend.connections(), 0, "nothing reached the backend");
    // The real one still works: refusals changed nothing.
    assert_eq!(login(a_port, &token, &password), Ok(640));
}

#[test]
fn rotation_with_the_previous_key_and_sighup() {
    let dir = key_dir("rotate");
    let (current, previous) = (dir.join("ticket.key"), dir.join("ticket.key.previous"));
    let (old, new) = ([3u8; 32], [4u8; 48]);
    write_key(&current, &old);
    write_key(&previous, &[9; 32]);
    let backend = Backend::spawn(BackendConfig::default()).unwrap();
    let (mut a, a_port) = instance(&[&current, &previous]);
    let (before, before_pw) = console(&a, &backend);

    // Rotate: the new key becomes current, the old one previous.
    write_key(&current, &new);
    write_key(&previous, &old);
    a.signal("HUP");
    a.wait_log(|l| l.contains("reloaded the ticket keys"));
    let (after, after_pw) = console(&a, &backend);
    // An instance that has the new key only admits new tickets, not old.
    let fresh_dir = key_dir("rotate-fresh");
    let only_new = fresh_dir.join("ticket.key");
    write_key(&only_new, &new);
    let (_b, b_port) = instance(&[&only_new]);
    refused_with(login(b_port, &before, &before_pw), "403");
    assert_eq!(login(b_port, &after, &after_pw), Ok(640));
    // The rotated instance still admits a ticket of the previous key.
    assert_eq!(login(a_port, &before, &before_pw), Ok(640));

    // A bad file on SIGHUP keeps the keys it had.
    write_key(&current, b"short");
    a.signal("HUP");
    a.wait_log(|l| l.contains("kept the old ticket keys"));
    let (again, again_pw) = console(&a, &backend);
    assert_eq!(login(b_port, &again, &again_pw), Ok(640));
}

#[test]
fn request_single_port_prints_the_novnc_url() {
    let dir = key_dir("url");
    let key = dir.join("ticket.key");
    write_key(&key, &[7; 32]);
    let backend = Backend::spawn(BackendConfig::with_password("cluster")).unwrap();
    let cluster = dir.join("cluster");
    std::fs::write(&cluster, "cluster\n").unwrap();
    let cluster = cluster.display().to_string();
    let key_arg = key.display().to_string();
    let mut d = Daemon::start(&[
        "--single-port",
        "0",
        "--ticket-key",
        &key_arg,
        "--backend-password-file",
        &cluster,
    ]);
    let port = d.single_port();
    let control = d.control.to_string();
    let dport = backend.addr().port().to_string();
    let (ok, out, err) = vncap(&[
        "request",
        "--control",
        &control,
        "--daddr",
        "127.0.0.1",
        "--dport",
        &dport,
        "--password",
        "pw&1",
        "--single-port",
        "https://vnc.example.org/vnc.html",
    ]);
    assert!(ok, "{err}");
    let url = out
        .lines()
        .find_map(|l| l.strip_prefix("url "))
        .unwrap_or_else(|| panic!("a url line in {out}"));
    let fragment = url
        .strip_prefix("https://vnc.example.org/vnc.html#")
        .unwrap_or_else(|| panic!("the page, then a fragment: {url}"));
    let params: Vec<&str> = fragment.split('&').collect();
    assert_eq!(params[0], "autoconnect=1");
    assert_eq!(params[2], "password=pw%261");
    let path = params[1]
        .strip_prefix("path=websockify%3Ftoken%3D")
        .unwrap_or_else(|| panic!("path=websockify?token=... in {url}"));
    assert!(!path.contains('%'), "a token needs no escaping: {path}");
    // The viewer presents the request's password; the backend gets the
    // admitting instance's cluster password.
    assert_eq!(login(port, path, "pw&1"), Ok(640));

    // A daemon without a single port gives no token: said so.
    let plain = Daemon::start(&[]);
    let control = plain.control.to_string();
    let (ok, _, err) = vncap(&[
        "request",
        "--control",
        &control,
        "--daddr",
        "127.0.0.1",
        "--dport",
        &dport,
        "--single-port",
        "https://vnc.example.org/vnc.html",
    ]);
    assert!(!ok);
    assert!(err.contains("--single-port"), "{err}");
    let (ok, _, err) = vncap(&[
        "request",
        "--daddr",
        "h",
        "--dport",
        "1",
        "--single-port",
        "vnc.html",
    ]);
    assert!(!ok && err.contains("http(s) URL"), "{err}");
}

#[test]
fn key_files_are_checked_at_startup() {
    let dir = key_dir("startup");
    let short = dir.join("short.key");
    write_key(&short, &[1; 31]);
    let good = dir.join("good.key");
    write_key(&good, &[1; 32]);
    let (short, good) = (short.display().to_string(), good.display().to_string());
    startup_fails(
        &["--single-port", "0", "--ticket-key", &short],
        "--ticket-key",
    );
    startup_fails(
        &["--single-port", "0", "--ticket-key", &short],
        "at least 32",
    );
    startup_fails(&["--ticket-key", &good], "needs --single-port");
    startup_fails(
        &["--single-port", "0", "--ticket-key-previous", &good],
        "--ticket-key-previous needs --ticket-key",
    );
    startup_fails(
        &[
            "--single-port",
            "0",
            "--ticket-key",
            &good,
            "--ticket-key-previous",
            &short,
        ],
        "--ticket-key-previous",
    );
    // Readable by others: used, with a warning.
    use std::os::unix::fs::PermissionsExt;
    let open = dir.join("open.key");
    std::fs::write(&open, [1; 32]).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let open = open.display().to_string();
    let d = Daemon::start(&["--single-port", "0", "--ticket-key", &open]);
    assert!(d.logged("group or others may read it"));
}
