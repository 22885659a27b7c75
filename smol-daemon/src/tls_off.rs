//! TLS left out (built without the cargo feature `tls`): `tls.rs`'s names,
//! with an [`Acceptor`] and a [`BackendTls`] that cannot be made, so every TLS option is a clear
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

/// Stands for a backend's TLS reading half; never made.
pub type BackendRead<S> = S;
/// Stands for a backend's TLS writing half; never made.
pub type BackendWrite<S> = S;

/// No backend TLS: there is no value of this type.
#[derive(Debug, Clone)]
pub enum BackendTls {}

/// Never made.
pub enum BackendHandshake {}

impl BackendHandshake {
    /// Unreachable (no handshake exists).
    pub fn explain_close(&self) -> Option<String> {
        match *self {}
    }
}

impl BackendTls {
    /// Always fails: this build has no TLS.
    pub fn load(_dir: &Path, _name: Option<String>) -> Result<BackendTls, String> {
        Err(UNAVAILABLE.into())
    }

    /// Unreachable (no value exists).
    pub fn reload(&self) -> Result<(), String> {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub fn dir(&self) -> &Path {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub fn has_client_cert(&self) -> bool {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub async fn connect<S>(
        &self,
        _daddr: &str,
        _early: &[u8],
        _stream: S,
    ) -> Result<(BackendRead<S>, BackendWrite<S>, BackendHandshake), String>
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
