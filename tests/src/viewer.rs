//! A blocking RFB viewer for tests, over any `Read + Write` stream (a
//! `TcpStream`, or a WebSocket through [`WsStream`]): the client side of
//! RFC 6143 §7.1–§7.3 (version 3.3/3.7/3.8, security None or VNC
//! authentication, ClientInit/ServerInit), FramebufferUpdateRequest and the
//! Raw encoding (§7.5.3, §7.6.1, §7.7.1), and "bulk" helpers that push a
//! seeded byte stream through a relay while reading one back.
//!
//! It is written independently of `vncap-core` (DES from the `des` crate,
//! WebSocket from `tungstenite`), so that it can judge the proxy. It is
//! deliberately willing to misbehave where a test needs it: asked for None,
//! it sends security type 1 even when the server did not offer it.
//!
//! It is not a viewer for people: no encodings but Raw, no colour maps, no
//! input events beyond what a test sends by hand ([`Viewer::send_raw`]).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::peer::{
    vnc_auth_response, BulkStream, PixelFormat, Version, SECURITY_NONE, SECURITY_VNC_AUTH,
};

/// Which security the viewer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Security type None (1), chosen even if the server does not offer it.
    None,
    /// VNC authentication (2) with this password (first 8 bytes count).
    VncAuth(Vec<u8>),
}

/// How the viewer handshakes.
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// The highest version the viewer speaks (3.8 by default); it answers
    /// the lower of this and the server's.
    pub max_version: Version,
    /// What security to choose.
    pub auth: Auth,
    /// ClientInit's shared flag (true by default).
    pub shared: bool,
}

impl ViewerConfig {
    /// Version 3.8, VNC authentication with `password`, shared.
    pub fn password(password: &str) -> ViewerConfig {
        ViewerConfig {
            max_version: Version::V3_8,
            auth: Auth::VncAuth(password.as_bytes().to_vec()),
            shared: true,
        }
    }

    /// Version 3.8, security None, shared.
    pub fn none() -> ViewerConfig {
        ViewerConfig {
            max_version: Version::V3_8,
            auth: Auth::None,
            shared: true,
        }
    }

    /// The same with `max_version` set.
    pub fn version(mut self, max_version: Version) -> ViewerConfig {
        self.max_version = max_version;
        self
    }
}

/// Why a handshake did not end in a session.
#[derive(Debug)]
pub enum ViewerError {
    /// The stream failed or ended early (EOF is `UnexpectedEof`).
    Io(io::Error),
    /// The server sent something that is not RFB.
    Protocol(String),
    /// The server offered no security type (or type 0 on 3.3), with its reason.
    Refused {
        /// The server's reason string.
        reason: String,
    },
    /// The viewer cannot do what the server demands (3.3 server picked a type
    /// the viewer was not asked to use, or the list lacks VNC authentication).
    Unsupported {
        /// The security types the server offered.
        offered: Vec<u8>,
    },
    /// SecurityResult was not OK.
    SecurityFailed {
        /// The SecurityResult word (1 = failed, 2 = too many attempts).
        result: u32,
        /// The reason string (3.8 only; `None` on 3.3/3.7).
        reason: Option<String>,
    },
}

impl std::fmt::Display for ViewerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ViewerError::Io(e) => write!(f, "i/o: {e}"),
            ViewerError::Protocol(s) => write!(f, "protocol: {s}"),
            ViewerError::Refused { reason } => write!(f, "server refused: {reason}"),
            ViewerError::Unsupported { offered } => {
                write!(f, "no usable security type in {offered:?}")
            }
            ViewerError::SecurityFailed { result, reason } => {
                write!(f, "SecurityResult {result}: {reason:?}")
            }
        }
    }
}

impl std::error::Error for ViewerError {}

impl From<io::Error> for ViewerError {
    fn from(e: io::Error) -> Self {
        ViewerError::Io(e)
    }
}

/// The ServerInit message (RFC 6143 §7.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    /// Framebuffer width.
    pub width: u16,
    /// Framebuffer height.
    pub height: u16,
    /// The server's pixel format.
    pub pixel_format: PixelFormat,
    /// The desktop name (lossy UTF-8).
    pub name: String,
}

/// One Raw rectangle of a FramebufferUpdate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rect {
    /// Left.
    pub x: u16,
    /// Top.
    pub y: u16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
    /// Pixel bytes, row by row, in the session's pixel format.
    pub pixels: Vec<u8>,
}

