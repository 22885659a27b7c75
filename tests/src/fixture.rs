//! Recorded byte streams as tagged hex.
//!
//! A fixture file (under `tests/fixtures/`) is text:
//!
//! ```text
//! # peers: vncdotool 1.2 -> Xvnc (TigerVNC 1.12) -SecurityTypes VncAuth
//! # challenge: 0102030405060708090a0b0c0d0e0f10
//! # password: secret
//! # how: socat -x TCP-LISTEN:5999 TCP:127.0.0.1:5901, Debian 12
//! S: 52 46 42 20 30 30 33 2e 30 30 38 0a
//! C: 52 46 42 20 30 30 33 2e 30 30 38 0a
//! ```
//!
//! `# key: value` lines form the header; `C:` lines are bytes the client sent,
//! `S:` lines bytes the server sent, in order. Consecutive lines of the same
//! direction form one record; blank lines and other `#` comments are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Who sent a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The client (viewer, browser, GWM) sent it.
    Client,
    /// The server (vncap, or the VNC server being recorded) sent it.
    Server,
}

/// A parsed fixture.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    /// The `# key: value` header lines.
    pub header: BTreeMap<String, String>,
    /// The records, in the order they crossed the wire.
    pub records: Vec<(Dir, Vec<u8>)>,
}

impl Fixture {
    /// Parses fixture text; panics with the line number on malformed input
    /// (fixtures are test data: a bad one should fail loudly).
    pub fn parse(text: &str) -> Fixture {
        let mut f = Fixture::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                if let Some((k, v)) = rest.split_once(':') {
                    f.header.insert(k.trim().to_string(), v.trim().to_string());
                }
                continue;
            }
            let (dir, hex) = if let Some(h) = line.strip_prefix("C:") {
                (Dir::Client, h)
            } else if let Some(h) = line.strip_prefix("S:") {
                (Dir::Server, h)
            } else {
                panic!("fixture line {}: expected `C:`, `S:` or `#`", n + 1);
            };
            let bytes = parse_hex(hex).unwrap_or_else(|e| panic!("fixture line {}: {e}", n + 1));
            match f.records.last_mut() {
                Some((d, b)) if *d == dir => b.extend_from_slice(&bytes),
                _ => f.records.push((dir, bytes)),
            }
        }
        f
    }

    /// Loads `tests/fixtures/<name>`.
    pub fn load(name: &str) -> Fixture {
        let path = fixtures_dir().join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Fixture::parse(&text)
    }

    /// A header value, panicking if the fixture lacks it.
    pub fn get(&self, key: &str) -> &str {
        self.header
            .get(key)
            .unwrap_or_else(|| panic!("fixture has no `# {key}:` header"))
    }

    /// A header value decoded from hex.
    pub fn get_hex(&self, key: &str) -> Vec<u8> {
        parse_hex(self.get(key)).unwrap_or_else(|e| panic!("header {key}: {e}"))
    }

    /// Every byte sent in one direction, concatenated.
    pub fn stream(&self, dir: Dir) -> Vec<u8> {
        self.records
            .iter()
            .filter(|(d, _)| *d == dir)
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }
}

/// The workspace's `tests/fixtures/` directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Parses whitespace-separated (or contiguous) hex digits.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).map_err(|e| e.to_string())?;
            u8::from_str_radix(s, 16).map_err(|e| format!("bad hex {s:?}: {e}"))
        })
        .collect()
}

/// Formats bytes as fixture hex: `xx xx xx`, 16 to a line, each line tagged.
pub fn format_hex(dir: Dir, bytes: &[u8]) -> String {
    let tag = match dir {
        Dir::Client => "C:",
        Dir::Server => "S:",
    };
    bytes
        .chunks(16)
        .map(|c| {
            let hex: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("{tag} {}\n", hex.join(" "))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_merges_records() {
        let f = Fixture::parse("# password: pw\n# note\nS: 01 02\nS: 03\nC: ff\n\nS:04");
        assert_eq!(f.get("password"), "pw");
        assert_eq!(
            f.records,
            vec![
                (Dir::Server, vec![1, 2, 3]),
                (Dir::Client, vec![0xff]),
                (Dir::Server, vec![4])
            ]
        );
        assert_eq!(f.stream(Dir::Server), vec![1, 2, 3, 4]);
        assert_eq!(
            Fixture::parse(&format_hex(Dir::Client, &[9; 40])).stream(Dir::Client),
            vec![9; 40]
        );
    }
}
