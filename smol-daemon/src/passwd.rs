//! `vncap passwd USER`: prints a `--control-users` line for `USER`
//! (`users::line`: SHA-512 crypt(3), a 16-character salt from `getrandom`).
//! The password comes from `--password-file` (its first line) or stdin (on
//! a terminal: asked twice, not echoed). Also the one reader of a password
//! file for the control clients (`vncap request --password-file`).

use crate::cli;
use std::io::{BufRead, Write};
use std::path::Path;

/// Runs the command; returns the process exit code.
pub fn run(args: cli::Passwd) -> i32 {
    match line(&args) {
        Ok(l) => {
            println!("{l}");
            0
        }
        Err(e) => {
            eprintln!("vncap passwd: {e}");
            1
        }
    }
}

fn line(args: &cli::Passwd) -> Result<String, String> {
    let password = match &args.password_file {
        Some(path) => read_password_file(path)?,
        None => from_stdin()?,
    };
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).map_err(|e| format!("getrandom: {e}"))?;
    crate::users::line(&args.user, password.as_bytes(), &salt)
}

/// The first line of `path`, without its line ending (`--password-file`).
pub fn read_password_file(path: &Path) -> Result<String, String> {
    let at = |what: String| format!("--password-file {}: {what}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(at("the first line is empty (it holds the password)".into()));
    }
    Ok(first.to_string())
}

/// One line of stdin; on a terminal, prompted on stderr without echo and
/// asked twice.
fn from_stdin() -> Result<String, String> {
    let stdin = std::io::stdin();
    if !rustix::termios::isatty(&stdin) {
        let mut l = String::new();
        stdin
            .lock()
            .read_line(&mut l)
            .map_err(|e| format!("stdin: {e}"))?;
        return Ok(l.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = prompt("Password: ")?;
    let again = prompt("Again: ")?;
    if first != again {
        return Err("the passwords differ".into());
    }
    Ok(first)
}

/// Reads one line from the terminal on stdin with echo off.
fn prompt(text: &str) -> Result<String, String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|e| format!("terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    eprint!("{text}");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, OptionalActions::Flush, &quiet).map_err(|e| format!("terminal: {e}"))?;
    let mut l = String::new();
    let read = stdin.lock().read_line(&mut l);
    let _ = tcsetattr(&stdin, OptionalActions::Flush, &saved);
    eprintln!();
    read.map_err(|e| format!("stdin: {e}"))?;
    Ok(l.trim_end_matches(['\r', '\n']).to_string())
}