/// A whole framebuffer as composed from Raw rectangles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framebuffer {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes per pixel.
    pub bytes_per_pixel: usize,
    /// The pixels, row by row (zero where no rectangle covered).
    pub pixels: Vec<u8>,
}

impl Framebuffer {
    /// SHA-256 of [`Framebuffer::pixels`].
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.pixels).into()
    }
}

/// What a bulk exchange saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkReport {
    /// Bytes sent.
    pub sent_len: u64,
    /// SHA-256 of the bytes sent.
    pub sent_sha256: [u8; 32],
    /// Bytes received.
    pub received_len: u64,
    /// SHA-256 of the bytes received.
    pub received_sha256: [u8; 32],
}

/// The largest Raw rectangle the viewer accepts (bytes), so a hostile length
/// cannot make it allocate without bound.
pub const MAX_RECT_BYTES: usize = 64 << 20;

/// A logged-in RFB session over `S`.
#[derive(Debug)]
pub struct Viewer<S> {
    stream: S,
    version: Version,
    offered: Vec<u8>,
    server_init: ServerInit,
    pixel_format: PixelFormat,
}

impl<S: Read + Write> Viewer<S> {
    /// Runs the whole handshake on `stream`: ProtocolVersion, security,
    /// ClientInit, ServerInit.
    pub fn handshake(mut stream: S, config: &ViewerConfig) -> Result<Viewer<S>, ViewerError> {
        let mut theirs = [0u8; 12];
        stream.read_exact(&mut theirs)?;
        let server_version = Version::parse(&theirs).ok_or_else(|| {
            ViewerError::Protocol(format!(
                "bad ProtocolVersion {:?}",
                String::from_utf8_lossy(&theirs)
            ))
        })?;
        let version = server_version.min(config.max_version);
        stream.write_all(version.message())?;
        stream.flush()?;

        let (offered, chosen) = if version == Version::V3_3 {
            let t = read_u32(&mut stream)?;
            if t == 0 {
                return Err(ViewerError::Refused {
                    reason: read_string(&mut stream)?,
                });
            }
            let t =
                u8::try_from(t).map_err(|_| ViewerError::Protocol(format!("security type {t}")))?;
            let wanted = match config.auth {
                Auth::None => SECURITY_NONE,
                Auth::VncAuth(_) => SECURITY_VNC_AUTH,
            };
            if t != wanted {
                return Err(ViewerError::Unsupported { offered: vec![t] });
            }
            (vec![t], t)
        } else {
            let n = read_u8(&mut stream)?;
            if n == 0 {
                return Err(ViewerError::Refused {
                    reason: read_string(&mut stream)?,
                });
            }
            let mut offered = vec![0u8; usize::from(n)];
            stream.read_exact(&mut offered)?;
            let chosen = match config.auth {
                Auth::None => SECURITY_NONE,
                Auth::VncAuth(_) if offered.contains(&SECURITY_VNC_AUTH) => SECURITY_VNC_AUTH,
                Auth::VncAuth(_) => return Err(ViewerError::Unsupported { offered }),
            };
            stream.write_all(&[chosen])?;
            stream.flush()?;
            (offered, chosen)
        };

        let result_expected = if chosen == SECURITY_VNC_AUTH {
            let mut challenge = [0u8; 16];
            stream.read_exact(&mut challenge)?;
            let password = match &config.auth {
                Auth::VncAuth(p) => p.as_slice(),
                Auth::None => &[],
            };
            stream.write_all(&vnc_auth_response(password, &challenge))?;
            stream.flush()?;
            true
        } else {
            version == Version::V3_8
        };
        if result_expected {
            let result = read_u32(&mut stream)?;
            if result != 0 {
                let reason = if version == Version::V3_8 {
                    Some(read_string(&mut stream)?)
                } else {
                    None
                };
                return Err(ViewerError::SecurityFailed { result, reason });
            }
        }

        stream.write_all(&[u8::from(config.shared)])?;
        stream.flush()?;
        let mut head = [0u8; 24];
        stream.read_exact(&mut head)?;
        let mut pf = [0u8; 16];
        pf.copy_from_slice(&head[4..20]);
        let pixel_format = PixelFormat::from_bytes(&pf);
        let name_len = u32::from_be_bytes([head[20], head[21], head[22], head[23]]);
        let name = read_bytes(&mut stream, name_len, 1 << 16)?;
        let server_init = ServerInit {
            width: u16::from_be_bytes([head[0], head[1]]),
            height: u16::from_be_bytes([head[2], head[3]]),
            pixel_format,
            name: String::from_utf8_lossy(&name).into_owned(),
        };
        Ok(Viewer {
            stream,
            version,
            offered,
            server_init,
            pixel_format,
        })
    }

