//! The one replay harness for every core machine.
//!
//! It plays the driver of `vncap_core::machine`: bytes arrive in chunks (as a
//! socket would deliver them), are appended to a pending buffer, and
//! `handle_input` is called until it consumes nothing; output is drained with
//! `poll_output` through a deliberately small buffer, and events with
//! `poll_event`. A hook sees each event and may call the machine (e.g.
//! `accept()` after authentication), as a real driver does.
//!
//! [`Transcript`]s from different splits of the same input must be equal: that
//! is the property every machine is tested for ([`splits`] generates them).

use proptest::prelude::*;
use vncap_core::Machine;

/// Everything a machine did with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript<E, Err> {
    /// All bytes the machine asked to send, concatenated.
    pub output: Vec<u8>,
    /// All events, in order.
    pub events: Vec<E>,
    /// The error that stopped it, if any.
    pub error: Option<Err>,
    /// Bytes of input the machine did not consume (left for the next stage).
    pub leftover: Vec<u8>,
}

/// Feeds `input` to `machine` in the given chunk sizes (the last chunk takes
/// whatever remains; a size of 0 is treated as 1). `on_event` is called for
/// each event with the machine, so a test can act like a driver.
pub fn run<M, F>(
    machine: &mut M,
    input: &[u8],
    chunk_sizes: &[usize],
    mut on_event: F,
) -> Transcript<M::Event, M::Error>
where
    M: Machine,
    M::Event: Clone,
    F: FnMut(&mut M, &M::Event),
{
    let mut t = Transcript {
        output: Vec::new(),
        events: Vec::new(),
        error: None,
        leftover: Vec::new(),
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut offset = 0;
    let mut sizes = chunk_sizes.iter().copied();
    drain(machine, &mut t, &mut on_event);
    while offset < input.len() && t.error.is_none() {
        let n = sizes.next().unwrap_or(input.len()).max(1);
        let end = (offset + n).min(input.len());
        pending.extend_from_slice(&input[offset..end]);
        offset = end;
        loop {
            match machine.handle_input(&pending) {
                Ok(0) => break,
                Ok(used) => {
                    assert!(used <= pending.len(), "consumed more than was given");
                    pending.drain(..used);
                }
                Err(e) => {
                    t.error = Some(e);
                    // Sticky: the same error again, whatever comes next.
                    assert_eq!(
                        machine.handle_input(&pending),
                        Err(e),
                        "errors must be sticky"
                    );
                    break;
                }
            }
            drain(machine, &mut t, &mut on_event);
        }
        drain(machine, &mut t, &mut on_event);
    }
    drain(machine, &mut t, &mut on_event);
    pending.extend_from_slice(&input[offset..]);
    t.leftover = pending;
    t
}

/// Feeds the whole input at once.
pub fn run_whole<M, F>(machine: &mut M, input: &[u8], on_event: F) -> Transcript<M::Event, M::Error>
where
    M: Machine,
    M::Event: Clone,
    F: FnMut(&mut M, &M::Event),
{
    run(machine, input, &[input.len()], on_event)
}

/// Feeds the input one byte at a time.
pub fn run_bytewise<M, F>(
    machine: &mut M,
    input: &[u8],
    on_event: F,
) -> Transcript<M::Event, M::Error>
where
    M: Machine,
    M::Event: Clone,
    F: FnMut(&mut M, &M::Event),
{
    run(machine, input, &vec![1; input.len()], on_event)
}

fn drain<M, F>(machine: &mut M, t: &mut Transcript<M::Event, M::Error>, on_event: &mut F)
where
    M: Machine,
    M::Event: Clone,
    F: FnMut(&mut M, &M::Event),
{
    loop {
        let mut progressed = false;
        // A small buffer, so machines are exercised writing output in pieces.
        let mut buf = [0u8; 7];
        loop {
            let n = machine.poll_output(&mut buf);
            if n == 0 {
                break;
            }
            t.output.extend_from_slice(&buf[..n]);
            progressed = true;
        }
        while let Some(e) = machine.poll_event() {
            on_event(machine, &e);
            t.events.push(e);
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
}

/// A proptest strategy: chunk sizes (each 1..=max) for splitting an input.
pub fn splits(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=max.max(1), 0..64)
}
