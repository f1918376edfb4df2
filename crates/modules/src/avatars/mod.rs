//! XEP-0398: the PEP avatar (XEP-0084) and the vCard avatar (XEP-0153) are one avatar.
//!
//! - From PEP to vCard (§3.1, MUST): when the account publishes to `urn:xmpp:avatar:metadata`,
//!   the `<info/>` without a `url` names the image; its item in `urn:xmpp:avatar:data` is
//!   decoded, its SHA-1 checked against the id (SHOULD), and stored as the vCard's `<PHOTO/>`
//!   (`TYPE` from the info, `BINVAL`). Metadata without `<info/>` (XEP-0084 §4.6: avatar
//!   disabled) removes the photo.
//! - From vCard to PEP (§3.2, MAY): a vCard set with a photo publishes the image to the data
//!   node (id: its SHA-1) and then one `<info/>` to the metadata node, which notifies the
//!   contacts; a vCard without a photo publishes empty metadata if the metadata node had one.
//! - Presence (§4): every available presence of the account, directed ones included, carries
//!   `<x xmlns='vcard-temp:x:update'><photo>HASH</photo></x>` when the account has an avatar:
//!   added when absent, filled in when the client sent `<x/>` without `<photo/>`; a `<photo/>`
//!   the client wrote (empty: "not ready", or a hash) is left as it is.
//! - Discovery (§2): `urn:xmpp:pep-vcard-conversion:0` on the account.
//!
//! The hash of each account's avatar is kept in memory once known (read from the vCard at the
//! account's first presence), bounded by [`MAX_ACCOUNTS`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use base64::Engine as _;
use sha1::Digest as _;
use starling_module_api::{
    Context, Event, EventListener, HookPoint, HookResult, Module, Registrar, StanzaHook,
    parse_stored,
};
use starling_proto::{BareJid, Element, FullJid, StanzaKind};

use crate::pubsub::engine::NodeEvent;
use crate::pubsub::pep::{Pep, PepObserver};
use crate::pubsub::{NS, NS_EVENT};

pub const NS_DATA: &str = "urn:xmpp:avatar:data";
pub const NS_METADATA: &str = "urn:xmpp:avatar:metadata";
pub const NS_CONVERSION: &str = "urn:xmpp:pep-vcard-conversion:0";
pub const NS_UPDATE: &str = "vcard-temp:x:update";
const VCARD: &str = "vcard-temp";

/// Accounts whose avatar hash is kept; beyond, the memory starts afresh (hashes are read again
/// from the vCards as needed).
pub const MAX_ACCOUNTS: usize = 100_000;

/// The module; see the module docs.
pub struct Avatars {
    pep: Arc<Pep>,
    /// Each account's avatar hash (`None`: no avatar), once known.
    hashes: Mutex<HashMap<BareJid, Option<String>>>,
}

impl Avatars {
    pub fn new(pep: Arc<Pep>) -> Arc<Avatars> {
        let avatars = Arc::new(Avatars {
            pep: pep.clone(),
            hashes: Mutex::default(),
        });
        pep.observe(avatars.clone());
        avatars
    }

