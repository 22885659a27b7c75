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
//!
//! Fairness: a socket with data ready never makes a read wait, so a
//! streaming direction yields to the executor every [`YIELD_EVERY`] copies;
//! one fast session cannot starve the others, the control channel or the
//! handshake deadlines on the single thread. The budget counts reads, so
//! every reader hands out all it has buffered in one read (a WebSocket
//! viewer's one-keystroke frames too, `ws.rs`): a typing viewer's backlog
//! moves in one turn, not [`YIELD_EVERY`] events a turn (issue 18).

use crate::transport::{ByteRead, ByteWrite, HEADROOM};
use std::cell::RefCell;
use std::io;

/// The buffer an idle direction waits with, bytes.
pub const SMALL: usize = 2048;
/// Copies (or splices) a streaming direction makes before it lets other tasks
/// run.
pub const YIELD_EVERY: u32 = 16;
/// Large buffers kept for reuse (8 × 256 KiB at most stay allocated after
/// bursts).
const FREE_BUFFERS: usize = 8;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A large buffer of `len` bytes from the free list, or a new one (also
/// the TLS read-ahead's, `tls.rs`).
pub(crate) fn take_buffer(len: usize) -> Box<[u8]> {
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        match f.iter().position(|b| b.len() == len) {
            Some(i) => f.swap_remove(i),
            None => vec![0u8; len].into_boxed_slice(),
        }
    })
}

