//! The ACME account (RFC 8555 §7.3): created once per directory and kept in
//! `<data_dir>/acme/account.json` (mode 0600: it holds the account's private key).

use std::path::{Path, PathBuf};

use instant_acme::{Account, AccountBuilder, AccountCredentials, NewAccount};
use serde::{Deserialize, Serialize};

use crate::certificate::{create_private_dir, write_atomically};
use crate::issue::Failure;

/// The account file under the data directory.
pub const ACCOUNT_FILE: &str = "acme/account.json";

/// What the account file holds: the credentials, and which directory and contact they were
/// registered with (a change of directory, staging to production, means a new account).
#[derive(Serialize, Deserialize)]
struct Stored {
    directory: String,
    contact: String,
    /// instant-acme's `AccountCredentials`, kept as JSON so the file can be rewritten.
    credentials: serde_json::Value,
}

/// The HTTP client instant-acme talks to the CA with: the system's roots, or only `ca_file`'s
/// certificate (a private or test CA such as pebble's).
fn builder(ca_file: Option<&Path>) -> Result<AccountBuilder, instant_acme::Error> {
    match ca_file {
        Some(path) => Account::builder_with_root(path),
        None => Account::builder(),
    }
}

/// The account for `directory`: the stored one, or a new one (terms of service agreed, RFC 8555
/// §7.3) stored for next time. `domain` names the certificate this is for, in errors.
pub(crate) async fn load_or_create(
    data_dir: &Path,
    directory: &str,
    contact: &str,
    ca_file: Option<&Path>,
    domain: &str,
) -> Result<Account, Failure> {
    let path = data_dir.join(ACCOUNT_FILE);
    let fail = |e: instant_acme::Error| Failure::from_error(domain, &e);
    if let Some(stored) = read(&path) {
        if stored.directory == directory {
            let credentials: AccountCredentials =
                serde_json::from_value(stored.credentials.clone())
                    .map_err(|e| fail(instant_acme::Error::Json(e)))?;
            let account = builder(ca_file)
                .map_err(fail)?
                .from_credentials(credentials)
                .await
                .map_err(fail)?;
            if stored.contact != contact {
                account.update_contacts(&[contact]).await.map_err(fail)?;
                tracing::info!(%contact, "ACME account contact updated");
                let updated = Stored {
                    contact: contact.to_owned(),
                    ..stored
                };
                if let Err(e) = write(&path, &updated) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot store the ACME account");
                }
            }
            return Ok(account);
        }
        tracing::info!(
            old = %stored.directory,
            new = %directory,
            "ACME directory changed: registering a new account"
        );
    }
    let (account, credentials) = builder(ca_file)
        .map_err(fail)?
        .create(
            &NewAccount {
                contact: &[contact],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            directory.to_owned(),
            None,
        )
        .await
        .map_err(fail)?;
    let stored = Stored {
        directory: directory.to_owned(),
        contact: contact.to_owned(),
        credentials: serde_json::to_value(&credentials)
            .map_err(|e| fail(instant_acme::Error::Json(e)))?,
    };
    if let Err(e) = write(&path, &stored) {
        // The account works for this run; the next start registers another one.
        tracing::warn!(path = %path.display(), error = %e, "cannot store the ACME account");
    }
    tracing::info!(%directory, %contact, id = %account.id(), "ACME account registered");
    Ok(account)
}

fn read(path: &PathBuf) -> Option<Stored> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the ACME account; registering a new one");
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(stored) => Some(stored),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable ACME account file; registering a new one");
            None
        }
    }
}

fn write(path: &Path, stored: &Stored) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let json = serde_json::to_vec_pretty(stored).map_err(std::io::Error::other)?;
    write_atomically(path, &json, 0o600)
}
