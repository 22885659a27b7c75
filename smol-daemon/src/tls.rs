//! TLS (`--cert`, `--key`, cargo feature `tls`): loading the certificate
//! and key at startup and again on SIGHUP, terminating a viewer's (or, with
//! `--control-tls`, a control client's) TLS with rustls (the `ring`
//! provider, TLS 1.2 and 1.3 only), and the client side `vncap request
//! --control-tls` uses. What runs inside the TLS stream (sniffing again, the
//! WebSocket upgrade, RFB authentication, the relay) is the same generic
//! pipeline as over plain TCP (`entry.rs`); this file only turns a socket
//! whose first bytes were a ClientHello into two plaintext halves.
//!
//! Built without the feature, `tls_off.rs` stands in: the same names, an
//! [`Acceptor`] that cannot be made.
//!
//! Not here: any TLS logic of our own (the handshake, records and alerts are
//! rustls's), client certificates (none are asked for), SNI-based choice of
//! certificate (one certificate covers every entry point, the single port
//! and the control channel). Spec: DESIGN.md "Entry points" (TLS, then sniff
//! again inside).

use futures_lite::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use futures_rustls::rustls::crypto::ring;
use futures_rustls::rustls::version::{TLS12, TLS13};
use futures_rustls::rustls::{ClientConfig, Error, InconsistentKeys, RootCertStore, ServerConfig};
use futures_rustls::server::TlsStream;
use futures_rustls::{TlsAcceptor, TlsConnector};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::cell::RefCell;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The reading half of a viewer's TLS stream over `S`.
pub type Read<S> = ReadHalf<TlsStream<Prefixed<S>>>;
/// The writing half of a viewer's TLS stream over `S`.
pub type Write<S> = WriteHalf<TlsStream<Prefixed<S>>>;
/// A client's TLS stream over `S` (`vncap request --control-tls`).
pub type Client<S> = futures_rustls::client::TlsStream<S>;

/// The TLS versions offered, server and client: 1.3 and 1.2, nothing older.
const VERSIONS: &[&futures_rustls::rustls::SupportedProtocolVersion] = &[&TLS13, &TLS12];

/// The server side of TLS: one certificate chain and its key, shared by
/// every entry point and the control channel, and replaced by [`reload`]
/// (handshakes already begun keep the configuration they started with).
///
/// [`reload`]: Acceptor::reload
#[derive(Clone)]
pub struct Acceptor(Rc<Files>);

struct Files {
    cert: PathBuf,
    key: PathBuf,
    current: RefCell<TlsAcceptor>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls::Acceptor({})", self.0.cert.display())
    }
}

impl Acceptor {
    /// Loads a PEM certificate chain (end-entity first) and its PEM private
    /// key (PKCS#8, PKCS#1 or SEC1). Fails, naming the file, when one cannot
    /// be read or parsed, or when the key does not match the certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<Acceptor, String> {
        let config = server_config(cert, key)?;
        Ok(Acceptor(Rc::new(Files {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RefCell::new(TlsAcceptor::from(config)),
        })))
    }

    /// Reads the certificate and key files again and, when they load, uses
    /// them for every handshake from now on; when they do not, keeps the old
    /// ones and says why.
    pub fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.0.cert, &self.0.key)?;
        *self.0.current.borrow_mut() = TlsAcceptor::from(config);
        Ok(())
    }

    /// The certificate file, for the log.
    pub fn cert_path(&self) -> &Path {
        &self.0.cert
    }

    /// Runs the server handshake on `stream`, whose first bytes (`sniffed`)
    /// were already read, and splits the result into plaintext halves.
    pub async fn accept<S>(&self, sniffed: &[u8], stream: S) -> io::Result<(Read<S>, Write<S>)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = self.0.current.borrow().clone();
        let tls = acceptor.accept(Prefixed::new(sniffed, stream)).await?;
        Ok(futures_lite::io::split(tls))
    }
}

/// A server configuration from the two PEM files.
fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--cert {}: no certificate in the file",
            cert.display()
        ));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--key {}: {e}", key.display()))?;
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(VERSIONS)
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
    Ok(Arc::new(config))
}