    fn hashes(&self) -> MutexGuard<'_, HashMap<BareJid, Option<String>>> {
        self.hashes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, account: &BareJid, hash: Option<String>) {
        let mut hashes = self.hashes();
        if hashes.len() >= MAX_ACCOUNTS && !hashes.contains_key(account) {
            hashes.clear();
        }
        hashes.insert(account.clone(), hash);
    }

    /// The account's avatar hash, from memory or from its vCard.
    async fn hash_of(&self, ctx: &Context, account: &BareJid) -> Option<String> {
        if let Some(known) = self.hashes().get(account) {
            return known.clone();
        }
        let hash = load_vcard(ctx, account)
            .await
            .as_ref()
            .and_then(photo)
            .map(|(_, bytes)| sha1_hex(&bytes));
        self.remember(account, hash.clone());
        hash
    }

    /// §3.1: the metadata just published, into the vCard.
    async fn pep_to_vcard(&self, ctx: &Context, account: &BareJid, metadata: &Element) {
        let Some(info) = metadata
            .children()
            .find(|i| i.is("info", NS_METADATA) && i.attr("url").is_none())
        else {
            if metadata.children().any(|i| i.is("info", NS_METADATA)) {
                // Only images elsewhere (XEP-0084 §4.2.1 url): nothing to store.
                return;
            }
            // XEP-0084 §4.6: the avatar was disabled.
            self.store_photo(ctx, account, None).await;
            self.remember(account, None);
            return;
        };
        let (Some(id), Some(mime)) = (info.attr("id"), info.attr("type")) else {
            return;
        };
        let data = self
            .pep
            .items_of(ctx, account, NS_DATA)
            .await
            .into_iter()
            .find(|i| i.attr("id") == Some(id))
            .and_then(|i| i.get_child("data", NS_DATA).map(Element::text));
        let Some(data) = data else {
            tracing::debug!(%account, %id, "avatar metadata names no published data");
            return;
        };
        let Some(bytes) = decode(&data) else {
            tracing::debug!(%account, %id, "avatar data is not base64");
            return;
        };
        if sha1_hex(&bytes) != id {
            tracing::debug!(%account, %id, "avatar data does not hash to its id");
            return;
        }
        if self.hash_of(ctx, account).await.as_deref() == Some(id) {
            return;
        }
        self.store_photo(ctx, account, Some((mime, &data))).await;
        self.remember(account, Some(id.to_owned()));
    }

    /// Replaces (or with `None` removes) the vCard's photo.
    async fn store_photo(&self, ctx: &Context, account: &BareJid, photo: Option<(&str, &str)>) {
        let Some((local, domain)) = crate::roster::account_parts(account) else {
            return;
        };
        let mut vcard = load_vcard(ctx, account)
            .await
            .unwrap_or_else(|| Element::new("vCard", VCARD));
        if photo.is_none() && vcard.get_child("PHOTO", VCARD).is_none() {
            return;
        }
        vcard.retain_nodes(
            |n| !matches!(n, starling_proto::Node::Element(e) if e.is("PHOTO", VCARD)),
        );
        if let Some((mime, data)) = photo {
            vcard.append_child(
                Element::new("PHOTO", VCARD)
                    .with_child(Element::new("TYPE", VCARD).with_text(mime))
                    .with_child(Element::new("BINVAL", VCARD).with_text(data)),
            );
        }
        if let Err(e) = ctx
            .stores
            .vcards
            .set_vcard(local, domain, &vcard.to_xml())
            .await
        {
            tracing::warn!(%account, error = %e, "storing the avatar in the vCard failed");
        }
    }

    /// §3.2: the vCard just stored, into PEP.
    async fn vcard_to_pep(&self, ctx: &Context, account: &BareJid) {
        let vcard = load_vcard(ctx, account).await;
        let Some((mime, bytes)) = vcard.as_ref().and_then(photo) else {
            self.remember(account, None);
            let had_avatar = self
                .pep
                .items_of(ctx, account, NS_METADATA)
                .await
                .first()
                .is_some_and(|i| {
                    i.get_child("metadata", NS_METADATA)
                        .is_some_and(|m| m.children().next().is_some())
                });
            if had_avatar {
                let empty = Element::new("metadata", NS_METADATA);
                self.publish(
                    ctx,
                    account,
                    NS_METADATA,
                    &starling_module_api::random_id(),
                    empty,
                )
                .await;
            }
            return;
        };
        let id = sha1_hex(&bytes);
        self.remember(account, Some(id.clone()));
        let current = self
            .pep
            .items_of(ctx, account, NS_METADATA)
            .await
            .first()
            .and_then(|i| i.attr("id").map(str::to_owned));
        if current.as_deref() == Some(id.as_str()) {
            return;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let data = Element::new("data", NS_DATA).with_text(b64);
        if !self.publish(ctx, account, NS_DATA, &id, data).await {
            return;
        }
        let metadata = Element::new("metadata", NS_METADATA).with_child(
            Element::new("info", NS_METADATA)
                .with_attr("bytes", bytes.len().to_string())
                .with_attr("id", id.clone())
                .with_attr("type", mime),
        );
        self.publish(ctx, account, NS_METADATA, &id, metadata).await;
    }

    async fn publish(
        &self,
        ctx: &Context,
        account: &BareJid,
        node: &str,
        id: &str,
        payload: Element,
    ) -> bool {
        let publish = Element::new("publish", NS)
            .with_attr("node", node)
            .with_child(
                Element::new("item", NS)
                    .with_attr("id", id)
                    .with_child(payload),
            );
        match self.pep.publish_for(ctx, account, &publish, None).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%account, %node, error = %e, "publishing the vCard avatar failed");
                false
            }
        }
    }
}