    /// The negotiated version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The security types the server offered (on 3.3: the one it picked).
    pub fn offered(&self) -> &[u8] {
        &self.offered
    }

    /// The ServerInit message.
    pub fn server_init(&self) -> &ServerInit {
        &self.server_init
    }

    /// The stream, e.g. to set timeouts.
    pub fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Gives the stream back.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Writes `bytes` as they are (any client message a test wants to send).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends SetPixelFormat; later rectangles are read in `format`.
    pub fn set_pixel_format(&mut self, format: PixelFormat) -> io::Result<()> {
        let mut msg = vec![0u8, 0, 0, 0];
        msg.extend_from_slice(&format.to_bytes());
        self.pixel_format = format;
        self.send_raw(&msg)
    }

    /// Sends SetEncodings.
    pub fn set_encodings(&mut self, encodings: &[i32]) -> io::Result<()> {
        let mut msg = vec![2u8, 0];
        msg.extend_from_slice(&(encodings.len() as u16).to_be_bytes());
        for e in encodings {
            msg.extend_from_slice(&e.to_be_bytes());
        }
        self.send_raw(&msg)
    }

    /// Sends FramebufferUpdateRequest.
    pub fn request_update(
        &mut self,
        incremental: bool,
        x: u16,
        y: u16,
        width: u16,
        height: u16,
    ) -> io::Result<()> {
        let mut msg = vec![3u8, u8::from(incremental)];
        for v in [x, y, width, height] {
            msg.extend_from_slice(&v.to_be_bytes());
        }
        self.send_raw(&msg)
    }

    /// Reads server messages until a FramebufferUpdate and returns its
    /// rectangles (Bell, ServerCutText and SetColourMapEntries are skipped).
    /// Only the Raw encoding is accepted.
    pub fn read_update(&mut self) -> Result<Vec<Rect>, ViewerError> {
        loop {
            match read_u8(&mut self.stream)? {
                0 => break,
                1 => {
                    let mut b = [0u8; 5];
                    self.stream.read_exact(&mut b)?;
                    let n = u16::from_be_bytes([b[3], b[4]]);
                    read_bytes(&mut self.stream, u32::from(n) * 6, usize::MAX)?;
                }
                2 => {}
                3 => {
                    let mut pad = [0u8; 3];
                    self.stream.read_exact(&mut pad)?;
                    let len = read_u32(&mut self.stream)?;
                    read_bytes(&mut self.stream, len, 1 << 24)?;
                }
                t => {
                    return Err(ViewerError::Protocol(format!(
                        "unknown server message type {t}"
                    )))
                }
            }
        }
        let mut b = [0u8; 3];
        self.stream.read_exact(&mut b)?;
        let count = u16::from_be_bytes([b[1], b[2]]);
        let mut rects = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let mut h = [0u8; 12];
            self.stream.read_exact(&mut h)?;
            let u = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
            let encoding = i32::from_be_bytes([h[8], h[9], h[10], h[11]]);
            if encoding != 0 {
                return Err(ViewerError::Protocol(format!(
                    "encoding {encoding} (only Raw was asked for)"
                )));
            }
            let (x, y, width, height) = (u(0), u(2), u(4), u(6));
            let len = usize::from(width)
                .checked_mul(usize::from(height))
                .and_then(|n| n.checked_mul(self.pixel_format.bytes_per_pixel()))
                .filter(|&n| n <= MAX_RECT_BYTES)
                .ok_or_else(|| ViewerError::Protocol("rectangle too large".to_string()))?;
            let mut pixels = vec![0u8; len];
            self.stream.read_exact(&mut pixels)?;
            rects.push(Rect {
                x,
                y,
                width,
                height,
                pixels,
            });
        }
        Ok(rects)
    }

    /// Asks for the whole framebuffer in Raw (SetEncodings [Raw], then a
    /// non-incremental request) and composes the first update's rectangles.
    pub fn fetch_framebuffer(&mut self) -> Result<Framebuffer, ViewerError> {
        self.set_encodings(&[0])?;
        let (w, h) = (self.server_init.width, self.server_init.height);
        self.request_update(false, 0, 0, w, h)?;
        let rects = self.read_update()?;
        let bpp = self.pixel_format.bytes_per_pixel();
        let mut fb = Framebuffer {
            width: w,
            height: h,
            bytes_per_pixel: bpp,
            pixels: vec![0u8; usize::from(w) * usize::from(h) * bpp],
        };
        for r in &rects {
            let row = usize::from(r.width) * bpp;
            for dy in 0..usize::from(r.height) {
                let y = usize::from(r.y) + dy;
                let x = usize::from(r.x);
                if y >= usize::from(h) || x >= usize::from(w) {
                    continue;
                }
                let keep = row.min((usize::from(w) - x) * bpp);
                let src = &r.pixels[dy * row..dy * row + keep];
                let at = (y * usize::from(w) + x) * bpp;
                fb.pixels[at..at + keep].copy_from_slice(src);
            }
        }
        Ok(fb)
    }

    /// The bulk exchange: sends `send_len` bytes of the [`BulkStream`] seeded
    /// with `send_seed` while reading `recv_len` bytes, interleaved in chunks
    /// so that neither direction waits for the other (deadlock-free against
    /// any full-duplex peer), and returns both checksums. It does not close
    /// the stream: drop it (or [`WsStream::close`]) to let the backend see EOF.
    pub fn bulk(
        &mut self,
        send_len: u64,
        send_seed: u64,
        recv_len: u64,
    ) -> Result<BulkReport, ViewerError> {
        bulk_exchange(&mut self.stream, send_len, send_seed, recv_len)
    }
}

