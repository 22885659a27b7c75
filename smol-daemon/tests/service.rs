//! `vncap` as an operator meets it: the command line as a Unix tool
//! (`--version`, errors that name the option and the range), `serve
//! --config` through the real binary, the systemd protocols (readiness to
//! `$NOTIFY_SOCKET`, sockets from `LISTEN_FDS`), and the files under `dist/`
//! checked against the same option list as `--help`: the man page is
//! generated from it (`VNCAP_BLESS=1` rewrites `dist/vncap.8`), the
//! settings file, the OpenWrt UCI config and init script must name every
//! option.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use support::{port_block, Daemon, PATIENCE};

const BIN: &str = env!("CARGO_BIN_EXE_vncap");

fn vncap(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run vncap")
}

fn dist(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dist")
        .join(path)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vncap-service-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn version_and_help_exit_zero() {
    for flag in ["--version", "-V"] {
        let out = vncap(&[flag]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("vncap {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
    for args in [&["-h"][..], &["--help"], &["serve", "--help"]] {
        let out = vncap(args);
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.starts_with("Usage: vncap"), "{help}");
        assert!(
            help.lines().all(|l| l.len() <= 80),
            "{args:?}: lines over 80 columns:\n{help}"
        );
    }
    assert!(String::from_utf8_lossy(&vncap(&["--help"]).stdout).contains("--version"));
}

#[test]
fn every_error_names_the_option_and_what_it_allows() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["serve", "--ticket-timeout", "0"],
            "--ticket-timeout 0: must be a whole number 1-86400",
        ),
        (
            &["serve", "--max-sessions", "0"],
            "--max-sessions 0: must be a whole number 1-1000000",
        ),
        (
            &["serve", "--connect-retries", "101"],
            "--connect-retries 101: must be a whole number 0-100",
        ),
        (
            &["serve", "--control", "/tmp/sock"],
            "a Unix socket is written unix:/tmp/sock",
        ),
        (
            &["serve", "--control", "8888"],
            "--control 8888: expected HOST:PORT",
        ),
        (
            &["serve", "--public-address", "vnc.exämple.org"],
            "--public-address vnc.exämple.org: must be a host name",
        ),
        (
            &["request", "--daddr", "h", "--dport", "1", "--timeout", "0"],
            "--timeout 0: must be a whole number 1-86400",
        ),
        (
            &["flashpolicy", "--listen", "nowhere"],
            "--listen nowhere: expected IP or IP:PORT",
        ),
        (&["serve", "--no-such-option"], "--no-such-option"),
        (&[], "a command is needed"),
    ];
    for (args, want) in cases {
        let out = vncap(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Checks at startup, against the other options and the host.
    support::startup_fails(
        &["--ticket-timeout", "400"],
        "--ticket-timeout 400: must be 1-300 (at most --max-ticket-timeout)",
    );
    support::startup_fails(
        &[
            "--backend-password-file",
            "/nonexistent/vnc-cluster-password",
        ],
        "--backend-password-file /nonexistent/vnc-cluster-password: ",
    );
}

#[test]
fn a_listen_address_this_host_lacks_fails_at_startup() {
    // 192.0.2.0/24 is TEST-NET-1: no host has it.
    let out = vncap(&[
        "serve",
        "--control",
        "127.0.0.1:0",
        "--listen",
        "192.0.2.55",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--listen 192.0.2.55: cannot listen there"),
        "{err}"
    );
}

/// Port 843 without the right (as `nobody`, through setpriv: needs root,
/// as CI is; skipped otherwise): the error says how to get it. The bind
/// fails, so no fixed port is ever held.
#[test]
fn privileged_port_without_the_right_says_how_to_get_it() {
    let unprivileged_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(1024);
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n");
    if root.ok() != Some(true) || unprivileged_start <= 843 {
        eprintln!("skipped: needs root for setpriv, and port 843 privileged");
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            BIN,
        ])
        .args(["flashpolicy", "--listen", "127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "--listen 127.0.0.1:843: ",
        "root",
        "CAP_NET_BIND_SERVICE",
        "vncap-flashpolicy.socket",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[test]
fn busy_entry_ports_are_counted_at_startup() {
    let ports = port_block();
    let held: Vec<_> = (ports.0..ports.0 + 3)
        .map(|p| std::net::TcpListener::bind(("127.0.0.1", p)).expect("a port of the block"))
        .collect();
    let range = format!("{}-{}", ports.0, ports.1);
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--control",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1",
            "--ports",
            &range,
        ],
        ports,
    );
    d.wait_log(|l| {
        l.contains(&format!(
            "--ports {range}: 3 of 8 ports are in use on 127.0.0.1; 5 free"
        ))
    });
    assert!(d.terminate().success());
    let all = format!("{}-{}", ports.0, ports.0 + 2);
    let out = vncap(&[
        "serve",
        "--control",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.1",
        "--ports",
        &all,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--ports {all}: all 3 ports are in use")),
        "{err}"
    );
    drop(held);
}

#[test]
fn settings_file_sets_options_and_the_command_line_wins() {
    let dir = scratch("config");
    let file = dir.join("vncap.toml");
    let ports = port_block();
    // The file's control address cannot be bound: the command line's wins.
    std::fs::write(
        &file,
        format!(
            "# test settings\ncontrol = \"192.0.2.1:1\"\nlisten = \"127.0.0.1\"\nports = \"{}-{}\"\n\
             max-sessions = 7\nlog-level = \"debug\"\nallowed-origin = [\"https://a.example\"]\n",
            ports.0, ports.1
        ),
    )
    .unwrap();
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--control",
            "127.0.0.1:0",
        ],
        ports,
    );
    d.wait_log(|l| l.contains(&format!("settings from {}", file.display())));
    d.wait_log(|l| l.contains(&format!("entry ports {}-{} on 127.0.0.1", ports.0, ports.1)));
    assert!(d.control.port() != 1);
    assert!(d.terminate().success());

    // A bad value names the file, the line and the option's range; so does a
    // check between options, and an unknown key.
    for (text, want) in [
        (
            "\n\nmax-sessions = 0\n",
            ":3: --max-sessions 0: must be a whole number 1-1000000",
        ),
        (
            "ticket-timeout = 100\nmax-ticket-timeout = 60\n",
            ":1: --ticket-timeout 100: must be 1-60",
        ),
        (
            "listen = \"127.0.0.1\"\nmax-sesions = 5\n",
            ":2: max-sesions: not an option of vncap serve",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = vncap(&[
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--control",
            "127.0.0.1:0",
        ]);
        assert_eq!(out.status.code(), Some(1), "{text:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{}{want}", file.display())),
            "{text:?}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn shipped_settings_file_starts_the_daemon() {
    let ports = port_block();
    let range = format!("{}-{}", ports.0, ports.1);
    let conf = dist("vncap.toml");
    let mut d = Daemon::spawn(
        &[
            "serve",
            "--config",
            conf.to_str().unwrap(),
            "--control",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1",
            "--ports",
            &range,
        ],
        ports,
    );
    d.wait_log(|l| l.contains("settings from"));
    assert!(d.terminate().success());
}

/// The long options of `vncap CMD`, from its `--help` usage line, with the
/// argument name (`None` for a switch).
fn options(cmd: &str) -> Vec<(String, Option<String>)> {
    let out = vncap(&[cmd, "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    let usage: String = help
        .split("\n\n")
        .next()
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = usage.split(' ').collect();
    let mut list = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let w = w.trim_start_matches('[').trim_end_matches(']');
        if let Some(name) = w.strip_prefix("--") {
            let arg = words
                .get(i + 1)
                .filter(|a| a.starts_with('<'))
                .map(|a| a.trim_end_matches(']').trim_matches(['<', '>']).to_string());
            list.push((name.to_string(), arg));
        }
    }
    list
}

/// Each option's description in `vncap CMD --help`.
fn descriptions(cmd: &str) -> Vec<(String, String)> {
    let out = vncap(&[cmd, "--help"]);
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let section = help.split("Options:\n").nth(1).unwrap();
    let mut list: Vec<(String, String)> = Vec::new();
    for line in section.lines() {
        if line.trim().is_empty() || !line.starts_with(' ') {
            break;
        }
        if let Some(rest) = line.strip_prefix("  --") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            list.push((
                name.trim_end_matches(',').to_string(),
                text.trim().to_string(),
            ));
        } else if let Some(last) = list.last_mut() {
            if !last.1.is_empty() {
                last.1.push(' ');
            }
            last.1.push_str(line.trim());
        }
    }
    list.retain(|(n, _)| n != "help");
    list
}

fn roff(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// `dist/vncap.8`: `dist/vncap.8.in` with each `@OPTIONS cmd@` replaced by
/// the options of `vncap cmd --help`.
fn man_page() -> String {
    let template = std::fs::read_to_string(dist("vncap.8.in")).unwrap();
    let mut out = String::new();
    for line in template.lines() {
        if let Some(cmd) = line
            .strip_prefix("@OPTIONS ")
            .and_then(|l| l.strip_suffix('@'))
        {
            let args = options(cmd);
            for (name, text) in descriptions(cmd) {
                let arg = args
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, a)| a.clone());
                out.push_str(".TP\n");
                match arg {
                    Some(a) => out.push_str(&format!(
                        ".BI \\-\\-{} \" {}\"\n",
                        roff(&name),
                        roff(a.trim_end_matches("..."))
                    )),
                    None => out.push_str(&format!(".B \\-\\-{}\n", roff(&name))),
                }
                let text = roff(&text);
                let text = text
                    .strip_prefix('.')
                    .map_or(text.clone(), |t| format!("\\&.{t}"));
                out.push_str(&text);
                out.push('\n');
            }
        } else {
            out.push_str(&line.replace("@VERSION@", env!("CARGO_PKG_VERSION")));
            out.push('\n');
        }
    }
    out
}

#[test]
fn man_page_is_generated_from_the_help() {
    let want = man_page();
    let path = dist("vncap.8");
    if std::env::var_os("VNCAP_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "dist/vncap.8 is not what `vncap COMMAND --help` says: run \
         VNCAP_BLESS=1 cargo test -p vncap --test service man_page"
    );
    for cmd in ["serve", "flashpolicy", "request"] {
        for (name, _) in options(cmd) {
            if name != "help" {
                assert!(
                    have.contains(&format!("\\-\\-{}", roff(&name))),
                    "{cmd} --{name}"
                );
            }
        }
    }
}

/// Every serve option but `config` (and `help`).
fn serve_keys() -> Vec<String> {
    options("serve")
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != "help" && n != "config")
        .collect()
}

#[test]
fn shipped_settings_and_uci_files_name_every_option() {
    let toml = std::fs::read_to_string(dist("vncap.toml")).unwrap();
    let uci = std::fs::read_to_string(dist("openwrt/vncap.config")).unwrap();
    for key in serve_keys() {
        assert!(
            toml.contains(&format!("\n#{key} = ")),
            "dist/vncap.toml lacks {key}"
        );
        let uci_name = key.replace('-', "_");
        assert!(
            uci.contains(&format!("option {uci_name} "))
                || uci.contains(&format!("list {uci_name} ")),
            "dist/openwrt/vncap.config lacks {uci_name}"
        );
    }
}

/// The Kubernetes manifest's container arguments are `vncap serve` and its
/// options (`- --name=value` lines), so the manifest cannot drift from the
/// command line.
#[test]
fn kubernetes_manifest_uses_serve_options() {
    let yaml = std::fs::read_to_string(dist("k8s/vncap.yaml")).unwrap();
    let keys = serve_keys();
    let args: Vec<&str> = yaml
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- --"))
        .collect();
    assert!(args.len() >= 8, "no arguments found in dist/k8s/vncap.yaml");
    assert!(
        yaml.contains("- serve\n"),
        "the container runs `vncap serve`"
    );
    for arg in args {
        let name = arg.split('=').next().unwrap();
        assert!(
            keys.iter().any(|k| k == name),
            "dist/k8s/vncap.yaml: --{name} is not a `vncap serve` option"
        );
    }
}

/// The OpenWrt init script under stand-ins for UCI and procd (this machine
/// has neither): UCI options become serve's arguments, switches by
/// vncap's own `--help`, lists repeated, '0' switches left out.
#[test]
fn openwrt_init_script_maps_uci_options_to_arguments() {
    let dir = scratch("openwrt");
    let out = dir.join("command");
    let harness = r#"
uci() {
  case "$3" in
  vncap.main) cat <<'EOF'
vncap.main=vncap
vncap.main.enabled='1'
vncap.main.control='127.0.0.1:0'
vncap.main.ports='20000-20007'
vncap.main.require_tls='0'
vncap.main.control_tls='1'
vncap.main.allowed_origin='https://a.example' 'https://b.example'
vncap.main.domain='*'
vncap.main.max_sessions='7'
EOF
  ;;
  esac
}
config_load() { :; }
config_get_bool() { if [ "$2" = main ]; then eval "$1=1"; else eval "$1=0"; fi; }
config_get() { eval "$1="; }
procd_open_instance() { :; }
procd_close_instance() { :; }
procd_set_param() { if [ "$1" = command ]; then shift; printf '%s\n' "$@" > "$OUT"; fi; }
procd_append_param() { if [ "$1" = command ]; then shift; printf '%s\n' "$@" >> "$OUT"; fi; }
user_exists() { return 0; }
. "$INIT"
PROG="$VNCAP"
start_service
"#;
    let status = Command::new("sh")
        .args(["-e", "-c", harness])
        .env("INIT", dist("openwrt/vncap.init"))
        .env("VNCAP", BIN)
        .env("OUT", &out)
        .current_dir(&dir)
        .status()
        .expect("sh");
    assert!(status.success());
    let command = std::fs::read_to_string(&out).unwrap();
    let want = [
        BIN,
        "serve",
        "--control",
        "127.0.0.1:0",
        "--ports",
        "20000-20007",
        "--control-tls",
        "--allowed-origin",
        "https://a.example",
        "--allowed-origin",
        "https://b.example",
        "--domain",
        "*",
        "--max-sessions",
        "7",
    ];
    assert_eq!(command.lines().collect::<Vec<_>>(), want);
    std::fs::remove_dir_all(&dir).ok();
}

