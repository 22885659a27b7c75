//! TLS (`--cert`, `--key`, cargo feature `tls`): loading the certificate
//! and key at startup and again on SIGHUP, terminating a viewer's (or, with
//! `--control-tls`, a control client's) TLS with rustls (the `ring`
//! provider, TLS 1.2 and 1.3 only), and the client side `vncap request
//! --control-tls` uses. What runs inside the TLS stream (sniffing again, the
//! WebSocket upgrade, RFB authentication, the relay) is the same generic
//! pipeline as over plain TCP (`entry.rs`); this file only turns a socket
//! whose first bytes were a ClientHello into two plaintext halves.
//!
//! The backend side (`--backend-tls-dir`, VeNCrypt toward Ganeti nodes) is
//! [`BackendTls`]: the node's CA and vncap's optional client certificate in
//! QEMU's directory layout, reloaded on SIGHUP, a rustls client handshake
//! over the backend's socket when `rfb::client` hands it over, and the
//! viewer-visible words for each way it fails.
//!
//! Built without the feature, `tls_off.rs` stands in: the same names, an
//! [`Acceptor`] and a [`BackendTls`] that cannot be made.
//!
//! Not here: any TLS logic of our own (the handshake, records and alerts are
//! rustls's), viewers' client certificates (none are asked for), SNI-based choice of
//! certificate (one certificate covers every entry point, the single port
//! and the control channel). Spec: DESIGN.md "Entry points" (TLS, then sniff
//! again inside).

use futures_lite::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use futures_rustls::rustls::client::ResolvesClientCert;
use futures_rustls::rustls::crypto::ring;
use futures_rustls::rustls::sign::CertifiedKey;
use futures_rustls::rustls::version::{TLS12, TLS13};
use futures_rustls::rustls::{
    CertificateError, ClientConfig, Error, InconsistentKeys, RootCertStore, ServerConfig,
    SignatureScheme,
};
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
use std::sync::atomic::{AtomicBool, Ordering};
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
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(VERSIONS)
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            let why = key_error(e);
            format!(
                "--cert {} with --key {}: {why}",
                cert.display(),
                key.display()
            )
        })?;
    // No TLS 1.3 session tickets: a ticket's port is one-time, so there is
    // nothing to resume, and TigerVNC's viewer (1.12, Debian 12) stalls on
    // VeNCrypt when NewSessionTicket records arrive with the VNC challenge
    // (its TLS layer hands the rest of the read back to a socket wait).
    config.send_tls13_tickets = 0;
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

/// The reading half of a backend's TLS stream over `S`.
pub type BackendRead<S> = ReadHalf<Client<Prefixed<S>>>;
/// The writing half of a backend's TLS stream over `S`.
pub type BackendWrite<S> = WriteHalf<Client<Prefixed<S>>>;

/// The CA file in a `--backend-tls-dir` (QEMU's and Ganeti's
/// `vnc_x509_path` layout).
pub const BACKEND_CA: &str = "ca-cert.pem";
/// vncap's client certificate in a `--backend-tls-dir`, for nodes that
/// verify peers (`vnc_x509_verify`, QEMU's `verify-peer=yes`).
pub const BACKEND_CLIENT_CERT: &str = "client-cert.pem";
/// The key of [`BACKEND_CLIENT_CERT`].
pub const BACKEND_CLIENT_KEY: &str = "client-key.pem";

/// The client side of TLS toward backends (`--backend-tls-dir`): the CA that
/// issued the nodes' certificates, vncap's client certificate when the
/// directory has one, and the name every node's certificate must carry
/// (`--backend-tls-name`; default: the request's `daddr`). [`reload`]
/// re-reads the directory (handshakes already begun keep what they had).
///
/// [`reload`]: BackendTls::reload
#[derive(Clone)]
pub struct BackendTls(Rc<BackendFiles>);

struct BackendFiles {
    dir: PathBuf,
    name: Option<String>,
    current: RefCell<Rc<BackendCreds>>,
}

