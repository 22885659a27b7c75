//! Shared test support for the workspace-level tests: the fixture format for
//! recorded byte streams ([`fixture`]) and the one harness that feeds any
//! [`vncap_core::Machine`] an input whole, byte by byte, or in arbitrary
//! splits ([`harness`]); and the independent RFB test peers — a VNC server
//! standing in for the Ganeti node ([`backend`]), a blocking viewer over TCP
//! or WebSocket ([`viewer`]), and what they share ([`peer`]); and what the
//! benchmark and soak harnesses read of their processes ([`procfs`]).

pub mod backend;
pub mod fixture;
pub mod harness;
pub mod pair;
pub mod peer;
pub mod procfs;
pub mod viewer;

/// The WebSocket peer's crate, for tests that read frames by hand
/// ([`viewer::WsStream::websocket`]).
pub use tungstenite;