async fn load_vcard(ctx: &Context, account: &BareJid) -> Option<Element> {
    let (local, domain) = crate::roster::account_parts(account)?;
    let text = ctx.stores.vcards.vcard(local, domain).await.ok()??;
    parse_stored(&text).ok()
}

/// The vCard's photo: its type and the decoded image.
fn photo(vcard: &Element) -> Option<(String, Vec<u8>)> {
    let photo = vcard.get_child("PHOTO", VCARD)?;
    let data = decode(&photo.get_child("BINVAL", VCARD)?.text())?;
    if data.is_empty() {
        return None;
    }
    let mime = photo
        .get_child("TYPE", VCARD)
        .map(|t| t.text().trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "image/png".to_owned());
    Some((mime, data))
}

/// Base64 as vCards and XEP-0084 carry it (line breaks allowed).
fn decode(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// XEP-0084 §4.2 / XEP-0153 §4.1: the SHA-1 of the image, in lowercase hex.
pub fn sha1_hex(bytes: &[u8]) -> String {
    sha1::Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Module for Avatars {
    fn name(&self) -> &'static str {
        "avatars"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.account_feature(NS_CONVERSION);
        // After caps (100), before the presence module (0) broadcasts it.
        reg.stanza_hook(
            StanzaKind::Presence,
            HookPoint::FromClient,
            50,
            self.clone(),
        );
        reg.events(self);
    }
}

#[async_trait]
impl StanzaHook for Avatars {
    async fn on_stanza(
        &self,
        ctx: &Context,
        _point: HookPoint,
        stanza: &mut Element,
    ) -> HookResult {
        if stanza.attr("type").is_some() {
            return HookResult::Pass;
        }
        let Some(from) = stanza.attr("from").and_then(|f| FullJid::new(f).ok()) else {
            return HookResult::Pass;
        };
        if let Some(x) = stanza.get_child("x", NS_UPDATE)
            && x.get_child("photo", NS_UPDATE).is_some()
        {
            // The client's own word (an empty photo: not ready yet).
            return HookResult::Pass;
        }
        let Some(hash) = self.hash_of(ctx, &from.to_bare()).await else {
            return HookResult::Pass;
        };
        let photo = Element::new("photo", NS_UPDATE).with_text(hash);
        match stanza.get_child_mut("x", NS_UPDATE) {
            Some(x) => x.append_child(photo),
            None => stanza.append_child(Element::new("x", NS_UPDATE).with_child(photo)),
        }
        HookResult::Pass
    }
}

#[async_trait]
impl EventListener for Avatars {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        match event {
            Event::VcardChanged(account) => self.vcard_to_pep(ctx, account).await,
            Event::AccountDeleted(account) => {
                self.hashes().remove(account);
            }
            _ => {}
        }
    }
}

#[async_trait]
impl PepObserver for Avatars {
    async fn changed(&self, ctx: &Context, owner: &BareJid, event: &NodeEvent) {
        if event.node != NS_METADATA || !event.payload.is("items", NS_EVENT) {
            return;
        }
        let metadata = event
            .payload
            .children()
            .filter(|i| i.is("item", NS_EVENT))
            .find_map(|i| i.get_child("metadata", NS_METADATA));
        if let Some(metadata) = metadata {
            self.pep_to_vcard(ctx, owner, metadata).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_lowercase_hex_sha1() {
        // FIPS 180-1's "abc".
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn base64_with_line_breaks_decodes() {
        assert_eq!(decode("YW\r\nJj\n").as_deref(), Some(&b"abc"[..]));
        assert_eq!(decode("not base64!"), None);
    }
}
