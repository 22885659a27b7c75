//! RFB (VNC) authentication, both halves of the proxy (RFC 6143 §7.1–§7.2):
//!
//! | module | what it is |
//! | --- | --- |
//! | [`server`] | authenticates a viewer with the ticket password; stops before SecurityResult until the driver `accept()`s or `reject()`s |
//! | [`client`] | logs in to the backend: VeNCrypt X.509 when the driver has backend TLS, else None if offered, else VNC Authentication |
//! | [`des`] | VNC's DES challenge/response (bit-reversed key bytes) |
//! | [`wire`] | ProtocolVersion, security type numbers, SecurityResult, reason strings |
//! | [`vencrypt`] | VeNCrypt (type 19): version 0.2, subtype numbers, acknowledgements |
//!
//! Not here: anything after the handshake. Once the server is accepted and
//! the client logged in, both peers are just before the viewer's ClientInit
//! and the driver relays bytes untouched (neither machine consumes past its
//! last handshake message). A session runs [`server::Server`] on the viewer's
//! connection, on [`server::Event::Authenticated`] connects the backend and
//! runs [`client::Client`] there, then calls `accept()` (on
//! [`client::Event::LoggedIn`]) or `reject(reason)`.
//!
//! TLS inside RFB (VeNCrypt) is a hand-off: either machine reports a
//! `StartTls` event and stops consuming; the driver runs the TLS handshake
//! over the same socket (with the bytes the machine left unconsumed in
//! front), calls `tls_established()`, and feeds the machine the plaintext
//! from then on.

pub mod client;
pub mod des;
pub mod server;
pub mod vencrypt;
pub mod wire;

pub use wire::Version;

/// A minimal driver for the unit tests: feeds `input` in chunks of `chunk`
/// bytes, drains output and events, and reports what happened.
#[cfg(test)]
pub(crate) mod testutil {
    extern crate std;
    use crate::Machine;
    use std::vec::Vec;

    /// What a machine did with one input.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Run<E, Err> {
        pub output: Vec<u8>,
        pub events: Vec<E>,
        pub error: Option<Err>,
        pub consumed: usize,
    }

    pub fn feed<M: Machine>(m: &mut M, input: &[u8], chunk: usize) -> Run<M::Event, M::Error> {
        let mut run = Run {
            output: Vec::new(),
            events: Vec::new(),
            error: None,
            consumed: 0,
        };
        let mut end = 0;
        drain(m, &mut run);
        while end < input.len() && run.error.is_none() {
            end = (end + chunk.max(1)).min(input.len());
            // Like a driver: call again after progress, until nothing is used.
            loop {
                match m.handle_input(&input[run.consumed..end]) {
                    Ok(0) => break,
                    Ok(n) => run.consumed += n,
                    Err(e) => {
                        assert_eq!(m.handle_input(&input[run.consumed..]), Err(e), "sticky");
                        run.error = Some(e);
                        break;
                    }
                }
                drain(m, &mut run);
            }
            drain(m, &mut run);
        }
        run
    }

    pub fn drain<M: Machine>(m: &mut M, run: &mut Run<M::Event, M::Error>) {
        let mut buf = [0u8; 5];
        loop {
            let n = m.poll_output(&mut buf);
            if n == 0 {
                break;
            }
            run.output.extend_from_slice(&buf[..n]);
        }
        while let Some(e) = m.poll_event() {
            run.events.push(e);
        }
    }

    /// `RFB reason`: u32 length + bytes.
    pub fn reason(s: &str) -> Vec<u8> {
        let mut v = Vec::from((s.len() as u32).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }
}
