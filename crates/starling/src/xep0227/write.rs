//! Writing every account of some hosts as XEP-0227 files, in Prosody's layout (see the module
//! docs of [`crate::xep0227`]), which [`super::read`] reads back.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use starling_proto::{Element, ns};
use starling_sasl::ScramHash;
use starling_storage::{ArchiveQuery, PagePosition, RosterItem, StorageError, Stores};

use super::{NS_MAM_ARCHIVE, NS_PIE, NS_SCRAM};

/// Archived messages read per query.
const ARCHIVE_PAGE: usize = 250;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Accounts written, one file each.
    pub accounts: usize,
    /// Roster items on the rosters proper.
    pub roster_items: usize,
    /// Pending inbound subscription requests.
    pub pending_in: usize,
    /// vCards.
    pub vcards: usize,
    /// Private XML elements.
    pub private: usize,
    /// Offline messages.
    pub offline: usize,
    /// Archived messages.
    pub archived: usize,
}

/// Why an export stopped. Files written before stay (each is complete).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The target directory holds files already.
    #[error(
        "{}: the directory is not empty; export into a new or empty directory (an import reads \
         every *.xml file in it)",
        .0.display()
    )]
    NotEmpty(PathBuf),
    /// A file or the directory cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Reading an account's data failed.
    #[error("cannot read the data of {jid}")]
    Storage {
        jid: String,
        #[source]
        source: StorageError,
    },
    /// Something stored for an account no longer parses.
    #[error("the stored {what} of {jid} is unreadable")]
    Unreadable { jid: String, what: &'static str },
}

/// Writes every account of `domains` to `dir` (created if missing, which must otherwise be
/// empty), one file `user@host.xml` each. The files hold SCRAM keys, never a password, and are
/// readable by their owner only.
pub async fn write(
    stores: &Stores,
    domains: &[String],
    dir: &Path,
) -> Result<ExportReport, ExportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Io { path, source }
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ExportError::NotEmpty(dir.to_owned()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(io(dir))?;
        }
        Err(e) => return Err(io(dir)(e)),
    }
    let mut report = ExportReport::default();
    for domain in domains {
        let accounts = stores
            .accounts
            .list_accounts(Some(domain))
            .await
            .map_err(|source| ExportError::Storage {
                jid: domain.clone(),
                source,
            })?;
        for (localpart, domain) in accounts {
            let user = user(stores, &localpart, &domain, &mut report).await?;
            let doc = Element::new("server-data", NS_PIE).with_child(
                Element::new("host", NS_PIE)
                    .with_attr("jid", domain.as_str())
                    .with_child(user),
            );
            let path = dir.join(format!("{localpart}@{domain}.xml"));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).map_err(io(&path))?;
            let text = format!("<?xml version='1.0' encoding='UTF-8'?>\n{}\n", doc.to_xml());
            file.write_all(text.as_bytes()).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            report.accounts += 1;
        }
    }
    Ok(report)
}

fn parse(xml: &str, jid: &str, what: &'static str) -> Result<Element, ExportError> {
    starling_module_api::parse_stored(xml).map_err(|_| ExportError::Unreadable {
        jid: jid.to_owned(),
        what,
    })
}

