//! What may stand in an upload URL: slot ids, file names and content types, each checked
//! strictly, so that a path under the upload directory is only ever built from an id this
//! service made and a name it cleaned.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Length of a slot id: 18 random bytes in URL-safe base64 (144 bits).
pub const SLOT_ID_LEN: usize = 24;

/// Longest file name kept, in bytes (a file system allows 255).
pub const MAX_FILENAME_BYTES: usize = 200;

/// Longest content type accepted, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 128;

/// A new random slot id.
pub fn new_slot_id() -> String {
    let mut bytes = [0u8; 18];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `id` could be a slot id this service made: exactly [`SLOT_ID_LEN`] characters of
/// the URL-safe base64 alphabet. Nothing else is ever joined to the upload directory.
pub fn is_slot_id(id: &str) -> bool {
    id.len() == SLOT_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Characters replaced in file names: path separators, NUL and other controls, and the
/// bidirectional overrides and isolates that make `photo\u{202E}gpj.exe` look like a picture.
fn replaced(c: char) -> bool {
    matches!(c, '/' | '\\')
        || c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The file name a slot gets for the name a client asked for: separators and control
/// characters become `_`, `..` becomes `.`, leading and trailing dots and spaces go,
/// and a name longer than [`MAX_FILENAME_BYTES`] is shortened before its extension (kept when
/// short). Unicode is kept. `None` when nothing is left.
pub fn sanitize_filename(requested: &str) -> Option<String> {
    let mut name: String = requested
        .chars()
        .map(|c| if replaced(c) { '_' } else { c })
        .collect();
    while name.contains("..") {
        name = name.replace("..", ".");
    }
    let name = name
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if name.is_empty() {
        return None;
    }
    if name.len() <= MAX_FILENAME_BYTES {
        return Some(name.to_owned());
    }
    // Keep a short extension, shorten the stem on a character boundary.
    let ext = match name.rfind('.') {
        Some(i) if name.len() - i <= 16 && i > 0 => &name[i..],
        _ => "",
    };
    let mut stem_end = MAX_FILENAME_BYTES - ext.len();
    while !name.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    let stem = name[..stem_end].trim_end_matches([' ', '.']);
    if stem.is_empty() {
        return None;
    }
    Some(format!("{stem}{ext}"))
}

/// Whether `name` is a name [`sanitize_filename`] leaves as it is: the check of a name taken
/// from a URL path.
pub fn is_clean_filename(name: &str) -> bool {
    sanitize_filename(name).as_deref() == Some(name)
}

/// A content type as a request may name it: `type/subtype` of RFC 9110 §5.6.2 token
/// characters, optionally followed by parameters of visible ASCII; no line breaks.
pub fn is_valid_content_type(ct: &str) -> bool {
    if ct.is_empty() || ct.len() > MAX_CONTENT_TYPE_BYTES {
        return false;
    }
    if !ct
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || (0x21..0x7f).contains(&b))
    {
        return false;
    }
    let essence = ct.split(';').next().unwrap_or("").trim();
    let Some((t, s)) = essence.split_once('/') else {
        return false;
    };
    let token = |x: &str| !x.is_empty() && x.bytes().all(is_tchar);
    token(t) && token(s)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The media type without parameters, lower case.
pub fn essence(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a PUT's Content-Type is the one the slot asked for: the same media type and
/// parameters, ignoring case and spaces around them.
pub fn same_content_type(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split(';')
            .map(|p| p.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    norm(a) == norm(b)
}

/// Everything but the RFC 3986 unreserved characters is percent-encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `name` as one URL path segment.
pub fn encode_segment(name: &str) -> String {
    utf8_percent_encode(name, SEGMENT).to_string()
}

/// How a stored file is served: its `Content-Type` and whether a browser may show it inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub content_type: String,
    pub inline: bool,
}

/// Images, audio and video that browsers show without running anything.
const INLINE_IMAGES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "image/heic",
];

/// The `Content-Type` and disposition of a file stored with `content_type`: inline only for
/// the images of [`INLINE_IMAGES`], audio and video; anything a browser could render as a
/// document or run (HTML, XML, SVG, scripts, style sheets) as `application/octet-stream`; the
/// rest with its own type, as an attachment. Parameters are dropped.
pub fn served(content_type: Option<&str>) -> Served {
    let octet = || Served {
        content_type: "application/octet-stream".to_owned(),
        inline: false,
    };
    let Some(ct) = content_type.filter(|c| is_valid_content_type(c)) else {
        return octet();
    };
    let e = essence(ct);
    let active = ["html", "xml", "svg", "script", "css", "xsl"]
        .iter()
        .any(|w| e.contains(w))
        || e.starts_with("multipart/")
        || e.starts_with("message/");
    if active {
        return octet();
    }
    let inline =
        INLINE_IMAGES.contains(&e.as_str()) || e.starts_with("audio/") || e.starts_with("video/");
    Served {
        content_type: e,
        inline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ids() {
        let id = new_slot_id();
        assert!(is_slot_id(&id), "{id}");
        assert_ne!(id, new_slot_id());
        for bad in [
            "",
            "..",
            "%2e%2e",
            "..;",
            "aaaaaaaaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaaaaaaaaa.",
            "aaaaaaaaaaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaa/aaaaaaaaaaaa",
        ] {
            assert!(!is_slot_id(bad), "{bad}");
        }
    }

    #[test]
    fn filenames() {
        for (asked, kept) in [
            ("my-juliet.jpg", Some("my-juliet.jpg")),
            ("Ünïcödé 写真.png", Some("Ünïcödé 写真.png")),
            ("../../etc/passwd", Some("_._etc_passwd")),
            ("..", None),
            (".", None),
            ("...", None),
            (".hidden", Some("hidden")),
            ("a\\b", Some("a_b")),
            ("a\0b\nc", Some("a_b_c")),
            ("photo\u{202E}gpj.exe", Some("photo_gpj.exe")),
            ("a..b", Some("a.b")),
            ("  x  ", Some("x")),
            ("", None),
            ("/", Some("_")),
            ("/.", Some("_")),
            ("name.", Some("name")),
        ] {
            assert_eq!(sanitize_filename(asked).as_deref(), kept, "{asked:?}");
        }
        let long = format!("{}.tar.gz", "é".repeat(150));
        let cut = sanitize_filename(&long).unwrap();
        assert!(
            cut.len() <= MAX_FILENAME_BYTES && cut.ends_with(".gz"),
            "{cut}"
        );
        assert!(is_clean_filename(&cut));
        assert!(is_clean_filename("my-juliet.jpg"));
        for bad in ["..", "a/b", ".x", "a..b", "%2e%2e", ""] {
            // "%2e%2e" is a clean name (the URL decoding happened before): it is a file
            // called "%2e%2e", never the parent directory.
            assert_eq!(is_clean_filename(bad), bad == "%2e%2e", "{bad}");
        }
    }

    #[test]
    fn content_types() {
        for ok in [
            "image/jpeg",
            "text/plain; charset=utf-8",
            "application/vnd.example+json",
        ] {
            assert!(is_valid_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "image",
            "image/",
            "/jpeg",
            "text/plain\r\nX: y",
            "a b/c",
            "é/x",
        ] {
            assert!(!is_valid_content_type(bad), "{bad:?}");
        }
        assert!(same_content_type(
            "Text/Plain; Charset=UTF-8",
            "text/plain;charset=utf-8"
        ));
        assert!(!same_content_type("text/plain", "text/html"));
    }

    #[test]
    fn serving() {
        let s = |c: Option<&str>| {
            let s = served(c);
            (s.content_type, s.inline)
        };
        assert_eq!(s(Some("image/jpeg")), ("image/jpeg".into(), true));
        assert_eq!(s(Some("video/mp4; codecs=x")), ("video/mp4".into(), true));
        assert_eq!(s(Some("audio/ogg")), ("audio/ogg".into(), true));
        assert_eq!(
            s(Some("application/pdf")),
            ("application/pdf".into(), false)
        );
        assert_eq!(s(Some("text/plain")), ("text/plain".into(), false));
        for active in [
            "text/html",
            "application/xhtml+xml",
            "image/svg+xml",
            "text/xml",
            "application/javascript",
            "text/css",
            "multipart/mixed",
        ] {
            assert_eq!(
                s(Some(active)),
                ("application/octet-stream".into(), false),
                "{active}"
            );
        }
        assert_eq!(s(None), ("application/octet-stream".into(), false));
    }

    #[test]
    fn segments() {
        assert_eq!(encode_segment("my juliet.jpg"), "my%20juliet.jpg");
        assert_eq!(encode_segment("a%2Fb"), "a%252Fb");
        assert_eq!(encode_segment("写"), "%E5%86%99");
    }
}
