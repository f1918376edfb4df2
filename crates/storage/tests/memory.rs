//! The conformance suite against a minimal in-memory reference store, and
//! against deliberately broken variants of it: the suite must catch each bug.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Mutex;

use async_trait::async_trait;
use starling_storage::{
    AccountStore, Credential, NewAccount, StorageError, check_distinct_mechanisms,
};

/// Which bug to plant.
#[derive(Clone, Copy, PartialEq)]
enum Bug {
    None,
    SetCredentialsMerges,
    DeleteKeepsCredentials,
    CaseInsensitive,
    UnsortedList,
    DropsZeroBytes,
    DuplicateCreateOverwrites,
    BulkNotAtomic,
    BulkSharesFirstCredentials,
    DisabledSurvivesDelete,
}

/// (domain, localpart) → mechanism → credential; `orphans` models rows a
/// buggy backend leaves behind.
struct Memory {
    bug: Bug,
    accounts: Mutex<BTreeMap<(String, String), BTreeMap<String, Credential>>>,
    orphans: Mutex<BTreeMap<(String, String), BTreeMap<String, Credential>>>,
    disabled: Mutex<std::collections::BTreeSet<(String, String)>>,
}

impl Memory {
    fn new(bug: Bug) -> Self {
        Self {
            bug,
            accounts: Mutex::default(),
            orphans: Mutex::default(),
            disabled: Mutex::default(),
        }
    }

    fn key(&self, localpart: &str, domain: &str) -> (String, String) {
        if self.bug == Bug::CaseInsensitive {
            (domain.to_lowercase(), localpart.to_lowercase())
        } else {
            (domain.to_owned(), localpart.to_owned())
        }
    }

    fn map(&self, creds: &[Credential]) -> BTreeMap<String, Credential> {
        creds
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if self.bug == Bug::DropsZeroBytes {
                    c.salt.retain(|&b| b != 0);
                }
                (c.mechanism.clone(), c)
            })
            .collect()
    }
}

#[async_trait]
impl AccountStore for Memory {
    async fn create_account(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[Credential],
    ) -> Result<(), StorageError> {
        check_distinct_mechanisms(creds)?;
        let key = self.key(localpart, domain);
        let mut accounts = self.accounts.lock().unwrap();
        match accounts.entry(key) {
            Entry::Occupied(mut existing) => {
                if self.bug == Bug::DuplicateCreateOverwrites {
                    existing.insert(self.map(creds));
                }
                Err(StorageError::AlreadyExists)
            }
            Entry::Vacant(slot) => {
                let mut creds = self.map(creds);
                if let Some(old) = self.orphans.lock().unwrap().remove(slot.key()) {
                    creds.extend(old);
                }
                slot.insert(creds);
                Ok(())
            }
        }
    }

    async fn create_accounts(&self, batch: &[NewAccount<'_>]) -> Result<(), StorageError> {
        if self.bug == Bug::BulkNotAtomic {
            // Creates one by one and stops at the first error.
            for a in batch {
                self.create_account(a.localpart, a.domain, a.creds).await?;
            }
            return Ok(());
        }
        for a in batch {
            check_distinct_mechanisms(a.creds)?;
        }
        let mut accounts = self.accounts.lock().unwrap();
        let mut keys = std::collections::BTreeSet::new();
        for a in batch {
            let key = self.key(a.localpart, a.domain);
            if accounts.contains_key(&key) || !keys.insert(key) {
                return Err(StorageError::AlreadyExists);
            }
        }
        for a in batch {
            let creds = match (self.bug, batch.first()) {
                (Bug::BulkSharesFirstCredentials, Some(first)) => self.map(first.creds),
                _ => self.map(a.creds),
            };
            accounts.insert(self.key(a.localpart, a.domain), creds);
        }
        Ok(())
    }

    async fn set_credentials(
        &self,
        localpart: &str,
        domain: &str,
        creds: &[Credential],
    ) -> Result<(), StorageError> {
        check_distinct_mechanisms(creds)?;
        let key = self.key(localpart, domain);
        let mut accounts = self.accounts.lock().unwrap();
        let existing = accounts.get_mut(&key).ok_or(StorageError::NotFound)?;
        if self.bug == Bug::SetCredentialsMerges {
            existing.extend(self.map(creds));
        } else {
            *existing = self.map(creds);
        }
        Ok(())
    }

    async fn delete_account(&self, localpart: &str, domain: &str) -> Result<(), StorageError> {
        let key = self.key(localpart, domain);
        let creds = self
            .accounts
            .lock()
            .unwrap()
            .remove(&key)
            .ok_or(StorageError::NotFound)?;
        if self.bug != Bug::DisabledSurvivesDelete {
            self.disabled.lock().unwrap().remove(&key);
        }
        if self.bug == Bug::DeleteKeepsCredentials {
            self.orphans.lock().unwrap().insert(key, creds);
        }
        Ok(())
    }

    async fn set_disabled(
        &self,
        localpart: &str,
        domain: &str,
        disabled: bool,
    ) -> Result<(), StorageError> {
        let key = self.key(localpart, domain);
        if !self.accounts.lock().unwrap().contains_key(&key) {
            return Err(StorageError::NotFound);
        }
        let mut set = self.disabled.lock().unwrap();
        if disabled {
            set.insert(key);
        } else {
            set.remove(&key);
        }
        Ok(())
    }

    async fn is_disabled(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        let key = self.key(localpart, domain);
        if !self.accounts.lock().unwrap().contains_key(&key) {
            return Err(StorageError::NotFound);
        }
        Ok(self.disabled.lock().unwrap().contains(&key))
    }

    async fn account_exists(&self, localpart: &str, domain: &str) -> Result<bool, StorageError> {
        let key = self.key(localpart, domain);
        Ok(self.accounts.lock().unwrap().contains_key(&key))
    }

    async fn credential(
        &self,
        localpart: &str,
        domain: &str,
        mechanism: &str,
    ) -> Result<Option<Credential>, StorageError> {
        let key = self.key(localpart, domain);
        Ok(self
            .accounts
            .lock()
            .unwrap()
            .get(&key)
            .and_then(|m| m.get(mechanism).cloned()))
    }

    async fn list_accounts(
        &self,
        domain: Option<&str>,
    ) -> Result<Vec<(String, String)>, StorageError> {
        let mut list: Vec<(String, String)> = self
            .accounts
            .lock()
            .unwrap()
            .keys()
            .filter(|(d, _)| domain.is_none_or(|want| want == d))
            .map(|(d, l)| (l.clone(), d.clone()))
            .collect();
        if self.bug == Bug::UnsortedList {
            // Map order: by domain, then localpart.
        } else {
            list.sort();
        }
        Ok(list)
    }
}

#[tokio::test]
async fn reference_store_passes() {
    starling_storage::conformance::accounts(&Memory::new(Bug::None)).await;
}

#[tokio::test]
#[should_panic(expected = "set_credentials: old mechanism gone")]
async fn catches_set_credentials_merging() {
    starling_storage::conformance::accounts(&Memory::new(Bug::SetCredentialsMerges)).await;
}

#[tokio::test]
#[should_panic(
    expected = "round trip: cleanup alice@example.org: re-created account inherited the deleted one's SCRAM-SHA-1 credential (delete must cascade)"
)]
async fn catches_delete_without_cascade() {
    starling_storage::conformance::accounts(&Memory::new(Bug::DeleteKeepsCredentials)).await;
}

