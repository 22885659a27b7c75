//! What every vncap fuzz target shares: a reader for the fuzz input's leading
//! parameter bytes ([`Reader`]), the read sizes a driver uses ([`Splits`]),
//! and a generic driver ([`drive`]) that runs any [`Machine`] as the daemon
//! does (read into a bounded buffer, keep leftovers, feed until `Ok(0)`,
//! drain output and events) while asserting the `Machine` contract: consumed
//! counts never exceed the input, errors are sticky, output is bounded.
//!
//! It is not a test harness for recorded fixtures (that is
//! `tests/src/harness.rs`); it never panics except on a broken invariant.
//!
//! Input layout of the machine targets (see `fuzz/seed.py`, which writes the
//! seeds): `[n] [n read sizes] [target parameters] [the peer's bytes]`, where
//! `n % 8` read sizes follow (0: read everything at once).

use std::fmt::Debug;

use vncap_core::Machine;

/// Reads parameters off the front of the fuzz input; short input reads as
/// zeros, so every byte string is a valid input.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over the whole fuzz input.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// The next byte (0 at the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next big-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` next bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    /// The next `N` bytes (zero-padded).
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let b = self.bytes(N);
        a[..b.len()].copy_from_slice(b);
        a
    }

    /// A length byte, then that many bytes.
    pub fn counted(&mut self) -> &'a [u8] {
        let n = usize::from(self.byte());
        self.bytes(n)
    }

    /// Whether nothing is left.
    pub fn rest_is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Everything left.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// The sizes of successive reads (cycled), as the fuzz input chose them.
#[derive(Debug, Clone)]
pub struct Splits {
    sizes: Vec<usize>,
    i: usize,
}

impl Splits {
    /// Reads a count byte (`% 8`) and that many size bytes (`b + 1` each);
    /// a count of 0 is [`Splits::whole`].
    pub fn read(r: &mut Reader<'_>) -> Self {
        let n = usize::from(r.byte() % 8);
        let sizes = r.bytes(n).iter().map(|&b| usize::from(b) + 1).collect();
        Splits { sizes, i: 0 }
    }

    /// Reads as much as the buffer holds each time.
    pub fn whole() -> Self {
        Splits {
            sizes: Vec::new(),
            i: 0,
        }
    }

    /// The size of the next read.
    pub fn next_size(&mut self) -> usize {
        if self.sizes.is_empty() {
            return usize::MAX;
        }
        let s = self.sizes[self.i % self.sizes.len()];
        self.i += 1;
        s
    }
}

/// What a driven machine did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript<E, Er> {
    /// Everything `poll_output` gave.
    pub output: Vec<u8>,
    /// Every event, in order.
    pub events: Vec<E>,
    /// The error that stopped it, if any.
    pub error: Option<Er>,
    /// Bytes consumed in total.
    pub consumed: usize,
    /// The read buffer was full and the machine took nothing from it.
    pub stalled: bool,
}

/// Drains `poll_output` through a small buffer; asserts the total stays
/// within `max`.
fn drain_output<M: Machine>(m: &mut M, output: &mut Vec<u8>, max: usize) {
    let mut out = [0u8; 61];
    loop {
        let n = m.poll_output(&mut out);
        assert!(n <= out.len(), "poll_output claims more than the buffer");
        if n == 0 {
            break;
        }
        output.extend_from_slice(&out[..n]);
        assert!(output.len() <= max, "output over {max} bytes");
    }
}

/// Runs `m` over `input` as a driver would: reads of `splits` sizes into a
/// buffer of `cap` bytes, leftovers kept, `handle_input` until `Ok(0)` or
/// `Err` after every read, output and events drained after every call
/// (`on_event` may call the machine's `accept`/`reject`). Asserts the
/// `Machine` contract on the way; output over `out_max` bytes panics.
pub fn drive<M: Machine>(
    m: &mut M,
    input: &[u8],
    splits: &mut Splits,
    cap: usize,
    out_max: usize,
    mut on_event: impl FnMut(&mut M, &M::Event),
) -> Transcript<M::Event, M::Error>
where
    M::Event: Clone,
{
    let mut t = Transcript {
        output: Vec::new(),
        events: Vec::new(),
        error: None,
        consumed: 0,
        stalled: false,
    };
    let mut buf: Vec<u8> = Vec::with_capacity(cap);
    let mut fed = 0;
    drain_output(m, &mut t.output, out_max);
    loop {
        // Feed until Ok(0) or Err.
        let mut progressed = false;
        loop {
            let r = m.handle_input(&buf);
            drain_output(m, &mut t.output, out_max);
            let mut evented = false;
            while let Some(ev) = m.poll_event() {
                on_event(m, &ev);
                t.events.push(ev);
                evented = true;
                drain_output(m, &mut t.output, out_max);
            }
            match r {
                Ok(n) => {
                    assert!(n <= buf.len(), "consumed {n} of {} bytes", buf.len());
                    buf.drain(..n);
                    t.consumed += n;
                    progressed |= n > 0 || evented;
                    if n == 0 && !evented {
                        break;
                    }
                }
                Err(e) => {
                    // Sticky: the same error, whatever comes next.
                    assert_eq!(m.handle_input(&buf), Err(e), "error not sticky");
                    assert_eq!(m.handle_input(b""), Err(e), "error not sticky");
                    assert_eq!(m.handle_input(b"RFB 003.008\n"), Err(e));
                    drain_output(m, &mut t.output, out_max);
                    t.error = Some(e);
                    return t;
                }
            }
        }
        let room = cap - buf.len();
        let n = room.min(splits.next_size()).min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        if n == 0 {
            if fed < input.len() && !progressed {
                t.stalled = true;
                return t;
            }
            if fed == input.len() && !progressed {
                return t;
            }
        }
    }
}

/// Drives two fresh machines over `input`, one with the fuzz input's reads
/// and one reading whole buffers, and asserts they did the same: what a
/// machine consumes, says and sends never depends on how input was split.
pub fn drive_both<M: Machine>(
    make: impl Fn() -> M,
    input: &[u8],
    splits: &mut Splits,
    cap: usize,
    out_max: usize,
    mut on_event: impl FnMut(&mut M, &M::Event),
) -> (M, Transcript<M::Event, M::Error>)
where
    M::Event: Clone + PartialEq + Debug,
{
    let mut a = make();
    let ta = drive(&mut a, input, splits, cap, out_max, &mut on_event);
    let mut b = make();
    let tb = drive(
        &mut b,
        input,
        &mut Splits::whole(),
        cap,
        out_max,
        &mut on_event,
    );
    assert_eq!(ta, tb, "the split changed the outcome");
    (a, ta)
}
