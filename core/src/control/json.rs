//! The control channel's JSON (RFC 8259): one small pull reader, and the
//! writer the requests and replies are emitted with.
//!
//! What it is: [`Reader`] walks one JSON text from the front, a token at a
//! time: [`Reader::value`] says what comes (a scalar, read whole, or the
//! opening of an object or array), [`Reader::next_key`] and
//! [`Reader::next_element`] step through a container, [`Reader::skip`]
//! steps over a value nobody asked for. Strings come back unescaped, from
//! the input itself or, when they hold escapes, from a
//! [`UNESCAPE_CAP`]-byte scratch buffer inside the reader; numbers come
//! back as their checked text ([`Number`]). The writer ([`Sink`],
//! [`string`], [`number`]) writes JSON strings escaped the same way both
//! sides read them. What it is not: a document model, or a general JSON
//! library: nothing is allocated, nesting is bounded ([`MAX_NESTING`]),
//! and what the control messages need is all there is.
//!
//! Strictness, each with its reason:
//! - **Raw control characters inside strings are refused** (RFC 8259 §7:
//!   U+0000 to U+001F must be escaped), so a request cannot smuggle a raw
//!   newline or escape sequence into a host name or a log line.
//! - **Invalid UTF-8 is refused**, in every string (also skipped ones).
//! - **A `\u` escape of a UTF-16 surrogate is refused**, paired or not (how
//!   `serde-json-core`, which this reader replaces, behaved; no request
//!   field needs characters outside the BMP).
//! - **Numbers follow the JSON grammar exactly** (no `+1`, `01`, `.5`,
//!   `1.`); their value is read only when a message asks for it.

/// Size of the scratch buffer escaped strings are unescaped into; an
/// escaped string longer than this once unescaped is [`Error::TooLong`].
pub const UNESCAPE_CAP: usize = 256;

/// Deepest nesting [`Reader::skip`] follows (the control framer already
/// stops at [`super::request::MAX_DEPTH`]).
pub const MAX_NESTING: usize = 32;

/// What is wrong with the JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Not JSON here (a bad token, a missing `,` or `:`, the end too soon,
    /// bytes after the value).
    Syntax,
    /// A string with a bad escape, a surrogate escape, a raw control
    /// character, or invalid UTF-8.
    BadString,
    /// An escaped string longer than [`UNESCAPE_CAP`] once unescaped.
    TooLong,
    /// Nesting deeper than [`MAX_NESTING`].
    TooDeep,
}

/// A JSON number, its text checked against the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number<'a>(&'a str);

impl Number<'_> {
    /// The number as `f64` (infinite when out of its range).
    pub fn f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }

    /// The number when it is written as a non-negative integer (digits
    /// only) that fits a `u64`.
    pub fn u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        self.0
    }
}

/// What comes next in the text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'r> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(Number<'r>),
    /// A string, unescaped.
    Str(&'r str),
    /// `{`, consumed: step through it with [`Reader::next_key`].
    Object,
    /// `[`, consumed: step through it with [`Reader::next_element`].
    Array,
}

/// A container a [`Value`] opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// `{`.
    Object,
    /// `[`.
    Array,
}

impl Value<'_> {
    /// The container this value opened, if it did.
    pub fn container(&self) -> Option<Container> {
        match self {
            Value::Object => Some(Container::Object),
            Value::Array => Some(Container::Array),
            _ => None,
        }
    }
}

