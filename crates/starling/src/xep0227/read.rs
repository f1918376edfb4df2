//! Reading XEP-0227 files as Prosody and ejabberd write them (see the module docs of
//! [`crate::xep0227`] for the formats). Nothing here touches the database.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use starling_proto::element::Ns;
use starling_proto::{BareJid, Element, Jid, ns};
use starling_sasl::ScramHash;
use starling_storage::{Credential, PrivateElement, RosterItem, Subscription};

use super::{NS_MAM_ARCHIVE, NS_PIE, NS_SCRAM, NS_XEP, NS_XINCLUDE};

const NS_ROSTER: &str = "jabber:iq:roster";
const NS_PRIVATE: &str = "jabber:iq:private";
const NS_VCARD: &str = "vcard-temp";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_DELAY: &str = "urn:xmpp:delay";

/// How deep `<xi:include/>` may nest (main file → host file → user file needs 2).
const MAX_INCLUDE_DEPTH: usize = 8;

/// A plaintext password found in a file: kept only until it is turned into SCRAM keys, and
/// never shown (`Debug` redacts it).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(redacted)")
    }
}

/// One account and everything the file holds for it, normalised and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The localpart (nodeprep).
    pub localpart: String,
    /// The domain (nameprep).
    pub domain: String,
    /// The file its `<user/>` element is in.
    pub file: PathBuf,
    /// A plaintext password (`password` attribute), if the file has one.
    pub password: Option<Password>,
    /// SCRAM credentials, at most one per mechanism.
    pub credentials: Vec<Credential>,
    /// Roster items, in file order, one per contact; contacts that only sent a subscription
    /// request are `hidden` items with `pending_in` (as the roster module keeps them).
    pub roster: Vec<RosterItem>,
    /// The serialized `<vCard xmlns='vcard-temp'/>`.
    pub vcard: Option<String>,
    /// Private XML elements (XEP-0049), one per name and namespace.
    pub private: Vec<PrivateElement>,
    /// Offline messages, oldest first, serialized in `jabber:client`.
    pub offline: Vec<String>,
    /// Archived messages (XEP-0313), in file order.
    pub archive: Vec<ArchiveEntry>,
}

impl Account {
    /// `localpart@domain`.
    pub fn jid(&self) -> String {
        format!("{}@{}", self.localpart, self.domain)
    }
}

/// One archived message, ready for the archive store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// The archive id (the source's stanza id).
    pub id: String,
    /// When it was archived, µs since the epoch.
    pub timestamp_us: i64,
    /// The other party's bare JID.
    pub with: String,
    /// The other party's resource, empty without one.
    pub with_resource: String,
    /// The `<message/>`, serialized in `jabber:client`.
    pub stanza: String,
    /// The body text, for full-text search.
    pub body: Option<String>,
}

/// Everything read from an export.
#[derive(Debug, Clone, Default)]
pub struct Export {
    /// The accounts, in the order the files hold them (files in name order).
    pub accounts: Vec<Account>,
    /// What was skipped, one sentence each (the XEP's §4: the operator is told).
    pub warnings: Vec<String>,
    /// The files read.
    pub files: Vec<PathBuf>,
}

/// Why an export cannot be read. Nothing is imported when reading fails.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A file or directory cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not well-formed (restricted) XML.
    #[error("{}: not well-formed XML: {reason}", path.display())]
    Xml { path: PathBuf, reason: String },
    /// A file is XML but not what XEP-0227 or the tools write; `what` says where and why.
    #[error("{}: {what}", path.display())]
    Format { path: PathBuf, what: String },
    /// The directory holds no `*.xml` file.
    #[error("{}: no XEP-0227 files (*.xml) found", .0.display())]
    Empty(PathBuf),
    /// One account is in two places (two exports in one directory?).
    #[error("{jid} appears twice, in {} and in {}", first.display(), second.display())]
    Duplicate {
        jid: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// Reads an export: one file, or every `*.xml` file of a directory that no other file includes
/// (see the module docs). Checks everything; writes nothing.
pub fn read(path: &Path) -> Result<Export, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let (base, files) = if meta.is_dir() {
        let base = path.canonicalize().map_err(io)?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&base).map_err(io)? {
            let entry = entry.map_err(io)?;
            let p = entry.path();
            let is_file = entry.file_type().map_err(io)?.is_file();
            if is_file && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")) {
                files.push(p);
            }
        }
        files.sort();
        (base, files)
    } else {
        let file = path.canonicalize().map_err(io)?;
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        (base, vec![file])
    };
    if files.is_empty() {
        return Err(ReadError::Empty(path.to_owned()));
    }
    let mut reader = Reader {
        base,
        docs: HashMap::new(),
        seen: HashMap::new(),
        out: Export::default(),
    };
    // A file another one includes is read through that one, not on its own.
    let mut included = HashSet::new();
    for f in &files {
        let doc = reader.load(f)?;
        for href_el in structural_includes(&doc) {
            included.insert(reader.resolve(href_el, f, 0)?);
        }
    }
    let roots: Vec<PathBuf> = if files.len() == 1 {
        files
    } else {
        files
            .into_iter()
            .filter(|f| !included.contains(f))
            .collect()
    };
    for root in roots {
        let doc = reader.load(&root)?;
        reader.root(&doc, &root, 0)?;
    }
    Ok(reader.out)
}

