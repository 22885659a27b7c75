//! The one vocabulary every sans-IO machine in this crate speaks.
//!
//! A driver (the `vncap` daemon, a test, another runtime) owns the sockets and
//! the clock and calls, in a loop:
//!
//! 1. [`Machine::poll_output`] until it returns 0, writing those bytes to the peer;
//! 2. [`Machine::poll_event`] until it returns `None`, acting on each event;
//! 3. waits for input or for [`Machine::poll_timeout`], whichever comes first,
//!    and feeds it with [`Machine::handle_input`] or [`Machine::handle_timeout`].
//!
//! `handle_input` consumes what it can and says how many bytes it took; the
//! rest stays with the caller (for the next call, or for the next stage: sniff →
//! WebSocket handshake → RFB → relay). Short input is `Ok(0)`, never an error.
//! After `Ok(n)` with `n > 0`, call `handle_input` again with the rest (even if
//! empty) until it returns `Ok(0)` or `Err`: a failure found after consumed
//! bytes is reported by the next call, so what is consumed never depends on
//! how the input was split.
//! When the peer closes its side, the driver calls [`Machine::handle_eof`]
//! with what is still unconsumed (maybe nothing): a machine that can finish
//! there (a control request without its newline) does; one that needed more
//! returns its error, with its answer queued like any other.
//! After an `Err`, the answer the protocol has for it (an HTTP status, a close
//! frame, an RFB reason) is already queued in `poll_output`, and every later
//! `handle_input` returns the same error (errors are sticky).

use crate::time::Instant;

/// A sans-IO protocol state machine over caller-supplied buffers.
pub trait Machine {
    /// What the machine reports to its driver (e.g. "authenticated").
    type Event;
    /// Why the machine stopped; knows its own answer on the wire.
    type Error: Copy + Eq + core::fmt::Display + core::fmt::Debug;

    /// Feeds bytes read from the peer; returns how many were consumed.
    fn handle_input(&mut self, input: &[u8]) -> Result<usize, Self::Error>;
    /// The peer will send nothing after `input` (its unconsumed bytes,
    /// maybe none): like [`Machine::handle_input`], but a message that is
    /// still incomplete is final. Returns the bytes consumed. The default
    /// is `handle_input`: a machine with nothing to finish leaves the end to
    /// the driver (which then reports the peer as gone).
    fn handle_eof(&mut self, input: &[u8]) -> Result<usize, Self::Error> {
        self.handle_input(input)
    }
    /// Copies bytes to send into `out`; returns how many (0: nothing queued).
    fn poll_output(&mut self, out: &mut [u8]) -> usize;
    /// The next event, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When the machine next wants [`Machine::handle_timeout`], if ever. The
    /// default is never: a machine without a timer of its own leaves its
    /// deadline to the driver (every handshake here is bounded that way).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// Tells the machine the time is now `now` (at or after its timeout).
    /// The default does nothing (see [`Machine::poll_timeout`]).
    fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }
}

/// Copies the part of `queued` not yet sent (from `*sent` on) into `out`,
/// advancing `*sent`; returns how many bytes. The `poll_output` of machines
/// that queue one answer in fixed storage.
pub(crate) fn send_queued(queued: &[u8], sent: &mut usize, out: &mut [u8]) -> usize {
    let pending = queued.get(*sent..).unwrap_or_default();
    let n = pending.len().min(out.len());
    if let (Some(dst), Some(src)) = (out.get_mut(..n), pending.get(..n)) {
        dst.copy_from_slice(src);
    }
    *sent += n;
    n
}

/// Runs `step` (one protocol message at the start of what it is given;
/// `Ok(0)`: needs more) over `input` until it consumes nothing, and returns
/// the bytes used. A failure after some progress in this call is left for
/// the next call (the machine's error is sticky), so the count of consumed
/// bytes never depends on how the input was split.
pub(crate) fn run_steps<E>(
    input: &[u8],
    mut step: impl FnMut(&[u8]) -> Result<usize, E>,
) -> Result<usize, E> {
    let mut used = 0;
    loop {
        match step(input.get(used..).unwrap_or_default()) {
            Ok(0) => return Ok(used),
            Ok(n) => used += n,
            Err(e) if used == 0 => return Err(e),
            Err(_) => return Ok(used),
        }
    }
}
