//! The roster conformance suite against a minimal in-memory reference
//! backend, and against deliberately broken variants of it: the suite must
//! catch each bug.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use starling_storage::{
    AccountStore, Credential, NewAccount, NewRoster, RosterCounts, RosterItem, RosterStore,
    StorageError, Subscription, check_distinct_groups,
};

/// Which bug to plant.
#[derive(Clone, Copy, PartialEq)]
enum Bug {
    None,
    DeleteKeepsRoster,
    UnsortedItems,
    GroupsSorted,
    SharedVersion,
    RemoveMissingBumps,
    PutCreatesAccount,
    ReplaceMergesGroups,
    EmptyNameIsNone,
    AcceptsDuplicateGroups,
    BulkBumpsPerItem,
    BulkNotAtomic,
    BulkReplaces,
    CountsHiddenAsVisible,
}

type Account = (String, String);

#[derive(Default)]
struct State {
    accounts: BTreeSet<Account>,
    /// Items per account in insertion order (sorted on read unless buggy).
    items: BTreeMap<Account, Vec<RosterItem>>,
    versions: BTreeMap<Account, u64>,
    global_version: u64,
}

/// Accounts and rosters in one backend (the suite needs both traits).
struct Memory {
    bug: Bug,
    state: Mutex<State>,
}

impl Memory {
    fn new(bug: Bug) -> Self {
        Self {
            bug,
            state: Mutex::default(),
        }
    }

    fn bump(&self, st: &mut State, key: &Account) -> u64 {
        if self.bug == Bug::SharedVersion {
            st.global_version += 1;
            st.versions.insert(key.clone(), st.global_version);
            return st.global_version;
        }
        let v = st.versions.entry(key.clone()).or_insert(0);
        *v += 1;
        *v
    }

    /// `insert_many` done right: validate everything, then apply.
    fn insert_atomically(&self, rosters: &[NewRoster<'_>]) -> Result<(), StorageError> {
        let mut st = self.state.lock().unwrap();
        // Validate everything first, then apply: all or nothing.
        let mut seen = BTreeSet::new();
        for r in rosters {
            let k = key(r.localpart, r.domain);
            if !st.accounts.contains(&k) {
                return Err(StorageError::NotFound);
            }
            for item in r.items {
                check_distinct_groups(&item.groups)?;
                let on_roster = st
                    .items
                    .get(&k)
                    .is_some_and(|items| items.iter().any(|i| i.jid == item.jid));
                let fresh = seen.insert((k.clone(), item.jid.clone()));
                if self.bug != Bug::BulkReplaces && (on_roster || !fresh) {
                    return Err(StorageError::AlreadyExists);
                }
            }
        }
        for r in rosters.iter().filter(|r| !r.items.is_empty()) {
            let k = key(r.localpart, r.domain);
            let items = st.items.entry(k.clone()).or_default();
            for item in r.items {
                items.retain(|i| i.jid != item.jid);
                items.push(item.clone());
            }
            self.bump(&mut st, &k);
        }
        Ok(())
    }
}

fn key(localpart: &str, domain: &str) -> Account {
    (domain.to_owned(), localpart.to_owned())
}

#[async_trait]
impl AccountStore for Memory {
    async fn create_account(
        &self,
        localpart: &str,
        domain: &str,
        _creds: &[Credential],
    ) -> Result<(), StorageError> {
        let mut st = self.state.lock().unwrap();
        if !st.accounts.insert(key(localpart, domain)) {
            return Err(StorageError::AlreadyExists);
        }
        Ok(())
    }

    async fn create_accounts(&self, batch: &[NewAccount<'_>]) -> Result<(), StorageError> {
        let mut st = self.state.lock().unwrap();
        let mut keys = BTreeSet::new();
        for a in batch {
            let k = key(a.localpart, a.domain);
            if st.accounts.contains(&k) || !keys.insert(k) {
                return Err(StorageError::AlreadyExists);
            }
        }
        st.accounts.extend(keys);
        Ok(())
    }

    async fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        _creds: &[Credential],
    ) -> Result<(), StorageError> {
        let st = self.state.lock().unwrap();
        if st.accounts.contains(&key(localpart, domain)) {
            Ok(())
        } else {
            Err(StorageError::NotFound)
        }
    }

    async fn delete_account(&self, localpart: &str, domain: &str) -> Result<(), StorageError> {
        let k = key(localpart, domain);
        let mut st = self.state.lock().unwrap();
        if !st.accounts.remove(&k) {
            return Err(StorageError::NotFound);
        }
        if self.bug != Bug::DeleteKeepsRoster {
            st.items.remove(&k);
            st.versions.remove(&k);
        }
        Ok(())
    }

    async fn set_disabled(
        &self,
        localpart: &str,
        domain: &str,
        _disabled: bool,
    ) -> Result<(), StorageError> {
        self.is_disabled(localpart, domain).await.map(|_| ())
    }

    async fn is_disabled(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        if self.account_exists(localpart, domain).await? {
            Ok(false)
        } else {
            Err(StorageError::NotFound)
        }
    }

