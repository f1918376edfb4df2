//! XEP-0402 Bookmarks 2 and its compatibility with XEP-0048 bookmarks (§5): one set of
//! bookmarks, whichever way a client stores or reads it.
//!
//! Three representations are kept the same:
//! - Bookmarks 2: the PEP node `urn:xmpp:bookmarks:1`, one item per room (id: the room's JID),
//!   `<conference xmlns='urn:xmpp:bookmarks:1' name autojoin><nick/><password/></conference>`;
//! - XEP-0048 in private XML (XEP-0049): `<storage xmlns='storage:bookmarks'/>` (`#compat`);
//! - XEP-0048 in PEP (XEP-0223): the node `storage:bookmarks`, item `current` (`#compat-pep`),
//!   kept only if the account has that node.
//!
//! A change to any of them (a publish or retract by the account, a private XML set) rewrites the
//! others: Bookmarks 2 items are published (with XEP-0402 §4's publish-options: persistent,
//! `max` items, whitelist, never the last item) or retracted with notification, so Bookmarks 2
//! clients hear of what a legacy client did; the legacy forms are written whole. What XEP-0048
//! has and Bookmarks 2 has not (`<url/>` bookmarks) and Bookmarks 2 extensions are not carried
//! across.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::forms::{DataForm, Field};
use starling_module_api::{Context, Event, EventListener, Module, Registrar, parse_stored};
use starling_proto::{BareJid, Element};
use starling_storage::PrivateElement;

use crate::pubsub::config::PUBLISH_OPTIONS;
use crate::pubsub::engine::NodeEvent;
use crate::pubsub::pep::{Pep, PepObserver};
use crate::pubsub::{NS, NS_EVENT};

/// XEP-0402's node and namespace.
pub const NS_BOOKMARKS: &str = "urn:xmpp:bookmarks:1";
/// XEP-0048's namespace, and its PEP node.
pub const NS_LEGACY: &str = "storage:bookmarks";

/// One bookmark, as both specifications have it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bookmark {
    name: Option<String>,
    autojoin: bool,
    nick: Option<String>,
    password: Option<String>,
}

/// Bookmarks by room JID.
type Bookmarks = BTreeMap<String, Bookmark>;

fn child_text(el: &Element, name: &str, ns: &str) -> Option<String> {
    el.get_child(name, ns)
        .map(Element::text)
        .filter(|t| !t.is_empty())
}

fn is_true(v: Option<&str>) -> bool {
    matches!(v, Some("1" | "true"))
}

/// The bookmarks of a XEP-0048 `<storage/>`.
fn from_legacy(storage: &Element) -> Bookmarks {
    storage
        .children()
        .filter(|c| c.is("conference", NS_LEGACY))
        .filter_map(|c| {
            let jid = c.attr("jid")?.to_owned();
            Some((
                jid,
                Bookmark {
                    name: c.attr("name").map(str::to_owned),
                    autojoin: is_true(c.attr("autojoin")),
                    nick: child_text(c, "nick", NS_LEGACY),
                    password: child_text(c, "password", NS_LEGACY),
                },
            ))
        })
        .collect()
}

/// The bookmarks of Bookmarks 2 items (`<item id='room'><conference/></item>`).
fn from_items(items: &[Element]) -> Bookmarks {
    items
        .iter()
        .filter_map(|i| {
            let jid = i.attr("id")?.to_owned();
            let c = i.get_child("conference", NS_BOOKMARKS)?;
            Some((
                jid,
                Bookmark {
                    name: c.attr("name").map(str::to_owned),
                    autojoin: is_true(c.attr("autojoin")),
                    nick: child_text(c, "nick", NS_BOOKMARKS),
                    password: child_text(c, "password", NS_BOOKMARKS),
                },
            ))
        })
        .collect()
}

fn conference(ns: &str, b: &Bookmark) -> Element {
    let mut c = Element::new("conference", ns).with_opt_attr("name", b.name.clone());
    if b.autojoin {
        c.set_attr("autojoin", "true");
    }
    if let Some(nick) = &b.nick {
        c.append_child(Element::new("nick", ns).with_text(nick.clone()));
    }
    if let Some(password) = &b.password {
        c.append_child(Element::new("password", ns).with_text(password.clone()));
    }
    c
}

fn to_legacy(bookmarks: &Bookmarks) -> Element {
    let mut storage = Element::new("storage", NS_LEGACY);
    for (jid, b) in bookmarks {
        let mut c = conference(NS_LEGACY, b);
        c.set_attr("jid", jid.clone());
        storage.append_child(c);
    }
    storage
}

/// XEP-0402 §4's node configuration (`bookmarks2`), or XEP-0223's for the legacy PEP node, as
/// publish-options.
fn options(bookmarks2: bool) -> Element {
    let mut form = DataForm::submit(Some(PUBLISH_OPTIONS))
        .field(Field::plain("pubsub#persist_items").value("true"))
        .field(Field::plain("pubsub#access_model").value("whitelist"));
    if bookmarks2 {
        form = form
            .field(Field::plain("pubsub#max_items").value("max"))
            .field(Field::plain("pubsub#send_last_published_item").value("never"));
    }
    Element::new("publish-options", NS).with_child(form.to_element())
}

/// The module; see the module docs.
pub struct BookmarksSync {
    pep: Arc<Pep>,
}

impl BookmarksSync {
    pub fn new(pep: Arc<Pep>) -> Arc<BookmarksSync> {
        let sync = Arc::new(BookmarksSync { pep: pep.clone() });
        pep.observe(sync.clone());
        sync
    }

    async fn current(&self, ctx: &Context, account: &BareJid) -> Bookmarks {
        from_items(&self.pep.items_of(ctx, account, NS_BOOKMARKS).await)
    }

