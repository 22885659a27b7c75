//! Static files on the single port (`vncap serve --web-root DIR`): what an
//! HTTP request that is not a WebSocket upgrade gets, so that noVNC's page
//! and its WebSocket console share one origin and one certificate.
//!
//! [`Exchange`] reads one request head (`httparse`) and decides: a request
//! carrying `Upgrade: websocket` is not its business ([`Event::Upgrade`]:
//! nothing consumed, the caller hands the bytes to [`crate::ws::handshake`]);
//! any other is checked and becomes a [`Request`] for a safe relative path
//! ([`Event::Request`]), or a refusal whose answer is queued
//! ([`Error::http_status`]). The driver opens the file (strictly below its
//! directory, regular files only), calls [`Exchange::respond`] with its
//! length or `None`, writes [`Machine::poll_output`] (the response head)
//! and, when `respond` says so, the file's bytes, then closes.
//!
//! It is not a web server: one request per connection (every answer says
//! `Connection: close`), GET and HEAD only (else 405 with `Allow`), no
//! ranges, no conditional requests, no directory listings, and never a
//! redirect (websockify's CVE-2021-3654 was an open redirect from a path
//! starting `//`). It reads no file: the path it hands out is safe to open
//! relative to a directory (RFC 9110 sections 9.3.1, 9.3.2; RFC 3986
//! section 2.1 for the escapes).
//!
//! # Which paths are served
//!
//! The request-target must be in origin form (`/...`); its query and
//! fragment are dropped. The path is percent-decoded once, strictly (a `%`
//! not followed by two hex digits is 400), and must be UTF-8 (else 400).
//! Refused with 404, decoded or not: a NUL or any control character, a
//! backslash, an encoded slash (`%2f`), a path starting `//`, an empty
//! segment (`/a//b`), and any segment starting with `.` (`.`, `..`, and
//! hidden files such as `.git`). `/` and a path ending in `/` name that
//! directory's [`INDEX`]; a path naming a directory without the slash gets
//! its index too (the driver finds it is a directory and opens
//! [`Request::index_path`]), never a listing and never a redirect.

use core::fmt::{self, Write as _};

use heapless::{String, Vec};

use crate::machine::Machine;

/// The file served for a directory.
pub const INDEX: &str = "index.html";
/// The longest request path, raw (414 beyond it; as the WebSocket
/// handshake's [`crate::ws::handshake::MAX_TARGET`]).
pub const MAX_PATH: usize = 512;
/// Room for a decoded path with a directory's [`INDEX`] appended.
pub const PATH_CAP: usize = MAX_PATH + 1 + INDEX.len();
/// Header lines parsed at most (431 beyond it).
pub const MAX_HEADERS: usize = 64;
/// Room for a response head (or a refusal with its short body).
const OUT_CAP: usize = 384;
/// `Cache-Control` of every answer: a cache must ask again each time, so a
/// page never mixes with files of another version after an upgrade.
pub const CACHE_CONTROL: &str = "no-cache";
/// The media type of a refusal's line of text.
const TEXT: &str = "text/plain; charset=utf-8";
/// The methods served, as `Allow` lists them.
pub const ALLOW: &str = "GET, HEAD";

/// GET or HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The file.
    Get,
    /// The response head only.
    Head,
}

/// A checked request for a file: a relative path safe to open below the
/// web root (no `..`, `.`, empty or hidden segments, no leading `/`, no NUL
/// or backslash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: Method,
    path: String<PATH_CAP>,
    /// The path is a directory's index already (it ended in `/`).
    index: bool,
}

impl Request {
    /// GET or HEAD.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The file to open, relative to the web root, without a leading `/`:
    /// `index.html` for `/`, `app/index.html` for `/app/`, `core/rfb.js`
    /// for `/core/rfb.js`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The index of the directory [`Request::path`] names, when it names a
    /// directory (no trailing slash was sent): `app/index.html` for `/app`.
    /// `None` when the path is already a directory's index.
    pub fn index_path(&self) -> Option<IndexPath<'_>> {
        (!self.index).then_some(IndexPath(&self.path))
    }

    /// The media type of [`Request::path`] (from its extension).
    pub fn content_type(&self) -> &'static str {
        content_type(&self.path)
    }
}

