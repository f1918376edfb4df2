//! Conformance suite for [`PubsubStore`].

use std::fmt::Debug;

use crate::{
    AccountStore, NodeConfig, NodeKey, PubsubStore, StorageError, StoredItem, StoredNode,
    StoredSubscription,
};

/// Runs the [`PubsubStore`] conformance suite against `pubsub`, using `accounts` (of the same
/// backend) to create and delete the accounts that own PEP services.
///
/// The backend must hold no accounts and no nodes; every section deletes what it created, so it
/// holds none again when this returns.
///
/// # Panics
///
/// On the first violated expectation, with a message naming the section and check.
pub async fn pubsub(accounts: &dyn AccountStore, pubsub: &dyn PubsubStore) {
    let s = Suite { accounts, pubsub };
    s.expect_no_accounts("precondition: the store must be empty")
        .await;
    s.expect_empty("precondition: the store must be empty")
        .await;
    s.nodes().await;
    s.missing_node().await;
    s.publish_and_read().await;
    s.max_items().await;
    s.payload_byte_for_byte().await;
    s.affiliations().await;
    s.subscriptions().await;
    s.isolation().await;
    s.owned_service_cascade().await;
    s.expect_empty("postcondition").await;
    s.expect_no_accounts("postcondition").await;
}

const PREFIX: &str = "conformance::pubsub";

const PEP: &str = "alice@example.org";
const SERVICE: &str = "pubsub.example.org";
const OTHER_SERVICE: &str = "pubsub.example.com";

fn ok<T>(res: Result<T, StorageError>, what: &str) -> T {
    super::ok_in(PREFIX, res, what)
}

fn check<T: PartialEq + Debug>(got: T, want: T, what: &str) {
    super::check_in(PREFIX, got, want, what);
}

fn expect_err<T: Debug>(res: Result<T, StorageError>, want: &str, what: &str) {
    super::expect_err_in(PREFIX, res, want, what);
}

fn key(service: &str, node: &str) -> NodeKey {
    NodeKey::new(service, node)
}

fn config(max_items: &str) -> NodeConfig {
    super::form_fields(&[
        (
            "FORM_TYPE",
            &["http://jabber.org/protocol/pubsub#node_config"],
        ),
        ("pubsub#max_items", &[max_items]),
        ("pubsub#children", &["a", "ü „b“", ""]),
        ("pubsub#title", &[]),
    ])
}

fn item(id: &str, n: i64) -> StoredItem {
    StoredItem {
        id: id.to_owned(),
        publisher: Some(format!("{PEP}/phone")),
        payload: format!("<item id='{id}'><entry xmlns='urn:example'>{n}</entry></item>"),
        published_at: 1_700_000_000 + n,
    }
}

fn sub(jid: &str, subid: &str, state: &str) -> StoredSubscription {
    StoredSubscription {
        jid: jid.to_owned(),
        subid: subid.to_owned(),
        state: state.to_owned(),
    }
}

fn ids(items: &[StoredItem]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

struct Suite<'a> {
    accounts: &'a dyn AccountStore,
    pubsub: &'a dyn PubsubStore,
}

