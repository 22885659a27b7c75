//! WebSocket as a daemon transport: [`WsRead`] and [`WsWrite`] put the core's
//! `ws::Connection` between a socket and the [`ByteRead`]/[`ByteWrite`]
//! halves the handshake driver and the relay use. Framing, unmasking, pongs and
//! close codes are the core's; this file only moves bytes and shares the
//! socket's writing half (pongs from the reading side, data from the relay)
//! under one async lock, so control frames never land inside a data frame.
//! The reader waits for that lock only when the stream ends (the close
//! echo, an error's close frame): otherwise, when the writer holds it, the
//! writer sends the queued control frames (pongs) after its data frame.
//!
//! Fairness (issue 18): a read hands out every frame already buffered, up
//! to the caller's buffer, so a typing viewer's dozens of one-event frames
//! are one relay copy, as on a plain socket; the relay's yield budget
//! counts reads, and one frame per read let a busy executor starve the
//! viewer that types.
//!
//! Binary sessions are zero-copy outbound (the frame header goes into the
//! headroom in front of the payload). Inbound, decoded bytes are unmasked in
//! place and copied once into the reader's buffer; that direction carries only
//! the viewer's input events. An idle reader waits with a small socket buffer
//! ([`crate::relay::SMALL`]) and takes its large one only while frames stream
//! (a read filled the buffer), as the relay does with its own buffers.

use crate::buffer::InBuf;
use crate::relay::SMALL;
use crate::transport::{ByteRead, ByteWrite, Plain};
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use smol::lock::Mutex;
use std::cell::RefCell;
use std::io;
use std::ops::Range;
use std::rc::Rc;
use vncap_core::ws::frame::Decoded;
use vncap_core::ws::Connection;

/// State both halves share.
struct Shared<W> {
    conn: RefCell<Connection>,
    sock: Mutex<W>,
}

impl<W: AsyncWrite + Unpin> Shared<W> {
    /// Writes the control frames the core queued; the caller holds the lock.
    /// Every holder of the lock calls it before letting go, so a control
    /// frame the reader queued while a data frame was being written leaves
    /// right after that frame.
    async fn flush_control(&self, sock: &mut W) -> io::Result<()> {
        let mut out = [0u8; 256];
        loop {
            let n = self.conn.borrow_mut().poll_output(&mut out);
            if n == 0 {
                return Ok(());
            }
            sock.write_all(&out[..n]).await?;
        }
    }

    /// The reader's flush: only if the socket's writing half is free. When
    /// the writer holds it (a data frame in progress, perhaps waiting for a
    /// slow viewer to make room), the writer sends the queued control frames
    /// when its frame is out, and the reader goes on reading: a viewer's
    /// input never waits behind its own screen.
    async fn flush_control_if_free(&self) -> io::Result<()> {
        let Some(mut sock) = self.sock.try_lock() else {
            return Ok(());
        };
        self.flush_control(&mut sock).await?;
        sock.flush().await
    }

    /// The reader's flush when the stream ends (the close echo, an error's
    /// close frame): it waits for the writer's frame to be out first, as
    /// the relay stops the writer once the reader ends.
    async fn flush_control_locked(&self) -> io::Result<()> {
        let mut sock = self.sock.lock().await;
        self.flush_control(&mut sock).await?;
        sock.flush().await
    }
}

/// The reading half: socket bytes in, RFB bytes out.
pub struct WsRead<R, W> {
    sock: R,
    raw: InBuf,
    /// `raw`'s capacity while frames stream.
    large: usize,
    /// The last read filled `raw`: more is probably waiting.
    streaming: bool,
    /// Decoded bytes inside `raw`'s storage not yet handed out.
    ready: Range<usize>,
    /// How the stream ended (EOF or an error), found while bytes decoded
    /// before it were being handed out: returned by the next read.
    end: Option<io::Result<usize>>,
    shared: Rc<Shared<W>>,
}

/// The writing half: RFB bytes in, frames out.
pub struct WsWrite<W> {
    shared: Rc<Shared<W>>,
    /// Room for base64 text frames (unused in binary sessions).
    scratch: Vec<u8>,
}

/// Splits a WebSocket connection into its halves. `leftover` holds socket
/// bytes read after the handshake (the first frames); `buf_size` bounds the
/// memory of each half (the reader's while frames stream).
pub fn split<R, W>(
    conn: Connection,
    sock_r: R,
    sock_w: W,
    leftover: &[u8],
    buf_size: usize,
) -> (WsRead<R, W>, WsWrite<W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let base64 = conn.subprotocol().is_base64();
    let shared = Rc::new(Shared {
        conn: RefCell::new(conn),
        sock: Mutex::new(sock_w),
    });
    let mut raw = InBuf::new(SMALL.max(leftover.len()));
    raw.push(leftover);
    let scratch = if base64 {
        vec![0; buf_size / 3 * 4 + 16]
    } else {
        Vec::new()
    };
    (
        WsRead {
            sock: sock_r,
            raw,
            large: buf_size.max(SMALL),
            streaming: false,
            ready: 0..0,
            end: None,
            shared: shared.clone(),
        },
        WsWrite { shared, scratch },
    )
}

