//! `vncap-core`: the protocol logic of vncap, a VNC authentication proxy, as
//! sans-IO state machines. `#![no_std]`, no allocation, no clock, no RNG, no
//! sockets: callers hand in bytes, time ([`Instant`]) and random bytes, and get
//! bytes to send and events back. The `vncap` daemon (crate `smol-daemon`) is
//! one driver; any other runtime can be another.
//!
//! Every machine speaks the vocabulary of [`Machine`] (see `machine.rs` for the
//! order a driver calls it in). Logging goes through `logging.rs` (`log` feature
//! by default, `defmt` optional, or none).
//!
//! | module | what it is |
//! | --- | --- |
//! | [`cidr`] | address ranges (`10.0.0.0/8,::1`) for the access options |
//! | [`backend_allow`] | which backends a ticket may reach (`--backend-allow`, never vncap's own sockets) |
//! | [`time`] | [`Instant`], the caller's milliseconds |
//! | [`machine`] | the [`Machine`] trait |
//! | [`rfb`] | RFB (VNC) authentication: `rfb::server` checks a viewer, `rfb::client` logs in to the backend (VeNCrypt with the TLS handed to the driver), `rfb::des`, `rfb::vencrypt` |
//! | [`control`] | one control request (both dialects) and its reply |
//! | [`ticket`] | the table of pending consoles: port pool, expiry, one-time use; signed single-port tickets (`ticket::signed`, `ticket::nonces`) |
//! | [`ws`] | WebSocket: handshake, frame codec, connection (RFC 6455) |
//! | [`policy`] | the Flash socket-policy responder |
//! | [`sniff`] | what the first bytes on an entry point are |
//! | [`metrics`] | the metrics endpoint: which answer a scrape gets, the Prometheus text format |
//! | [`proxy`] | the PROXY protocol header (v1 and v2) a load balancer writes first |
//! | [`forwarded`] | `X-Forwarded-For` / `Forwarded` (RFC 7239): the client an HTTP proxy names |
//! | [`entry`] | one viewer connection from its first byte to "authenticated": sniff, TLS hand-off, WebSocket, admit, RFB, deadlines |
//! | [`web`] | static files on the single port (`--web-root`): which safe path a request that is not an upgrade gets, and the response head |
//! | [`secret`] | [`secret::Secret`]: passwords and tokens, redacted and compared in constant time |
//! | [`text`] | [`text::Text`]: bounded reason strings (RFB and control) |

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[macro_use]
mod logging;

pub mod backend_allow;
pub mod cidr;
pub mod control;
pub mod entry;
pub mod forwarded;
pub mod machine;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod rfb;
pub mod secret;
pub mod sniff;
pub mod text;
pub mod ticket;
pub mod time;
pub mod web;
pub mod ws;

pub use machine::Machine;
pub use time::Instant;
