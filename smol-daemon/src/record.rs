//! `vncap serve --record DIR`: every connection's RFB bytes, both ways, as
//! text files a replay test can read (the fixture format of
//! `tests/src/fixture.rs`).
//!
//! Each viewer connection gets `DIR/<secs>-<pid>-<n>-viewer.txt`: the RFB
//! payload after TLS and WebSocket are taken off (`C:` the viewer, `S:`
//! vncap). When it reaches a backend, `DIR/<secs>-<pid>-<n>-backend.txt`
//! follows (`C:` vncap, `S:` the backend). A file opens with `# key: value`
//! lines (vncap's version, the leg, the addresses, the start time); then one
//! `C: xx xx …` or `S: xx xx …` line per read or write, in the order vncap saw
//! them. `<secs>` is the Unix time the viewer connected, `<pid>` vncap's
//! process id, `<n>` a per-process counter, and files are created with
//! `O_EXCL`, mode 0600: two sessions never share a file. The files hold the
//! VNC challenge and response (and everything typed into the console): treat
//! them like a password file.
//!
//! A [`Tap`] wraps a transport half and copies what passes through it into its
//! [`Recording`]; with no recording it only forwards. Writes are recorded
//! before they are sent, so a reply never precedes its cause in the file.
//! File errors stop that recording (logged once); the session goes on.

use crate::transport::{ByteRead, ByteWrite};
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use vncap_core::entry::Transcript;

/// Which tag the bytes through a half get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// From the side that opened the connection (`C:`).
    Client,
    /// From the side that accepted it (`S:`).
    Server,
}

/// One connection's recording file.
pub struct Recording {
    file: RefCell<Option<File>>,
    path: PathBuf,
    /// `<secs>-<pid>-<n>`, shared by a session's two legs.
    stem: String,
    failed: Cell<bool>,
}

impl Recording {
    /// Starts the viewer leg of a new connection in `dir`.
    pub fn viewer(dir: &Path, peer: SocketAddr, door: &str) -> io::Result<Rc<Recording>> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let stem = format!("{secs}-{}-{n}", std::process::id());
        let header = [
            (
                "leg",
                "viewer (C: the viewer, S: vncap; RFB after TLS/WebSocket)".to_string(),
            ),
            ("viewer", peer.to_string()),
            ("door", door.to_string()),
            ("started", secs.to_string()),
        ];
        Recording::create(dir, stem, "viewer", &header)
    }

    /// Starts the backend leg of the session whose viewer leg is `self`.
    pub fn backend(&self, host: &str, port: u16) -> io::Result<Rc<Recording>> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let header = [
            ("leg", "backend (C: vncap, S: the backend)".to_string()),
            ("backend", format!("{host}:{port}")),
            ("viewer-leg", format!("{}-viewer.txt", self.stem)),
        ];
        Recording::create(dir, self.stem.clone(), "backend", &header)
    }

    fn create(
        dir: &Path,
        stem: String,
        leg: &str,
        header: &[(&str, String)],
    ) -> io::Result<Rc<Recording>> {
        let path = dir.join(format!("{stem}-{leg}.txt"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let mut text = format!(
            "# recorded-by: vncap {} serve --record\n",
            env!("CARGO_PKG_VERSION")
        );
        for (k, v) in header {
            let _ = writeln!(text, "# {k}: {v}");
        }
        file.write_all(text.as_bytes())?;
        Ok(Rc::new(Recording {
            file: RefCell::new(Some(file)),
            path,
            stem,
            failed: Cell::new(false),
        }))
    }

    /// Appends one chunk as a tagged hex line.
    pub fn chunk(&self, tag: Tag, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut file = self.file.borrow_mut();
        let Some(f) = file.as_mut() else { return };
        let mut line = String::with_capacity(3 + bytes.len() * 3 + 1);
        line.push_str(match tag {
            Tag::Client => "C:",
            Tag::Server => "S:",
        });
        for b in bytes {
            let _ = write!(line, " {b:02x}");
        }
        line.push('\n');
        if let Err(e) = f.write_all(line.as_bytes()) {
            if !self.failed.replace(true) {
                log::warn!("recording {}: {e}; recording stopped", self.path.display());
            }
            *file = None;
        }
    }
}

/// Starts a recording, or logs why not (the connection goes on unrecorded).
pub fn start(made: io::Result<Rc<Recording>>) -> Option<Rc<Recording>> {
    match made {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn!("--record: {e}; this connection is not recorded");
            None
        }
    }
}

/// A transport half whose bytes are copied into a recording, if it has one.
pub struct Tap<T> {
    /// The half itself.
    pub inner: T,
    rec: Option<(Rc<Recording>, Tag)>,
}

impl<T> Tap<T> {
    /// Wraps `inner`; what passes through it is tagged `tag` in `rec`.
    pub fn new(inner: T, rec: Option<&Rc<Recording>>, tag: Tag) -> Tap<T> {
        Tap {
            inner,
            rec: rec.map(|r| (r.clone(), tag)),
        }
    }
}

impl<T: ByteRead> ByteRead for Tap<T> {
    async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read_bytes(buf).await?;
        if let Some((rec, tag)) = &self.rec {
            rec.chunk(*tag, &buf[..n]);
        }
        Ok(n)
    }

    fn cancel_safe(&self) -> bool {
        self.inner.cancel_safe()
    }
}

impl<T: ByteWrite> ByteWrite for Tap<T> {
    async fn write_payload(&mut self, buf: &mut [u8], payload: Range<usize>) -> io::Result<()> {
        if let Some((rec, tag)) = &self.rec {
            rec.chunk(*tag, &buf[payload.clone()]);
        }
        self.inner.write_payload(buf, payload).await
    }

    async fn close(&mut self) {
        self.inner.close().await;
    }
}

/// Writes the entry machine's RFB transcript to `rec`, from message `from`
/// on; returns the number of messages it holds.
pub fn write_transcript(rec: &Recording, transcript: Option<&Transcript>, from: usize) -> usize {
    let Some(t) = transcript else { return from };
    let mut n = 0;
    for (from_viewer, bytes) in t.records() {
        if n >= from {
            rec.chunk(
                if from_viewer {
                    Tag::Client
                } else {
                    Tag::Server
                },
                bytes,
            );
        }
        n += 1;
    }
    n
}