impl<R, W> WsRead<R, W> {
    /// Sizes `raw` before a read: large while streaming, small once idle and
    /// drained. Only called with nothing handed out of `raw` (`ready` empty).
    fn size_raw(&mut self) {
        let want = if self.streaming {
            self.large
        } else if self.raw.data().is_empty() {
            SMALL
        } else {
            return;
        };
        if self.raw.capacity() != want && self.raw.data().len() <= want {
            let mut next = InBuf::new(want);
            next.push(self.raw.data());
            self.raw = next;
        }
    }
}

fn protocol_error(reason: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> ByteRead for WsRead<R, W> {
    /// Hands out the payload of every frame already buffered, as much as
    /// `buf` holds, before it reads the socket again: one read carries all
    /// the keystrokes that arrived (a typing viewer sends a frame per event),
    /// as a read of a plain socket would, so a relay's per-read budget
    /// ([`crate::relay::YIELD_EVERY`]) counts reads, not the viewer's frames.
    async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(end) = self.end.take() {
            return end;
        }
        let mut filled = 0;
        loop {
            if !self.ready.is_empty() {
                let n = self.ready.len().min(buf.len() - filled);
                let at = self.ready.start;
                buf[filled..filled + n].copy_from_slice(&self.raw.storage()[at..at + n]);
                self.ready.start += n;
                filled += n;
                if filled == buf.len() {
                    return Ok(filled);
                }
            }
            let (used, outcome) = {
                let (base, data) = self.raw.data_mut_with_offset();
                let origin = data.as_ptr() as usize;
                let mut conn = self.shared.conn.borrow_mut();
                match conn.decode(data) {
                    Err(e) => (0, Err(e)),
                    Ok((used, Some(Decoded::Data { bytes, .. }))) => {
                        let at = base + (bytes.as_ptr() as usize - origin);
                        (used, Ok(Some(at..at + bytes.len())))
                    }
                    Ok((used, Some(Decoded::Closed { .. }))) => (used, Ok(None)),
                    Ok((used, None)) => (used, Ok(Some(0..0))),
                }
            };
            // `ready` points into bytes now marked consumed: `raw` is not
            // compacted or refilled until `ready` is empty again.
            self.raw.consume(used);
            match outcome {
                Err(_) | Ok(None) => self.shared.flush_control_locked().await?,
                Ok(Some(_)) => self.shared.flush_control_if_free().await?,
            }
            let end = match outcome {
                Err(e) => Err(protocol_error(e.reason())),
                Ok(None) => Ok(0),
                Ok(Some(r)) if !r.is_empty() => {
                    self.ready = r;
                    continue;
                }
                Ok(Some(_)) if used > 0 => continue,
                // Nothing complete is buffered: what was decoded goes now.
                Ok(Some(_)) if filled > 0 => return Ok(filled),
                Ok(Some(_)) => {
                    self.size_raw();
                    if self.raw.is_full() {
                        return Err(protocol_error("frame header does not fit the buffer"));
                    }
                    if self.raw.fill(&mut Plain(&mut self.sock)).await? == 0 {
                        return Ok(0);
                    }
                    self.streaming = self.raw.is_full();
                    continue;
                }
            };
            if filled > 0 {
                self.end = Some(end);
                return Ok(filled);
            }
            return end;
        }
    }
}

impl<W: AsyncWrite + Unpin> ByteWrite for WsWrite<W> {
    async fn write_payload(&mut self, buf: &mut [u8], payload: Range<usize>) -> io::Result<()> {
        let mut sock = self.shared.sock.lock().await;
        self.shared.flush_control(&mut sock).await?;
        let header = self.shared.conn.borrow().data_header(payload.len());
        match header {
            Some((h, n)) => {
                let start = payload.start - n;
                buf[start..payload.start].copy_from_slice(&h[..n]);
                sock.write_all(&buf[start..payload.end]).await?;
            }
            None => {
                let mut data = &buf[payload];
                while !data.is_empty() {
                    let (took, wrote) = self.shared.conn.borrow().encode(data, &mut self.scratch);
                    if took == 0 {
                        return Err(io::Error::other("base64 frame buffer too small"));
                    }
                    sock.write_all(&self.scratch[..wrote]).await?;
                    data = &data[took..];
                }
            }
        }
        // What the reader queued meanwhile (it does not wait for the lock).
        self.shared.flush_control(&mut sock).await?;
        sock.flush().await
    }

