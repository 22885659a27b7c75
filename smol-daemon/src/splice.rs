//! The relay for a native viewer on plain TCP in front of a plain TCP
//! backend: the bytes never enter the process. Each direction moves them
//! socket → pipe → socket with `splice(2)` (Linux), driven by the sockets'
//! readiness on the executor (non-blocking splices; `EAGAIN` means "wait for
//! readable" when filling the pipe and "wait for writable" when draining it).
//!
//! Idle sessions hold no pipe: a direction takes a pipe from a small
//! per-thread free list when its socket becomes readable and gives it back
//! once the pipe is empty and the socket has nothing more, so what an idle
//! session costs is its two sockets. Pipes are raised to 1 MiB
//! (`F_SETPIPE_SZ`; a quarter of the syscalls of the 64 KiB default, half
//! the CPU per GiB of a tuned socat): kernel memory held only while bytes
//! are in flight, up to 1 MiB per streaming direction. The free list is kept
//! at 16 pipes so unprivileged daemons stay under the default per-user pipe
//! quota (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB).
//! The generic relay (`relay.rs`) stays for every other transport.
//! What is spliced is counted into the session's [`Meter`].

use crate::meter::{Direction, Meter};
use crate::relay::{RelayEnd, Side, Stop, YIELD_EVERY};
use rustix::io::Errno;
use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use smol::Async;
use std::cell::RefCell;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// Pipes kept for reuse (each is two descriptors).
const FREE_PIPES: usize = 16;
/// Pipe capacity asked for (`F_SETPIPE_SZ`).
const PIPE_SIZE: usize = 1024 * 1024;
/// Most bytes asked of one splice (the pipe takes what fits).
const SPLICE_LEN: usize = 1 << 20;

thread_local! {
    static FREE: RefCell<Vec<(OwnedFd, OwnedFd)>> = const { RefCell::new(Vec::new()) };
}

/// An empty pipe, from the free list or new.
fn take_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    if let Some(p) = FREE.with(|f| f.borrow_mut().pop()) {
        return Ok(p);
    }
    let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    // Larger than the 64 KiB default: fewer splices per MiB. Where the
    // system refuses (pipe-max-size, a user's pipe quota), the default stays.
    let _ = fcntl_setpipe_size(&w, PIPE_SIZE);
    Ok((r, w))
}

/// Before a spliced session is promised to its viewer: makes sure the free
/// list holds a pipe for each direction (the session's first burst takes
/// them), or says why the system gives none (out of descriptors).
pub fn reserve() -> io::Result<()> {
    let have = FREE.with(|f| f.borrow().len());
    let mut made = Vec::new();
    for _ in have..2 {
        made.push(take_pipe()?);
    }
    made.into_iter().for_each(give_pipe);
    Ok(())
}

/// Gives back an empty pipe (closed if the free list is full).
fn give_pipe(p: (OwnedFd, OwnedFd)) {
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < FREE_PIPES {
            f.push(p);
        }
    });
}

fn flags() -> SpliceFlags {
    SpliceFlags::MOVE | SpliceFlags::NONBLOCK
}

/// Moves bytes `from` (side `sides.0`) → `to` (side `sides.1`) until EOF
/// or error.
async fn pump(
    from: &Async<TcpStream>,
    to: &Async<TcpStream>,
    sides: (Side, Side),
    meter: &Meter,
) -> Stop {
    loop {
        // Idle: wait with no pipe held.
        if let Err(e) = from.readable().await {
            return (sides.0, Some(e));
        }
        let pipe = match take_pipe() {
            Ok(p) => p,
            Err(e) => return (sides.0, Some(e)),
        };
        match burst(from, to, &pipe, sides, meter).await {
            // The pipe is empty only when the burst ended cleanly.
            None => give_pipe(pipe),
            Some(stop) => return stop,
        }
    }
}

/// Splices while `from` has data; `None` when it has no more for now (the
/// pipe is empty again), else how the direction stopped.
async fn burst(
    from: &Async<TcpStream>,
    to: &Async<TcpStream>,
    (pr, pw): &(OwnedFd, OwnedFd),
    (from_side, to_side): (Side, Side),
    meter: &Meter,
) -> Option<Stop> {
    let dir = match from_side {
        Side::Viewer => Direction::ToBackend,
        Side::Backend => Direction::ToViewer,
    };
    let mut splices = 0u32;
    loop {
        let mut in_pipe = match splice(from, None, pw, None, SPLICE_LEN, flags()) {
            Ok(0) => return Some((from_side, None)),
            Ok(n) => {
                meter.add(dir, n);
                n
            }
            Err(Errno::AGAIN) => return None,
            Err(Errno::INTR) => continue,
            Err(e) => return Some((from_side, Some(e.into()))),
        };
        while in_pipe > 0 {
            match splice(pr, None, to, None, in_pipe, flags()) {
                Ok(0) => return Some((to_side, Some(io::ErrorKind::WriteZero.into()))),
                Ok(n) => in_pipe -= n,
                Err(Errno::AGAIN) => {
                    if let Err(e) = to.writable().await {
                        return Some((to_side, Some(e)));
                    }
                }
                Err(Errno::INTR) => {}
                Err(e) => return Some((to_side, Some(e.into()))),
            }
        }
        // Fairness (see relay.rs): a streaming direction lets others run.
        splices += 1;
        if splices % YIELD_EVERY == 0 {
            futures_lite::future::yield_now().await;
        }
    }
}

/// Relays viewer ⇄ backend by splicing until either side closes, then shuts
/// both sockets' writing sides (as [`crate::relay::relay`] does); counts
/// into `meter`.
pub async fn relay(
    viewer: smol::net::TcpStream,
    backend: smol::net::TcpStream,
    meter: &Meter,
) -> RelayEnd {
    let v: Arc<Async<TcpStream>> = viewer.into();
    let b: Arc<Async<TcpStream>> = backend.into();
    let (closed_by, error) = futures_lite::future::or(
        pump(&v, &b, (Side::Viewer, Side::Backend), meter),
        pump(&b, &v, (Side::Backend, Side::Viewer), meter),
    )
    .await;
    let _ = v.get_ref().shutdown(Shutdown::Write);
    let _ = b.get_ref().shutdown(Shutdown::Write);
    RelayEnd { closed_by, error }
}