/// A directory's index path (`{dir}/index.html`), written with `Display`.
#[derive(Debug, Clone, Copy)]
pub struct IndexPath<'a>(&'a str);

impl fmt::Display for IndexPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{INDEX}", self.0)
    }
}

/// What the driver found for a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body {
    /// The file's length in bytes (`Content-Length`).
    pub len: u64,
    /// It is the index of the directory the path named
    /// ([`Request::index_path`]): served as HTML.
    pub index: bool,
}

/// The media type for a file name, from its extension (ASCII
/// case-insensitive); unknown ones are `application/octet-stream`.
pub fn content_type(name: &str) -> &'static str {
    let file = name.rsplit('/').next().unwrap_or(name);
    let ext = match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => "",
    };
    let is = |e: &str| ext.eq_ignore_ascii_case(e);
    if is("html") || is("htm") {
        "text/html; charset=utf-8"
    } else if is("js") || is("mjs") {
        "text/javascript; charset=utf-8"
    } else if is("css") {
        "text/css; charset=utf-8"
    } else if is("json") || is("map") {
        "application/json"
    } else if is("svg") {
        "image/svg+xml"
    } else if is("png") {
        "image/png"
    } else if is("ico") {
        "image/x-icon"
    } else if is("wasm") {
        "application/wasm"
    } else if is("woff") {
        "font/woff"
    } else if is("woff2") {
        "font/woff2"
    } else if is("txt") {
        TEXT
    } else {
        "application/octet-stream"
    }
}

/// What the exchange reports to its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The request asks for a WebSocket upgrade: nothing was consumed;
    /// give the same bytes to the WebSocket handshake.
    Upgrade,
    /// A request for a file: open [`Exchange::request`]'s path, then
    /// [`Exchange::respond`].
    Request,
}

/// Why a request gets no file. Its answer (status, a line of text) is
/// queued in `poll_output` when the error is returned; errors are sticky.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The head is larger than the configured limit (431).
    HeaderTooLarge,
    /// More header lines than the parser has room for (431).
    TooManyHeaders,
    /// Not an HTTP/1.x request, or not in origin form (400).
    MalformedRequest,
    /// A method other than GET or HEAD (405, with `Allow: GET, HEAD`).
    MethodNotAllowed,
    /// The path is longer than [`MAX_PATH`] (414).
    UriTooLong,
    /// A `%` not followed by two hex digits (400).
    BadEscape,
    /// The decoded path is not UTF-8 (400).
    NotUtf8,
    /// A path that names nothing that may be served: `..`, `.`, hidden or
    /// empty segments, a leading `//`, NUL, control characters, a
    /// backslash or an encoded slash (404, as for a missing file).
    Forbidden,
    /// The driver found no regular file there (404).
    NotFound,
    /// The request was still being read at the driver's deadline (408).
    TimedOut,
}

impl Error {
    /// What went wrong (also the answer's body).
    pub const fn reason(&self) -> &'static str {
        match self {
            Error::HeaderTooLarge => "request header block too large",
            Error::TooManyHeaders => "too many request header lines",
            Error::MalformedRequest => "malformed HTTP request",
            Error::MethodNotAllowed => "only GET and HEAD are served",
            Error::UriTooLong => "request target too long",
            Error::BadEscape => "bad percent-escape in the path",
            Error::NotUtf8 => "the path is not UTF-8",
            Error::Forbidden | Error::NotFound => "not found",
            Error::TimedOut => "request timed out",
        }
    }

    /// Why, for logs: unlike [`Error::reason`] it tells a refused path from
    /// a missing file.
    pub const fn detail(&self) -> &'static str {
        match self {
            Error::Forbidden => "path refused (dot segment, empty segment, leading //, NUL, backslash or encoded slash)",
            Error::NotFound => "no such file",
            other => other.reason(),
        }
    }

    /// The HTTP status of the answer.
    pub const fn http_status(&self) -> u16 {
        match self {
            Error::HeaderTooLarge | Error::TooManyHeaders => 431,
            Error::MalformedRequest | Error::BadEscape | Error::NotUtf8 => 400,
            Error::MethodNotAllowed => 405,
            Error::UriTooLong => 414,
            Error::Forbidden | Error::NotFound => 404,
            Error::TimedOut => 408,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.http_status(), self.detail())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    /// The request is an upgrade: the exchange is done with it.
    Upgrade,
    /// [`Event::Request`] reported; waiting for [`Exchange::respond`].
    Request,
    /// The answer is queued.
    Answered,
    Failed(Error),
}

