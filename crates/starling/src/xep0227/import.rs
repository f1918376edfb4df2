//! Writing what [`super::read`] found into the stores, account by account.

use starling_storage::{NewArchived, NewRoster, StorageError, Stores};

use super::read::{Account, Export};

/// Archived messages appended per transaction.
const ARCHIVE_CHUNK: usize = 1000;

/// How to import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOptions {
    /// PBKDF2 iterations for the SCRAM keys made from a plaintext password (`[auth]
    /// scram_iterations`).
    pub iterations: u32,
    /// Replace accounts that exist already: each is deleted, with everything it owns, just
    /// before its replacement is written. Without it, any existing account stops the import
    /// before anything is written.
    pub replace_existing: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Accounts imported (replaced ones included).
    pub accounts: usize,
    /// Of those, accounts that existed and were replaced.
    pub replaced: usize,
    /// Of those, accounts whose plaintext password became SCRAM keys.
    pub from_password: usize,
    /// Roster items on the rosters proper.
    pub roster_items: usize,
    /// Pending inbound subscription requests kept (on the roster or not).
    pub pending_in: usize,
    /// vCards.
    pub vcards: usize,
    /// Private XML elements.
    pub private: usize,
    /// Offline messages.
    pub offline: usize,
    /// Archived messages.
    pub archived: usize,
    /// Accounts not imported, with what happened to each.
    pub failed: Vec<(String, String)>,
}

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Accounts of hosts this server does not serve.
    #[error(
        "the export has accounts of {0}, which this configuration does not serve (add a [[host]] \
         for each); nothing was imported"
    )]
    UnknownHosts(String),
    /// Accounts that exist already (without `replace_existing`).
    #[error(
        "{0} exist(s) already; nothing was imported (--replace-existing replaces them, deleting \
         what they own now)"
    )]
    Exists(String),
    /// The existence check failed.
    #[error("cannot check which accounts exist; nothing was imported")]
    Check(#[source] StorageError),
}

/// Names a list: the first ten, then how many more.
fn list(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        s.push_str(&format!(" and {} more", names.len() - 10));
    }
    s
}

/// Imports every account of `export` into `stores`. Checks first (every account's host is in
/// `served`; no account exists unless `options.replace_existing`), then writes each account as
/// one unit: created with its credentials, then its roster, vCard, private XML, offline messages
/// and archive; if any of those fails, the account is deleted again and named in
/// [`ImportReport::failed`], and the next one is imported.
pub async fn import(
    stores: &Stores,
    export: &Export,
    served: &[String],
    options: ImportOptions,
) -> Result<ImportReport, ImportError> {
    let mut unknown: Vec<String> = Vec::new();
    for a in &export.accounts {
        if !served.contains(&a.domain) && !unknown.contains(&a.domain) {
            unknown.push(a.domain.clone());
        }
    }
    if !unknown.is_empty() {
        return Err(ImportError::UnknownHosts(list(&unknown)));
    }
    let mut existing = Vec::new();
    for a in &export.accounts {
        let exists = stores
            .accounts
            .account_exists(&a.localpart, &a.domain)
            .await
            .map_err(ImportError::Check)?;
        existing.push(exists);
    }
    let exist_names: Vec<String> = export
        .accounts
        .iter()
        .zip(&existing)
        .filter(|(_, e)| **e)
        .map(|(a, _)| a.jid())
        .collect();
    if !exist_names.is_empty() && !options.replace_existing {
        return Err(ImportError::Exists(list(&exist_names)));
    }
    let mut report = ImportReport::default();
    for (a, existed) in export.accounts.iter().zip(existing) {
        match import_one(stores, a, options, existed).await {
            Ok(()) => {
                report.accounts += 1;
                report.replaced += usize::from(existed);
                report.from_password += usize::from(a.password.is_some());
                report.roster_items += a.roster.iter().filter(|i| !i.hidden).count();
                report.pending_in += a.roster.iter().filter(|i| i.pending_in).count();
                report.vcards += usize::from(a.vcard.is_some());
                report.private += a.private.len();
                report.offline += a.offline.len();
                report.archived += a.archive.len();
            }
            Err(what) => {
                tracing::warn!(account = %a.jid(), "not imported: {what}");
                report.failed.push((a.jid(), what));
            }
        }
    }
    Ok(report)
}

/// One account, all or nothing; the error says what became of it.
async fn import_one(
    stores: &Stores,
    a: &Account,
    options: ImportOptions,
    existed: bool,
) -> Result<(), String> {
    let (l, d) = (a.localpart.as_str(), a.domain.as_str());
    let creds = match &a.password {
        // Converted here and dropped: only the keys are stored.
        Some(p) => starling_accounts::make_credentials(&p.0, options.iterations)
            .map_err(|e| format!("{e}; nothing was written"))?,
        None => a.credentials.clone(),
    };
    let kept_old = if existed {
        "; the existing account was left as it was"
    } else {
        ""
    };
    if existed {
        stores
            .accounts
            .delete_account(l, d)
            .await
            .map_err(|e| format!("cannot delete the existing account ({e}){kept_old}"))?;
    }
    let old_gone = if existed {
        " (the existing account had been deleted already)"
    } else {
        ""
    };
    stores
        .accounts
        .create_account(l, d, &creds)
        .await
        .map_err(|e| format!("cannot create the account ({e}){old_gone}"))?;
    if let Err(step) = fill(stores, a).await {
        return Err(match stores.accounts.delete_account(l, d).await {
            Ok(()) => {
                format!("{step}; the account was deleted again, nothing of it was kept{old_gone}")
            }
            Err(e) => format!(
                "{step}; deleting the half-imported account failed too ({e}): delete it with \
                 `starling user del {l}@{d}`{old_gone}"
            ),
        });
    }
    Ok(())
}

/// Everything but the account itself.
async fn fill(stores: &Stores, a: &Account) -> Result<(), String> {
    let (l, d) = (a.localpart.as_str(), a.domain.as_str());
    if !a.roster.is_empty() {
        stores
            .rosters
            .insert_many(&[NewRoster {
                localpart: l,
                domain: d,
                items: &a.roster,
            }])
            .await
            .map_err(|e| format!("cannot store the roster ({e})"))?;
    }
    if let Some(vcard) = &a.vcard {
        stores
            .vcards
            .set_vcard(l, d, vcard)
            .await
            .map_err(|e| format!("cannot store the vCard ({e})"))?;
    }
    if !a.private.is_empty() {
        stores
            .private
            .set(l, d, &a.private)
            .await
            .map_err(|e| format!("cannot store the private XML ({e})"))?;
    }
    for m in &a.offline {
        // No limit: these messages were accepted by the old server already.
        stores
            .offline
            .store(l, d, m, u64::MAX)
            .await
            .map_err(|e| format!("cannot store an offline message ({e})"))?;
    }
    for chunk in a.archive.chunks(ARCHIVE_CHUNK) {
        let batch: Vec<NewArchived> = chunk
            .iter()
            .map(|e| NewArchived {
                localpart: l.to_owned(),
                domain: d.to_owned(),
                id: e.id.clone(),
                timestamp_us: e.timestamp_us,
                with: e.with.clone(),
                with_resource: e.with_resource.clone(),
                stanza: e.stanza.clone(),
                body: e.body.clone(),
            })
            .collect();
        stores
            .archive
            .append(&batch)
            .await
            .map_err(|e| format!("cannot store the archive ({e})"))?;
    }
    Ok(())
}