    /// Makes Bookmarks 2 what `wanted` says: publishes new and changed rooms, retracts the rest.
    async fn sync_bookmarks2(&self, ctx: &Context, account: &BareJid, wanted: &Bookmarks) {
        let current = self.current(ctx, account).await;
        let options = options(true);
        for (jid, b) in wanted {
            if current.get(jid) == Some(b) {
                continue;
            }
            let publish = Element::new("publish", NS)
                .with_attr("node", NS_BOOKMARKS)
                .with_child(
                    Element::new("item", NS)
                        .with_attr("id", jid.clone())
                        .with_child(conference(NS_BOOKMARKS, b)),
                );
            if let Err(e) = self
                .pep
                .publish_for(ctx, account, &publish, Some(&options))
                .await
            {
                tracing::warn!(%account, room = %jid, error = %e, "bookmark not converted");
            }
        }
        for jid in current.keys().filter(|j| !wanted.contains_key(*j)) {
            // XEP-0402 §3.4: retractions are notified.
            let retract = Element::new("retract", NS)
                .with_attr("node", NS_BOOKMARKS)
                .with_attr("notify", "true")
                .with_child(Element::new("item", NS).with_attr("id", jid.clone()));
            if let Err(e) = self.pep.retract_for(ctx, account, &retract).await {
                tracing::warn!(%account, room = %jid, error = %e, "bookmark not removed");
            }
        }
    }

    /// Writes the XEP-0048 forms of `bookmarks`: private XML always, the legacy PEP node when
    /// the account has it.
    async fn write_legacy(
        &self,
        ctx: &Context,
        account: &BareJid,
        bookmarks: &Bookmarks,
        private: bool,
        pep: bool,
    ) {
        let storage = to_legacy(bookmarks);
        if private && let Some((local, domain)) = crate::roster::account_parts(account) {
            let element = PrivateElement::new("storage", NS_LEGACY, storage.to_xml());
            if let Err(e) = ctx.stores.private.set(local, domain, &[element]).await {
                tracing::warn!(%account, error = %e, "legacy bookmarks not stored");
            }
        }
        if pep && self.pep.has_node(ctx, account, NS_LEGACY).await {
            let publish = Element::new("publish", NS)
                .with_attr("node", NS_LEGACY)
                .with_child(
                    Element::new("item", NS)
                        .with_attr("id", "current")
                        .with_child(storage),
                );
            if let Err(e) = self
                .pep
                .publish_for(ctx, account, &publish, Some(&options(false)))
                .await
            {
                tracing::warn!(%account, error = %e, "legacy PEP bookmarks not stored");
            }
        }
    }
}

impl Module for BookmarksSync {
    fn name(&self) -> &'static str {
        "bookmarks"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        // XEP-0402 §5.1, §5.2.
        reg.account_feature("urn:xmpp:bookmarks:1#compat");
        reg.account_feature("urn:xmpp:bookmarks:1#compat-pep");
        reg.events(self);
    }
}

#[async_trait]
impl EventListener for BookmarksSync {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        let Event::PrivateChanged {
            account,
            namespaces,
        } = event
        else {
            return;
        };
        if !namespaces.iter().any(|n| n == NS_LEGACY) {
            return;
        }
        let Some((local, domain)) = crate::roster::account_parts(account) else {
            return;
        };
        let stored = match ctx
            .stores
            .private
            .get(local, domain, "storage", NS_LEGACY)
            .await
        {
            Ok(Some(xml)) => xml,
            _ => return,
        };
        let Ok(storage) = parse_stored(&stored) else {
            return;
        };
        let wanted = from_legacy(&storage);
        self.sync_bookmarks2(ctx, account, &wanted).await;
        self.write_legacy(ctx, account, &wanted, false, true).await;
    }
}

#[async_trait]
impl PepObserver for BookmarksSync {
    async fn changed(&self, ctx: &Context, owner: &BareJid, event: &NodeEvent) {
        match event.node.as_str() {
            NS_BOOKMARKS => {
                let bookmarks = self.current(ctx, owner).await;
                self.write_legacy(ctx, owner, &bookmarks, true, true).await;
            }
            NS_LEGACY if event.payload.is("items", NS_EVENT) => {
                let Some(storage) = event
                    .payload
                    .children()
                    .find_map(|i| i.get_child("storage", NS_LEGACY))
                else {
                    return;
                };
                let wanted = from_legacy(storage);
                self.sync_bookmarks2(ctx, owner, &wanted).await;
                self.write_legacy(ctx, owner, &wanted, true, false).await;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_bookmarks2_carry_the_same_rooms() {
        // XEP-0048 §3.2's example, less its <url/> (Bookmarks 2 has none).
        let storage = Element::new("storage", NS_LEGACY).with_child(
            Element::new("conference", NS_LEGACY)
                .with_attr("name", "Council of Oberon")
                .with_attr("autojoin", "1")
                .with_attr("jid", "council@conference.underhill.org")
                .with_child(Element::new("nick", NS_LEGACY).with_text("Puck"))
                .with_child(Element::new("password", NS_LEGACY).with_text("titania")),
        );
        let bookmarks = from_legacy(&storage);
        let item = Element::new("item", NS)
            .with_attr("id", "council@conference.underhill.org")
            .with_child(conference(
                NS_BOOKMARKS,
                &bookmarks["council@conference.underhill.org"],
            ));
        assert_eq!(from_items(&[item]), bookmarks);
        let back = to_legacy(&bookmarks);
        assert_eq!(from_legacy(&back), bookmarks);
        assert_eq!(
            back.children().next().and_then(|c| c.attr("autojoin")),
            Some("true")
        );
    }
}