/// The `<xi:include/>`s where the tools and the XEP put them: children of `<server-data>` and
/// `<host>` (a host file included from the main file lists its users' includes).
fn structural_includes(doc: &Element) -> Vec<&Element> {
    let mut out = Vec::new();
    if is_pie(doc, "server-data") || is_pie(doc, "host") {
        for c in doc.children() {
            if c.is("include", NS_XINCLUDE) {
                out.push(c);
            } else if is_pie(c, "host") {
                out.extend(c.children().filter(|e| e.is("include", NS_XINCLUDE)));
            }
        }
    }
    out
}

/// `el` is `<name/>` in either XEP-0227 namespace.
fn is_pie(el: &Element, name: &str) -> bool {
    el.name() == name && (el.ns() == NS_PIE || el.ns() == NS_XEP)
}

/// The text after an XML declaration (and a byte-order mark), which the restricted parser does
/// not take in the middle of a stream.
fn strip_prolog(text: &str) -> &str {
    let t = text.strip_prefix('\u{feff}').unwrap_or(text).trim_start();
    if t.starts_with("<?xml")
        && let Some(end) = t.find("?>")
    {
        return t[end + 2..].trim_start();
    }
    t
}

fn describe(el: &Element) -> String {
    if el.ns().is_empty() {
        format!("<{}/>", el.name())
    } else {
        format!("<{} xmlns='{}'/>", el.name(), el.ns())
    }
}

struct Reader {
    /// Includes must stay inside this directory.
    base: PathBuf,
    /// Parsed files by canonical path.
    docs: HashMap<PathBuf, Element>,
    /// Accounts read so far, and their files.
    seen: HashMap<(String, String), PathBuf>,
    out: Export,
}