/// One request for a static file (a [`Machine`]; see the module docs).
#[derive(Debug)]
pub struct Exchange {
    max_header_bytes: usize,
    state: State,
    request: Option<Request>,
    /// A HEAD request: no body, not even a refusal's line.
    head_only: bool,
    event: Option<Event>,
    out: Vec<u8, OUT_CAP>,
    sent: usize,
}

impl Exchange {
    /// An exchange waiting for a request head of at most
    /// `max_header_bytes` (the caller's read buffer should hold that much).
    pub fn new(max_header_bytes: usize) -> Self {
        Exchange {
            max_header_bytes,
            state: State::Reading,
            request: None,
            head_only: false,
            event: None,
            out: Vec::new(),
            sent: 0,
        }
    }

    /// The request, after [`Event::Request`].
    pub fn request(&self) -> Option<&Request> {
        self.request.as_ref()
    }

    /// After [`Event::Request`]: the file found (its length), or `None`
    /// (404). Queues the response head; returns whether the file's bytes
    /// follow it (a GET of a file found). Does nothing (and returns
    /// `false`) at any other time.
    pub fn respond(&mut self, found: Option<Body>) -> bool {
        if self.state != State::Request {
            return false;
        }
        let Some(body) = found else {
            self.fail(Error::NotFound);
            return false;
        };
        let content_type = match (&self.request, body.index) {
            (_, true) => content_type(INDEX),
            (Some(r), false) => r.content_type(),
            (None, false) => content_type(""),
        };
        self.queue_head(200, content_type, body.len, None);
        self.state = State::Answered;
        !self.head_only
    }

    /// At the driver's deadline: a request still being read gets 408.
    pub fn time_out(&mut self) {
        if self.state == State::Reading {
            self.fail(Error::TimedOut);
        }
    }

    fn queue_head(&mut self, status: u16, content_type: &str, len: u64, allow: Option<&str>) {
        let mut s: String<OUT_CAP> = String::new();
        let _ = write!(
            s,
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: {CACHE_CONTROL}\r\nConnection: close\r\n",
            status_text(status)
        );
        if let Some(allow) = allow {
            let _ = write!(s, "Allow: {allow}\r\n");
        }
        let _ = s.push_str("\r\n");
        self.out.clear();
        self.sent = 0;
        let _ = self.out.extend_from_slice(s.as_bytes());
    }

    fn fail(&mut self, e: Error) -> Error {
        let body = e.reason();
        let allow = matches!(e, Error::MethodNotAllowed).then_some(ALLOW);
        let len = body.len() + 1;
        self.queue_head(e.http_status(), TEXT, len as u64, allow);
        if !self.head_only {
            let _ = self.out.extend_from_slice(body.as_bytes());
            let _ = self.out.push(b'\n');
        }
        self.state = State::Failed(e);
        self.event = None;
        debug!("web: {}", e.detail());
        e
    }

