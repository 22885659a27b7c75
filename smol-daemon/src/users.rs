//! `--control-users FILE`: who may use the control channel, in
//! snf-vncauthproxy's users file format, and the lines `vncap passwd`
//! writes for it. What it is not: the check's place in a request (that is
//! `control.rs`) or reading a password from a person (`passwd.rs`).
//!
//! The format, as snf-vncauthproxy reads it (`parse_auth_file` in its
//! `proxy.py`, written by its `vncauthproxy-passwd`): one user per line,
//! `user:HASH`, split at the first `:`, the line's surrounding whitespace
//! ignored; HASH is a crypt(3) string, `$6$SALT$...` (SHA-512, what
//! `vncauthproxy-passwd` writes) or `$5$SALT$...` (SHA-256), optionally with
//! `rounds=N$` before the salt. vncap also takes blank lines and lines
//! starting with `#` (snf refuses both), and refuses a user named twice
//! (snf kept the last) and any other hash scheme, naming the line. The
//! hashes are checked with RustCrypto's `sha-crypt` (constant-time
//! comparison); nothing here is hand-written crypto.

use sha_crypt::{PasswordVerifier, ShaCrypt};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// A loaded users file: user name to crypt(3) hash.
pub struct Users {
    hashes: HashMap<String, String>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: a hash is for no log.
        let mut names: Vec<&String> = self.hashes.keys().collect();
        names.sort();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

/// What a check of control credentials found (the reply says only
/// "authentication failed"; the log may say which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The user is in the file and the password matches its hash.
    Known,
    /// No such user.
    UnknownUser,
    /// The user is there; the password does not match.
    WrongPassword,
}

/// A well-formed SHA-512 hash of a password nobody has, checked when the
/// user is unknown so that an unknown user costs as long as a wrong
/// password.
const DUMMY: &str = "$6$vncapdummysalt$TYKhGPcfhkd4u9pUh3XyTLYK/UDIcFrhSBw7nAsKaIKkDgdF5VnLq3J5m01jDsjdSZ5Ew0rbTDACYQE8ypI3L/";

impl Users {
    /// Reads and checks the file at `path`; an error names the file and,
    /// where it is about a line, the line.
    pub fn load(path: &Path) -> Result<Users, String> {
        let at = |what: String| format!("--control-users {}: {what}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
        Users::parse(&text).map_err(at)
    }

    /// Parses a users file's text.
    pub fn parse(text: &str) -> Result<Users, String> {
        let mut hashes = HashMap::new();
        let mut first_line = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {n}: expected user:HASH"));
            };
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("line {n}: the user name is empty or holds blanks"));
            }
            check_hash(hash).map_err(|e| format!("line {n} (user {user}): {e}"))?;
            if let Some(was) = first_line.insert(user.to_string(), n) {
                return Err(format!("line {n}: user {user} already on line {was}"));
            }
            hashes.insert(user.to_string(), hash.to_string());
        }
        Ok(Users { hashes })
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The hash to check `user`'s password against ([`DUMMY`] for an
    /// unknown user) and whether the user is known: what [`verify`] needs,
    /// to run off the executor's thread.
    pub fn lookup(&self, user: &str) -> (String, bool) {
        match self.hashes.get(user) {
            Some(h) => (h.clone(), true),
            None => (DUMMY.to_string(), false),
        }
    }
}

/// Checks `password` against `hash` (from [`Users::lookup`]); slow on
/// purpose (thousands of SHA-2 rounds): run it on a blocking thread.
pub fn verify(hash: &str, known: bool, password: &[u8]) -> Verdict {
    let ok = ShaCrypt::default().verify_password(password, hash).is_ok();
    match (known, ok) {
        (true, true) => Verdict::Known,
        (true, false) => Verdict::WrongPassword,
        (false, _) => Verdict::UnknownUser,
    }
}

/// Refuses what is not a `$6$`/`$5$` crypt(3) string `sha-crypt` reads.
fn check_hash(hash: &str) -> Result<(), String> {
    // The digest's length in crypt's base64 (64 or 32 bytes): the crate
    // compares a shorter one without complaint (it just never matches).
    let digest = match hash.get(..3) {
        Some("$6$") => 86,
        Some("$5$") => 43,
        _ => return Err("not a SHA-512 ($6$) or SHA-256 ($5$) crypt(3) hash".into()),
    };
    if hash.rsplit('$').next().map(str::len) != Some(digest) {
        return Err(format!(
            "malformed crypt(3) hash (its last field must be {digest} characters)"
        ));
    }
    // A well-formed hash verifies or says "wrong password"; anything else
    // is malformed. (The empty password: no field of the string is parsed
    // here by hand.)
    match ShaCrypt::default().verify_password(b"", hash) {
        Ok(()) | Err(sha_crypt::password_hash::Error::PasswordInvalid) => Ok(()),
        Err(e) => Err(format!("malformed crypt(3) hash ({e})")),
    }
}

