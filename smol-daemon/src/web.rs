//! `--web-root DIR`: static files on the single port beside the WebSocket
//! consoles, so noVNC's page and its console share one origin and one
//! certificate. Which requests get a file, which path, the status and the
//! response head are the core's (`vncap_core::web`, routed by the entry
//! machine's [`Event::Serve`](vncap_core::entry::Event::Serve)); this file
//! opens the file strictly below DIR and streams its bytes.
//!
//! Opening: DIR is opened once at start; every file is opened relative to
//! it with `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so no
//! path and no symlink leads out of DIR (a symlink that stays inside works:
//! Debian's `/usr/share/novnc/vnc_auto.html` is one). On a kernel without
//! `openat2` (before Linux 5.6, or a seccomp filter that hides it) each
//! component is opened with `O_NOFOLLOW` relative to the one before, and
//! then no symlink is followed at all. Never a path joined to DIR and
//! canonicalised (racy). Only regular files are served, opened with
//! `O_NONBLOCK` (a FIFO cannot stall the open); a directory gets its
//! `index.html`, else 404. One request per connection; the answer must be
//! written within [`send_timeout`]. A connection holds its handshake pass
//! until then, like any viewer before authentication.

use crate::daemon::Daemon;
use crate::transport::{ByteWrite, HEADROOM};
use futures_lite::io::AsyncReadExt;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vncap_core::entry::Entry;
use vncap_core::web::{Body, Method};

/// Bytes read from a file and written at a time.
const CHUNK: usize = 64 * 1024;
/// The least time an answer may take to write (more with a longer
/// `--handshake-timeout`).
const MIN_SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory of `--web-root`, open.
pub struct WebRoot {
    dir: OwnedFd,
    path: PathBuf,
    /// `openat2` with `RESOLVE_BENEATH` works here (else: component by
    /// component, no symlinks).
    beneath: bool,
}

impl fmt::Debug for WebRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebRoot")
            .field("path", &self.path)
            .field("beneath", &self.beneath)
            .finish()
    }
}

/// What was found for a request: the open file and what the core needs.
struct Found {
    file: File,
    body: Body,
}

impl WebRoot {
    /// Opens `path` (a directory) for serving.
    pub fn open(path: &Path) -> Result<Arc<WebRoot>, String> {
        let at = |e: &dyn fmt::Display| format!("--web-root {}: {e}", path.display());
        let dir = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOTDIR => at(&"not a directory"),
            e => at(&io::Error::from(e)),
        })?;
        let beneath = match rustix::fs::openat2(
            &dir,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            resolve(),
        ) {
            Ok(_) => true,
            Err(Errno::NOSYS | Errno::PERM) => {
                log::warn!(
                    "--web-root {}: this kernel has no openat2(2); symlinks below it are not followed",
                    path.display()
                );
                false
            }
            Err(e) => return Err(at(&io::Error::from(e))),
        };
        Ok(Arc::new(WebRoot {
            dir,
            path: path.to_path_buf(),
            beneath,
        }))
    }

    /// The directory, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` (a path the core checked: relative, no dot or empty
    /// segments) below the directory: a regular file, or a directory's
    /// `index` (the core's [`vncap_core::web::Request::index_path`]).
    fn find(&self, rel: &str, index: Option<&str>) -> io::Result<Found> {
        let fd = self.open_beneath(rel).map_err(|e| match e {
            Errno::XDEV => io::Error::other("it leads outside --web-root"),
            Errno::LOOP if !self.beneath => io::Error::other("a symlink (not followed here)"),
            e => io::Error::from(e),
        })?;
        let stat = rustix::fs::fstat(&fd)?;
        match (FileType::from_raw_mode(stat.st_mode), index) {
            (FileType::RegularFile, _) => Ok(Found {
                file: File::from(fd),
                body: Body {
                    len: stat.st_size as u64,
                    index: false,
                },
            }),
            (FileType::Directory, Some(index)) => {
                let found = self.find(index, None)?;
                Ok(Found {
                    body: Body {
                        index: true,
                        ..found.body
                    },
                    ..found
                })
            }
            (FileType::Directory, None) => Err(io::Error::other("a directory without index.html")),
            _ => Err(io::Error::other("not a regular file")),
        }
    }

    fn open_beneath(&self, rel: &str) -> Result<OwnedFd, Errno> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        if self.beneath {
            return rustix::fs::openat2(&self.dir, rel, flags, Mode::empty(), resolve());
        }
        open_walking(self.dir.as_fd(), rel, flags)
    }
}

/// Nothing resolves above the directory, and no `/proc` magic links.
fn resolve() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

