//! TLS left out (built without the cargo feature `tls`): `tls.rs`'s names,
//! with an [`Acceptor`] that cannot be made, so every TLS option is a clear
//! startup error and the rest of the daemon needs no `cfg` of its own. A
//! ClientHello on an entry point still gets the core's `handshake_failure`
//! alert (`entry.rs`), as when no certificate is configured.

use futures_lite::io::{AsyncRead, AsyncWrite};
use std::io;
use std::path::Path;

/// What every TLS option says in a build without TLS.
const UNAVAILABLE: &str = "this vncap was built without TLS (cargo feature `tls`)";

/// Stands for a TLS reading half; never made.
pub type Read<S> = S;
/// Stands for a TLS writing half; never made.
pub type Write<S> = S;
/// Stands for a client's TLS stream; never made.
pub type Client<S> = S;

/// No TLS: there is no value of this type.
#[derive(Debug, Clone)]
pub enum Acceptor {}

impl Acceptor {
    /// Always fails: this build has no TLS.
    pub fn load(_cert: &Path, _key: &Path) -> Result<Acceptor, String> {
        Err(UNAVAILABLE.into())
    }

    /// Unreachable (no acceptor exists).
    pub fn reload(&self) -> Result<(), String> {
        match *self {}
    }

    /// Unreachable (no acceptor exists).
    pub fn cert_path(&self) -> &Path {
        match *self {}
    }

    /// Unreachable (no acceptor exists).
    pub async fn accept<S>(&self, _sniffed: &[u8], _stream: S) -> io::Result<(Read<S>, Write<S>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match *self {}
    }
}

/// Always fails: this build has no TLS.
pub async fn connect<S>(_ca: &Path, _name: &str, _stream: S) -> Result<Client<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    Err(UNAVAILABLE.into())
}