/// A pull reader over one JSON text.
pub struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    /// The last token opened a container (its first member needs no `,`).
    opened: bool,
    scratch: [u8; UNESCAPE_CAP],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Reader {
            input,
            pos: 0,
            opened: false,
            scratch: [0; UNESCAPE_CAP],
        }
    }

    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.input.get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    fn expect(&mut self, b: u8) -> Result<(), Error> {
        if self.peek() != Some(b) {
            return Err(Error::Syntax);
        }
        self.pos += 1;
        Ok(())
    }

    /// The next value: a scalar read whole, or a container opened.
    pub fn value(&mut self) -> Result<Value<'_>, Error> {
        let b = self.peek().ok_or(Error::Syntax)?;
        self.opened = false;
        match b {
            b'{' | b'[' => {
                self.pos += 1;
                self.opened = true;
                Ok(if b == b'{' {
                    Value::Object
                } else {
                    Value::Array
                })
            }
            b'"' => self.string().map(Value::Str),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number().map(Value::Number),
            _ => Err(Error::Syntax),
        }
    }

    /// Inside an object: the next member's key (its `:` consumed; read its
    /// value next), or `None` at the closing `}` (consumed).
    pub fn next_key(&mut self) -> Result<Option<&str>, Error> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                self.opened = false;
                return Ok(None);
            }
            Some(b',') if !self.opened => self.pos += 1,
            _ if self.opened => {}
            _ => return Err(Error::Syntax),
        }
        self.opened = false;
        if self.peek() != Some(b'"') {
            return Err(Error::Syntax);
        }
        // The key's end, then the `:`, before the key is handed out.
        let key = self.string_span()?;
        self.expect(b':')?;
        Ok(Some(self.resolve(key)))
    }

    /// Inside an array: whether another element follows (read it with
    /// [`Reader::value`]); `false` at the closing `]` (consumed).
    pub fn next_element(&mut self) -> Result<bool, Error> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                self.opened = false;
                Ok(false)
            }
            Some(b',') if !self.opened => {
                self.pos += 1;
                Ok(true)
            }
            Some(_) if self.opened => Ok(true),
            _ => Err(Error::Syntax),
        }
    }

    /// Reads the next value and steps over it whole (checked as JSON).
    pub fn skip_value(&mut self) -> Result<(), Error> {
        match self.value()?.container() {
            Some(c) => self.skip(c),
            None => Ok(()),
        }
    }

    /// Steps over the rest of a container just opened (all of it checked
    /// as JSON).
    pub fn skip(&mut self, opened: Container) -> Result<(), Error> {
        // One bit per open container: 1 for an object.
        let mut stack: u32 = u32::from(opened == Container::Object);
        let mut depth = 1usize;
        while depth > 0 {
            let in_object = stack & 1 != 0;
            let more = if in_object {
                self.next_key()?.is_some()
            } else {
                self.next_element()?
            };
            if !more {
                depth -= 1;
                stack >>= 1;
                continue;
            }
            if let Some(c) = self.value()?.container() {
                if depth >= MAX_NESTING {
                    return Err(Error::TooDeep);
                }
                let object = c == Container::Object;
                stack = (stack << 1) | u32::from(object);
                depth += 1;
            }
        }
        Ok(())
    }

    /// Only whitespace is left.
    pub fn end(&mut self) -> Result<(), Error> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(Error::Syntax),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value<'static>) -> Result<Value<'static>, Error> {
        let end = self.pos + word.len();
        if self.input.get(self.pos..end) != Some(word) {
            return Err(Error::Syntax);
        }
        self.pos = end;
        Ok(v)
    }

    fn number(&mut self) -> Result<Number<'a>, Error> {
        let input = self.input;
        let start = self.pos;
        let digit = |i: usize| input.get(i).is_some_and(u8::is_ascii_digit);
        let digits = |mut i: usize| {
            let first = i;
            while digit(i) {
                i += 1;
            }
            (i > first).then_some(i)
        };
        let mut i = start;
        if input.get(i) == Some(&b'-') {
            i += 1;
        }
        i = match input.get(i) {
            Some(b'0') => i + 1,
            Some(b'1'..=b'9') => digits(i).ok_or(Error::Syntax)?,
            _ => return Err(Error::Syntax),
        };
        if input.get(i) == Some(&b'.') {
            i = digits(i + 1).ok_or(Error::Syntax)?;
        }
        if matches!(input.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(input.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            i = digits(i).ok_or(Error::Syntax)?;
        }
        self.pos = i;
        let text = input.get(start..i).unwrap_or_default();
        // ASCII by construction.
        Ok(Number(core::str::from_utf8(text).unwrap_or("0")))
    }

    fn string(&mut self) -> Result<&str, Error> {
        let span = self.string_span()?;
        Ok(self.resolve(span))
    }

    fn resolve(&self, span: Span) -> &str {
        let bytes = match span {
            Span::Input(a, b) => self.input.get(a..b),
            Span::Scratch(n) => self.scratch.get(..n),
        };
        // Checked UTF-8 when the span was made.
        core::str::from_utf8(bytes.unwrap_or_default()).unwrap_or_default()
    }

    /// Reads a string (at its `"`): where its unescaped text is.
    fn string_span(&mut self) -> Result<Span, Error> {
        let input = self.input;
        let start = self.pos + 1;
        let mut i = start;
        // Fast path: no escape, the text is the input's.
        loop {
            match input.get(i) {
                None => return Err(Error::Syntax),
                Some(b'"') => {
                    let text = input.get(start..i).unwrap_or_default();
                    core::str::from_utf8(text).map_err(|_| Error::BadString)?;
                    self.pos = i + 1;
                    return Ok(Span::Input(start, i));
                }
                Some(b'\\') => break,
                Some(&b) if b < 0x20 => return Err(Error::BadString),
                Some(_) => i += 1,
            }
        }
        let mut n = 0;
        let mut put = |scratch: &mut [u8; UNESCAPE_CAP], bytes: &[u8]| {
            let end = n + bytes.len();
            let dst = scratch.get_mut(n..end).ok_or(Error::TooLong)?;
            dst.copy_from_slice(bytes);
            n = end;
            Ok(())
        };
        put(&mut self.scratch, input.get(start..i).unwrap_or_default())?;
        loop {
            match input.get(i) {
                None => return Err(Error::Syntax),
                Some(b'"') => break,
                Some(b'\\') => {
                    let e = *input.get(i + 1).ok_or(Error::Syntax)?;
                    i += 2;
                    let one = match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let hex = input.get(i..i + 4).ok_or(Error::Syntax)?;
                            let mut code = 0u32;
                            for &h in hex {
                                let d = char::from(h).to_digit(16).ok_or(Error::BadString)?;
                                code = code * 16 + d;
                            }
                            i += 4;
                            // Surrogates (D800-DFFF) are no `char`.
                            let c = char::from_u32(code).ok_or(Error::BadString)?;
                            let mut b = [0u8; 4];
                            put(&mut self.scratch, c.encode_utf8(&mut b).as_bytes())?;
                            continue;
                        }
                        _ => return Err(Error::BadString),
                    };
                    put(&mut self.scratch, &[one])?;
                }
                Some(&b) if b < 0x20 => return Err(Error::BadString),
                Some(&b) => {
                    put(&mut self.scratch, &[b])?;
                    i += 1;
                }
            }
        }
        core::str::from_utf8(self.scratch.get(..n).unwrap_or_default())
            .map_err(|_| Error::BadString)?;
        self.pos = i + 1;
        Ok(Span::Scratch(n))
    }
}