impl Reader {
    fn load(&mut self, path: &Path) -> Result<Element, ReadError> {
        if let Some(doc) = self.docs.get(path) {
            return Ok(doc.clone());
        }
        let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let doc =
            starling_module_api::parse_stored(strip_prolog(&text)).map_err(|e| ReadError::Xml {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        self.out.files.push(path.to_owned());
        self.docs.insert(path.to_owned(), doc.clone());
        Ok(doc)
    }

    fn format(path: &Path, what: impl Into<String>) -> ReadError {
        ReadError::Format {
            path: path.to_owned(),
            what: what.into(),
        }
    }

    /// The file an `<xi:include/>` in `from` names (XEP-0227 §5: relative `href`, no `parse`
    /// other than xml, no `xpointer`), canonical and inside the import directory.
    fn resolve(&self, include: &Element, from: &Path, depth: usize) -> Result<PathBuf, ReadError> {
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(Self::format(from, "includes nest too deep (a cycle?)"));
        }
        let Some(href) = include.attr("href") else {
            return Err(Self::format(from, "an <xi:include/> without href"));
        };
        if include.attr("parse").is_some_and(|p| p != "xml") || include.attr("xpointer").is_some() {
            return Err(Self::format(
                from,
                format!("<xi:include href='{href}'/>: only whole XML files can be included"),
            ));
        }
        if href.contains("://") || href.starts_with('/') || href.starts_with('\\') {
            return Err(Self::format(
                from,
                format!("<xi:include href='{href}'/>: only relative paths are followed"),
            ));
        }
        let dir = from.parent().unwrap_or(Path::new("."));
        let target = dir.join(href);
        let target = target.canonicalize().map_err(|source| ReadError::Io {
            path: target.clone(),
            source,
        })?;
        if !target.starts_with(&self.base) {
            return Err(Self::format(
                from,
                format!(
                    "<xi:include href='{href}'/> leaves the directory being imported ({})",
                    self.base.display()
                ),
            ));
        }
        Ok(target)
    }

    fn root(&mut self, doc: &Element, file: &Path, depth: usize) -> Result<(), ReadError> {
        if is_pie(doc, "server-data") {
            for child in doc.children() {
                if child.is("include", NS_XINCLUDE) {
                    let target = self.resolve(child, file, depth)?;
                    let included = self.load(&target)?;
                    if !(is_pie(&included, "host") || is_pie(&included, "server-data")) {
                        return Err(Self::format(
                            &target,
                            format!(
                                "included from <server-data> but holds {}",
                                describe(&included)
                            ),
                        ));
                    }
                    self.root(&included, &target, depth + 1)?;
                } else if is_pie(child, "host") {
                    self.host(child, file, depth)?;
                } else {
                    self.warn(
                        file,
                        format!("skipped {} under <server-data>", describe(child)),
                    );
                }
            }
            Ok(())
        } else if is_pie(doc, "host") {
            self.host(doc, file, depth)
        } else if is_pie(doc, "user") {
            Err(Self::format(
                file,
                "a <user> outside any <host>: import the directory (or the file that includes \
                 this one)",
            ))
        } else {
            Err(Self::format(
                file,
                format!(
                    "not a XEP-0227 file: the root element is {}, not <server-data xmlns='{NS_PIE}'> \
                     or <server-data xmlns='{NS_XEP}'>",
                    describe(doc)
                ),
            ))
        }
    }

    fn warn(&mut self, file: &Path, what: String) {
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        self.out.warnings.push(format!("{name}: {what}"));
    }

    fn host(&mut self, host: &Element, file: &Path, depth: usize) -> Result<(), ReadError> {
        let Some(jid) = host.attr("jid") else {
            return Err(Self::format(file, "a <host> without jid"));
        };
        let domain = match BareJid::new(jid) {
            Ok(b) if b.node().is_none() => b.domain().as_str().to_owned(),
            _ => {
                return Err(Self::format(
                    file,
                    format!("<host jid='{jid}'>: not a domain"),
                ));
            }
        };
        for child in host.children() {
            if child.is("include", NS_XINCLUDE) {
                let target = self.resolve(child, file, depth)?;
                let included = self.load(&target)?;
                if !is_pie(&included, "user") {
                    return Err(Self::format(
                        &target,
                        format!("included from <host> but holds {}", describe(&included)),
                    ));
                }
                self.user(&included, &domain, &target)?;
            } else if is_pie(child, "user") {
                self.user(child, &domain, file)?;
            } else {
                self.warn(
                    file,
                    format!("skipped {} under <host jid='{domain}'>", describe(child)),
                );
            }
        }
        Ok(())
    }

    fn user(&mut self, user: &Element, domain: &str, file: &Path) -> Result<(), ReadError> {
        let Some(name) = user.attr("name") else {
            return Err(Self::format(file, "a <user> without name"));
        };
        // Existing accounts keep their names: nodeprep only (RFC 6122), as the source server had
        // them; the stricter rule for new names (PRECIS too) is not applied to moved accounts.
        let (localpart, domain) = starling_accounts::parse_account(&format!("{name}@{domain}"))
            .map_err(|e| Self::format(file, format!("<user name='{name}'>: {e}")))?;
        let jid = format!("{localpart}@{domain}");
        if let Some(first) = self
            .seen
            .insert((localpart.clone(), domain.clone()), file.to_owned())
        {
            return Err(ReadError::Duplicate {
                jid,
                first,
                second: file.to_owned(),
            });
        }
        let mut account = Account {
            localpart,
            domain,
            file: file.to_owned(),
            password: None,
            credentials: Vec::new(),
            roster: Vec::new(),
            vcard: None,
            private: Vec::new(),
            offline: Vec::new(),
            archive: Vec::new(),
        };
        let bad = |what: String| Self::format(file, format!("{jid}: {what}"));
        match user.attr("password") {
            // COMPAT(ejabberd): before <scram-credentials>, ejabberd wrote its SCRAM record here.
            Some(p) if p.starts_with("scram:") => {
                let cred = old_ejabberd_scram(&p["scram:".len()..]).map_err(bad)?;
                account.credentials.push(cred);
            }
            Some("") | None => {}
            Some(p) => account.password = Some(Password(p.to_owned())),
        }
        let mut pending = Vec::new();
        for child in user.children() {
            match (child.name(), child.ns()) {
                ("scram-credentials", NS_SCRAM) => {
                    let (cred, relabelled) = scram_credentials(child).map_err(bad)?;
                    if let Some(w) = relabelled {
                        self.warn(file, format!("{jid}: {w}"));
                    }
                    if account
                        .credentials
                        .iter()
                        .any(|c| c.mechanism == cred.mechanism)
                    {
                        return Err(bad(format!("two {} credentials", cred.mechanism)));
                    }
                    account.credentials.push(cred);
                }
                ("query", NS_ROSTER) => {
                    let warnings = roster(child, &jid, &mut account.roster);
                    for w in warnings {
                        self.warn(file, format!("{jid}: {w}"));
                    }
                }
                ("vCard", NS_VCARD) => {
                    if account.vcard.is_some() {
                        self.warn(file, format!("{jid}: a second vCard replaced the first"));
                    }
                    account.vcard = Some(child.to_xml());
                }
                ("query", NS_PRIVATE) => {
                    for el in child.children() {
                        let ns = el.ns();
                        if ns.is_empty()
                            || ns == NS_PRIVATE
                            || ns.starts_with("jabber:")
                            || ns.starts_with("http://jabber.org/")
                            || ns == NS_VCARD
                        {
                            // The private module refuses these (XEP-0049 §2.3): unreachable.
                            self.warn(
                                file,
                                format!(
                                    "{jid}: private XML {} skipped (a reserved namespace)",
                                    describe(el)
                                ),
                            );
                            continue;
                        }
                        account
                            .private
                            .retain(|p| !(p.name == el.name() && p.namespace == ns));
                        account
                            .private
                            .push(PrivateElement::new(el.name(), ns, el.to_xml()));
                    }
                }
                // COMPAT(Prosody): its <presence/> children carry no xmlns, so they are in the
                // container's namespace; ejabberd's are in jabber:client.
                ("presence", ns::CLIENT | NS_PIE | NS_XEP) => pending.push(child),
                ("offline-messages", NS_PIE | NS_XEP) => {
                    for m in child.children() {
                        match in_client_ns(m, "message") {
                            Some(message) => account.offline.push(message.to_xml()),
                            None => self.warn(
                                file,
                                format!("{jid}: skipped {} in <offline-messages>", describe(m)),
                            ),
                        }
                    }
                }
                ("archive", NS_MAM_ARCHIVE) => {
                    let (entries, warnings) = archive(child, &account);
                    account.archive.extend(entries);
                    for w in warnings {
                        self.warn(file, format!("{jid}: {w}"));
                    }
                }
                _ => self.warn(
                    file,
                    format!("{jid}: skipped {} (not imported)", describe(child)),
                ),
            }
        }
        for p in pending {
            if let Some(w) = pending_in(p, &jid, &mut account.roster) {
                self.warn(file, format!("{jid}: {w}"));
            }
        }
        if account.password.is_none() && account.credentials.is_empty() {
            self.warn(
                file,
                format!(
                    "{jid}: no password and no SCRAM credentials: the account is imported but \
                     cannot log in until `starling user passwd` sets one"
                ),
            );
        }
        self.out.accounts.push(account);
        Ok(())
    }
}

/// `el` as a stanza `<name/>` in `jabber:client`: as it is, or moved there from a namespace it
/// inherited from the file's structure (COMPAT(Prosody): elements written without xmlns).
fn in_client_ns(el: &Element, name: &str) -> Option<Element> {
    if el.name() != name {
        return None;
    }
    match el.ns() {
        ns::CLIENT => Some(el.clone()),
        from @ (NS_PIE | NS_XEP) => {
            let mut moved = el.clone();
            moved.rename_ns(from, &Ns::new(ns::CLIENT));
            Some(moved)
        }
        _ => None,
    }
}

/// Decodes a base64 field (whitespace around and inside is ignored, as XML text may wrap).
fn b64(text: &str) -> Result<Vec<u8>, String> {
    let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    BASE64
        .decode(clean.as_bytes())
        .map_err(|e| format!("invalid base64 ({e})"))
}

/// Salt, StoredKey and ServerKey.
type ScramKeys = (Vec<u8>, Vec<u8>, Vec<u8>);

/// SCRAM keys as the file encodes them: base64 once (the XEP, Prosody), or twice
/// (COMPAT(ejabberd): its database holds the keys as base64 text, and the export encodes that
/// text). The keys' lengths tell which: once decoded they must be the hash's output length.
fn scram_keys(
    hash: ScramHash,
    salt: &str,
    stored_key: &str,
    server_key: &str,
) -> Result<ScramKeys, String> {
    let want = hash.output_len();
    let (s, st, sv) = (b64(salt)?, b64(stored_key)?, b64(server_key)?);
    if st.len() == want && sv.len() == want {
        return Ok((s, st, sv));
    }
    let twice = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|t| b64(t).ok());
    if let (Some(s2), Some(st2), Some(sv2)) = (twice(&s), twice(&st), twice(&sv))
        && st2.len() == want
        && sv2.len() == want
    {
        return Ok((s2, st2, sv2));
    }
    Err(format!(
        "the SCRAM-{} keys are {} and {} bytes, not {want}",
        hash.name(),
        st.len(),
        sv.len()
    ))
}