    async fn account_exists(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .accounts
            .contains(&key(localpart, domain)))
    }

    async fn credential(
        &self,
        _localpart: &str,
        _domain: &str,
        _mechanism: &str,
    ) -> Result<Option<Credential>, StorageError> {
        Ok(None)
    }

    async fn list_accounts(
        &self,
        domain: Option<&str>,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let mut list: Vec<_> = self
            .state
            .lock()
            .unwrap()
            .accounts
            .iter()
            .filter(|(d, _)| domain.is_none_or(|want| want == d))
            .map(|(d, l)| (l.clone(), d.clone()))
            .collect();
        list.sort();
        Ok(list)
    }
}

#[async_trait]
impl RosterStore for Memory {
    async fn items(&self, localpart: &str, domain: &str) -> Result<Vec<RosterItem>, StorageError> {
        let st = self.state.lock().unwrap();
        let mut items = st
            .items
            .get(&key(localpart, domain))
            .cloned()
            .unwrap_or_default();
        if self.bug != Bug::UnsortedItems {
            items.sort_by(|a, b| a.jid.cmp(&b.jid));
        }
        Ok(items)
    }

    async fn item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<Option<RosterItem>, StorageError> {
        let st = self.state.lock().unwrap();
        Ok(st
            .items
            .get(&key(localpart, domain))
            .and_then(|items| items.iter().find(|i| i.jid == jid).cloned()))
    }

    async fn put_item(
        &self,
        localpart: &str,
        domain: &str,
        item: &RosterItem,
    ) -> Result<u64, StorageError> {
        if self.bug != Bug::AcceptsDuplicateGroups {
            check_distinct_groups(&item.groups)?;
        }
        let k = key(localpart, domain);
        let mut st = self.state.lock().unwrap();
        if !st.accounts.contains(&k) {
            if self.bug == Bug::PutCreatesAccount {
                st.accounts.insert(k.clone());
            } else {
                return Err(StorageError::NotFound);
            }
        }
        let mut item = item.clone();
        if self.bug == Bug::GroupsSorted {
            item.groups.sort();
        }
        if self.bug == Bug::EmptyNameIsNone && item.name.as_deref() == Some("") {
            item.name = None;
        }
        let items = st.items.entry(k.clone()).or_default();
        match items.iter_mut().find(|i| i.jid == item.jid) {
            Some(existing) => {
                if self.bug == Bug::ReplaceMergesGroups {
                    let mut groups = existing.groups.clone();
                    groups.extend(
                        item.groups
                            .iter()
                            .filter(|g| !groups.contains(g))
                            .cloned()
                            .collect::<Vec<_>>(),
                    );
                    item.groups = groups;
                }
                *existing = item;
            }
            None => items.push(item),
        }
        Ok(self.bump(&mut st, &k))
    }

    async fn remove_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<Option<u64>, StorageError> {
        let k = key(localpart, domain);
        let mut st = self.state.lock().unwrap();
        if !st.accounts.contains(&k) {
            return Err(StorageError::NotFound);
        }
        let items = st.items.entry(k.clone()).or_default();
        let before = items.len();
        items.retain(|i| i.jid != jid);
        if items.len() == before {
            if self.bug == Bug::RemoveMissingBumps {
                self.bump(&mut st, &k);
            }
            return Ok(None);
        }
        Ok(Some(self.bump(&mut st, &k)))
    }

    async fn insert_many(&self, rosters: &[NewRoster<'_>]) -> Result<(), StorageError> {
        if self.bug == Bug::BulkBumpsPerItem {
            // put_item one by one.
            for r in rosters {
                if !self.account_exists(r.localpart, r.domain).await? {
                    return Err(StorageError::NotFound);
                }
                for item in r.items {
                    self.put_item(r.localpart, r.domain, item).await?;
                }
            }
            return Ok(());
        }
        if self.bug == Bug::BulkNotAtomic {
            // Each entry on its own, stopping at the first error.
            for r in rosters {
                self.insert_atomically(std::slice::from_ref(r))?;
            }
            return Ok(());
        }
        self.insert_atomically(rosters)
    }

    async fn version(&self, localpart: &str, domain: &str) -> Result<u64, StorageError> {
        let st = self.state.lock().unwrap();
        Ok(st
            .versions
            .get(&key(localpart, domain))
            .copied()
            .unwrap_or(0))
    }

    async fn counts(&self, localpart: &str, domain: &str) -> Result<RosterCounts, StorageError> {
        let st = self.state.lock().unwrap();
        let mut counts = RosterCounts::default();
        for item in st.items.get(&key(localpart, domain)).into_iter().flatten() {
            if item.hidden && self.bug != Bug::CountsHiddenAsVisible {
                counts.hidden += 1;
            } else {
                counts.visible += 1;
            }
        }
        Ok(counts)
    }
}

async fn run(bug: Bug) {
    let m = Memory::new(bug);
    starling_storage::conformance::rosters(&m, &m).await;
}

#[tokio::test]
async fn reference_store_passes() {
    run(Bug::None).await;
}

#[tokio::test]
#[should_panic(
    expected = "round trip: cleanup: deleted account's roster (delete must cascade): version of alice@example.org: got 3, want 0"
)]
async fn catches_delete_without_cascade() {
    run(Bug::DeleteKeepsRoster).await;
}