/// Opens `rel` one component at a time below `dir`, following no symlink
/// (the fallback without `openat2`).
fn open_walking(
    dir: std::os::fd::BorrowedFd<'_>,
    rel: &str,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    let (dirs, last) = match rel.rsplit_once('/') {
        Some((dirs, last)) => (Some(dirs), last),
        None => (None, rel),
    };
    let mut at: Option<OwnedFd> = None;
    for part in dirs.into_iter().flat_map(|d| d.split('/')) {
        let here = at.as_ref().map_or(dir, |fd| fd.as_fd());
        let next = rustix::fs::openat(
            here,
            part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        at = Some(next);
    }
    let here = at.as_ref().map_or(dir, |fd| fd.as_fd());
    rustix::fs::openat(here, last, flags | OFlags::NOFOLLOW, Mode::empty())
}

/// How long writing one answer may take: `--handshake-timeout`, but at
/// least [`MIN_SEND_TIMEOUT`].
pub fn send_timeout(d: &Daemon) -> Duration {
    d.settings.handshake_timeout.max(MIN_SEND_TIMEOUT)
}

/// After [`Event::Serve`](vncap_core::entry::Event::Serve): finds the
/// file, lets the core answer, writes the head and (for a GET of a file
/// found) the file's bytes, then closes. Returns what to log: `Ok` for a
/// file sent, `Err` for a 404 or a failed write.
pub async fn serve<W: ByteWrite>(
    d: &Daemon,
    m: &mut Entry<'_>,
    w: &mut W,
) -> Result<String, String> {
    let Some(root) = d.settings.web_root.clone() else {
        let _ = m.web_respond(None);
        let _ = crate::drive::flush(m, w).await;
        w.close().await;
        return Err("static file: no --web-root".into());
    };
    let Some(req) = m.web_request() else {
        return Err("static file: no request".into());
    };
    let method = match req.method() {
        Method::Get => "GET",
        Method::Head => "HEAD",
    };
    let path = req.path().to_string();
    let index = req.index_path().map(|p| p.to_string());
    let rel = path.clone();
    let found = smol::unblock(move || root.find(&rel, index.as_deref())).await;
    let (found, why) = match found {
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(e)),
    };
    let body = m.web_respond(found.as_ref().map(|f| f.body));
    let sent = crate::backend::with_timeout(send_timeout(d), async {
        crate::drive::flush(m, w).await?;
        match found {
            Some(f) if body => send_file(f.file, f.body.len, w).await,
            _ => Ok(()),
        }
    })
    .await;
    w.close().await;
    match (why, sent) {
        (Some(e), _) => Err(format!("static file: {method} /{path}: 404 ({e})")),
        (None, Err(e)) => Err(format!(
            "static file: {method} /{path}: 200, but writing it: {e}"
        )),
        (None, Ok(())) => Ok(format!("static file: {method} /{path}: 200")),
    }
}

/// Writes the first `len` bytes of `file` (fewer if it shrank: the
/// connection then ends short of its Content-Length).
async fn send_file<W: ByteWrite>(file: File, len: u64, w: &mut W) -> io::Result<()> {
    let mut reader = smol::Unblock::new(file).take(len);
    let mut buf = vec![0u8; HEADROOM + CHUNK];
    loop {
        let n = reader.read(&mut buf[HEADROOM..]).await?;
        if n == 0 {
            return Ok(());
        }
        w.write_payload(&mut buf, HEADROOM..HEADROOM + n).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vncap-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/app")).unwrap();
        std::fs::write(dir.join("root/vnc.html"), "<html>").unwrap();
        std::fs::write(dir.join("root/app/index.html"), "app").unwrap();
        std::fs::write(dir.join("secret.txt"), "secret").unwrap();
        symlink("../secret.txt", dir.join("root/out")).unwrap();
        symlink("vnc.html", dir.join("root/in.html")).unwrap();
        symlink("..", dir.join("root/up")).unwrap();
        dir
    }

    fn len(r: &WebRoot, rel: &str, index: Option<&str>) -> Option<u64> {
        r.find(rel, index).ok().map(|f| f.body.len)
    }

    #[test]
    fn both_ways_of_opening_stay_below_the_directory() {
        let dir = scratch("open");
        let beneath = WebRoot::open(&dir.join("root")).unwrap();
        assert!(beneath.beneath, "this kernel has openat2");
        let walking = WebRoot {
            dir: rustix::fs::open(
                dir.join("root"),
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .unwrap(),
            path: dir.join("root"),
            beneath: false,
        };
        for r in [&beneath, &walking] {
            assert_eq!(len(r, "vnc.html", None), Some(6));
            assert_eq!(len(r, "app", Some("app/index.html")), Some(3));
            assert!(r.find("app", Some("app/index.html")).unwrap().body.index);
            assert_eq!(len(r, "app", None), None);
            assert_eq!(len(r, "out", None), None, "a symlink out");
            assert_eq!(
                len(r, "up/secret.txt", None),
                None,
                "a symlinked directory out"
            );
            assert_eq!(len(r, "nope", None), None);
        }
        // A symlink that stays inside: followed by openat2 only.
        assert_eq!(len(&beneath, "in.html", None), Some(6));
        assert_eq!(len(&walking, "in.html", None), None);
        let e = WebRoot::open(&dir.join("root/vnc.html")).unwrap_err();
        assert!(e.contains("not a directory"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
