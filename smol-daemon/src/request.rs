//! `vncap request` (pending the core's control client).
use crate::cli;
pub fn run(_args: cli::Request) -> i32 {
    eprintln!("vncap request: not built yet");
    2
}
