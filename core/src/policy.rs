//! The Flash socket-policy responder: recognises `<policy-file-request/>\0`
//! (whole or in pieces) and answers with the configured cross-domain policy
//! XML followed by a NUL, as Flash Player's socket policy protocol wants (and
//! as twisted-vncauthproxy served it for noVNC's Flash WebSocket fallback).
//!
//! It is not a listener: the daemon runs it on port 843 (`vncap flashpolicy`)
//! and on any entry point where [`crate::sniff`] says [`crate::sniff::Kind::FlashPolicy`].
//! Design section "Entry points".

use core::fmt::{self, Write as _};

use heapless::{String, Vec};

use crate::machine::Machine;

/// The request, NUL included.
pub const REQUEST: &[u8] = b"<policy-file-request/>\0";
/// Room for the policy document, in bytes.
pub const MAX_POLICY: usize = 512;
/// Room for the allowed domain, in bytes.
pub const MAX_DOMAIN: usize = 255;

/// What the policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config<'a> {
    /// The domain Flash movies may come from (`*` for any, the default; or
    /// e.g. `*.example.org`).
    pub domain: &'a str,
    /// The ports they may connect to, inclusive (default 7000-8000, the
    /// entry-port pool; not `*`).
    pub ports: (u16, u16),
}

impl Default for Config<'_> {
    fn default() -> Self {
        Config {
            domain: "*",
            ports: (7000, 8000),
        }
    }
}

/// Why the responder stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The bytes are not `<policy-file-request/>\0`; close the connection.
    NotPolicyRequest,
}

impl Error {
    /// What went wrong.
    pub const fn reason(&self) -> &'static str {
        match self {
            Error::NotPolicyRequest => "not a Flash policy request",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// What the responder reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The request was recognised and the policy queued: write
    /// `poll_output`, then close.
    Answered,
}

/// Why a [`Config`] cannot be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The domain is empty, too long, or holds characters outside
    /// `[A-Za-z0-9.*:-]`.
    BadDomain,
    /// The port range is empty (first above last).
    BadPorts,
}

/// Formats the policy document for `config` (without the NUL).
pub fn policy_xml(config: &Config) -> Result<String<MAX_POLICY>, ConfigError> {
    let d = config.domain;
    let ok = !d.is_empty()
        && d.len() <= MAX_DOMAIN
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'*' | b'-' | b':'));
    if !ok {
        return Err(ConfigError::BadDomain);
    }
    let (lo, hi) = config.ports;
    if lo > hi {
        return Err(ConfigError::BadPorts);
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "<?xml version=\"1.0\"?>\n<!DOCTYPE cross-domain-policy SYSTEM \"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd\">\n<cross-domain-policy>\n<allow-access-from domain=\"{d}\" to-ports=\"{lo}"
    );
    if hi != lo {
        let _ = write!(s, "-{hi}");
    }
    let _ = s.push_str("\" />\n</cross-domain-policy>\n");
    Ok(s)
}

/// The Flash policy responder for one connection (a [`Machine`]).
#[derive(Debug, Clone)]
pub struct Policy {
    answer: Vec<u8, { MAX_POLICY + 1 }>,
    matched: usize,
    out_pos: usize,
    answered: bool,
    event: Option<Event>,
    error: Option<Error>,
}

impl Policy {
    /// A responder serving the policy for `config`.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let xml = policy_xml(config)?;
        let mut answer = Vec::new();
        let _ = answer.extend_from_slice(xml.as_bytes());
        let _ = answer.push(0);
        Ok(Policy {
            answer,
            matched: 0,
            out_pos: 0,
            answered: false,
            event: None,
            error: None,
        })
    }
}

impl Machine for Policy {
    type Event = Event;
    type Error = Error;

    /// Consumes bytes of the request; when all of it arrived, queues the
    /// answer. Bytes after the request are not consumed.
    fn handle_input(&mut self, input: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.answered {
            return Ok(0);
        }
        let want = REQUEST.get(self.matched..).unwrap_or(&[]);
        let n = want.iter().zip(input).take_while(|(w, b)| w == b).count();
        if n == 0 && !input.is_empty() {
            self.error = Some(Error::NotPolicyRequest);
            debug!("policy: not a policy request");
            return Err(Error::NotPolicyRequest);
        }
        // A mismatch after `n` matching bytes is reported by the next call,
        // so what is consumed never depends on how the input was split.
        self.matched += n;
        if self.matched == REQUEST.len() {
            self.answered = true;
            self.event = Some(Event::Answered);
        }
        Ok(n)
    }

    fn poll_output(&mut self, out: &mut [u8]) -> usize {
        if !self.answered {
            return 0;
        }
        crate::machine::send_queued(&self.answer, &mut self.out_pos, out)
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.event.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_consumes_the_same_however_split() {
        // Found by fuzz/fuzz_targets/policy.rs: whole, the matching prefix
        // was not consumed; split, it was.
        let input = b"<policy-file-requesX";
        let mut whole = Policy::new(&Config::default()).unwrap();
        assert_eq!(whole.handle_input(input), Ok(19));
        assert_eq!(
            whole.handle_input(&input[19..]),
            Err(Error::NotPolicyRequest)
        );
        let mut split = Policy::new(&Config::default()).unwrap();
        assert_eq!(split.handle_input(&input[..7]), Ok(7));
        assert_eq!(split.handle_input(&input[7..]), Ok(12));
        assert_eq!(
            split.handle_input(&input[19..]),
            Err(Error::NotPolicyRequest)
        );
        assert_eq!(split.handle_input(b""), Err(Error::NotPolicyRequest));
        let mut out = [0u8; 8];
        assert_eq!(split.poll_output(&mut out), 0);
    }

    #[test]
    fn default_policy() {
        let xml = policy_xml(&Config::default()).unwrap();
        assert!(xml.contains("<allow-access-from domain=\"*\" to-ports=\"7000-8000\" />"));
        assert_eq!(
            policy_xml(&Config {
                domain: "a\"b",
                ports: (1, 2)
            }),
            Err(ConfigError::BadDomain)
        );
        assert_eq!(
            policy_xml(&Config {
                domain: "*",
                ports: (9, 2)
            }),
            Err(ConfigError::BadPorts)
        );
    }
}
