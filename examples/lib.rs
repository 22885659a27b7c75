//! Nothing to import: this package only carries the examples in this folder,
//! each the whole proxy on `vncap-core` without the daemon:
//! `blocking_proxy` (plain blocking `std`, one viewer) and `tokio_proxy`
//! (tokio, native and WebSocket viewers; its tests run with `cargo test`).
//! See README.md, "Embedding the core".