/// A users file line for `user` with `password`: `user:$6$SALT$HASH`
/// (SHA-512 crypt, 5,000 rounds, the salt from `salt`'s 12 random bytes as
/// 16 characters), as snf-vncauthproxy's `vncauthproxy-passwd` writes it.
pub fn line(user: &str, password: &[u8], salt: &[u8; 12]) -> Result<String, String> {
    use sha_crypt::PasswordHasher;
    if user.is_empty() || user.contains(':') || user.chars().any(|c| c.is_whitespace()) {
        return Err(format!(
            "user {user:?}: must be non-empty, without ':' or blanks"
        ));
    }
    let hash = ShaCrypt::default()
        .hash_password_with_salt(password, salt)
        .map_err(|e| format!("hashing: {e}"))?;
    // The crate writes the default rounds out (`$6$rounds=5000$...`);
    // crypt(3) and snf-vncauthproxy's reader expect `$6$SALT$...` for them
    // (the same hash).
    let hash = hash.as_str();
    let hash = match hash.strip_prefix("$6$rounds=5000$") {
        Some(rest) => format!("$6${rest}"),
        None => hash.to_string(),
    };
    Ok(format!("{user}:{hash}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl passwd -6 -salt saltsaltsaltsalt 's3cret pw'` (glibc's
    /// crypt(3) gives the same).
    const OPENSSL_6: &str = "$6$saltsaltsaltsalt$6c59Hf9/IneTzpBbB5v6AHJ91NFk9ociroOy3W.3AbWTOVi6RvsevMIwftbe.6cJnmL5pInF1LnCat1v2KbDn0";
    /// `openssl passwd -5 -salt pepper 'hunter2'`.
    const OPENSSL_5: &str = "$5$pepper$96b3p/iR.RHgEXSZ4.kwpl.PbjCRp18VpfZTkkVgPo3";

    #[test]
    fn reads_snf_files_and_checks_passwords() {
        let text = format!("# operators\n\nganeti:{OPENSSL_6}\n  synnefo:{OPENSSL_5}  \r\n");
        let u = Users::parse(&text).unwrap();
        assert_eq!(u.len(), 2);
        let check = |user: &str, pw: &str| {
            let (h, known) = u.lookup(user);
            verify(&h, known, pw.as_bytes())
        };
        assert_eq!(check("ganeti", "s3cret pw"), Verdict::Known);
        assert_eq!(check("ganeti", "s3cret"), Verdict::WrongPassword);
        assert_eq!(check("synnefo", "hunter2"), Verdict::Known);
        assert_eq!(check("nobody", "hunter2"), Verdict::UnknownUser);
        assert!(!format!("{u:?}").contains('$'), "Debug shows no hash");
    }

    #[test]
    fn bad_files_name_the_line() {
        for (text, want) in [
            ("ganeti\n", "line 1: expected user:HASH"),
            ("a:$1$abc$def\n", "line 1 (user a)"),
            ("a:$6$salt$tooshort\n", "malformed"),
            ("a:plain\n", "not a SHA-512"),
        ] {
            let e = Users::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let twice = format!("a:{OPENSSL_5}\nb:{OPENSSL_5}\na:{OPENSSL_6}\n");
        assert_eq!(
            Users::parse(&twice).unwrap_err(),
            "line 3: user a already on line 1"
        );
    }

    #[test]
    fn written_lines_verify_and_look_like_crypt() {
        let l = line("ganeti", b"pa:ss word", &[7; 12]).unwrap();
        let (user, hash) = l.split_once(':').unwrap();
        assert_eq!(user, "ganeti");
        assert!(
            hash.starts_with("$6$") && !hash.contains("rounds="),
            "{hash}"
        );
        assert_eq!(
            hash.split('$').nth(2).unwrap().len(),
            16,
            "16-character salt"
        );
        let u = Users::parse(&l).unwrap();
        let (h, known) = u.lookup("ganeti");
        assert_eq!(verify(&h, known, b"pa:ss word"), Verdict::Known);
        assert_eq!(verify(&h, known, b"pa:ss"), Verdict::WrongPassword);
        assert!(line("a:b", b"x", &[0; 12]).is_err());
        check_hash(DUMMY).unwrap();
    }
}