    fn parse(&mut self, input: &[u8]) -> Result<usize, Error> {
        let limit = input.len().min(self.max_header_bytes);
        let window = input.get(..limit).unwrap_or(input);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let used = match req.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if input.len() >= self.max_header_bytes {
                    Err(Error::HeaderTooLarge)
                } else {
                    Ok(0)
                };
            }
            Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
            Err(_) => return Err(Error::MalformedRequest),
        };
        let upgrade = req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("upgrade")
                && h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"websocket"))
        });
        if upgrade {
            self.state = State::Upgrade;
            self.event = Some(Event::Upgrade);
            return Ok(0);
        }
        self.head_only = req.method == Some("HEAD");
        let method = match req.method {
            Some("GET") => Method::Get,
            Some("HEAD") => Method::Head,
            _ => return Err(Error::MethodNotAllowed),
        };
        let (path, index) = decode_path(req.path.unwrap_or(""))?;
        self.request = Some(Request {
            method,
            path,
            index,
        });
        self.state = State::Request;
        self.event = Some(Event::Request);
        Ok(used)
    }
}

/// The safe relative path of a request-target (see the module docs), and
/// whether it is a directory's index already.
fn decode_path(target: &str) -> Result<(String<PATH_CAP>, bool), Error> {
    if !target.starts_with('/') {
        return Err(Error::MalformedRequest);
    }
    let end = target.find(['?', '#']).unwrap_or(target.len());
    let raw = target.get(..end).unwrap_or_default().as_bytes();
    if raw.len() > MAX_PATH {
        return Err(Error::UriTooLong);
    }
    // Decode once; an escape never makes a separator.
    let mut path: Vec<u8, PATH_CAP> = Vec::new();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let byte = if b == b'%' {
            let hi = raw.get(i + 1).and_then(|&h| hex(h));
            let lo = raw.get(i + 2).and_then(|&l| hex(l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(Error::BadEscape);
            };
            i += 3;
            let d = (hi << 4) | lo;
            if d == b'/' {
                return Err(Error::Forbidden);
            }
            d
        } else {
            i += 1;
            b
        };
        if byte < 0x20 || byte == 0x7f || byte == b'\\' {
            return Err(Error::Forbidden);
        }
        path.push(byte).map_err(|_| Error::UriTooLong)?;
    }
    let text = core::str::from_utf8(&path).map_err(|_| Error::NotUtf8)?;
    // C1 controls (U+0080-U+009F: `%C2%9B` is a terminal's CSI) are
    // control characters too, for the log lines that name the path.
    if text.chars().any(char::is_control) {
        return Err(Error::Forbidden);
    }
    // `text` starts with the `/` of the origin form.
    let rel = text.get(1..).unwrap_or_default();
    let (dir, last) = match rel.rsplit_once('/') {
        Some((dir, last)) => (Some(dir), last),
        None => (None, rel),
    };
    if let Some(dir) = dir {
        // A leading `//`, an empty or a dot segment before the last.
        if dir.split('/').any(|s| s.is_empty() || s.starts_with('.')) {
            return Err(Error::Forbidden);
        }
    }
    if last.starts_with('.') {
        return Err(Error::Forbidden);
    }
    let mut out: String<PATH_CAP> = String::new();
    out.push_str(rel).map_err(|_| Error::UriTooLong)?;
    let index = last.is_empty();
    if index {
        // `/` or `/dir/`: the directory's index.
        out.push_str(INDEX).map_err(|_| Error::UriTooLong)?;
    }
    Ok((out, index))
}

const fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

impl Machine for Exchange {
    type Event = Event;
    type Error = Error;

    /// Parses the request head once it is complete; returns its length
    /// (bytes after it are left alone), or 0 for an upgrade (the bytes are
    /// the handshake's) and while the head is incomplete.
    fn handle_input(&mut self, input: &[u8]) -> Result<usize, Error> {
        match self.state {
            State::Failed(e) => Err(e),
            State::Reading => self.parse(input).map_err(|e| self.fail(e)),
            State::Upgrade | State::Request | State::Answered => Ok(0),
        }
    }

    /// The end of input while reading the head: it is incomplete (400).
    fn handle_eof(&mut self, input: &[u8]) -> Result<usize, Error> {
        let n = self.handle_input(input)?;
        if self.state == State::Reading {
            return Err(self.fail(Error::MalformedRequest));
        }
        Ok(n)
    }