/// Where a string's unescaped text is.
#[derive(Clone, Copy)]
enum Span {
    Input(usize, usize),
    Scratch(usize),
}

/// Where the emitters put bytes: a caller's buffer ([`Cursor`]), the
/// reply queue, or a counter ([`Count`], for a message's length).
pub trait Sink {
    /// Appends `b`, all of it or nothing; `Err` when it does not fit.
    fn put(&mut self, b: &[u8]) -> Result<(), Full>;
}

/// The bytes did not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Full;

/// The caller's buffer, filled from the front.
pub struct Cursor<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Cursor<'b> {
    /// An empty cursor over `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Cursor { buf, len: 0 }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Sink for Cursor<'_> {
    fn put(&mut self, b: &[u8]) -> Result<(), Full> {
        let end = self.len.checked_add(b.len()).ok_or(Full)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(Full)?
            .copy_from_slice(b);
        self.len = end;
        Ok(())
    }
}

impl<const N: usize> Sink for heapless::Vec<u8, N> {
    fn put(&mut self, b: &[u8]) -> Result<(), Full> {
        self.extend_from_slice(b).map_err(|_| Full)
    }
}

/// Counts the bytes instead of keeping them (a message's `buffer_len`).
#[derive(Debug, Default)]
pub struct Count(pub usize);

impl Sink for Count {
    fn put(&mut self, b: &[u8]) -> Result<(), Full> {
        self.0 = self.0.checked_add(b.len()).ok_or(Full)?;
        Ok(())
    }
}

/// A decimal number.
pub fn number(out: &mut impl Sink, mut n: u64) -> Result<(), Full> {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.put(digits.get(i..).unwrap_or_default())
}

/// A JSON string: `"`, `\` and control characters escaped, other UTF-8 as
/// is.
pub fn string(out: &mut impl Sink, s: &str) -> Result<(), Full> {
    string_bytes(out, s.as_bytes())
}

/// [`string`] for bytes that are UTF-8 (a [`crate::secret::Secret`]'s).
pub fn string_bytes(out: &mut impl Sink, s: &[u8]) -> Result<(), Full> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.put(b"\"")?;
    for &b in s {
        match b {
            b'"' => out.put(b"\\\"")?,
            b'\\' => out.put(b"\\\\")?,
            b'\n' => out.put(b"\\n")?,
            b'\r' => out.put(b"\\r")?,
            b'\t' => out.put(b"\\t")?,
            0..=0x1f | 0x7f => out.put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ])?,
            _ => out.put(&[b])?,
        }
    }
    out.put(b"\"")
}