/// What a handshake is made from.
struct BackendCreds {
    roots: Arc<RootCertStore>,
    identity: Option<Arc<CertifiedKey>>,
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls::BackendTls({})", self.0.dir.display())
    }
}

impl BackendTls {
    /// Loads `dir/ca-cert.pem` and, when both are there,
    /// `dir/client-cert.pem` + `dir/client-key.pem`. `name`: the server name
    /// every node's certificate must be valid for, instead of the address
    /// each request names. Fails, naming the file, when one cannot be read
    /// or parsed, when only one of the client pair is there, or when the key
    /// does not belong to the certificate.
    pub fn load(dir: &Path, name: Option<String>) -> Result<BackendTls, String> {
        if let Some(n) = &name {
            ServerName::try_from(n.clone())
                .map_err(|e| format!("--backend-tls-name {n}: not a TLS server name ({e})"))?;
        }
        let creds = backend_creds(dir)?;
        Ok(BackendTls(Rc::new(BackendFiles {
            dir: dir.to_path_buf(),
            name,
            current: RefCell::new(Rc::new(creds)),
        })))
    }

    /// Reads the directory again and, when it loads, uses it for every
    /// handshake from now on; when it does not, keeps the old files and says
    /// why.
    pub fn reload(&self) -> Result<(), String> {
        let creds = backend_creds(&self.0.dir)?;
        *self.0.current.borrow_mut() = Rc::new(creds);
        Ok(())
    }

    /// The directory, for the log.
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// Whether a client certificate is configured (for the log).
    pub fn has_client_cert(&self) -> bool {
        self.0.current.borrow().identity.is_some()
    }

    /// Runs the client handshake toward the node `daddr` on `stream`, whose
    /// first bytes (`early`) were already read, checking its certificate
    /// against the CA and the name (`--backend-tls-name`, else `daddr`).
    /// Returns the plaintext halves and what the handshake learned, or the
    /// viewer-visible reason it failed.
    pub async fn connect<S>(
        &self,
        daddr: &str,
        early: &[u8],
        stream: S,
    ) -> Result<(BackendRead<S>, BackendWrite<S>, BackendHandshake), String>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let creds = self.0.current.borrow().clone();
        let name = self.0.name.as_deref().unwrap_or(daddr);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("backend TLS: {name} is not a TLS server name ({e})"))?;
        let asked = Arc::new(AtomicBool::new(false));
        let identity = Arc::new(Identity {
            key: creds.identity.clone(),
            asked: asked.clone(),
        });
        let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_protocol_versions(VERSIONS)
            .map_err(|e| format!("backend TLS: {e}"))?
            .with_root_certificates(creds.roots.clone())
            .with_client_cert_resolver(identity);
        let handshake = BackendHandshake {
            asked,
            sent_cert: creds.identity.is_some(),
        };
        let tls = TlsConnector::from(Arc::new(config))
            .connect(server_name, Prefixed::new(early, stream))
            .await
            .map_err(|e| handshake.explain(&e, name, &self.0.dir))?;
        let (r, w) = futures_lite::io::split(tls);
        Ok((r, w, handshake))
    }
}

/// What one backend handshake learned that explains a failure after it
/// (with TLS 1.3 a node that wants a client certificate completes the
/// handshake and then closes, or sends an alert on the first read).
pub struct BackendHandshake {
    asked: Arc<AtomicBool>,
    sent_cert: bool,
}

impl BackendHandshake {
    /// Whether the node asked for a client certificate (QEMU's
    /// `verify-peer=yes`).
    pub fn client_cert_requested(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }

