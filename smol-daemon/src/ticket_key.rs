//! `--ticket-key FILE` and `--ticket-key-previous FILE`: the keys of signed
//! single-port tickets (`vncap_core::ticket::signed`), read at startup and
//! again on SIGHUP (a bad file keeps the old keys). The file's bytes, all
//! of them, are the key: at least 32, random (`head -c 32 /dev/urandom`),
//! the same file on every instance. A file that group or others may read is
//! used, with a warning. Signing, opening and one-time use are the core's;
//! this file only reads the files.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use vncap_core::ticket::signed::{Key, Keys, MIN_KEY_LEN};

/// The ticket keys and the files they come from (shared by every task;
/// [`TicketKeys::reload`] replaces them for every ticket from then on).
#[derive(Clone)]
pub struct TicketKeys(Rc<Inner>);

struct Inner {
    current: PathBuf,
    previous: Option<PathBuf>,
    keys: RefCell<Keys>,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("current", &self.0.current)
            .field("previous", &self.0.previous)
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// Reads `--ticket-key` (and `--ticket-key-previous`).
    pub fn load(current: &Path, previous: Option<&Path>) -> Result<TicketKeys, String> {
        let keys = read_keys(current, previous)?;
        Ok(TicketKeys(Rc::new(Inner {
            current: current.to_path_buf(),
            previous: previous.map(Path::to_path_buf),
            keys: RefCell::new(keys),
        })))
    }

    /// Reads both files again; on an error the old keys stay.
    pub fn reload(&self) -> Result<(), String> {
        let keys = read_keys(&self.0.current, self.0.previous.as_deref())?;
        *self.0.keys.borrow_mut() = keys;
        Ok(())
    }

    /// The keys now.
    pub fn keys(&self) -> Keys {
        self.0.keys.borrow().clone()
    }

    /// The files, for the log.
    pub fn describe(&self) -> String {
        match &self.0.previous {
            None => self.0.current.display().to_string(),
            Some(p) => format!("{} (and {})", self.0.current.display(), p.display()),
        }
    }
}

fn read_keys(current: &Path, previous: Option<&Path>) -> Result<Keys, String> {
    Ok(Keys {
        current: read_key("--ticket-key", current)?,
        previous: previous
            .map(|p| read_key("--ticket-key-previous", p))
            .transpose()?,
    })
}

/// One key file: at least [`MIN_KEY_LEN`] bytes; a warning when group or
/// others may read it.
fn read_key(option: &str, path: &Path) -> Result<Key, String> {
    let at = |what: String| format!("{option} {}: {what}", path.display());
    let bytes = std::fs::read(path).map_err(|e| at(e.to_string()))?;
    if bytes.len() < MIN_KEY_LEN {
        return Err(at(format!(
            "{} bytes; a ticket key is at least {MIN_KEY_LEN} random bytes (head -c 32 /dev/urandom > FILE)",
            bytes.len()
        )));
    }
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            log::warn!(
                "{option} {}: group or others may read it; chmod 600 (or 640 with the group vncap runs as)",
                path.display()
            );
        }
    }
    Key::new(&bytes).map_err(|e| at(e.reason().into()))
}