/// One account's `<user/>`.
async fn user(
    stores: &Stores,
    l: &str,
    d: &str,
    report: &mut ExportReport,
) -> Result<Element, ExportError> {
    let jid = format!("{l}@{d}");
    let failed = |source| ExportError::Storage {
        jid: jid.clone(),
        source,
    };
    let mut user = Element::new("user", NS_PIE).with_attr("name", l);
    // Weakest first, as the tools list one; each is what SASL uses as it is.
    for hash in [ScramHash::Sha1, ScramHash::Sha256, ScramHash::Sha512] {
        let mech = starling_accounts::mechanism_name(hash);
        if let Some(c) = stores
            .accounts
            .credential(l, d, mech)
            .await
            .map_err(failed)?
        {
            let field = |name: &str, text: String| Element::new(name, NS_SCRAM).with_text(text);
            user.append_child(
                Element::new("scram-credentials", NS_SCRAM)
                    .with_attr("mechanism", mech)
                    .with_child(field("iter-count", c.iterations.to_string()))
                    .with_child(field("salt", BASE64.encode(&c.salt)))
                    .with_child(field("server-key", BASE64.encode(&c.server_key)))
                    .with_child(field("stored-key", BASE64.encode(&c.stored_key))),
            );
        }
    }

    let items = stores.rosters.items(l, d).await.map_err(failed)?;
    let visible: Vec<&RosterItem> = items.iter().filter(|i| !i.hidden).collect();
    if !visible.is_empty() {
        let mut query = Element::new("query", "jabber:iq:roster");
        for i in &visible {
            let mut item = Element::new("item", "jabber:iq:roster")
                .with_attr("jid", i.jid.as_str())
                .with_attr("subscription", i.subscription.as_str())
                .with_opt_attr("name", i.name.as_deref());
            if i.ask_out {
                item.set_attr("ask", "subscribe");
            }
            if i.preapproved {
                // RFC 6121 §2.1.2.1.
                item.set_attr("approved", "true");
            }
            for g in &i.groups {
                item.append_child(Element::new("group", "jabber:iq:roster").with_text(g.as_str()));
            }
            query.append_child(item);
        }
        user.append_child(query);
        report.roster_items += visible.len();
    }
    for i in items.iter().filter(|i| i.pending_in) {
        let mut request = match &i.pending_in_stanza {
            Some(xml) => parse(xml, &jid, "subscription request")?,
            None => Element::new("presence", ns::CLIENT).with_attr("type", "subscribe"),
        };
        request.set_attr("from", i.jid.as_str());
        request.set_attr("to", jid.as_str());
        user.append_child(request);
        report.pending_in += 1;
    }

    if let Some(vcard) = stores.vcards.vcard(l, d).await.map_err(failed)? {
        user.append_child(parse(&vcard, &jid, "vCard")?);
        report.vcards += 1;
    }

    let private = stores.private.all(l, d).await.map_err(failed)?;
    if !private.is_empty() {
        let mut query = Element::new("query", "jabber:iq:private");
        for p in &private {
            query.append_child(parse(&p.xml, &jid, "private XML")?);
        }
        user.append_child(query);
        report.private += private.len();
    }

    let offline = stores.offline.load(l, d).await.map_err(failed)?;
    if !offline.is_empty() {
        let mut messages = Element::new("offline-messages", NS_PIE);
        for m in &offline {
            messages.append_child(parse(&m.stanza, &jid, "offline message")?);
        }
        user.append_child(messages);
        report.offline += offline.len();
    }

    let mut archive = Element::new("archive", NS_MAM_ARCHIVE);
    let mut position = PagePosition::First;
    loop {
        let query = ArchiveQuery {
            position,
            max: ARCHIVE_PAGE,
            ..ArchiveQuery::default()
        };
        let page = stores.archive.query(l, d, &query).await.map_err(failed)?;
        for m in &page.messages {
            archive.append_child(
                Element::new("result", "urn:xmpp:mam:2")
                    .with_attr("id", m.id.as_str())
                    .with_child(
                        Element::new("forwarded", "urn:xmpp:forward:0")
                            .with_child(Element::new("delay", "urn:xmpp:delay").with_attr(
                                "stamp",
                                starling_module_api::mam::query::format_datetime(m.timestamp_us),
                            ))
                            .with_child(parse(&m.stanza, &jid, "archived message")?),
                    ),
            );
            report.archived += 1;
        }
        match page.messages.last() {
            Some(last) if !page.complete => position = PagePosition::After(last.id.clone()),
            _ => break,
        }
    }
    if archive.children().next().is_some() {
        user.append_child(archive);
    }
    Ok(user)
}
