//! What the certificate on disk is, and when it must be replaced.
//!
//! A certificate is (re)issued when it is missing, self-signed (the placeholder the TLS manager
//! generates), lacks one of the names wanted, or reaches its renewal time: `renew_before` before
//! expiry, or with a third of its lifetime left if that is sooner (short-lived certificates:
//! a six-day certificate is renewed two days before it expires, not thirty).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// What the leaf of a PEM chain says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names of the subject alternative name extension, lowercase.
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Issuer and subject are the same name (our placeholder, or any self-signed certificate).
    pub self_signed: bool,
    /// The serial number, hex with colons (for logs and tests).
    pub serial: String,
    /// The issuer's distinguished name as text (for logs and tests).
    pub issuer: String,
}

/// Why a certificate is to be requested now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No readable certificate.
    Missing,
    /// The self-signed placeholder (or another self-signed certificate).
    SelfSigned,
    /// These wanted names are not in the certificate.
    NamesMissing(Vec<String>),
    /// Its renewal time has come (the certificate expires then).
    Due { expires: SystemTime },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("no certificate yet"),
            Reason::SelfSigned => f.write_str("the certificate is self-signed"),
            Reason::NamesMissing(names) => {
                write!(f, "the certificate lacks {}", names.join(", "))
            }
            Reason::Due { expires } => {
                write!(f, "the certificate expires at {}", unix_seconds(*expires))
            }
        }
    }
}

/// What to do about one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Request one now.
    Issue(Reason),
    /// Good until this time, then renew.
    RenewAt(SystemTime),
}

/// The time a certificate valid from `not_before` to `not_after` is renewed at.
pub fn renewal_time(
    not_before: SystemTime,
    not_after: SystemTime,
    renew_before: Duration,
) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let margin = renew_before.min(lifetime / 3);
    not_after.checked_sub(margin).unwrap_or(not_before)
}

/// Decides for the certificate `current` (`None`: none readable) and the names wanted.
pub fn plan(
    current: Option<&CertInfo>,
    wanted: &[String],
    renew_before: Duration,
    now: SystemTime,
) -> Plan {
    let Some(cert) = current else {
        return Plan::Issue(Reason::Missing);
    };
    if cert.self_signed {
        return Plan::Issue(Reason::SelfSigned);
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| !cert.names.iter().any(|n| n.eq_ignore_ascii_case(w)))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Plan::Issue(Reason::NamesMissing(missing));
    }
    let at = renewal_time(cert.not_before, cert.not_after, renew_before);
    if now >= at {
        Plan::Issue(Reason::Due {
            expires: cert.not_after,
        })
    } else {
        Plan::RenewAt(at)
    }
}

/// Why a certificate could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not an X.509 certificate: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Reads the leaf of the PEM chain at `path`; `Ok(None)` when the file does not exist.
pub fn read_info(path: &Path) -> Result<Option<CertInfo>, ReadError> {
    let pem = match fs::read(path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ReadError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let leaf = CertificateDer::pem_slice_iter(&pem)
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| ReadError::NoCertificate {
            path: path.to_path_buf(),
        })?;
    info_from_der(&leaf)
        .map(Some)
        .map_err(|message| ReadError::Parse {
            path: path.to_path_buf(),
            message,
        })
}

/// Parses one DER certificate.
pub fn info_from_der(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    let time = |t: &x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        match u64::try_from(secs) {
            Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
            Err(_) => UNIX_EPOCH,
        }
    };
    let validity = cert.validity();
    Ok(CertInfo {
        names,
        not_before: time(&validity.not_before),
        not_after: time(&validity.not_after),
        self_signed: cert.issuer().as_raw() == cert.subject().as_raw(),
        serial: cert.raw_serial_as_string(),
        issuer: cert.issuer().to_string(),
    })
}

/// Seconds since the Unix epoch, for logs.
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes `contents` to `path` via `<path>.tmp` (created fresh with `mode`), fsync, rename.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn cert(days: u64, names: &[&str]) -> CertInfo {
        let not_before = UNIX_EPOCH + DAY * 1000;
        CertInfo {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            not_before,
            not_after: not_before + DAY * u32::try_from(days).unwrap(),
            self_signed: false,
            serial: "01".into(),
            issuer: "CN=test".into(),
        }
    }

    fn wanted(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn ninety_day_certificate_renews_thirty_days_before_expiry() {
        let c = cert(90, &["example.org"]);
        let at = renewal_time(c.not_before, c.not_after, 30 * DAY);
        assert_eq!(at, c.not_after - 30 * DAY);
        let w = wanted(&["example.org"]);
        assert_eq!(plan(Some(&c), &w, 30 * DAY, at - DAY), Plan::RenewAt(at));
        assert_eq!(
            plan(Some(&c), &w, 30 * DAY, at),
            Plan::Issue(Reason::Due {
                expires: c.not_after
            })
        );
    }

    #[test]
    fn short_lived_certificate_renews_with_a_third_left() {
        // Six days: renewed two days before expiry, not thirty (which would be at once).
        let c = cert(6, &["example.org"]);
        assert_eq!(
            renewal_time(c.not_before, c.not_after, 30 * DAY),
            c.not_after - 2 * DAY
        );
    }

    #[test]
    fn missing_self_signed_and_new_names_are_issued_now() {
        let w = wanted(&["example.org", "conference.example.org"]);
        let now = UNIX_EPOCH + DAY * 1001;
        assert_eq!(plan(None, &w, 30 * DAY, now), Plan::Issue(Reason::Missing));
        let mut c = cert(90, &["example.org", "conference.example.org"]);
        c.self_signed = true;
        assert_eq!(
            plan(Some(&c), &w, 30 * DAY, now),
            Plan::Issue(Reason::SelfSigned)
        );
        let c = cert(90, &["example.org"]);
        assert_eq!(
            plan(Some(&c), &w, 30 * DAY, now),
            Plan::Issue(Reason::NamesMissing(vec!["conference.example.org".into()]))
        );
    }

    #[test]
    fn reads_names_dates_and_self_signature() {
        let mut params =
            rcgen::CertificateParams::new(vec!["example.org".into(), "upload.example.org".into()])
                .unwrap();
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 4, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let c = params.self_signed(&key).unwrap();
        let info = info_from_der(c.der()).unwrap();
        assert_eq!(info.names, ["example.org", "upload.example.org"]);
        assert!(info.self_signed);
        assert_eq!(unix_seconds(info.not_before), 1_893_456_000);
        assert_eq!(unix_seconds(info.not_after), 1_901_232_000);
    }
}