/// [`Viewer::bulk`] on any stream (for tests that skip the RFB handshake).
pub fn bulk_exchange<S: Read + Write>(
    stream: &mut S,
    send_len: u64,
    send_seed: u64,
    recv_len: u64,
) -> Result<BulkReport, ViewerError> {
    const CHUNK: usize = 32 * 1024;
    let mut source = BulkStream::new(send_seed);
    let mut out = vec![0u8; CHUNK];
    let mut inb = vec![0u8; CHUNK];
    let (mut sent, mut received) = (0u64, 0u64);
    let (mut sent_hash, mut recv_hash) = (Sha256::new(), Sha256::new());
    while sent < send_len || received < recv_len {
        if sent < send_len {
            let n = (send_len - sent).min(CHUNK as u64) as usize;
            source.fill(&mut out[..n]);
            stream.write_all(&out[..n])?;
            stream.flush()?;
            sent_hash.update(&out[..n]);
            sent += n as u64;
        }
        if received < recv_len {
            let want = (recv_len - received).min(CHUNK as u64) as usize;
            let n = stream.read(&mut inb[..want])?;
            if n == 0 {
                return Err(ViewerError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {received} of {recv_len} bulk bytes"),
                )));
            }
            recv_hash.update(&inb[..n]);
            received += n as u64;
        }
    }
    Ok(BulkReport {
        sent_len: sent,
        sent_sha256: sent_hash.finalize().into(),
        received_len: received,
        received_sha256: recv_hash.finalize().into(),
    })
}