/// Gives a large buffer back (freed if the free list is full).
pub(crate) fn give_buffer(b: Box<[u8]>) {
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

/// How one direction stopped: the side that stopped it (the one that closed,
/// or whose socket failed) and the error, if it was not a clean EOF.
pub type Stop = (Side, Option<io::Error>);

/// Copies from `r` (the `from` side) to `w` (the `to` side) until EOF or
/// error: waits with a small buffer, streams with a large one of `buf_size`
/// bytes. When a small read comes back full, the large buffer is taken at
/// once and, if `r` may be polled without waiting ([`ByteRead::cancel_safe`]),
/// filled with what else is already there, so a burst (a framebuffer
/// update) leaves as one write, one WebSocket frame and full TLS records,
/// not a small one first.
async fn pump<R: ByteRead, W: ByteWrite>(
    (r, from): (&mut R, Side),
    (w, to): (&mut W, Side),
    buf_size: usize,
) -> Stop {
    let mut small = [0u8; HEADROOM + SMALL];
    let mut large: Option<Box<[u8]>> = None;
    let mut copies = 0u32;
    let stop = loop {
        let buf: &mut [u8] = match large.as_mut() {
            Some(b) => b,
            None => &mut small,
        };
        let mut n = match r.read_bytes(&mut buf[HEADROOM..]).await {
            Ok(0) => break (from, None),
            Ok(n) => n,
            Err(e) => break (from, Some(e)),
        };
        let mut full = n == buf.len() - HEADROOM;
        // How the stream ended, if the read without waiting found the end.
        let mut then = None;
        if full && large.is_none() && buf_size > SMALL {
            let mut b = take_buffer(HEADROOM + buf_size);
            b[HEADROOM..HEADROOM + n].copy_from_slice(&small[HEADROOM..HEADROOM + n]);
            // Without a read that cannot wait, `full` stays: the next read
            // goes into the large buffer, as it streams.
            if r.cancel_safe() {
                match futures_lite::future::poll_once(r.read_bytes(&mut b[HEADROOM + n..])).await {
                    None => full = false,
                    Some(Ok(0)) => then = Some((from, None)),
                    Some(Ok(m)) => {
                        n += m;
                        full = n == buf_size;
                    }
                    Some(Err(e)) => then = Some((from, Some(e))),
                }
            }
            large = Some(b);
        }
        let buf: &mut [u8] = match large.as_mut() {
            Some(b) => b,
            None => &mut small,
        };
        if let Err(e) = w.write_payload(buf, HEADROOM..HEADROOM + n).await {
            break (to, Some(e));
        }
        if let Some(stop) = then {
            break stop;
        }
        copies += 1;
        if copies % YIELD_EVERY == 0 {
            futures_lite::future::yield_now().await;
        }
        // The socket had nothing more: wait small again.
        if !full {
            large.take().into_iter().for_each(give_buffer);
        }
    };
    large.into_iter().for_each(give_buffer);
    stop
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
    let (closed_by, error) = futures_lite::future::or(
        pump((vr, Side::Viewer), (bw, Side::Backend), buf_size),
        pump((br, Side::Backend), (vw, Side::Viewer), buf_size),
    )
    .await;
    vw.close().await;
    bw.close().await;
    RelayEnd { closed_by, error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;

    /// A reader with nothing, ever (a quiet viewer).
    struct Quiet;
    impl ByteRead for Quiet {
        async fn read_bytes(&mut self, _: &mut [u8]) -> io::Result<usize> {
            futures_lite::future::pending().await
        }
    }

    /// A reader that always has a full buffer (a streaming backend).
    struct Streaming;
    impl ByteRead for Streaming {
        async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
    }

    /// A writer whose peer is gone, or one that takes everything.
    struct Writer(Option<io::ErrorKind>);
    impl ByteWrite for Writer {
        async fn write_payload(&mut self, _: &mut [u8], _: Range<usize>) -> io::Result<()> {
            self.0.map_or(Ok(()), |kind| Err(kind.into()))
        }
        async fn close(&mut self) {}
    }

    /// A reader with a burst waiting: `chunks` come back one per read,
    /// then it waits.
    struct Burst(Vec<usize>);
    impl ByteRead for Burst {
        async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return futures_lite::future::pending().await;
            }
            let n = self.0.remove(0).min(buf.len());
            Ok(n)
        }
        fn cancel_safe(&self) -> bool {
            true
        }
    }

    /// A writer that records the size of every write.
    struct Sizes(std::rc::Rc<std::cell::RefCell<Vec<usize>>>);
    impl ByteWrite for Sizes {
        async fn write_payload(&mut self, _: &mut [u8], p: Range<usize>) -> io::Result<()> {
            self.0.borrow_mut().push(p.len());
            Ok(())
        }
        async fn close(&mut self) {}
    }

    /// The same burst from a reader that must not be polled without waiting
    /// (the WebSocket reader): two writes, and the large buffer kept for the
    /// second read while it streams.
    struct Waits(Burst);
    impl ByteRead for Waits {
        async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read_bytes(buf).await
        }
    }

    #[test]
    fn a_reader_that_must_wait_streams_into_the_large_buffer() {
        let sizes = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let ex = smol::LocalExecutor::new();
        let mut w = Sizes(sizes.clone());
        let task = ex.spawn(async move {
            relay(
                (&mut Waits(Burst(vec![SMALL, 100_000])), &mut Writer(None)),
                (&mut Quiet, &mut w),
                256 * 1024,
            )
            .await
        });
        while ex.try_tick() {}
        drop(task);
        // A small buffer would have cut the second read to 2 KiB.
        assert_eq!(*sizes.borrow(), [SMALL, 100_000]);
    }

    #[test]
    fn a_burst_leaves_as_one_write() {
        let sizes = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let ex = smol::LocalExecutor::new();
        let mut w = Sizes(sizes.clone());
        let task = ex.spawn(async move {
            // The viewer's bytes go to `w`.
            relay(
                (&mut Burst(vec![SMALL, 60_000, 3]), &mut Writer(None)),
                (&mut Quiet, &mut w),
                256 * 1024,
            )
            .await
        });
        while ex.try_tick() {}
        drop(task);
        // The full small read, and what was already there, in one write;
        // then the next read.
        assert_eq!(*sizes.borrow(), [SMALL + 60_000, 3]);
        FREE.with(|f| assert!(f.borrow().iter().any(|b| b.len() == HEADROOM + 256 * 1024)));
    }

    #[test]
    fn a_failed_write_blames_the_side_written_to() {
        let gone = Some(io::ErrorKind::BrokenPipe);
        let end = smol::block_on(relay(
            (&mut Quiet, &mut Writer(gone)),
            (&mut Streaming, &mut Writer(None)),
            4096,
        ));
        assert_eq!(end.closed_by, Side::Viewer);
        assert_eq!(end.error.map(|e| e.kind()), gone);
        let end = smol::block_on(relay(
            (&mut Streaming, &mut Writer(None)),
            (&mut Quiet, &mut Writer(gone)),
            4096,
        ));
        assert_eq!(end.closed_by, Side::Backend);
    }
}
