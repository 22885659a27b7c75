//! The relay: after both handshakes, copy bytes both ways until either side
//! closes, then close both. Each direction reads into one fixed buffer and
//! writes it out before reading again, so a slow viewer slows the backend read
//! (TCP backpressure) and no buffer ever grows. The buffers are allocated once
//! at session start.

use crate::transport::{ByteRead, ByteWrite, HEADROOM};
use std::io;

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

/// Copies from `r` to `w` until EOF or error, through `buf`.
async fn pump<R: ByteRead, W: ByteWrite>(r: &mut R, w: &mut W, buf: &mut [u8]) -> io::Result<()> {
    loop {
        let n = r.read_bytes(&mut buf[HEADROOM..]).await?;
        if n == 0 {
            return Ok(());
        }
        w.write_payload(buf, HEADROOM..HEADROOM + n).await?;
    }
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
    let mut up = vec![0u8; HEADROOM + buf_size];
    let mut down = vec![0u8; HEADROOM + buf_size];
    let end = futures_lite::future::or(
        async { (Side::Viewer, pump(vr, bw, &mut up).await) },
        async { (Side::Backend, pump(br, vw, &mut down).await) },
    )
    .await;
    vw.close().await;
    bw.close().await;
    RelayEnd {
        closed_by: end.0,
        error: end.1.err(),
    }
}
