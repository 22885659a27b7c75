//! The one generic driver loop for every core machine (STYLE: "the daemon
//! drives, never decides"): write what `poll_output` gives; return an event if
//! there is one; else feed buffered input until the machine takes nothing;
//! else race a read against the machine's deadline and feed the bytes or the
//! timeout. On a protocol error
//! the machine's queued answer (HTTP status, close frame, RFB reason) is
//! flushed before the error is returned.
//!
//! Input left unconsumed stays in the [`InBuf`], for the next machine of the
//! pipeline (sniff → WebSocket handshake → RFB → relay).

use crate::buffer::InBuf;
use crate::clock::Clock;
use crate::transport::{ByteRead, ByteWrite, HEADROOM};
use std::fmt;
use std::io;
use vncap_core::Machine;

/// Why driving a machine stopped without an event.
#[derive(Debug)]
pub enum DriveError<E> {
    /// The machine refused the peer's input; its answer was sent.
    Protocol(E),
    /// The peer closed the connection.
    Closed,
    /// The input buffer filled up without the machine consuming anything.
    InputTooLarge,
    /// A socket error.
    Io(io::Error),
}

impl<E: fmt::Display> fmt::Display for DriveError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriveError::Protocol(e) => write!(f, "{e}"),
            DriveError::Closed => f.write_str("peer closed the connection"),
            DriveError::InputTooLarge => f.write_str("input too large"),
            DriveError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl<E> From<io::Error> for DriveError<E> {
    fn from(e: io::Error) -> Self {
        DriveError::Io(e)
    }
}

/// Writes everything `m` has queued.
pub async fn flush<M: Machine, W: ByteWrite>(m: &mut M, w: &mut W) -> io::Result<()> {
    let mut out = [0u8; HEADROOM + 1024];
    loop {
        let n = m.poll_output(&mut out[HEADROOM..]);
        if n == 0 {
            return Ok(());
        }
        w.write_payload(&mut out, HEADROOM..HEADROOM + n).await?;
    }
}

/// Drives `m` until its next event.
pub async fn drive<M, R, W>(
    m: &mut M,
    r: &mut R,
    w: &mut W,
    input: &mut InBuf,
    clock: &Clock,
) -> Result<M::Event, DriveError<M::Error>>
where
    M: Machine,
    R: ByteRead,
    W: ByteWrite,
{
    loop {
        flush(m, w).await?;
        if let Some(event) = m.poll_event() {
            return Ok(event);
        }
        // Called even with no input: a machine may report a failure found
        // after the bytes it consumed last time only on the next call.
        match m.handle_input(input.data()) {
            Ok(0) => {
                // A decision reached without consuming (a sniff): report it.
                flush(m, w).await?;
                if let Some(event) = m.poll_event() {
                    return Ok(event);
                }
            }
            Ok(n) => {
                input.consume(n);
                continue;
            }
            Err(e) => {
                flush(m, w).await?;
                return Err(DriveError::Protocol(e));
            }
        }
        if input.is_full() {
            return Err(DriveError::InputTooLarge);
        }
        let read = async { Some(input.fill(r).await) };
        let n = match m.poll_timeout() {
            None => read.await,
            Some(at) => {
                let timer = async {
                    smol::Timer::at(clock.deadline(at)).await;
                    None
                };
                futures_lite::future::or(read, timer).await
            }
        };
        match n {
            None => m.handle_timeout(clock.now()),
            Some(Ok(0)) => {
                // The peer's end: the machine finishes or says why not.
                match m.handle_eof(input.data()) {
                    Ok(n) => input.consume(n),
                    Err(e) => {
                        flush(m, w).await?;
                        return Err(DriveError::Protocol(e));
                    }
                }
                flush(m, w).await?;
                return match m.poll_event() {
                    Some(event) => Ok(event),
                    None => Err(DriveError::Closed),
                };
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(DriveError::Io(e)),
        }
    }
}