#[tokio::test]
#[should_panic(
    expected = "sorted: items of alice@example.org: got [RosterItem { jid: \"zed@example.org\""
)]
async fn catches_unsorted_items() {
    run(Bug::UnsortedItems).await;
}

#[tokio::test]
#[should_panic(
    expected = "round trip: item \"bob@example.org\" of alice@example.org: got Some(RosterItem { jid: \"bob@example.org\", name: Some(\"Jürgen „Jü“ Müller 🐦 王\"), subscription: Both, ask_out: true, pending_in: true, preapproved: true, groups: [\"Zebra\", \"a\", \"Ärzte\", \"同事\"]"
)]
async fn catches_reordered_groups() {
    run(Bug::GroupsSorted).await;
}

#[tokio::test]
#[should_panic(
    expected = "every subscription and flag: version returned by put c00@example.org: got 4, want 1"
)]
async fn catches_version_shared_between_accounts() {
    run(Bug::SharedVersion).await;
}

#[tokio::test]
#[should_panic(
    expected = "remove: removing nothing is no change: version of alice@example.org: got 1, want 0"
)]
async fn catches_version_bump_on_removing_nothing() {
    run(Bug::RemoveMissingBumps).await;
}

#[tokio::test]
#[should_panic(expected = "unknown account: put: got Ok(1), want Err(NotFound)")]
async fn catches_put_on_unknown_account() {
    run(Bug::PutCreatesAccount).await;
}

#[tokio::test]
#[should_panic(
    expected = "groups: [\"Zebra\", \"Ärzte\", \"同事\", \"a\", \"Neu\"], pending_in_stanza: None, hidden: false }), want Some(RosterItem { jid: \"bob@example.org\", name: Some(\"Bobby\")"
)]
async fn catches_replace_merging_groups() {
    run(Bug::ReplaceMergesGroups).await;
}

#[tokio::test]
#[should_panic(
    expected = "round trip: item \"dave@example.org\" of alice@example.org: got Some(RosterItem { jid: \"dave@example.org\", name: None,"
)]
async fn catches_empty_name_as_none() {
    run(Bug::EmptyNameIsNone).await;
}

#[tokio::test]
#[should_panic(
    expected = "duplicate groups: replace with duplicate groups: got Ok(2), want Err(Backend(\"any\"))"
)]
async fn catches_duplicate_groups_accepted() {
    run(Bug::AcceptsDuplicateGroups).await;
}

#[tokio::test]
#[should_panic(
    expected = "bulk insert: one increment per non-empty entry: version of alice@example.org: got 4, want 3"
)]
async fn catches_bulk_version_bump_per_item() {
    run(Bug::BulkBumpsPerItem).await;
}

#[tokio::test]
#[should_panic(
    expected = "bulk insert atomic: unknown account: nothing changed: items of bob@example.org: got [RosterItem { jid: \"new@example.org\""
)]
async fn catches_bulk_insert_not_atomic() {
    run(Bug::BulkNotAtomic).await;
}

#[tokio::test]
#[should_panic(
    expected = "bulk insert atomic: item already on the roster: got Ok(()), want Err(AlreadyExists)"
)]
async fn catches_bulk_insert_replacing() {
    run(Bug::BulkReplaces).await;
}

#[test]
fn subscription_names() {
    let all = [
        (Subscription::None, "none"),
        (Subscription::To, "to"),
        (Subscription::From, "from"),
        (Subscription::Both, "both"),
    ];
    for (sub, name) in all {
        assert_eq!(sub.as_str(), name);
        assert_eq!(sub.to_string(), name);
        assert_eq!(Subscription::from_name(name), Some(sub));
    }
    for bad in ["", "None", "BOTH", "remove", " to", "to "] {
        assert_eq!(Subscription::from_name(bad), None, "{bad:?}");
    }
    assert_eq!(Subscription::default(), Subscription::None);
}

#[test]
fn duplicate_groups_are_rejected() {
    let g = |names: &[&str]| names.iter().map(|&n| n.to_owned()).collect::<Vec<_>>();
    assert!(check_distinct_groups(&[]).is_ok());
    assert!(check_distinct_groups(&g(&["a", "A", "b"])).is_ok());
    let err = check_distinct_groups(&g(&["a", "b", "a"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "storage backend error: duplicate roster group \"a\""
    );
}

#[tokio::test]
#[should_panic(
    expected = "counts: after puts: counts of alice@example.org: got RosterCounts { visible: 3, hidden: 0 }, want RosterCounts { visible: 1, hidden: 2 }"
)]
async fn catches_counts_ignoring_hidden() {
    run(Bug::CountsHiddenAsVisible).await;
}