    /// Why the node closed the connection (or failed a read) inside TLS,
    /// when the client certificate explains it; `None` otherwise.
    pub fn explain_close(&self) -> Option<String> {
        if !self.client_cert_requested() {
            return None;
        }
        Some(if self.sent_cert {
            "backend TLS: the node refused vncap's client certificate (not issued by the CA in \
             its vnc_x509_path?)"
                .into()
        } else {
            format!(
                "backend TLS: the node demands a client certificate (vnc_x509_verify): add \
                 {BACKEND_CLIENT_CERT} and {BACKEND_CLIENT_KEY}"
            )
        })
    }

    /// The viewer-visible words for a failed handshake.
    fn explain(&self, e: &io::Error, name: &str, dir: &Path) -> String {
        let rustls = e.get_ref().and_then(|i| i.downcast_ref::<Error>());
        let cert = |c: &CertificateError| match c {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "backend TLS: certificate name mismatch (not valid for {name}; see \
                     --backend-tls-name)"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "backend TLS: the node's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "backend TLS: the node's certificate is not valid yet".into()
            }
            _ => {
                log::info!(
                    "backend {name}: certificate not issued by {}: {c:?}",
                    dir.join(BACKEND_CA).display()
                );
                format!(
                    "backend TLS: certificate not trusted (not issued by the {BACKEND_CA} of \
                     --backend-tls-dir)"
                )
            }
        };
        match rustls {
            Some(Error::InvalidCertificate(c)) => cert(c),
            Some(Error::AlertReceived(a)) => self
                .explain_close()
                .unwrap_or_else(|| format!("backend TLS: the node sent the alert {a:?}")),
            Some(other) => format!("backend TLS handshake: {other}"),
            None => self
                .explain_close()
                .unwrap_or_else(|| format!("backend TLS handshake: {e}")),
        }
    }
}

/// Offers vncap's client certificate (if any) when a node asks, and notes
/// that it asked.
#[derive(Debug)]
struct Identity {
    key: Option<Arc<CertifiedKey>>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _issuers: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        // Keep the transcript for client authentication either way: the
        // node decides whether it asks.
        true
    }
}

/// The CA and the optional client identity from a backend TLS directory.
fn backend_creds(dir: &Path) -> Result<BackendCreds, String> {
    let file = |f: &str| dir.join(f);
    let ca = file(BACKEND_CA);
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(&ca)
        .map_err(|e| format!("--backend-tls-dir: {}: {e}", ca.display()))?
    {
        let der = der.map_err(|e| format!("--backend-tls-dir: {}: {e}", ca.display()))?;
        roots
            .add(der)
            .map_err(|e| format!("--backend-tls-dir: {}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "--backend-tls-dir: {}: no certificate in the file",
            ca.display()
        ));
    }
    let (cert, key) = (file(BACKEND_CLIENT_CERT), file(BACKEND_CLIENT_KEY));
    let identity = match (cert.exists(), key.exists()) {
        (false, false) => None,
        (true, true) => {
            let chain = CertificateDer::pem_file_iter(&cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("--backend-tls-dir: {}: {e}", cert.display()))?;
            if chain.is_empty() {
                return Err(format!(
                    "--backend-tls-dir: {}: no certificate in the file",
                    cert.display()
                ));
            }
            let private = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| format!("--backend-tls-dir: {}: {e}", key.display()))?;
            let certified = CertifiedKey::from_der(chain, private, &ring::default_provider())
                .map_err(|e| {
                    let why = key_error(e);
                    format!(
                        "--backend-tls-dir: {} with {}: {why}",
                        cert.display(),
                        key.display()
                    )
                })?;
            Some(Arc::new(certified))
        }
        _ => {
            return Err(format!(
                "--backend-tls-dir {}: {BACKEND_CLIENT_CERT} and {BACKEND_CLIENT_KEY} go together",
                dir.display()
            ))
        }
    };
    Ok(BackendCreds {
        roots: Arc::new(roots),
        identity,
    })
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

/// What a certificate and key that do not load together are told as.
fn key_error(e: Error) -> String {
    match e {
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            "the key does not belong to the certificate".to_string()
        }
        e => e.to_string(),
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
