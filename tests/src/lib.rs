//! Shared test support for the workspace-level tests: the fixture format for
//! recorded byte streams ([`fixture`]) and the one harness that feeds any
//! [`vncap_core::Machine`] an input whole, byte by byte, or in arbitrary
//! splits ([`harness`]).

pub mod fixture;
pub mod harness;