fn credential(
    hash: ScramHash,
    iterations: &str,
    salt: &str,
    stored_key: &str,
    server_key: &str,
) -> Result<Credential, String> {
    let iterations: u32 = iterations
        .trim()
        .parse()
        .ok()
        .filter(|i| *i > 0)
        .ok_or_else(|| format!("iteration count {iterations:?} is not a positive number"))?;
    let (salt, stored_key, server_key) = scram_keys(hash, salt, stored_key, server_key)?;
    if salt.is_empty() {
        return Err("an empty SCRAM salt".to_owned());
    }
    Ok(Credential {
        mechanism: starling_accounts::mechanism_name(hash).to_owned(),
        salt,
        iterations,
        stored_key,
        server_key,
    })
}

/// `<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>` with `iter-count`,
/// `salt`, `server-key`, `stored-key` (Prosody and ejabberd alike; the children are in the
/// element's namespace). Also returns a warning when the label was wrong.
///
/// COMPAT(Prosody): `prosody-migrator` does not load the server's configuration, so
/// `mod_storage_xep0227` labels every credential with its default, `SCRAM-SHA-1`, even when
/// `password_hash = "SHA-256"` made SHA-256 keys. The keys' length says which hash made them:
/// when it is not the label's but another's, that other hash is taken.
fn scram_credentials(el: &Element) -> Result<(Credential, Option<String>), String> {
    let mechanism = el.attr("mechanism").unwrap_or_default();
    let labelled = mechanism
        .strip_prefix("SCRAM-")
        .and_then(ScramHash::from_name)
        .ok_or_else(|| format!("unknown SCRAM mechanism {mechanism:?}"))?;
    let field = |name: &str| {
        el.children()
            .find(|c| c.name() == name)
            .map(Element::text)
            .ok_or_else(|| format!("<scram-credentials> without <{name}>"))
    };
    let (iterations, salt, stored, server) = (
        field("iter-count")?,
        field("salt")?,
        field("stored-key")?,
        field("server-key")?,
    );
    let first = match credential(labelled, &iterations, &salt, &stored, &server) {
        Ok(c) => return Ok((c, None)),
        Err(e) => e,
    };
    for hash in ScramHash::ALL.into_iter().filter(|h| *h != labelled) {
        if let Ok(c) = credential(hash, &iterations, &salt, &stored, &server) {
            let warning = format!(
                "credentials labelled {mechanism} hold {} keys, imported as such (Prosody's \
                 migrator labels every credential SCRAM-SHA-1)",
                c.mechanism
            );
            return Ok((c, Some(warning)));
        }
    }
    Err(first)
}

