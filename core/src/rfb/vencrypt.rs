//! VeNCrypt (RFB security type 19) wire vocabulary, shared by
//! [`crate::rfb::client`] and [`crate::rfb::server`]: the version 0.2
//! agreement, the subtype numbers and their acknowledgement bytes
//! (rfbproto.md "VeNCrypt"; QEMU's `ui/vnc-auth-vencrypt.c` is the peer the
//! numbers were checked against).
//!
//! The exchange, after the viewer chose type 19:
//!
//! ```text
//! S: 00 02                 server's VeNCrypt version (0.2)
//! C: 00 02                 the version the client speaks
//! S: 00                    0: version accepted (anything else: refused)
//! S: n, n × u32            the subtypes the server offers
//! C: u32                   the subtype chosen
//! S: 01                    1: accepted, the TLS handshake follows (0: refused)
//! -- TLS client handshake; everything after this is inside TLS --
//! S: challenge / C: response   (X509Vnc only: VNC authentication)
//! S: SecurityResult        (always, whatever the RFB version)
//! ```
//!
//! Not here: TLS itself (the machines stop at the hand-off and the driver
//! runs it), Plain or SASL authentication (never spoken), the anonymous-TLS
//! subtypes (anonymous Diffie-Hellman is open to a man in the middle, and
//! rustls does not do it: they are recognised only to refuse them by name).

/// The VeNCrypt version both machines speak: 0.2 (major, minor).
pub const VERSION: [u8; 2] = [0, 2];
/// The server's answer to an acceptable client version.
pub const VERSION_OK: u8 = 0;
/// The server's answer to a client version it does not speak.
pub const VERSION_REFUSED: u8 = 0xff;

/// VeNCrypt subtype Plain: a user name and password in the clear.
pub const PLAIN: u32 = 256;
/// TLSNone: anonymous TLS, then no authentication.
pub const TLS_NONE: u32 = 257;
/// TLSVnc: anonymous TLS, then VNC authentication.
pub const TLS_VNC: u32 = 258;
/// TLSPlain: anonymous TLS, then Plain.
pub const TLS_PLAIN: u32 = 259;
/// X509None: TLS with an X.509 server certificate, then no authentication.
pub const X509_NONE: u32 = 260;
/// X509Vnc: TLS with an X.509 server certificate, then VNC authentication.
pub const X509_VNC: u32 = 261;
/// X509Plain: X.509 TLS, then Plain.
pub const X509_PLAIN: u32 = 262;
/// TLSSASL: anonymous TLS, then SASL.
pub const TLS_SASL: u32 = 263;
/// X509SASL: X.509 TLS, then SASL.
pub const X509_SASL: u32 = 264;

/// The server's acknowledgement of the chosen subtype: TLS follows.
pub const SUBTYPE_ACCEPTED: u8 = 1;
/// The server's acknowledgement of a subtype it did not offer.
pub const SUBTYPE_REFUSED: u8 = 0;

/// Whether `subtype` runs TLS without certificates (anonymous
/// Diffie-Hellman): what QEMU offers with `tls-creds-anon`, Ganeti's
/// `vnc_tls` without `vnc_x509_path`.
pub const fn is_anonymous_tls(subtype: u32) -> bool {
    matches!(subtype, TLS_NONE | TLS_VNC | TLS_PLAIN | TLS_SASL)
}

/// A short name for a subtype, for logs and error messages.
pub const fn subtype_name(subtype: u32) -> &'static str {
    match subtype {
        PLAIN => "Plain",
        TLS_NONE => "TLSNone",
        TLS_VNC => "TLSVnc",
        TLS_PLAIN => "TLSPlain",
        X509_NONE => "X509None",
        X509_VNC => "X509Vnc",
        X509_PLAIN => "X509Plain",
        TLS_SASL => "TLSSASL",
        X509_SASL => "X509SASL",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_kinds() {
        assert_eq!(subtype_name(X509_VNC), "X509Vnc");
        assert_eq!(subtype_name(1), "unknown");
        assert!(is_anonymous_tls(TLS_NONE) && is_anonymous_tls(TLS_VNC));
        assert!(!is_anonymous_tls(X509_NONE) && !is_anonymous_tls(PLAIN));
    }
}
