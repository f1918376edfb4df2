//! Small parsers and encoders for the SCRAM attribute syntax (RFC 5802 §7).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Standard base64 with padding, as used for `s=`, `c=`, `p=` and `v=` (RFC 5802 §7).
pub fn b64_encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Strict base64 decoding; `None` on any error.
pub fn b64_decode(data: &str) -> Option<Vec<u8>> {
    STANDARD.decode(data).ok()
}

/// Decodes a `saslname`: `=2C` → `,`, `=3D` → `=`; any other `=` or a `,` or NUL is malformed,
/// as is the empty string (RFC 5802 §5.1, §7).
pub fn decode_saslname(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(['=', ',', '\0']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = after;
        } else {
            return None;
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Encodes a `saslname`: `=` → `=3D`, `,` → `=2C` (RFC 5802 §5.1).
pub fn encode_saslname(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

/// `printable = %x21-2B / %x2D-7E` — printable ASCII except `,` (RFC 5802 §7). Non-empty.
pub fn is_valid_nonce(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `cb-name = 1*(ALPHA / DIGIT / "." / "-")` (RFC 5802 §7).
pub fn is_valid_cb_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// `attr-val = ALPHA "=" value` for an (ignored) optional extension (RFC 5802 §7).
pub fn is_valid_extension(field: &str) -> bool {
    let b = field.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b'='
}

/// Returns the value of `field` if it is `<name>=value`.
pub fn attr(field: &str, name: char) -> Option<&str> {
    field.strip_prefix(name)?.strip_prefix('=')
}

/// Whether `authzid` names the bare JID `username@domain` (domain compared ASCII
/// case-insensitively, one trailing dot ignored). A resource makes it a different entity.
pub fn authzid_matches(authzid: &str, username: &str, domain: &str) -> bool {
    let Some((local, dom)) = authzid.split_once('@') else {
        return false;
    };
    if dom.contains('/') || dom.contains('@') {
        return false;
    }
    let norm = |d: &str| d.strip_suffix('.').unwrap_or(d).to_owned();
    local == username && norm(dom).eq_ignore_ascii_case(&norm(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_round_trip() {
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(decode_saslname("=3D=2C").as_deref(), Some("=,"));
        assert_eq!(decode_saslname("user").as_deref(), Some("user"));
        assert_eq!(decode_saslname(""), None);
        assert_eq!(decode_saslname("a=2c"), None);
        assert_eq!(decode_saslname("a="), None);
        assert_eq!(decode_saslname("a=3"), None);
        assert_eq!(decode_saslname("a=41"), None);
        assert_eq!(decode_saslname("a\0b"), None);
    }

    #[test]
    fn nonce_and_cb_name() {
        assert!(is_valid_nonce("fyko+d2lbbFgONRv9qkxdawL"));
        assert!(is_valid_nonce("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"));
        assert!(!is_valid_nonce(""));
        assert!(!is_valid_nonce("a,b"));
        assert!(!is_valid_nonce("a b"));
        assert!(!is_valid_nonce("é"));
        assert!(is_valid_cb_name("tls-server-end-point"));
        assert!(!is_valid_cb_name("tls_exporter"));
        assert!(!is_valid_cb_name(""));
    }

    #[test]
    fn authzid() {
        assert!(authzid_matches(
            "juliet@example.com",
            "juliet",
            "example.com"
        ));
        assert!(authzid_matches(
            "juliet@EXAMPLE.com.",
            "juliet",
            "example.com"
        ));
        assert!(!authzid_matches(
            "romeo@example.com",
            "juliet",
            "example.com"
        ));
        assert!(!authzid_matches(
            "juliet@example.org",
            "juliet",
            "example.com"
        ));
        assert!(!authzid_matches(
            "juliet@example.com/res",
            "juliet",
            "example.com"
        ));
        assert!(!authzid_matches("juliet", "juliet", "example.com"));
        assert!(!authzid_matches("example.com", "juliet", "example.com"));
    }
}