#[tokio::test]
#[should_panic(expected = "round trip: lookups are byte-exact (no case folding)")]
async fn catches_case_folding() {
    starling_storage::conformance::accounts(&Memory::new(Bug::CaseInsensitive)).await;
}

#[tokio::test]
#[should_panic(expected = "list: all, sorted by localpart then domain")]
async fn catches_unsorted_list() {
    starling_storage::conformance::accounts(&Memory::new(Bug::UnsortedList)).await;
}

#[tokio::test]
#[should_panic(expected = "binary values: zero bytes and u32::MAX iterations survive")]
async fn catches_dropped_zero_bytes() {
    starling_storage::conformance::accounts(&Memory::new(Bug::DropsZeroBytes)).await;
}

#[tokio::test]
#[should_panic(expected = "duplicate create: original credential untouched")]
async fn catches_duplicate_create_overwriting() {
    starling_storage::conformance::accounts(&Memory::new(Bug::DuplicateCreateOverwrites)).await;
}

#[tokio::test]
#[should_panic(
    expected = "bulk create atomic: a failed batch creates no account: got [(\"new1\", \"example.org\"), (\"taken\", \"example.org\")]"
)]
async fn catches_bulk_create_not_atomic() {
    starling_storage::conformance::accounts(&Memory::new(Bug::BulkNotAtomic)).await;
}

#[tokio::test]
#[should_panic(expected = "bulk create: SCRAM-SHA-1 credential of alice@example.org")]
async fn catches_bulk_create_mixing_up_credentials() {
    starling_storage::conformance::accounts(&Memory::new(Bug::BulkSharesFirstCredentials)).await;
}

#[tokio::test]
#[should_panic(expected = "disabled: an account created again after its deletion is enabled")]
async fn catches_disabled_flag_surviving_deletion() {
    starling_storage::conformance::accounts(&Memory::new(Bug::DisabledSurvivesDelete)).await;
}

#[tokio::test]
#[should_panic(expected = "precondition: the store must be empty")]
async fn refuses_a_non_empty_store() {
    let store = Memory::new(Bug::None);
    store.create_account("x", "example.org", &[]).await.unwrap();
    starling_storage::conformance::accounts(&store).await;
}

#[test]
fn duplicate_mechanisms_are_rejected() {
    let c = |m: &str| Credential {
        mechanism: m.to_owned(),
        salt: vec![1],
        iterations: 1,
        stored_key: vec![2],
        server_key: vec![3],
    };
    assert!(check_distinct_mechanisms(&[]).is_ok());
    assert!(check_distinct_mechanisms(&[c("SCRAM-SHA-1"), c("SCRAM-SHA-256")]).is_ok());
    let err = check_distinct_mechanisms(&[c("SCRAM-SHA-1"), c("SCRAM-SHA-256"), c("SCRAM-SHA-1")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "storage backend error: duplicate credential for mechanism \"SCRAM-SHA-1\""
    );
}

#[test]
fn credential_debug_redacts_keys() {
    let c = Credential {
        mechanism: "SCRAM-SHA-256".to_owned(),
        salt: vec![0xab; 16],
        iterations: 4096,
        stored_key: vec![0xcd; 32],
        server_key: vec![0xef; 32],
    };
    assert_eq!(
        format!("{c:?}"),
        "Credential { mechanism: \"SCRAM-SHA-256\", salt_len: 16, iterations: 4096, \
         stored_key_len: 32, server_key_len: 32, .. }"
    );
}