    async fn close(&mut self) {
        self.shared.conn.borrow_mut().close(1000, "session ended");
        let mut sock = self.shared.sock.lock().await;
        let _ = self.shared.flush_control(&mut sock).await;
        let _ = sock.close().await;
    }
}

/// The session's hold on a WebSocket viewer beside the relay (`session.rs`):
/// the core's ping timer (`ws::Connection::keepalive`) and a close with a
/// reason, each written under the socket's lock, so never inside a data
/// frame.
pub struct Handle<W>(Rc<Shared<W>>);

impl<W> WsWrite<W> {
    /// A handle on this connection.
    pub fn handle(&self) -> Handle<W> {
        Handle(self.shared.clone())
    }
}

impl<W: AsyncWrite + Unpin> Handle<W> {
    /// Starts the core's ping timer.
    pub fn keepalive(&self, k: vncap_core::ws::Keepalive, now: vncap_core::Instant) {
        self.0.conn.borrow_mut().keepalive(k, now);
    }

    /// When the ping timer runs next.
    pub fn poll_timeout(&self) -> Option<vncap_core::Instant> {
        self.0.conn.borrow().poll_timeout()
    }

    /// Runs the ping timer and writes what it queued; `false` when the
    /// viewer stopped answering (its close frame is written).
    pub async fn handle_timeout(&self, now: vncap_core::Instant) -> io::Result<bool> {
        let alive = self.0.conn.borrow_mut().handle_timeout(now);
        self.0.flush_control_locked().await?;
        Ok(alive)
    }

    /// Sends a close frame with `code` and `reason` (unless one went
    /// already), then closes the socket's writing side.
    pub async fn close(&self, code: u16, reason: &str) {
        let mut sock = self.0.sock.lock().await;
        self.0.conn.borrow_mut().close(code, reason);
        let _ = self.0.flush_control(&mut sock).await;
        let _ = sock.close().await;
    }
}

#[cfg(test)]
mod tests {
    //! Fairness on the one thread, counted in executor turns (no sockets,
    //! no clocks): in-memory socket halves, relays spawned on one
    //! `LocalExecutor`, stepped with `try_tick`.

    use super::*;
    use crate::relay::{relay, YIELD_EVERY};
    use crate::transport::HEADROOM;
    use std::cell::Cell;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use vncap_core::ws::frame::Config;
    use vncap_core::ws::Subprotocol;

