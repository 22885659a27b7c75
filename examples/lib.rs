//! Nothing to import: this package only carries the examples in this folder
//! (`cargo run -p vncap-examples --example blocking_proxy`). See README.md.