/// Runs vncap `args` with `listener` as descriptor 3 and `LISTEN_PID`
/// naming it, as systemd's socket activation does (python3 sets it up and
/// execs, since a socket has to survive exec), and `NOTIFY_SOCKET` bound by
/// the test. Returns the child, the listener's port and the notify socket.
fn activated(args: &[&str], tag: &str) -> (Child, u16, UnixDatagram, PathBuf) {
    let dir = scratch(tag);
    let notify = dir.join("notify");
    let _ = std::fs::remove_file(&notify);
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let script = "import os, socket, sys\n\
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(16)\n\
        print(s.getsockname()[1], flush=True)\n\
        os.dup2(s.fileno(), 3); os.set_inheritable(3, True)\n\
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES=sys.argv[1])\n\
        os.execv(sys.argv[2], sys.argv[2:])\n";
    let mut child = Command::new("python3")
        .args(["-c", script, tag, BIN])
        .args(args)
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (
        Child(Some(child)),
        line.trim().parse().expect("port"),
        sock,
        dir,
    )
}

/// The next datagram on the notify socket (a signal may interrupt the wait).
fn recv(notify: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    loop {
        match notify.recv(&mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("no datagram on NOTIFY_SOCKET: {e}"),
        }
    }
}

/// A child process killed if the test fails before [`Child::stop`].
struct Child(Option<std::process::Child>);

