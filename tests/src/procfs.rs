//! What the harnesses (`vncap-bench`, `vncap-soak`) need of the processes
//! they start and of Linux's `/proc`: a process tree killed on drop
//! ([`Proc`]), its descendants, memory lines, open descriptors and
//! open-file limit, which entry ports listen, and the quantiles they report.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};

/// Raises this process's soft open-file limit to the hard one (a harness
/// holds two descriptors per session: its viewer and its backend).
pub fn raise_fd_limit() {
    let Ok(out) = Command::new("sh").args(["-c", "ulimit -Hn"]).output() else {
        return;
    };
    let hard = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // std has no setrlimit; prlimit(1) (util-linux) sets it on this process.
    let _ = Command::new("prlimit")
        .args([
            format!("--pid={}", std::process::id()),
            format!("--nofile={hard}:{hard}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A process tree the harness started; killed (the whole tree) on drop.
pub struct Proc {
    /// The process (its root).
    pub child: Child,
}

impl Proc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The root first: nginx's master respawns a worker killed before it.
        let mut pids = vec![self.pid()];
        pids.extend(descendants(self.pid()));
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// Fields of /proc/PID/stat after the command name (the state letter as 0).
pub fn stat_fields(pid: u32) -> Option<Vec<u64>> {
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
pub fn descendants(root: u32) -> Vec<u32> {
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

/// `root` and every live descendant.
pub fn tree(root: u32) -> Vec<u32> {
    let mut t = vec![root];
    t.extend(descendants(root));
    t
}

/// A `kB` line of a /proc file.
pub fn proc_kb(path: &str, key: &str) -> u64 {
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

/// Open descriptors of `pid`, and how many of them are pipes.
pub fn fd_counts(pid: u32) -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return (0, 0);
    };
    dir.flatten().fold((0, 0), |(all, pipes), e| {
        let pipe = std::fs::read_link(e.path())
            .map(|t| t.to_string_lossy().starts_with("pipe:"))
            .unwrap_or(false);
        (all + 1, pipes + usize::from(pipe))
    })
}

/// The soft open-file limit of `pid` (`/proc/PID/limits`).
pub fn open_file_limit(pid: u32) -> Option<usize> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `v` in ascending order.
pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// The `q` quantile of `v` (nearest rank; NaN when empty).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let s = sorted(v);
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((s.len() - 1) as f64 * q).round() as usize;
    s[i.min(s.len() - 1)]
}

/// The ports in `lo..=hi` on which a socket of process `pid` listens
/// (IPv4 or IPv6, from /proc/net/tcp and tcp6 matched to the socket inodes
/// in /proc/PID/fd; asking opens no connection, and another program's
/// listeners in the range do not count).
pub fn listening_ports(pid: u32, lo: u16, hi: u16) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|t| {
                    let t = t.to_string_lossy();
                    Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(s) = std::fs::read_to_string(table) else {
            continue;
        };
        for l in s.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() <= 9 || f[3] != "0A" || !inodes.iter().any(|i| i == f[9]) {
                continue;
            }
            let Some(port) = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            else {
                continue;
            };
            if (lo..=hi).contains(&port) && !out.contains(&port) {
                out.push(port);
            }
        }
    }
    out.sort_unstable();
    out
}