/// COMPAT(ejabberd): `password='scram:StoredKey,ServerKey,Salt,Iterations'`, or with a leading
/// `sha256,` or `sha512,` (SHA-1 without one).
fn old_ejabberd_scram(data: &str) -> Result<Credential, String> {
    let parts: Vec<&str> = data.split(',').collect();
    let (hash, rest) = match parts.as_slice() {
        [_, _, _, _] => (ScramHash::Sha1, &parts[..]),
        ["sha256", rest @ ..] if rest.len() == 4 => (ScramHash::Sha256, rest),
        ["sha512", rest @ ..] if rest.len() == 4 => (ScramHash::Sha512, rest),
        _ => return Err("a password='scram:…' attribute in an unknown format".to_owned()),
    };
    credential(hash, rest[3], rest[2], rest[0], rest[1])
}

/// Reads `<query xmlns='jabber:iq:roster'>` into `items`; returns what was skipped.
fn roster(query: &Element, own: &str, items: &mut Vec<RosterItem>) -> Vec<String> {
    let mut warnings = Vec::new();
    for el in query.children() {
        if !el.is("item", NS_ROSTER) {
            warnings.push(format!("skipped {} in the roster", describe(el)));
            continue;
        }
        let raw = el.attr("jid").unwrap_or_default();
        let jid = match Jid::new(raw) {
            Ok(j) if j.resource().is_none() => j.to_bare().to_string(),
            _ => {
                warnings.push(format!("skipped the roster item {raw:?}: not a bare JID"));
                continue;
            }
        };
        if jid == own {
            // Prosody drops self-contacts too.
            continue;
        }
        let sub = el.attr("subscription").unwrap_or("none");
        let Some(subscription) = Subscription::from_name(sub) else {
            warnings.push(format!(
                "skipped the roster item {jid}: subscription {sub:?}"
            ));
            continue;
        };
        let mut groups: Vec<String> = Vec::new();
        for g in el.children().filter(|g| g.is("group", NS_ROSTER)) {
            let name = g.text();
            // RFC 6121 §2.1.2.4: a group has a name; duplicates are one group.
            if !name.is_empty() && !groups.contains(&name) {
                groups.push(name);
            }
        }
        let item = RosterItem {
            jid: jid.clone(),
            name: el.attr("name").filter(|n| !n.is_empty()).map(str::to_owned),
            subscription,
            ask_out: el.attr("ask") == Some("subscribe"),
            // RFC 6121 §3.4: a pre-approved subscription (what `write` exports).
            preapproved: matches!(el.attr("approved"), Some("true" | "1")),
            groups,
            ..RosterItem::default()
        };
        if let Some(old) = items.iter_mut().find(|i| i.jid == jid) {
            warnings.push(format!(
                "the roster lists {jid} twice; the last one is kept"
            ));
            *old = item;
        } else {
            items.push(item);
        }
    }
    warnings
}