fn read_u8<R: Read>(r: &mut R) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn read_u32<R: Read>(r: &mut R) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn read_bytes<R: Read>(r: &mut R, len: u32, max: usize) -> Result<Vec<u8>, ViewerError> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > max {
        return Err(ViewerError::Protocol(format!("length {len} over {max}")));
    }
    let mut buf = Vec::new();
    let got = r.take(len as u64).read_to_end(&mut buf)?;
    if got < len {
        return Err(ViewerError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(buf)
}

fn read_string<R: Read>(r: &mut R) -> Result<String, ViewerError> {
    let len = read_u32(r)?;
    Ok(String::from_utf8_lossy(&read_bytes(r, len, 1 << 16)?).into_owned())
}

/// A WebSocket client connection as a byte stream: `Read` yields the payload
/// of Binary messages (or base64-decoded Text messages when the `base64`
/// subprotocol was chosen), `Write` sends each call as one message. Close
/// from the server reads as EOF.
///
/// The WebSocket peer here is `tungstenite` (sync, client role), chosen as an
/// implementation independent of vncap's own `ws` machines.
#[derive(Debug)]
pub struct WsStream {
    ws: tungstenite::WebSocket<TcpStream>,
    protocol: Option<String>,
    pending: Vec<u8>,
    pos: usize,
    closed: bool,
}

/// Options for [`WsStream::connect`].
#[derive(Debug, Clone, Default)]
pub struct WsOptions {
    /// Subprotocols to offer in `Sec-WebSocket-Protocol` (noVNC offers
    /// `binary`; old noVNC `base64`); empty offers none.
    pub protocols: Vec<String>,
    /// An `Origin` header, if any.
    pub origin: Option<String>,
}

impl WsStream {
    /// Opens a WebSocket to `url` (`ws://127.0.0.1:PORT/path?query`) over a
    /// new TCP connection. An HTTP error answer (e.g. 403) comes back as
    /// `Err` with the status in the message; see also
    /// [`WsStream::handshake`].
    pub fn connect(url: &str, options: &WsOptions) -> io::Result<WsStream> {
        let uri: tungstenite::http::Uri = url
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
        let host = uri.host().unwrap_or("127.0.0.1");
        let port = uri.port_u16().unwrap_or(80);
        let tcp = TcpStream::connect((host, port))?;
        WsStream::handshake(tcp, url, options)
    }

    /// The client handshake on an already connected `tcp`.
    pub fn handshake(tcp: TcpStream, url: &str, options: &WsOptions) -> io::Result<WsStream> {
        use tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().map_err(to_io)?;
        let headers = request.headers_mut();
        if !options.protocols.is_empty() {
            let value = options.protocols.join(", ");
            headers.insert(
                "Sec-WebSocket-Protocol",
                value
                    .parse()
                    .map_err(|e| io::Error::other(format!("{e}")))?,
            );
        }
        if let Some(origin) = &options.origin {
            headers.insert(
                "Origin",
                origin
                    .parse()
                    .map_err(|e| io::Error::other(format!("{e}")))?,
            );
        }
        let (ws, response) = tungstenite::client::client(request, tcp).map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => to_io(e),
            tungstenite::HandshakeError::Interrupted(_) => {
                io::Error::new(io::ErrorKind::WouldBlock, "handshake interrupted")
            }
        })?;
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(WsStream {
            ws,
            protocol,
            pending: Vec::new(),
            pos: 0,
            closed: false,
        })
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The TCP stream underneath (e.g. to set timeouts).
    pub fn tcp(&self) -> &TcpStream {
        self.ws.get_ref()
    }

    /// Sends a Close frame and waits for the server's Close (or EOF).
    pub fn close(&mut self) -> io::Result<()> {
        match self.ws.close(None) {
            Ok(()) => {}
            Err(tungstenite::Error::ConnectionClosed) | Err(tungstenite::Error::AlreadyClosed) => {
                return Ok(())
            }
            Err(e) => return Err(to_io(e)),
        }
        loop {
            match self.ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed)
                | Err(tungstenite::Error::AlreadyClosed) => return Ok(()),
                Err(tungstenite::Error::Io(e))
                    if e.kind() == io::ErrorKind::ConnectionReset
                        || e.kind() == io::ErrorKind::UnexpectedEof =>
                {
                    return Ok(())
                }
                Err(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                )) => return Ok(()),
                Err(e) => return Err(to_io(e)),
            }
        }
    }

    /// The underlying tungstenite socket, for tests that send frames by hand.
    pub fn websocket(&mut self) -> &mut tungstenite::WebSocket<TcpStream> {
        &mut self.ws
    }

    fn base64(&self) -> bool {
        self.protocol.as_deref() == Some("base64")
    }
}

fn to_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::Http(response) => io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("HTTP {}", response.status()),
        ),
        other => io::Error::other(other.to_string()),
    }
}

impl Read for WsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.pending.len() {
            if self.closed {
                return Ok(0);
            }
            let data = match self.ws.read() {
                Ok(tungstenite::Message::Binary(b)) => b.to_vec(),
                Ok(tungstenite::Message::Text(t)) if self.base64() => {
                    base64::engine::general_purpose::STANDARD
                        .decode(t.as_str())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
                }
                Ok(tungstenite::Message::Text(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text message on a binary WebSocket",
                    ))
                }
                Ok(tungstenite::Message::Close(_))
                | Err(tungstenite::Error::ConnectionClosed)
                | Err(tungstenite::Error::AlreadyClosed) => {
                    self.closed = true;
                    return Ok(0);
                }
                Ok(_) => continue,
                Err(e) => return Err(to_io(e)),
            };
            self.pending = data;
            self.pos = 0;
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for WsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let msg = if self.base64() {
            tungstenite::Message::text(base64::engine::general_purpose::STANDARD.encode(buf))
        } else {
            tungstenite::Message::binary(buf.to_vec())
        };
        self.ws.send(msg).map_err(to_io)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.ws.flush().map_err(to_io)
    }
}