impl Suite<'_> {
    async fn expect_no_accounts(&self, what: &str) {
        super::expect_no_accounts_in(PREFIX, self.accounts, what).await;
    }

    /// No nodes and no subscriptions in any service the suite uses.
    async fn expect_empty(&self, what: &str) {
        for service in [PEP, "bob@example.org", SERVICE, OTHER_SERVICE] {
            check(
                ok(self.pubsub.nodes(service).await, what),
                Vec::new(),
                &format!("{what}: nodes of {service}"),
            );
            check(
                ok(self.pubsub.node_count(service).await, what),
                0,
                &format!("{what}: node count of {service}"),
            );
        }
        for jid in [PEP, "bob@example.org", "carol@example.net"] {
            check(
                ok(self.pubsub.subscriptions_of(None, jid).await, what),
                Vec::new(),
                &format!("{what}: subscriptions of {jid}"),
            );
        }
    }

    async fn create(&self, key: &NodeKey, owner: Option<(&str, &str)>, what: &str) {
        ok(
            self.pubsub
                .create_node(key, owner, &config("10"), 1234)
                .await,
            &format!("{what}: create {key:?}"),
        );
    }

    async fn delete(&self, key: &NodeKey, what: &str) {
        ok(
            self.pubsub.delete_node(key).await,
            &format!("{what}: delete {key:?}"),
        );
    }

    async fn publish(&self, key: &NodeKey, it: &StoredItem, max: Option<u64>, what: &str) -> u64 {
        ok(
            self.pubsub.publish(key, it, max).await,
            &format!("{what}: publish {} to {key:?} (max {max:?})", it.id),
        )
    }

    async fn expect_ids(&self, key: &NodeKey, want: &[&str], what: &str) {
        let items = ok(self.pubsub.items(key, None).await, what);
        check(
            ids(&items),
            want.to_vec(),
            &format!("{what}: items of {key:?}"),
        );
        check(
            ok(self.pubsub.item_count(key).await, what),
            want.len() as u64,
            &format!("{what}: item count of {key:?}"),
        );
        check(
            ok(self.pubsub.last_item(key).await, what).map(|i| i.id),
            want.first().map(|id| (*id).to_owned()),
            &format!("{what}: last item of {key:?}"),
        );
    }

    async fn nodes(&self) {
        let s = "nodes";
        let b = key(SERVICE, "b");
        let a = key(SERVICE, "a");
        let upper = key(SERVICE, "B");
        check(
            ok(self.pubsub.node(&a).await, s),
            None,
            &format!("{s}: before creation"),
        );
        for k in [&b, &a, &upper] {
            self.create(k, None, s).await;
        }
        let want_a = StoredNode {
            key: a.clone(),
            owner: None,
            config: config("10"),
            created_at: 1234,
        };
        check(
            ok(self.pubsub.node(&a).await, s),
            Some(want_a.clone()),
            &format!("{s}: node round trip (config kept exactly, empty values included)"),
        );
        // Sorted by name, byte order ("B" < "a" < "b").
        let all = ok(self.pubsub.nodes(SERVICE).await, s);
        check(
            all.iter().map(|n| n.key.node.as_str()).collect::<Vec<_>>(),
            vec!["B", "a", "b"],
            &format!("{s}: nodes sorted by name"),
        );
        check(
            ok(self.pubsub.node_count(SERVICE).await, s),
            3,
            &format!("{s}: node count"),
        );
        // Creating it again fails and changes nothing.
        expect_err(
            self.pubsub.create_node(&a, None, &config("1"), 99).await,
            "AlreadyExists",
            &format!("{s}: create twice"),
        );
        check(
            ok(self.pubsub.node(&a).await, s),
            Some(want_a.clone()),
            &format!("{s}: unchanged by the failed create"),
        );
        // Configuration: replaced whole, also by an empty one.
        let other: NodeConfig = vec![("pubsub#access_model".to_owned(), vec!["open".to_owned()])];
        ok(self.pubsub.set_config(&a, &other).await, s);
        check(
            ok(self.pubsub.node(&a).await, s).map(|n| n.config),
            Some(other),
            &format!("{s}: set_config"),
        );
        ok(self.pubsub.set_config(&a, &Vec::new()).await, s);
        check(
            ok(self.pubsub.node(&a).await, s).map(|n| n.config),
            Some(Vec::new()),
            &format!("{s}: empty config"),
        );
        // Deleting a node deletes its items, affiliations and subscriptions.
        self.publish(&a, &item("1", 1), None, s).await;
        ok(self.pubsub.set_affiliation(&a, PEP, Some("owner")).await, s);
        ok(
            self.pubsub
                .subscribe(&a, &sub("carol@example.net", "s1", "subscribed"))
                .await,
            s,
        );
        self.delete(&a, s).await;
        check(
            ok(self.pubsub.node(&a).await, s),
            None,
            &format!("{s}: deleted"),
        );
        expect_err(
            self.pubsub.delete_node(&a).await,
            "NotFound",
            &format!("{s}: delete twice"),
        );
        self.create(&a, None, &format!("{s}: re-create")).await;
        self.expect_ids(&a, &[], &format!("{s}: re-created node has no items"))
            .await;
        check(
            ok(self.pubsub.affiliations(&a).await, s),
            Vec::new(),
            &format!("{s}: re-created node has no affiliations"),
        );
        check(
            ok(self.pubsub.subscriptions(&a).await, s),
            Vec::new(),
            &format!("{s}: re-created node has no subscriptions"),
        );
        check(
            ok(
                self.pubsub
                    .subscriptions_of(None, "carol@example.net")
                    .await,
                s,
            ),
            Vec::new(),
            &format!("{s}: deleted node's subscriptions gone"),
        );
        for k in [&a, &b, &upper] {
            self.delete(k, s).await;
        }
        self.expect_empty(s).await;
    }

    async fn missing_node(&self) {
        let s = "missing node";
        let k = key(SERVICE, "nope");
        self.create(&key(SERVICE, "Nope"), None, s).await;
        // Writes fail.
        expect_err(
            self.pubsub.set_config(&k, &config("1")).await,
            "NotFound",
            &format!("{s}: set_config"),
        );
        expect_err(
            self.pubsub.delete_node(&k).await,
            "NotFound",
            &format!("{s}: delete_node"),
        );
        expect_err(
            self.pubsub.publish(&k, &item("1", 1), None).await,
            "NotFound",
            &format!("{s}: publish"),
        );
        expect_err(
            self.pubsub.retract(&k, "1").await,
            "NotFound",
            &format!("{s}: retract"),
        );
        expect_err(
            self.pubsub.purge(&k).await,
            "NotFound",
            &format!("{s}: purge"),
        );
        expect_err(
            self.pubsub.set_affiliation(&k, PEP, Some("owner")).await,
            "NotFound",
            &format!("{s}: set_affiliation"),
        );
        expect_err(
            self.pubsub.set_affiliation(&k, PEP, None).await,
            "NotFound",
            &format!("{s}: remove affiliation"),
        );
        expect_err(
            self.pubsub
                .subscribe(&k, &sub(PEP, "s", "subscribed"))
                .await,
            "NotFound",
            &format!("{s}: subscribe"),
        );
        expect_err(
            self.pubsub.unsubscribe(&k, PEP, None).await,
            "NotFound",
            &format!("{s}: unsubscribe"),
        );
        // Reads return nothing.
        check(ok(self.pubsub.node(&k).await, s), None, s);
        self.expect_ids(&k, &[], s).await;
        check(
            ok(self.pubsub.items_by_id(&k, &["1".to_owned()]).await, s),
            Vec::new(),
            &format!("{s}: items_by_id"),
        );
        check(ok(self.pubsub.affiliations(&k).await, s), Vec::new(), s);
        check(ok(self.pubsub.affiliation(&k, PEP).await, s), None, s);
        check(ok(self.pubsub.subscriptions(&k).await, s), Vec::new(), s);
        // An owner that does not exist: NotFound, and no node.
        expect_err(
            self.pubsub
                .create_node(
                    &key(PEP, "urn:xmpp:avatar:data"),
                    Some(("alice", "example.org")),
                    &config("1"),
                    1,
                )
                .await,
            "NotFound",
            &format!("{s}: create with an unknown owner"),
        );
        check(
            ok(self.pubsub.node_count(PEP).await, s),
            0,
            &format!("{s}: the failed create made no node"),
        );
        self.delete(&key(SERVICE, "Nope"), s).await;
        self.expect_empty(s).await;
    }

    async fn publish_and_read(&self) {
        let s = "publish and read";
        let k = key(SERVICE, "news");
        self.create(&k, None, s).await;
        for (n, id) in ["a", "b", "c", "d"].iter().enumerate() {
            check(
                self.publish(&k, &item(id, n as i64), None, s).await,
                0,
                &format!("{s}: nothing evicted"),
            );
        }
        self.expect_ids(&k, &["d", "c", "b", "a"], &format!("{s}: newest first"))
            .await;
        check(
            ids(&ok(self.pubsub.items(&k, Some(2)).await, s)),
            vec!["d", "c"],
            &format!("{s}: limit"),
        );
        check(
            ids(&ok(self.pubsub.items(&k, Some(0)).await, s)),
            Vec::<&str>::new(),
            &format!("{s}: limit 0"),
        );
        check(
            ids(&ok(self.pubsub.items(&k, Some(u64::MAX)).await, s)),
            vec!["d", "c", "b", "a"],
            &format!("{s}: huge limit"),
        );
        // Republishing replaces the item and makes it the newest.
        let b2 = StoredItem {
            id: "b".to_owned(),
            publisher: None,
            payload: "<item id='b'><entry xmlns='urn:example'>new</entry></item>".to_owned(),
            published_at: 1_800_000_000,
        };
        check(
            self.publish(&k, &b2, None, s).await,
            0,
            &format!("{s}: republish evicts nothing"),
        );
        self.expect_ids(
            &k,
            &["b", "d", "c", "a"],
            &format!("{s}: republished is newest"),
        )
        .await;
        check(
            ok(self.pubsub.last_item(&k).await, s),
            Some(b2.clone()),
            &format!("{s}: republished item replaced whole"),
        );
        // By id: in the order asked, missing skipped, duplicates repeated, byte-exact.
        let asked: Vec<String> = ["a", "zz", "b", "A", "a"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        check(
            ok(self.pubsub.items_by_id(&k, &asked).await, s),
            vec![item("a", 0), b2.clone(), item("a", 0)],
            &format!("{s}: items_by_id"),
        );
        check(
            ok(self.pubsub.items_by_id(&k, &[]).await, s),
            Vec::new(),
            &format!("{s}: items_by_id with no ids"),
        );
        // Retract.
        check(
            ok(self.pubsub.retract(&k, "c").await, s),
            true,
            &format!("{s}: retract"),
        );
        check(
            ok(self.pubsub.retract(&k, "c").await, s),
            false,
            &format!("{s}: retract twice"),
        );
        check(
            ok(self.pubsub.retract(&k, "D").await, s),
            false,
            &format!("{s}: retract is byte-exact"),
        );
        self.expect_ids(&k, &["b", "d", "a"], &format!("{s}: after retract"))
            .await;
        // Purge.
        check(
            ok(self.pubsub.purge(&k).await, s),
            3,
            &format!("{s}: purge"),
        );
        self.expect_ids(&k, &[], &format!("{s}: purged")).await;
        check(
            ok(self.pubsub.purge(&k).await, s),
            0,
            &format!("{s}: purge empty"),
        );
        // The node stays, and takes items again.
        self.publish(&k, &item("e", 9), None, s).await;
        self.expect_ids(&k, &["e"], &format!("{s}: after purge"))
            .await;
        self.delete(&k, s).await;
        self.expect_empty(s).await;
    }

    async fn max_items(&self) {
        let s = "max_items";
        let k = key(SERVICE, "bounded");
        self.create(&k, None, s).await;
        // None: no limit.
        let many: Vec<String> = (0..60).map(|i| format!("i{i:02}")).collect();
        for (n, id) in many.iter().enumerate() {
            check(
                self.publish(&k, &item(id, n as i64), None, s).await,
                0,
                &format!("{s}: None never evicts"),
            );
        }
        check(
            ok(self.pubsub.item_count(&k).await, s),
            60,
            &format!("{s}: all kept"),
        );
        // A smaller bound evicts the oldest, several at once.
        check(
            self.publish(&k, &item("n0", 100), Some(3), s).await,
            58,
            &format!("{s}: down to 3"),
        );
        self.expect_ids(&k, &["n0", "i59", "i58"], &format!("{s}: the newest kept"))
            .await;
        check(
            self.publish(&k, &item("n1", 101), Some(3), s).await,
            1,
            &format!("{s}: one over"),
        );
        self.expect_ids(&k, &["n1", "n0", "i59"], &format!("{s}: the oldest went"))
            .await;
        // Republishing the oldest makes it the newest and evicts nothing (it replaces itself).
        check(
            self.publish(&k, &item("i59", 102), Some(3), s).await,
            0,
            &format!("{s}: republish within the bound"),
        );
        self.expect_ids(&k, &["i59", "n1", "n0"], &format!("{s}: republished"))
            .await;
        check(
            self.publish(&k, &item("n2", 103), Some(3), s).await,
            1,
            &format!("{s}: the next oldest goes"),
        );
        self.expect_ids(&k, &["n2", "i59", "n1"], &format!("{s}: after refresh"))
            .await;
        // max_items 1: only the newest (the usual PEP node).
        check(
            self.publish(&k, &item("n3", 104), Some(1), s).await,
            3,
            &format!("{s}: max 1"),
        );
        self.expect_ids(&k, &["n3"], &format!("{s}: max 1")).await;
        check(
            self.publish(&k, &item("n3", 105), Some(1), s).await,
            0,
            &format!("{s}: republish with max 1"),
        );
        check(
            ok(self.pubsub.last_item(&k).await, s).map(|i| i.published_at),
            Some(item("n3", 105).published_at),
            &format!("{s}: republished with max 1"),
        );
        // max_items 0: nothing is kept, not even the item just published.
        check(
            self.publish(&k, &item("n4", 106), Some(0), s).await,
            2,
            &format!("{s}: max 0"),
        );
        self.expect_ids(&k, &[], &format!("{s}: max 0")).await;
        // A huge bound is no bound.
        for id in ["x", "y"] {
            check(
                self.publish(&k, &item(id, 107), Some(u64::MAX), s).await,
                0,
                &format!("{s}: huge max"),
            );
        }
        self.expect_ids(&k, &["y", "x"], &format!("{s}: huge max"))
            .await;
        self.delete(&k, s).await;
        self.expect_empty(s).await;
    }

    async fn payload_byte_for_byte(&self) {
        let s = "payload byte for byte";
        let k = key(SERVICE, "urn:xmpp:bookmarks:1");
        self.create(&k, None, s).await;
        let payloads = [
            "<item id='x'><conference xmlns='urn:xmpp:bookmarks:1' name='Café „☕“ &amp; 王 😀' \
             autojoin='true'><nick>ali&lt;ce&gt;</nick><extensions><x xmlns=\"urn:a\"><![CDATA[<b>]]>\
             </x></extensions></conference></item>"
                .to_owned(),
            "<item id='x'>\n\t  <p xmlns='urn:b'>  spaced\r\n  </p>  </item>".to_owned(),
            format!(
                "<item id='x'><data xmlns='urn:xmpp:avatar:data'>{}</data></item>",
                "iVBORw0KGgoAAAANSUhEUgAA".repeat(4000)
            ),
        ];
        for (n, payload) in payloads.iter().enumerate() {
            let it = StoredItem {
                id: "x".to_owned(),
                publisher: Some("ali„ce@example.org/Ünïcode".to_owned()),
                payload: payload.clone(),
                published_at: n as i64,
            };
            self.publish(&k, &it, Some(10), s).await;
            check(
                ok(self.pubsub.items(&k, None).await, s),
                vec![it.clone()],
                &format!("{s}: payload {n} via items"),
            );
            check(
                ok(self.pubsub.items_by_id(&k, &["x".to_owned()]).await, s),
                vec![it.clone()],
                &format!("{s}: payload {n} via items_by_id"),
            );
            check(
                ok(self.pubsub.last_item(&k).await, s),
                Some(it),
                &format!("{s}: payload {n} via last_item"),
            );
        }
        // Non-ASCII ids and node names are keys like any other.
        let k2 = key(SERVICE, "ноды/☃");
        self.create(&k2, None, s).await;
        self.publish(&k2, &item("идентификатор", 1), None, s).await;
        check(
            ok(
                self.pubsub
                    .items_by_id(&k2, &["идентификатор".to_owned()])
                    .await,
                s,
            ),
            vec![item("идентификатор", 1)],
            &format!("{s}: non-ASCII id"),
        );
        self.delete(&k, s).await;
        self.delete(&k2, s).await;
        self.expect_empty(s).await;
    }

    async fn affiliations(&self) {
        let s = "affiliations";
        let k = key(SERVICE, "team");
        let other = key(SERVICE, "other");
        self.create(&k, None, s).await;
        self.create(&other, None, s).await;
        ok(
            self.pubsub
                .set_affiliation(&k, "zed@example.org", Some("publisher"))
                .await,
            s,
        );
        ok(self.pubsub.set_affiliation(&k, PEP, Some("owner")).await, s);
        ok(
            self.pubsub
                .set_affiliation(&k, "bob@example.org", Some("outcast"))
                .await,
            s,
        );
        ok(
            self.pubsub
                .set_affiliation(&other, PEP, Some("member"))
                .await,
            s,
        );
        let pair = |j: &str, a: &str| (j.to_owned(), a.to_owned());
        check(
            ok(self.pubsub.affiliations(&k).await, s),
            vec![
                pair(PEP, "owner"),
                pair("bob@example.org", "outcast"),
                pair("zed@example.org", "publisher"),
            ],
            &format!("{s}: sorted by JID"),
        );
        // Replace.
        ok(
            self.pubsub
                .set_affiliation(&k, "bob@example.org", Some("member"))
                .await,
            s,
        );
        check(
            ok(self.pubsub.affiliation(&k, "bob@example.org").await, s),
            Some("member".to_owned()),
            &format!("{s}: replaced"),
        );
        check(
            ok(self.pubsub.affiliation(&k, "Bob@example.org").await, s),
            None,
            &format!("{s}: byte-exact"),
        );
        // Remove; removing what is not there is fine.
        ok(
            self.pubsub
                .set_affiliation(&k, "bob@example.org", None)
                .await,
            s,
        );
        ok(
            self.pubsub
                .set_affiliation(&k, "bob@example.org", None)
                .await,
            s,
        );
        check(
            ok(self.pubsub.affiliation(&k, "bob@example.org").await, s),
            None,
            &format!("{s}: removed"),
        );
        check(
            ok(self.pubsub.affiliations(&k).await, s),
            vec![pair(PEP, "owner"), pair("zed@example.org", "publisher")],
            &format!("{s}: after removal"),
        );
        // Per node.
        check(
            ok(self.pubsub.affiliation(&other, PEP).await, s),
            Some("member".to_owned()),
            &format!("{s}: the other node's own"),
        );
        check(
            ok(self.pubsub.affiliations(&other).await, s),
            vec![pair(PEP, "member")],
            &format!("{s}: the other node untouched"),
        );
        self.delete(&k, s).await;
        self.delete(&other, s).await;
        self.expect_empty(s).await;
    }

    async fn subscriptions(&self) {
        let s = "subscriptions";
        let k = key(SERVICE, "news");
        let k2 = key(SERVICE, "alerts");
        let k3 = key(OTHER_SERVICE, "news");
        for node in [&k, &k2, &k3] {
            self.create(node, None, s).await;
        }
        let carol = "carol@example.net";
        let carol_full = "carol@example.net/laptop";
        ok(
            self.pubsub
                .subscribe(&k, &sub(carol, "s2", "pending"))
                .await,
            s,
        );
        ok(
            self.pubsub
                .subscribe(&k, &sub(carol, "s1", "subscribed"))
                .await,
            s,
        );
        ok(
            self.pubsub
                .subscribe(&k, &sub(carol_full, "s1", "subscribed"))
                .await,
            s,
        );
        ok(
            self.pubsub
                .subscribe(&k, &sub(PEP, "s9", "subscribed"))
                .await,
            s,
        );
        ok(
            self.pubsub
                .subscribe(&k2, &sub(carol, "t", "unconfigured"))
                .await,
            s,
        );
        ok(
            self.pubsub
                .subscribe(&k3, &sub(carol, "u", "subscribed"))
                .await,
            s,
        );
        check(
            ok(self.pubsub.subscriptions(&k).await, s),
            vec![
                sub(PEP, "s9", "subscribed"),
                sub(carol, "s1", "subscribed"),
                sub(carol, "s2", "pending"),
                sub(carol_full, "s1", "subscribed"),
            ],
            &format!("{s}: sorted by JID, then subid"),
        );
        // Same JID and subid: the state is replaced.
        ok(
            self.pubsub
                .subscribe(&k, &sub(carol, "s2", "subscribed"))
                .await,
            s,
        );
        check(
            ok(self.pubsub.subscriptions(&k).await, s).get(2).cloned(),
            Some(sub(carol, "s2", "subscribed")),
            &format!("{s}: state replaced"),
        );
        // Across services and nodes.
        check(
            ok(self.pubsub.subscriptions_of(None, carol).await, s),
            vec![
                (k3.clone(), sub(carol, "u", "subscribed")),
                (k2.clone(), sub(carol, "t", "unconfigured")),
                (k.clone(), sub(carol, "s1", "subscribed")),
                (k.clone(), sub(carol, "s2", "subscribed")),
            ],
            &format!("{s}: subscriptions_of every service"),
        );
        check(
            ok(self.pubsub.subscriptions_of(Some(SERVICE), carol).await, s),
            vec![
                (k2.clone(), sub(carol, "t", "unconfigured")),
                (k.clone(), sub(carol, "s1", "subscribed")),
                (k.clone(), sub(carol, "s2", "subscribed")),
            ],
            &format!("{s}: subscriptions_of one service"),
        );
        check(
            ok(self.pubsub.subscriptions_of(None, carol_full).await, s),
            vec![(k.clone(), sub(carol_full, "s1", "subscribed"))],
            &format!("{s}: a full JID is its own subscriber"),
        );
        check(
            ok(
                self.pubsub
                    .subscriptions_of(Some("pubsub.example.net"), carol)
                    .await,
                s,
            ),
            Vec::new(),
            &format!("{s}: another service"),
        );
        // Unsubscribe one subid, then all of a JID's.
        check(
            ok(self.pubsub.unsubscribe(&k, carol, Some("s9")).await, s),
            0,
            &format!("{s}: unsubscribe another JID's subid"),
        );
        check(
            ok(self.pubsub.unsubscribe(&k, carol, Some("s1")).await, s),
            1,
            &format!("{s}: unsubscribe one"),
        );
        check(
            ok(self.pubsub.unsubscribe(&k, carol, None).await, s),
            1,
            &format!("{s}: unsubscribe the rest"),
        );
        check(
            ok(self.pubsub.unsubscribe(&k, carol, None).await, s),
            0,
            &format!("{s}: unsubscribe nothing"),
        );
        check(
            ok(self.pubsub.subscriptions(&k).await, s),
            vec![
                sub(PEP, "s9", "subscribed"),
                sub(carol_full, "s1", "subscribed"),
            ],
            &format!("{s}: the others stay"),
        );
        check(
            ok(self.pubsub.subscriptions_of(None, carol).await, s).len(),
            2,
            &format!("{s}: other nodes' subscriptions stay"),
        );
        for node in [&k, &k2, &k3] {
            self.delete(node, s).await;
        }
        self.expect_empty(s).await;
    }

    async fn isolation(&self) {
        let s = "isolation";
        let a = key(SERVICE, "n");
        let b = key(OTHER_SERVICE, "n");
        let c = key(SERVICE, "m");
        for k in [&a, &b, &c] {
            self.create(k, None, s).await;
        }
        self.publish(&a, &item("1", 1), None, s).await;
        self.publish(&b, &item("1", 2), None, s).await;
        self.publish(&b, &item("2", 3), None, s).await;
        self.publish(&c, &item("3", 4), None, s).await;
        // Eviction, retraction and purging stay in their node.
        check(
            self.publish(&a, &item("4", 5), Some(1), s).await,
            1,
            &format!("{s}: evict in one node"),
        );
        self.expect_ids(&a, &["4"], s).await;
        self.expect_ids(&b, &["2", "1"], &format!("{s}: same node name elsewhere"))
            .await;
        self.expect_ids(&c, &["3"], &format!("{s}: sibling node"))
            .await;
        check(ok(self.pubsub.retract(&c, "1").await, s), false, s);
        check(ok(self.pubsub.purge(&c).await, s), 1, s);
        self.expect_ids(&b, &["2", "1"], &format!("{s}: after purging a sibling"))
            .await;
        check(
            ok(self.pubsub.items_by_id(&a, &["1".to_owned()]).await, s),
            Vec::new(),
            &format!("{s}: by id only in its node"),
        );
        check(ok(self.pubsub.node_count(SERVICE).await, s), 2, s);
        check(ok(self.pubsub.node_count(OTHER_SERVICE).await, s), 1, s);
        self.delete(&a, s).await;
        self.expect_ids(
            &b,
            &["2", "1"],
            &format!("{s}: after deleting the same name elsewhere"),
        )
        .await;
        self.delete(&b, s).await;
        self.delete(&c, s).await;
        self.expect_empty(s).await;
    }

    async fn owned_service_cascade(&self) {
        let s = "owned service cascade";
        let alice = ("alice", "example.org");
        let bob = ("bob", "example.org");
        for (l, d) in [alice, bob] {
            super::create_account_in(PREFIX, self.accounts, l, d, s).await;
        }
        let devices = key(PEP, "urn:xmpp:omemo:2:devices");
        let avatar = key(PEP, "urn:xmpp:avatar:metadata");
        let bobs = key("bob@example.org", "urn:xmpp:omemo:2:devices");
        let public = key(SERVICE, "news");
        for k in [&devices, &avatar] {
            self.create(k, Some(alice), s).await;
        }
        self.create(&bobs, Some(bob), s).await;
        self.create(&public, None, s).await;
        check(
            ok(self.pubsub.node(&devices).await, s).and_then(|n| n.owner),
            Some(("alice".to_owned(), "example.org".to_owned())),
            &format!("{s}: owner round trip"),
        );
        for k in [&devices, &avatar, &bobs, &public] {
            self.publish(k, &item("current", 1), Some(1), s).await;
            ok(self.pubsub.set_affiliation(k, PEP, Some("owner")).await, s);
            ok(
                self.pubsub.subscribe(k, &sub(PEP, "s", "subscribed")).await,
                s,
            );
            ok(
                self.pubsub
                    .subscribe(k, &sub("carol@example.net", "c", "subscribed"))
                    .await,
                s,
            );
        }
        ok(self.accounts.delete_account(alice.0, alice.1).await, s);
        // The PEP service went with its nodes and their rows.
        check(
            ok(self.pubsub.nodes(PEP).await, s),
            Vec::new(),
            &format!("{s}: the deleted account's nodes"),
        );
        for k in [&devices, &avatar] {
            self.expect_ids(k, &[], &format!("{s}: the deleted account's items"))
                .await;
            check(
                ok(self.pubsub.affiliations(k).await, s),
                Vec::new(),
                &format!("{s}: the deleted account's affiliations"),
            );
            check(
                ok(self.pubsub.subscriptions(k).await, s),
                Vec::new(),
                &format!("{s}: the deleted account's subscriptions"),
            );
        }
        // Another account's PEP service and an unowned service stay whole (rows naming the
        // deleted account by JID included: they are the engine's to remove).
        for k in [&bobs, &public] {
            self.expect_ids(k, &["current"], &format!("{s}: {k:?} kept"))
                .await;
            check(
                ok(self.pubsub.affiliation(k, PEP).await, s),
                Some("owner".to_owned()),
                &format!("{s}: {k:?} affiliations kept"),
            );
            check(
                ok(self.pubsub.subscriptions(k).await, s).len(),
                2,
                &format!("{s}: {k:?} subscriptions kept"),
            );
        }
        check(
            ok(
                self.pubsub
                    .subscriptions_of(None, "carol@example.net")
                    .await,
                s,
            )
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
            vec![bobs.clone(), public.clone()],
            &format!("{s}: carol's subscriptions to deleted nodes went"),
        );
        // A re-created account starts without nodes.
        super::create_account_in(PREFIX, self.accounts, alice.0, alice.1, s).await;
        check(
            ok(self.pubsub.node_count(PEP).await, s),
            0,
            &format!("{s}: re-created account (delete must cascade)"),
        );
        ok(self.accounts.delete_account(alice.0, alice.1).await, s);
        ok(self.accounts.delete_account(bob.0, bob.1).await, s);
        check(
            ok(self.pubsub.node(&bobs).await, s),
            None,
            &format!("{s}: bob's nodes went with bob"),
        );
        check(
            ok(self.pubsub.node(&public).await.map(|n| n.is_some()), s),
            true,
            &format!("{s}: the unowned service has no owner to go with"),
        );
        self.delete(&public, s).await;
        self.expect_no_accounts(s).await;
        self.expect_empty(s).await;
    }
}
