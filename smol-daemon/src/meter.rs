//! What a session moved and when it last moved anything: a [`Meter`] per
//! session, shared by its relay and the session registry (`list`, `stats`,
//! `/metrics`, `--idle-timeout`), and [`Metered`], a reading half that
//! counts what passes through it. The relay (`relay.rs`) stays unaware of
//! it; `splice.rs` counts its splices into the same meter.

use crate::clock::Clock;
use crate::transport::ByteRead;
use std::cell::Cell;
use std::io;
use std::rc::Rc;
use vncap_core::Instant;

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Backend → viewer.
    ToViewer,
    /// Viewer → backend.
    ToBackend,
}

/// One session's byte counts and last activity.
#[derive(Debug)]
pub struct Meter {
    clock: Clock,
    to_viewer: Cell<u64>,
    to_backend: Cell<u64>,
    last: Cell<Instant>,
}

impl Meter {
    /// A meter with nothing counted, active now.
    pub fn new(clock: Clock) -> Rc<Meter> {
        Rc::new(Meter {
            clock,
            to_viewer: Cell::new(0),
            to_backend: Cell::new(0),
            last: Cell::new(clock.now()),
        })
    }

    /// Counts `n` bytes going `dir`, now.
    pub fn add(&self, dir: Direction, n: usize) {
        let c = match dir {
            Direction::ToViewer => &self.to_viewer,
            Direction::ToBackend => &self.to_backend,
        };
        c.set(c.get() + n as u64);
        self.last.set(self.clock.now());
    }

    /// Bytes relayed to the viewer.
    pub fn to_viewer(&self) -> u64 {
        self.to_viewer.get()
    }

    /// Bytes relayed to the backend.
    pub fn to_backend(&self) -> u64 {
        self.to_backend.get()
    }

    /// When a byte last went either way (or the meter was made).
    pub fn last_activity(&self) -> Instant {
        self.last.get()
    }
}

/// A reading half whose bytes are counted as going `dir`.
pub struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
    dir: Direction,
}

impl<R> Metered<R> {
    /// Counts what `inner` reads.
    pub fn new(inner: R, meter: Rc<Meter>, dir: Direction) -> Self {
        Metered { inner, meter, dir }
    }
}

impl<R: ByteRead> ByteRead for Metered<R> {
    async fn read_bytes(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read_bytes(buf).await?;
        self.meter.add(self.dir, n);
        Ok(n)
    }
}