    fn poll_output(&mut self, out: &mut [u8]) -> usize {
        crate::machine::send_queued(&self.out, &mut self.sent, out)
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String as StdString;
    use std::vec::Vec as StdVec;

    const MAX: usize = 8192;

    fn get(target: &str) -> StdString {
        std::format!("GET {target} HTTP/1.1\r\nHost: vnc.example.org\r\n\r\n")
    }

    /// Feeds `head` whole and byte by byte; both must agree. The result,
    /// and the queued answer.
    fn run(head: &[u8]) -> (Result<Option<Request>, Error>, StdString) {
        let whole = run_split(head, head.len().max(1));
        let bytewise = run_split(head, 1);
        assert_eq!(whole, bytewise, "split changed the outcome");
        whole
    }

    fn run_split(head: &[u8], step: usize) -> (Result<Option<Request>, Error>, StdString) {
        let mut x = Exchange::new(MAX);
        let mut have = 0;
        let mut used = 0;
        let result = loop {
            have = (have + step).min(head.len());
            match x.handle_input(&head[used..have]) {
                Ok(n) => used += n,
                Err(e) => break Err(e),
            }
            match x.poll_event() {
                Some(Event::Request) => break Ok(x.request().cloned()),
                Some(Event::Upgrade) => {
                    assert_eq!(used, 0);
                    break Ok(None);
                }
                None => {}
            }
            if have == head.len() {
                break x.handle_eof(&head[used..]).map(|_| None);
            }
        };
        (result, answer(&mut x))
    }

    fn answer(x: &mut Exchange) -> StdString {
        let mut out = [0u8; 1024];
        let mut v = StdVec::new();
        loop {
            let n = x.poll_output(&mut out[..7]);
            if n == 0 {
                break;
            }
            v.extend_from_slice(&out[..n]);
        }
        StdString::from_utf8(v).unwrap()
    }

    fn path(target: &str) -> Result<StdString, Error> {
        run(get(target).as_bytes())
            .0
            .map(|r| StdString::from(r.expect("a file request").path()))
    }

    #[test]
    fn paths_that_are_served() {
        assert_eq!(path("/").unwrap(), "index.html");
        assert_eq!(path("/vnc.html").unwrap(), "vnc.html");
        assert_eq!(path("/core/rfb.js").unwrap(), "core/rfb.js");
        assert_eq!(path("/app/").unwrap(), "app/index.html");
        assert_eq!(path("/vnc.html?host=x&port=1").unwrap(), "vnc.html");
        assert_eq!(path("/vnc.html#frag").unwrap(), "vnc.html");
        assert_eq!(path("/a%20b.txt").unwrap(), "a b.txt");
        assert_eq!(path("/caf%C3%A9.html").unwrap(), "café.html");
        assert_eq!(path("/a..b/c...js").unwrap(), "a..b/c...js");
        // Decoded once: `%2525` is `%25`, not `%`.
        assert_eq!(path("/100%2525.txt").unwrap(), "100%25.txt");
        // The query may hold anything.
        assert_eq!(path("/?a=../../etc/passwd&b=//x").unwrap(), "index.html");
    }

    #[test]
    fn index_paths() {
        let r = |t: &str| run(get(t).as_bytes()).0.unwrap().unwrap();
        let app = r("/app");
        assert_eq!(
            app.index_path().map(|p| std::format!("{p}")).as_deref(),
            Some("app/index.html")
        );
        assert!(r("/app/").index_path().is_none());
        assert!(r("/").index_path().is_none());
    }

    #[test]
    fn traversal_in_every_encoding_is_refused() {
        for target in [
            "/..",
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/a/..",
            "/.",
            "/./vnc.html",
            "/a/./b",
            "/%2e%2e",
            "/%2e%2e/etc/passwd",
            "/%2E%2e/",
            "/%2e./x",
            "/.%2e/x",
            "/..%2f",
            "/..%2fetc%2fpasswd",
            "/a%2f..%2f..%2fetc",
            "/..%5c..%5cwindows",
            "/a%5cb",
            "/a\\b",
            "//evil.example",
            "//evil.example/%2e%2e",
            "/%2fevil",
            "/%2Fevil.example",
            "/a//b",
            "/a/b//",
            "/.git/config",
            "/.hidden",
            "/a/.htpasswd",
            "/a%00.html",
            "/%00",
            "/a%0d%0aSet-Cookie:x",
            "/%7f",
            "/a%c2%9b31m.js",
            "/c\u{8e}b",
        ] {
            let (r, answer) = run(get(target).as_bytes());
            assert_eq!(r, Err(Error::Forbidden), "{target}");
            assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{target}");
            assert!(!answer.contains("Location"), "{target}");
        }
    }

    #[test]
    fn bad_escapes_are_400() {
        for target in ["/%", "/%2", "/%zz", "/a%g0", "/%%41", "/a%2"] {
            let (r, answer) = run(get(target).as_bytes());
            assert_eq!(r, Err(Error::BadEscape), "{target}");
            assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        }
        assert_eq!(path("/%ff.html"), Err(Error::NotUtf8));
        // Not origin form.
        assert_eq!(path("http://evil.example/"), Err(Error::MalformedRequest));
        assert_eq!(path("*"), Err(Error::MalformedRequest));
        // A raw NUL is not HTTP at all.
        let (r, _) = run(b"GET /a\0b HTTP/1.1\r\n\r\n");
        assert_eq!(r, Err(Error::MalformedRequest));
    }

    #[test]
    fn only_get_and_head() {
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"] {
            let head = std::format!("{method} / HTTP/1.1\r\nHost: x\r\n\r\n");
            let (r, answer) = run(head.as_bytes());
            assert_eq!(r, Err(Error::MethodNotAllowed), "{method}");
            assert!(answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
            assert!(answer.contains("\r\nAllow: GET, HEAD\r\n"), "{answer}");
        }
    }

    #[test]
    fn head_gets_the_head_only() {
        let mut x = Exchange::new(MAX);
        let head = b"HEAD /vnc.html HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(x.handle_input(head), Ok(head.len()));
        assert_eq!(x.poll_event(), Some(Event::Request));
        assert_eq!(x.request().unwrap().method(), Method::Head);
        assert!(!x.respond(Some(Body {
            len: 1234,
            index: false
        })));
        let a = answer(&mut x);
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"), "{a}");
        assert!(a.contains("\r\nContent-Length: 1234\r\n"), "{a}");
        assert!(a.ends_with("\r\n\r\n"));
        // A refused HEAD has no body either.
        let (_, a) = run(b"HEAD /../x HTTP/1.1\r\n\r\n");
        assert!(
            a.starts_with("HTTP/1.1 404 ") && a.ends_with("\r\n\r\n"),
            "{a}"
        );
    }

    #[test]
    fn response_head() {
        let mut x = Exchange::new(MAX);
        let head = get("/core/rfb.js");
        assert_eq!(x.handle_input(head.as_bytes()), Ok(head.len()));
        assert_eq!(x.poll_event(), Some(Event::Request));
        assert!(x.respond(Some(Body {
            len: 42,
            index: false
        })));
        assert_eq!(
            answer(&mut x),
            "HTTP/1.1 200 OK\r\nContent-Type: text/javascript; charset=utf-8\r\nContent-Length: 42\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
        );
        // Once only.
        assert!(!x.respond(Some(Body {
            len: 1,
            index: false
        })));
        // A directory's index is HTML; a missing file is 404.
        let mut x = Exchange::new(MAX);
        x.handle_input(get("/app").as_bytes()).unwrap();
        assert!(x.respond(Some(Body {
            len: 3,
            index: true
        })));
        assert!(answer(&mut x).contains("Content-Type: text/html; charset=utf-8\r\n"));
        let mut x = Exchange::new(MAX);
        x.handle_input(get("/nope.js").as_bytes()).unwrap();
        assert!(!x.respond(None));
        let a = answer(&mut x);
        assert!(a.starts_with("HTTP/1.1 404 Not Found\r\n"), "{a}");
        assert!(a.ends_with("\r\n\r\nnot found\n"), "{a}");
        assert_eq!(x.handle_input(b""), Err(Error::NotFound));
    }

    #[test]
    fn upgrades_are_the_handshakes() {
        let head = b"GET /websockify?token=abc HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n";
        let (r, answer) = run(head);
        assert_eq!(r, Ok(None));
        assert!(answer.is_empty());
        // Any method: the handshake answers it.
        let (r, _) = run(b"POST / HTTP/1.1\r\nUpgrade: h2c, websocket\r\n\r\n");
        assert_eq!(r, Ok(None));
        // Another upgrade is just a request for a file.
        let (r, _) = run(b"GET /x.txt HTTP/1.1\r\nUpgrade: h2c\r\n\r\n");
        assert_eq!(r.unwrap().unwrap().path(), "x.txt");
    }

    #[test]
    fn overlong_requests() {
        let long = std::format!("/{}", "a".repeat(MAX_PATH));
        assert_eq!(path(&long), Err(Error::UriTooLong));
        assert_eq!(path(&long[..MAX_PATH]).unwrap().len(), MAX_PATH - 1);
        let mut x = Exchange::new(256);
        let head = std::format!("GET / HTTP/1.1\r\nX: {}\r\n", "b".repeat(300));
        assert_eq!(x.handle_input(head.as_bytes()), Err(Error::HeaderTooLarge));
        assert!(answer(&mut x).starts_with("HTTP/1.1 431 "));
        let many: StdString = (0..=MAX_HEADERS)
            .map(|i| std::format!("H{i}: v\r\n"))
            .collect();
        let (r, _) = run(std::format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes());
        assert_eq!(r, Err(Error::TooManyHeaders));
        // Cut short by the end of input.
        let (r, a) = run(b"GET / HTTP/1.1\r\nHost:");
        assert_eq!(r, Err(Error::MalformedRequest));
        assert!(a.starts_with("HTTP/1.1 400 "));
        let mut x = Exchange::new(MAX);
        assert_eq!(x.handle_input(b"GET / HT"), Ok(0));
        x.time_out();
        assert!(answer(&mut x).starts_with("HTTP/1.1 408 Request Timeout\r\n"));
        assert_eq!(x.handle_input(b""), Err(Error::TimedOut));
    }

    #[test]
    fn content_types() {
        for (name, ty) in [
            ("vnc.html", "text/html; charset=utf-8"),
            ("a/INDEX.HTM", "text/html; charset=utf-8"),
            ("core/rfb.js", "text/javascript; charset=utf-8"),
            ("x.mjs", "text/javascript; charset=utf-8"),
            ("app/styles/base.css", "text/css; charset=utf-8"),
            ("package.json", "application/json"),
            ("rfb.js.map", "application/json"),
            ("app/images/icons/novnc.svg", "image/svg+xml"),
            ("a.png", "image/png"),
            ("favicon.ico", "image/x-icon"),
            ("x.wasm", "application/wasm"),
            ("f.woff", "font/woff"),
            ("f.woff2", "font/woff2"),
            ("LICENSE.txt", "text/plain; charset=utf-8"),
            ("app/sounds/bell.oga", "application/octet-stream"),
            ("Makefile", "application/octet-stream"),
            ("dir.js/file", "application/octet-stream"),
        ] {
            assert_eq!(content_type(name), ty, "{name}");
        }
    }

    #[test]
    fn bytes_after_the_head_stay() {
        let mut x = Exchange::new(MAX);
        let head = get("/vnc.html");
        let mut input = StdVec::from(head.as_bytes());
        input.extend_from_slice(b"GET /second HTTP/1.1\r\n\r\n");
        assert_eq!(x.handle_input(&input), Ok(head.len()));
        assert_eq!(x.handle_input(&input[head.len()..]), Ok(0));
    }
}