/// A pending inbound subscription request (`<presence type='subscribe' from/>` under `<user>`):
/// marks the contact's item "Pending In" with the request to deliver again at login (RFC 6121
/// §3.1.3), adding a hidden item for a contact not on the roster. Returns why it was skipped.
fn pending_in(presence: &Element, own: &str, items: &mut Vec<RosterItem>) -> Option<String> {
    if presence.attr("type") != Some("subscribe") {
        return Some(format!(
            "skipped a <presence type='{}'/>",
            presence.attr("type").unwrap_or("")
        ));
    }
    let from = presence.attr("from").unwrap_or_default();
    let Ok(from) = Jid::new(from).map(|j| j.to_bare().to_string()) else {
        return Some(format!("skipped a subscription request from {from:?}"));
    };
    if from == own {
        return None;
    }
    let mut request = in_client_ns(presence, "presence")?;
    request.set_attr("from", from.as_str());
    request.set_attr("to", own);
    let stanza = request.to_xml();
    match items.iter_mut().find(|i| i.jid == from) {
        Some(item) if matches!(item.subscription, Subscription::From | Subscription::Both) => {
            Some(format!(
                "skipped the request from {from}: already subscribed ({})",
                item.subscription
            ))
        }
        Some(item) => {
            item.pending_in = true;
            item.pending_in_stanza = Some(stanza);
            None
        }
        None => {
            items.push(RosterItem {
                jid: from,
                pending_in: true,
                pending_in_stanza: Some(stanza),
                hidden: true,
                ..RosterItem::default()
            });
            None
        }
    }
}