    /// A socket reading half with nothing more to read, ever.
    struct Silent;
    impl AsyncRead for Silent {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    /// A socket writing half that records what it takes; while `blocked`
    /// the viewer is not reading (every write waits until `unblock`).
    #[derive(Clone, Default)]
    struct Recorder {
        bytes: Rc<RefCell<Vec<u8>>>,
        blocked: Rc<Cell<bool>>,
        waiting: Rc<RefCell<Option<std::task::Waker>>>,
    }
    impl Recorder {
        fn unblock(&self) {
            self.blocked.set(false);
            if let Some(w) = self.waiting.borrow_mut().take() {
                w.wake();
            }
        }
    }
    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.blocked.get() {
                *self.waiting.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            self.bytes.borrow_mut().extend_from_slice(b);
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A backend that streams: every read fills the buffer at once.
    struct Screen;
    impl ByteRead for Screen {
        async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
    }

    /// A backend that never sends.
    struct Quiet;
    impl ByteRead for Quiet {
        async fn read_bytes(&mut self, _: &mut [u8]) -> io::Result<usize> {
            futures_lite::future::pending().await
        }
    }

    /// A browser's frame: masked, FIN, `opcode`, a short payload.
    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    fn conn() -> Connection {
        Connection::new(Subprotocol::Binary, Config::default())
    }

    /// Keystrokes a typing viewer sent while the proxy was busy: one
    /// 8-byte KeyEvent-sized frame each, all already in the socket.
    fn keystrokes(n: usize) -> (Vec<u8>, Vec<u8>) {
        let mut wire = Vec::new();
        let mut payload = Vec::new();
        for i in 0..n {
            let key = [4, 1, 0, 0, 0, 0, 0, i as u8];
            wire.extend(frame(0x2, &key));
            payload.extend_from_slice(&key);
        }
        (wire, payload)
    }

    /// Issue 18: `streams` consoles streaming on the one executor and one
    /// typing viewer with `KEYS` keystrokes waiting. The typing session must
    /// pass them all on in its first turn, so within one round of the
    /// executor (every task polled once). Before the fix each keystroke frame
    /// was one relay copy and the relay yields every [`YIELD_EVERY`] copies:
    /// the typing session moved 16 keystrokes a round and fell behind
    /// whenever a round took longer than 16 of its keystrokes.
    #[test]
    fn buffered_keystrokes_pass_in_one_turn_behind_streaming_consoles() {
        const KEYS: usize = 4 * YIELD_EVERY as usize;
        let streams = 50;
        let ex = smol::LocalExecutor::new();
        for _ in 0..streams {
            ex.spawn(async {
                let (mut vr, mut vw) = split(conn(), Silent, futures_lite::io::sink(), &[], 4096);
                let mut sink = crate::transport::Plain(futures_lite::io::sink());
                relay((&mut vr, &mut vw), (&mut Screen, &mut sink), 4096).await
            })
            .detach();
        }
        let (wire, typed) = keystrokes(KEYS);
        let backend = Recorder::default();
        let got = backend.bytes.clone();
        ex.spawn(async move {
            let (mut vr, mut vw) = split(conn(), Silent, futures_lite::io::sink(), &wire, 4096);
            let mut bw = crate::transport::Plain(backend);
            relay((&mut vr, &mut vw), (&mut Quiet, &mut bw), 4096).await
        })
        .detach();
        // One round: every streaming task and the typing one polled once
        // (each streamer yields and goes to the back of the queue).
        let mut turns = 0;
        while got.borrow().len() < typed.len() && turns < 4 * (streams + 1) {
            assert!(ex.try_tick());
            turns += 1;
        }
        assert_eq!(
            *got.borrow(),
            typed,
            "keystrokes passed after {turns} turns"
        );
        assert!(
            turns <= streams + 1,
            "{KEYS} buffered keystrokes took {turns} executor turns behind {streams} streams"
        );
    }

    /// A viewer that does not read its screen (the writer waits inside a
    /// data frame, holding the socket's writing half) still has its input
    /// relayed, and the pong its ping asked for goes out right after the
    /// data frame.
    #[test]
    fn input_does_not_wait_for_the_viewers_own_screen() {
        let viewer = Recorder::default();
        viewer.blocked.set(true);
        let (keys, typed) = keystrokes(3);
        let mut wire = frame(0x9, b"hi");
        wire.extend(keys);
        let (mut vr, mut vw) = split(conn(), Silent, viewer.clone(), &wire, 4096);
        let ex = smol::LocalExecutor::new();
        let screen = ex.spawn(async move {
            let mut buf = [7u8; HEADROOM + 4];
            vw.write_payload(&mut buf, HEADROOM..HEADROOM + 4).await
        });
        assert!(ex.try_tick(), "the screen write starts and waits");
        let input = ex.spawn(async move {
            let mut buf = [0u8; 64];
            let n = vr.read_bytes(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        assert!(ex.try_tick());
        assert!(input.is_finished(), "the input read waited for the writer");
        assert_eq!(smol::block_on(input), typed);
        assert!(viewer.bytes.borrow().is_empty());
        viewer.unblock();
        smol::block_on(ex.run(screen)).unwrap();
        // The data frame, then the pong.
        assert_eq!(
            *viewer.bytes.borrow(),
            [&[0x82, 4, 7, 7, 7, 7][..], &[0x8a, 2, b'h', b'i']].concat()
        );
    }

    /// The viewer's Close arrives while a screen frame waits for room: the
    /// reader's end of stream waits for that frame, so the close echo
    /// follows a whole frame (the relay stops the writer once the reader
    /// has ended).
    #[test]
    fn the_close_echo_follows_the_frame_in_progress() {
        let viewer = Recorder::default();
        viewer.blocked.set(true);
        let wire = frame(0x8, &1000u16.to_be_bytes());
        let (mut vr, mut vw) = split(conn(), Silent, viewer.clone(), &wire, 4096);
        let ex = smol::LocalExecutor::new();
        let screen = ex.spawn(async move {
            let mut buf = [7u8; HEADROOM + 4];
            vw.write_payload(&mut buf, HEADROOM..HEADROOM + 4).await
        });
        assert!(ex.try_tick(), "the screen write starts and waits");
        let input = ex.spawn(async move {
            let mut buf = [0u8; 64];
            vr.read_bytes(&mut buf).await.unwrap()
        });
        assert!(ex.try_tick());
        assert!(
            !input.is_finished(),
            "the end of stream waits for the frame"
        );
        viewer.unblock();
        smol::block_on(ex.run(async {
            screen.await.unwrap();
            assert_eq!(input.await, 0);
        }));
        let got = viewer.bytes.borrow();
        assert_eq!(got[..6], [0x82, 4, 7, 7, 7, 7]);
        assert_eq!(got[6], 0x88, "then the close echo");
    }
}
