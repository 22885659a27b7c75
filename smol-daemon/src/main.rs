//! `vncap`: the daemon that drives `vncap-core` with real sockets.
//!
//! Not built yet: this stub exists so the workspace has its final shape.

fn main() {
    eprintln!("vncap: the daemon is not built yet (see README.md)");
    std::process::exit(2);
}