/// Prosody's `<archive xmlns='urn:xmpp:pie:0#mam'>`: `<result xmlns='urn:xmpp:mam:2' id>` →
/// `<forwarded xmlns='urn:xmpp:forward:0'>` → `<delay stamp/>` and the `<message/>`. The other
/// party is the `to` of a message the account sent, else the `from` (as Prosody reads it).
fn archive(el: &Element, account: &Account) -> (Vec<ArchiveEntry>, Vec<String>) {
    let own = account.jid();
    let mut out: Vec<ArchiveEntry> = Vec::new();
    let mut warnings = Vec::new();
    for result in el.children() {
        let entry = (|| {
            if !result.is("result", NS_MAM) {
                return Err(format!("skipped {} in the archive", describe(result)));
            }
            let id = result
                .attr("id")
                .filter(|i| !i.is_empty())
                .ok_or("an archived message without id")?;
            let forwarded = result
                .get_child("forwarded", NS_FORWARD)
                .ok_or_else(|| format!("archived message {id}: no <forwarded/>"))?;
            let stamp = forwarded
                .get_child("delay", NS_DELAY)
                .and_then(|d| d.attr("stamp"))
                .and_then(starling_module_api::mam::query::parse_datetime)
                .ok_or_else(|| format!("archived message {id}: no valid delay stamp"))?;
            let message = forwarded
                .children()
                .find_map(|m| in_client_ns(m, "message"))
                .ok_or_else(|| format!("archived message {id}: no <message/>"))?;
            let party = |attr: &str| message.attr(attr).and_then(|a| Jid::new(a).ok());
            let to = party("to");
            let from = party("from");
            let sent = from.as_ref().is_none_or(|f| f.to_bare().to_string() == own);
            let peer = if sent { to } else { from }
                .ok_or_else(|| format!("archived message {id}: no other party"))?;
            if out.iter().any(|e| e.id == id) {
                return Err(format!(
                    "archived message {id} appears twice; the first is kept"
                ));
            }
            Ok(ArchiveEntry {
                id: id.to_owned(),
                timestamp_us: stamp,
                with: peer.to_bare().to_string(),
                with_resource: peer
                    .resource()
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_default(),
                body: starling_modules::mam::rules::body_text(&message),
                stanza: message.to_xml(),
            })
        })();
        match entry {
            Ok(e) => out.push(e),
            Err(w) => warnings.push(w.to_string()),
        }
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prolog_is_stripped() {
        assert_eq!(
            strip_prolog("<?xml version='1.0' encoding='UTF-8'?><a/>"),
            "<a/>"
        );
        assert_eq!(strip_prolog("\u{feff}<?xml version='1.0'?>\n <a/>"), "<a/>");
        assert_eq!(strip_prolog("<a/>"), "<a/>");
    }

    /// The same 20-byte key, base64 once (Prosody) and twice (ejabberd), reads the same.
    #[test]
    fn scram_keys_once_or_twice() {
        let key = [7u8; 20];
        let salt = b"some salt";
        let once = |b: &[u8]| BASE64.encode(b);
        let twice = |b: &[u8]| BASE64.encode(BASE64.encode(b));
        let a = scram_keys(ScramHash::Sha1, &once(salt), &once(&key), &once(&key)).unwrap();
        let b = scram_keys(ScramHash::Sha1, &twice(salt), &twice(&key), &twice(&key)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0, salt);
        // A SHA-256 credential with SHA-1-sized keys is refused.
        assert!(scram_keys(ScramHash::Sha256, &once(salt), &once(&key), &once(&key)).is_err());
    }

    #[test]
    fn old_ejabberd_scram_attribute() {
        let k = BASE64.encode(BASE64.encode([1u8; 32]));
        let s = BASE64.encode(BASE64.encode(b"salt"));
        let c = old_ejabberd_scram(&format!("sha256,{k},{k},{s},4096")).unwrap();
        assert_eq!(c.mechanism, "SCRAM-SHA-256");
        assert_eq!((c.iterations, c.salt.as_slice()), (4096, &b"salt"[..]));
        assert!(old_ejabberd_scram("md5,a,b,c,1").is_err());
        assert!(old_ejabberd_scram(&format!("{k},{k},{s},0")).is_err());
    }
}
