//! The relay: after both handshakes, copy bytes both ways until either side
//! closes, then close both. Each direction reads into one buffer and writes it
//! out before reading again, so a slow viewer slows the backend read (TCP
//! backpressure) and no buffer ever grows.
//!
//! An idle direction waits with a small buffer ([`SMALL`], inside the
//! session's task). A read that fills it means data is streaming: the
//! direction then takes a large buffer (`buf_size`) from a per-thread free
//! list, keeps it while reads keep filling it, and gives it back after the
//! first short read (the socket had nothing more), before waiting again. So an
//! idle session holds no large buffer, except one that stopped exactly on a
//! full read. Plain TCP on both sides does not come here (`splice.rs`).

use crate::transport::{ByteRead, ByteWrite, HEADROOM};
use std::cell::RefCell;
use std::io;

/// The buffer an idle direction waits with, bytes.
pub const SMALL: usize = 2048;
/// Large buffers kept for reuse (8 × 256 KiB at most stay allocated after
/// bursts).
const FREE_BUFFERS: usize = 8;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A large buffer of `len` bytes from the free list, or a new one.
fn take_buffer(len: usize) -> Box<[u8]> {
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        match f.iter().position(|b| b.len() == len) {
            Some(i) => f.swap_remove(i),
            None => vec![0u8; len].into_boxed_slice(),
        }
    })
}

/// Gives a large buffer back (freed if the free list is full).
fn give_buffer(b: Box<[u8]>) {
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < FREE_BUFFERS {
            f.push(b);
        }
    });
}

/// How a relay ended.
#[derive(Debug)]
pub struct RelayEnd {
    /// Which side ended it.
    pub closed_by: Side,
    /// The error that ended it, if it was not a clean EOF.
    pub error: Option<io::Error>,
}

/// One end of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The browser or native viewer.
    Viewer,
    /// The VNC server.
    Backend,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Viewer => "viewer",
            Side::Backend => "backend",
        })
    }
}

/// Copies from `r` to `w` until EOF or error: waits with a small buffer,
/// streams with a large one of `buf_size` bytes.
async fn pump<R: ByteRead, W: ByteWrite>(r: &mut R, w: &mut W, buf_size: usize) -> io::Result<()> {
    let mut small = [0u8; HEADROOM + SMALL];
    let mut large: Option<Box<[u8]>> = None;
    let result = loop {
        let buf: &mut [u8] = match large.as_mut() {
            Some(b) => b,
            None => &mut small,
        };
        let n = match r.read_bytes(&mut buf[HEADROOM..]).await {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        let full = n == buf.len() - HEADROOM;
        if let Err(e) = w.write_payload(buf, HEADROOM..HEADROOM + n).await {
            break Err(e);
        }
        match (full, large.is_some()) {
            (true, false) if buf_size > SMALL => large = Some(take_buffer(HEADROOM + buf_size)),
            (false, true) => large.take().into_iter().for_each(give_buffer),
            _ => {}
        }
    };
    large.into_iter().for_each(give_buffer);
    result
}

/// Relays viewer ⇄ backend with buffers of `buf_size` bytes each way, then
/// closes both writers.
pub async fn relay<VR, VW, BR, BW>(
    viewer: (&mut VR, &mut VW),
    backend: (&mut BR, &mut BW),
    buf_size: usize,
) -> RelayEnd
where
    VR: ByteRead,
    VW: ByteWrite,
    BR: ByteRead,
    BW: ByteWrite,
{
    let (vr, vw) = viewer;
    let (br, bw) = backend;
    let end = futures_lite::future::or(
        async { (Side::Viewer, pump(vr, bw, buf_size).await) },
        async { (Side::Backend, pump(br, vw, buf_size).await) },
    )
    .await;
    vw.close().await;
    bw.close().await;
    RelayEnd {
        closed_by: end.0,
        error: end.1.err(),
    }
}