/// `, "key": ` (or `"key": ` first in an object when `first`).
pub fn key(out: &mut impl Sink, first: bool, key: &str) -> Result<(), Full> {
    if !first {
        out.put(b", ")?;
    }
    string(out, key)?;
    out.put(b": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalars(input: &[u8]) -> Result<(), Error> {
        let mut r = Reader::new(input);
        r.skip_value()?;
        r.end()
    }

    #[test]
    fn grammar() {
        for ok in [
            &b"0"[..],
            b"-0",
            b"1.5e+3",
            b"-12E-1",
            b"\"a\\u00e9\\/\"",
            b" [1, {\"a\": [null, true, false]}, \"x\"] ",
            b"{}",
            b"[]",
        ] {
            assert_eq!(scalars(ok), Ok(()), "{:?}", core::str::from_utf8(ok));
        }
        for (bad, e) in [
            (&b"01"[..], Error::Syntax),
            (b"+1", Error::Syntax),
            (b".5", Error::Syntax),
            (b"1.", Error::Syntax),
            (b"1e", Error::Syntax),
            (b"tru", Error::Syntax),
            (b"[1,]", Error::Syntax),
            (b"[,1]", Error::Syntax),
            (b"[1 2]", Error::Syntax),
            (b"{\"a\" 1}", Error::Syntax),
            (b"{\"a\": 1,}", Error::Syntax),
            (b"{,}", Error::Syntax),
            (b"{1: 2}", Error::Syntax),
            (b"\"abc", Error::Syntax),
            (b"\"a\nb\"", Error::BadString),
            (b"\"a\x00b\"", Error::BadString),
            (b"\"a\\u0000\x01\"", Error::BadString),
            (b"\"\\ud83d\\ude00\"", Error::BadString),
            (b"\"\\x\"", Error::BadString),
            (b"\"\xff\"", Error::BadString),
            (b"\"\\n\xff\"", Error::BadString),
            (b"1 2", Error::Syntax),
        ] {
            assert_eq!(scalars(bad), Err(e), "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn strings_unescape_and_are_bounded() {
        let mut r = Reader::new(br#"{"d\u0061ddr": "a\"b\\c\u00e9"}"#);
        assert_eq!(r.value(), Ok(Value::Object));
        assert_eq!(r.next_key(), Ok(Some("daddr")));
        assert_eq!(r.value(), Ok(Value::Str("a\"b\\c\u{e9}")));
        assert_eq!(r.next_key(), Ok(None));
        assert_eq!(r.end(), Ok(()));
        let mut long = [b'a'; UNESCAPE_CAP + 4];
        long[0] = b'"';
        long[1] = b'\\';
        long[2] = b'n';
        long[UNESCAPE_CAP + 3] = b'"';
        assert_eq!(Reader::new(&long).value(), Err(Error::TooLong));
        long[UNESCAPE_CAP + 2] = b'"';
        assert!(matches!(Reader::new(&long).value(), Ok(Value::Str(_))));
    }

    #[test]
    fn numbers() {
        let num = |s: &'static [u8]| match Reader::new(s).value() {
            Ok(Value::Number(n)) => (n.f64(), n.u64()),
            other => panic!("{other:?}"),
        };
        assert_eq!(num(b"7000"), (7000.0, Some(7000)));
        assert_eq!(num(b"7000.0"), (7000.0, None));
        assert_eq!(num(b"-1").1, None);
        assert_eq!(num(b"99999999999999999999").1, None);
        assert!(num(b"1e999").0.is_infinite());
    }

    #[test]
    fn writer() {
        let mut v: heapless::Vec<u8, 64> = heapless::Vec::new();
        string(&mut v, "a\"\\\n\u{1}\u{7f}\u{e9}").unwrap();
        assert_eq!(&v[..], "\"a\\\"\\\\\\n\\u0001\\u007f\u{e9}\"".as_bytes());
        let mut c = Count::default();
        number(&mut c, u64::MAX).unwrap();
        assert_eq!(c.0, 20);
        let mut buf = [0u8; 3];
        let mut cur = Cursor::new(&mut buf);
        assert_eq!(number(&mut cur, 1234), Err(Full));
        assert_eq!(number(&mut cur, 123), Ok(()));
        assert_eq!(&buf, b"123");
    }
}