/// The client side: a TLS handshake on `stream` with the server `name` (a
/// host name or an IP address), trusting the PEM certificates in `ca` (a
/// CA, or the server's self-signed certificate itself).
pub async fn connect<S>(ca: &Path, name: &str, stream: S) -> Result<Client<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut roots = RootCertStore::empty();
    for der in
        CertificateDer::pem_file_iter(ca).map_err(|e| format!("--ca {}: {e}", ca.display()))?
    {
        let der = der.map_err(|e| format!("--ca {}: {e}", ca.display()))?;
        roots
            .add(der)
            .map_err(|e| format!("--ca {}: {e}", ca.display()))?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(VERSIONS)
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_string())
        .map_err(|e| format!("{name}: not a TLS server name ({e})"))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// A stream that first serves bytes already read from it (what sniffing
/// consumed), then reads on; writes go straight through.
///
/// Under rustls it is also the read-ahead: rustls asks for at most 4 KiB a
/// read (`read_tls`), four syscalls per full record. While the peer streams
/// (a read filled what was asked), it reads [`READ_AHEAD`] bytes at a time
/// into a buffer from the relay's free list and serves rustls from there;
/// after the first short read it gives the buffer back once drained, so an
/// idle session holds none.
pub struct Prefixed<S> {
    /// The sniffed bytes, then the read-ahead buffer; `ahead[at..end]` is
    /// still to be served.
    ahead: Option<Box<[u8]>>,
    at: usize,
    end: usize,
    /// The last read from `inner` filled what it was given.
    streaming: bool,
    inner: S,
}

/// Bytes read at once while the peer streams (four full TLS records).
pub const READ_AHEAD: usize = 64 * 1024;

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` put back in front of what it will read.
    pub fn new(prefix: &[u8], inner: S) -> Self {
        Prefixed {
            ahead: (!prefix.is_empty()).then(|| prefix.into()),
            at: 0,
            end: prefix.len(),
            streaming: false,
            inner,
        }
    }

    /// Hands out buffered bytes; gives the buffer back once drained unless
    /// the peer is still streaming.
    fn serve(&mut self, buf: &mut [u8]) -> usize {
        let Some(ahead) = self.ahead.as_ref() else {
            return 0;
        };
        let n = (self.end - self.at).min(buf.len());
        buf[..n].copy_from_slice(&ahead[self.at..self.at + n]);
        self.at += n;
        if self.at == self.end {
            (self.at, self.end) = (0, 0);
            let read_ahead = ahead.len() == READ_AHEAD;
            if !(self.streaming && read_ahead) {
                // The sniffed prefix is freed; a read-ahead buffer goes back.
                if let Some(b) = self.ahead.take().filter(|_| read_ahead) {
                    crate::relay::give_buffer(b);
                }
            }
        }
        n
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.end > this.at {
            return Poll::Ready(Ok(this.serve(buf)));
        }
        if !this.streaming || buf.len() >= READ_AHEAD {
            let n = std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            this.streaming = n == buf.len() && n > 0;
            return Poll::Ready(Ok(n));
        }
        let ahead = this
            .ahead
            .get_or_insert_with(|| crate::relay::take_buffer(READ_AHEAD));
        let read = Pin::new(&mut this.inner).poll_read(cx, ahead);
        let n = match read {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                // Waiting: the buffer goes back until bytes arrive.
                if let Some(b) = this.ahead.take() {
                    crate::relay::give_buffer(b);
                }
                this.streaming = false;
                return Poll::Pending;
            }
        };
        this.streaming = n == READ_AHEAD;
        (this.at, this.end) = (0, n);
        Poll::Ready(Ok(this.serve(buf)))
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

    /// rustls hands over every record it has queued as one vectored write;
    /// without this the default writes only the first (one 16 KiB record
    /// per syscall).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
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

    #[test]
    fn read_ahead_streams_intact_and_lets_go_when_drained() {
        smol::block_on(async {
            let data: Vec<u8> = (0..3 * READ_AHEAD + 123).map(|i| (i % 251) as u8).collect();
            let mut s = Prefixed::new(b"", &data[..]);
            let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if s.streaming {
                    assert!(s.ahead.is_some() || s.end == 0);
                }
            }
            assert_eq!(got, data);
            assert!(
                s.ahead.is_none(),
                "a drained, short read gives the buffer back"
            );
        });
    }
}