impl Child {
    /// SIGTERM, then the exit status must be success.
    fn stop(mut self) {
        let mut child = self.0.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn serve_takes_its_control_socket_from_systemd_and_says_ready() {
    let ports = port_block();
    let range = format!("{}-{}", ports.0, ports.1);
    // --control names an address that cannot be bound: the passed socket is used.
    let (child, port, notify, dir) = activated(
        &[
            "serve",
            "--control",
            "192.0.2.1:1",
            "--listen",
            "127.0.0.1",
            "--ports",
            &range,
        ],
        "control",
    );
    let msg = recv(&notify);
    assert!(msg.starts_with("READY=1\n"), "{msg}");
    assert!(
        msg.contains(&format!("control on 127.0.0.1:{port}")),
        "{msg}"
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"{\"daddr\": \"127.0.0.1\", \"dport\": 1, \"password\": \"pw\"}\n")
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let entry: u16 = reply
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("a port: {reply:?}"));
    assert!((ports.0..=ports.1).contains(&entry));
    child.stop();
    assert_eq!(recv(&notify), "STOPPING=1");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn flashpolicy_takes_port_843_from_systemd() {
    let (child, port, notify, dir) = activated(
        // Were the socket not taken, --listen is a free port, never 843.
        &[
            "flashpolicy",
            "--listen",
            "127.0.0.1:0",
            "--ports",
            "7000-7010",
        ],
        "flashpolicy",
    );
    assert_eq!(recv(&notify), "READY=1");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(b"<policy-file-request/>\0").unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("to-ports=\"7000-7010\""), "{reply}");
    child.stop();
    std::fs::remove_dir_all(&dir).ok();
}
