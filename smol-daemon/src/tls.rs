//! TLS on entry points (`--cert`, `--key`): loading the certificate
//! and key once at startup, and terminating one viewer's TLS with rustls
//! (the `ring` provider). What runs inside the TLS stream (sniffing again,
//! the WebSocket upgrade, RFB authentication, the relay) is the same generic
//! pipeline as over plain TCP (`entry.rs`); this file only turns a socket
//! whose first bytes were a ClientHello into two plaintext halves.
//!
//! Not here: any TLS logic of our own (the handshake, records and alerts are
//! rustls's), client certificates (none are asked for), SNI-based choice of
//! certificate (one certificate covers every entry point and the single
//! port). Spec: DESIGN.md "Entry points" (TLS, then sniff again inside).

use futures_lite::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use futures_rustls::rustls::crypto::ring;
use futures_rustls::rustls::{Error, InconsistentKeys, ServerConfig};
use futures_rustls::server::TlsStream;
use futures_rustls::TlsAcceptor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The reading half of a viewer's TLS stream over `S`.
pub type Read<S> = ReadHalf<TlsStream<Prefixed<S>>>;
/// The writing half of a viewer's TLS stream over `S`.
pub type Write<S> = WriteHalf<TlsStream<Prefixed<S>>>;

/// The server side of TLS: one certificate chain and its key, shared by
/// every entry point.
#[derive(Clone)]
pub struct Acceptor(TlsAcceptor);

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tls::Acceptor")
    }
}

impl Acceptor {
    /// Loads a PEM certificate chain (end-entity first) and its PEM private
    /// key (PKCS#8, PKCS#1 or SEC1). Fails, naming the file, when one cannot
    /// be read or parsed, or when the key does not match the certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<Acceptor, String> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--cert {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "--cert {}: no certificate in the file",
                cert.display()
            ));
        }
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("--key {}: {e}", key.display()))?;
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                let why = match e {
                    Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
                        "the key does not belong to the certificate".to_string()
                    }
                    e => e.to_string(),
                };
                format!(
                    "--cert {} with --key {}: {why}",
                    cert.display(),
                    key.display()
                )
            })?;
        Ok(Acceptor(TlsAcceptor::from(Arc::new(config))))
    }

    /// Runs the server handshake on `stream`, whose first bytes (`sniffed`)
    /// were already read, and splits the result into plaintext halves.
    pub async fn accept<S>(&self, sniffed: &[u8], stream: S) -> io::Result<(Read<S>, Write<S>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = self.0.accept(Prefixed::new(sniffed, stream)).await?;
        Ok(futures_lite::io::split(tls))
    }
}

/// A stream that first serves bytes already read from it (what sniffing
/// consumed), then reads on; writes go straight through.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` put back in front of what it will read.
    pub fn new(prefix: &[u8], inner: S) -> Self {
        Prefixed {
            prefix: prefix.to_vec(),
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let rest = this.prefix.get(this.at..).unwrap_or_default();
        if !rest.is_empty() {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::io::AsyncReadExt;

    #[test]
    fn prefixed_serves_the_sniffed_bytes_first() {
        smol::block_on(async {
            let inner: &[u8] = b" world";
            let mut s = Prefixed::new(b"hello", inner);
            let mut small = [0u8; 3];
            assert_eq!(s.read(&mut small).await.unwrap(), 3);
            assert_eq!(&small, b"hel");
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            assert_eq!(all, b"lo world");
        });
    }
}
