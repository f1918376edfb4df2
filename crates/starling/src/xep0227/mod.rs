//! XEP-0227 (Portable Import/Export Format for XMPP-IM Servers): `starling import xep0227 PATH`
//! and `starling export xep0227 DIR`, to move accounts in from Prosody or ejabberd (and out
//! again).
//!
//! # What is carried over
//!
//! Per account: its SCRAM credentials (or a plaintext password, turned into SCRAM keys at import
//! and never stored), its roster (names, groups, subscription states, pending subscriptions in
//! both directions, pre-approvals), its vCard (vcard-temp), its private XML (XEP-0049), its
//! offline messages and its message archive (XEP-0313) where the file has them. Other data
//! (PEP nodes, privacy lists, custom account properties) is reported and skipped (§4: an importer
//! SHOULD ignore what it cannot import and SHOULD tell the operator).
//!
//! # Formats read ([`read`])
//!
//! The XEP (0.2, 2007) defines `<server-data>` → `<host jid>` → `<user name password>` in the
//! namespace `http://www.xmpp.org/extensions/xep-0227.html#ns`, split into files with XInclude
//! (§5: host files, and user files in a directory per host). What the tools really write differs:
//!
//! - **Prosody** (`prosody-migrator` to `mod_storage_xep0227`, 0.12): one complete document per
//!   user, `<server-data xmlns='urn:xmpp:pie:0'><host><user>…`, in a file `user@host.xml`,
//!   without an XML declaration. SCRAM keys as `<scram-credentials
//!   xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-1'>` with base64 `server-key`,
//!   `stored-key` and `salt` (the salt is Prosody's UUID text) and `iter-count`; with
//!   `internal_plain` a `password` attribute instead. Pending inbound subscriptions are
//!   `<presence from type='subscribe'/>` children of `<user>` written without a namespace of
//!   their own, so they land in `urn:xmpp:pie:0` (its reader looks for `jabber:client`; we take
//!   both: COMPAT(Prosody)). Archives are `<archive xmlns='urn:xmpp:pie:0#mam'>` holding MAM
//!   `<result>`s. It writes no offline messages (0.12 has no handler for that store).
//! - **ejabberd** (`ejabberdctl export_piefxis DIR`, 23.01): a main file
//!   `YYYYMMDD-hhmmss.xml` whose `<server-data xmlns='urn:xmpp:pie:0'>` includes (XInclude) one
//!   host file per host, `YYYYMMDD-hhmmss_host.xml`, which holds every user inline. Its SCRAM
//!   keys are base64 **twice**: ejabberd keeps them base64-encoded in its database and encodes
//!   that text again (COMPAT(ejabberd): we decode once, and when the keys are not the hash's
//!   length, once more, salt included; the lengths make the two encodings unambiguous). Older
//!   ejabberd wrote `password='scram:StoredKey,ServerKey,Salt,Iterations'` (optionally
//!   prefixed `sha256,`), read the same way. Pending inbound subscriptions are `<presence
//!   xmlns='jabber:client' type='subscribe'>` children of `<user>`, offline messages an
//!   `<offline-messages>` element as in the XEP.
//!
//! So the reader takes either namespace for the structure, follows `<xi:include href/>` (only
//! relative paths that stay inside the directory being imported), and accepts a single file or a
//! directory (every `*.xml` file in it that no other file includes is a starting point).
//!
//! # Format written ([`write`])
//!
//! Prosody's layout, which both tools can read back: one document per account,
//! `DIR/user@host.xml`, `<server-data xmlns='urn:xmpp:pie:0'>` with one `<host>` and one
//! `<user>`, a `<scram-credentials>` per stored mechanism (base64 once), the roster with
//! `ask='subscribe'` and RFC 6121's `approved='true'`, pending inbound requests as
//! `jabber:client` presence, the vCard, private XML, `<offline-messages>` and the archive as
//! Prosody writes it. Never a password: Starling has none. Files are created with mode 0600 in a
//! directory of mode 0700 (§6: the data is to be handled with care).
//!
//! # Hazards
//!
//! - An import reads every file into memory first (it checks everything before writing
//!   anything), so a very large ejabberd host file needs as much memory as its size, several
//!   times over.
//! - Accounts are imported one by one, each all or nothing: if one fails halfway, its account is
//!   deleted again (with everything it owns) and the others go on; the report names it.
//! - An account that stored only SCRAM-SHA-1 keys (both tools' default) can log in only with
//!   SCRAM-SHA-1 or PLAIN until its password is set again: SCRAM keys of one hash cannot be
//!   derived from another's. Clients that pick SCRAM-SHA-256 when offered fail for it.

mod import;
mod read;
mod write;

pub use import::{ImportError, ImportOptions, ImportReport, import};
pub use read::{Account, ArchiveEntry, Export, ReadError, read};
pub use write::{ExportError, ExportReport, write};

/// The namespace Prosody and ejabberd write (the XEP's later revisions').
pub const NS_PIE: &str = "urn:xmpp:pie:0";
/// The namespace of the XEP's revision 0.2.
pub const NS_XEP: &str = "http://www.xmpp.org/extensions/xep-0227.html#ns";
/// SCRAM credentials inside `<user>`.
pub const NS_SCRAM: &str = "urn:xmpp:pie:0#scram";
/// Prosody's message archive inside `<user>`.
pub const NS_MAM_ARCHIVE: &str = "urn:xmpp:pie:0#mam";
/// XInclude (W3C), used by ejabberd and the XEP to split files.
pub const NS_XINCLUDE: &str = "http://www.w3.org/2001/XInclude";
