//! The two service-manager protocols vncap speaks, both inert outside
//! systemd: readiness notification (sd_notify(3): `READY=1` as a datagram
//! to `$NOTIFY_SOCKET`, for `Type=notify` units) and socket activation
//! (sd_listen_fds(3): listening sockets handed over from descriptor 3 on,
//! `$LISTEN_PID`, `$LISTEN_FDS`, `$LISTEN_FDNAMES`), so that a port below
//! 1024 (843) needs no root process. The protocols are small and stable, so
//! they are spoken here directly rather than through libsystemd.

use std::os::fd::{FromRawFd, OwnedFd};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// Tells the service manager `state` (`READY=1`, `STOPPING=1`,
/// `STATUS=...`); does nothing without `$NOTIFY_SOCKET`. A failure is logged,
/// never fatal: the unit's start timeout reports it.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let send = || -> std::io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            // An abstract socket (Linux): "@name" stands for "\0name".
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), &path)?;
        }
        Ok(())
    };
    if let Err(e) = send() {
        log::warn!("sd_notify {state:?} to {}: {e}", path.to_string_lossy());
    }
}

/// A listening socket systemd passed, with its `FileDescriptorName=`.
pub struct Passed {
    /// The name from `$LISTEN_FDNAMES` (systemd's default is the socket
    /// unit's name, e.g. `vncap-control.socket`).
    pub name: String,
    /// The descriptor, close-on-exec.
    pub fd: OwnedFd,
}

/// What it is, for choosing the listener type.
pub enum Family {
    /// An IPv4 or IPv6 stream socket.
    Inet,
    /// A Unix stream socket.
    Unix,
}

impl Passed {
    /// The socket's address family, or an error naming the descriptor.
    pub fn family(&self) -> Result<Family, String> {
        use rustix::net::AddressFamily;
        let addr = rustix::net::getsockname(&self.fd)
            .map_err(|e| format!("socket {} from systemd: {e}", self.name))?;
        match addr.address_family() {
            AddressFamily::INET | AddressFamily::INET6 => Ok(Family::Inet),
            AddressFamily::UNIX => Ok(Family::Unix),
            _ => Err(format!(
                "socket {} from systemd: not a TCP or Unix socket",
                self.name
            )),
        }
    }
}

/// Takes the sockets systemd passed to this process (none when
/// `$LISTEN_PID` is not this process), and unsets the variables so that
/// nothing takes them twice.
pub fn take_listeners() -> Vec<Passed> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if !pid_ok || count <= 0 {
        return Vec::new();
    }
    let mut names = names.split(':');
    (LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(count))
        .filter_map(|raw| {
            // SAFETY: sd_listen_fds(3): with $LISTEN_PID naming this process,
            // descriptors 3 .. 3+$LISTEN_FDS are open sockets systemd gave
            // it, and nothing else in the process owns them (this runs once,
            // at startup, and the variables are gone afterwards).
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let name = names.next().unwrap_or("").to_string();
            match rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC) {
                Ok(()) => Some(Passed { name, fd }),
                Err(e) => {
                    log::warn!("descriptor {raw} from systemd: {e}");
                    std::mem::forget(fd);
                    None
                }
            }
        })
        .collect()
}
