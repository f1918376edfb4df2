//! `starling user import`: bulk provisioning of numbered accounts for benchmarks.
//!
//! # Procedure
//!
//! 1. [`Plan::new`] checks the numbers (`--count`, `--start`, `--ring`) and normalises every
//!    address `{prefix}{i}@{domain}` exactly as `user add` does (a name must be the same under
//!    PRECIS as under stringprep), before anything is opened.
//! 2. [`shared_credentials`] derives the SCRAM credentials **once** for the whole batch.
//! 3. [`run`] refuses if any of the accounts exists (naming the first), then creates all
//!    accounts in one atomic [`AccountStore::create_accounts`] call and the ring rosters in
//!    chunks of [`ROSTER_CHUNK_ITEMS`] items with [`RosterStore::insert_many`].
//!
//! # Hazards
//!
//! * **One password, one salt.** Every account of an import gets the same stored credential
//!   (same salt, StoredKey and ServerKey). That is what makes 10,000 accounts take seconds: PBKDF2
//!   runs once per hash instead of once per account and hash. It weakens nothing: per-account
//!   salts make an attacker crack each account separately, but these accounts share one password
//!   by construction, so cracking any one of them reveals all of them whatever the salts. Use it
//!   for test and benchmark accounts, not for people.
//! * The existence check and the account insert are separate steps; an account created in
//!   between (e.g. by `user add`) makes the insert fail as a whole, with nothing created.
//! * The rosters are written after the accounts, in several transactions (so that a running
//!   server's writes are not held up for the whole import). If one fails, the accounts of this
//!   import are deleted again (their rosters go with them) and the error says so.
//! * Each transaction holds the database's write lock; a running server's writes wait for it
//!   (up to the 5 s busy timeout).

use std::collections::HashSet;

use starling_accounts::{self as auth, AccountError};
use starling_storage::{
    AccountStore, Credential, NewAccount, NewRoster, RosterItem, RosterStore, StorageError,
    Subscription,
};

/// Roster items written per [`RosterStore::insert_many`] call (one transaction each): bounds
/// memory and the time a running server waits for the write lock.
pub const ROSTER_CHUNK_ITEMS: usize = 50_000;

/// Why an import was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// `--count 0`.
    #[error("--count must be at least 1")]
    NoAccounts,
    /// The last account's number does not fit in a `u64`.
    #[error("--start {start} with --count {count} numbers accounts past {max}", max = u64::MAX)]
    NumbersOverflow { start: u64, count: usize },
    /// An odd ring size.
    #[error("--ring {0} is odd: each user gets R/2 contacts on either side, so R must be even")]
    OddRing(usize),
    /// A ring size below 2 or not below the number of accounts.
    #[error("--ring {ring} is out of range: it must be at least 2 and less than --count ({count})")]
    RingOutOfRange { ring: usize, count: usize },
    /// An address is invalid (the message names it).
    #[error(transparent)]
    Address(#[from] AccountError),
    /// The password is empty or fails SASLprep (RFC 4013).
    #[error("the password is not acceptable (empty, or prohibited characters)")]
    BadPassword,
    /// An account of the import exists already (the first one, as `user@domain`).
    #[error(
        "{0} already exists; nothing was imported (user import never replaces accounts: \
         delete them, or choose another --prefix or --start)"
    )]
    Exists(String),
    /// An account appeared between the existence check and the insert.
    #[error("an account of the import was created meanwhile by someone else; nothing was imported")]
    CreatedMeanwhile,
    /// Reading the existing accounts failed.
    #[error("cannot list the existing accounts")]
    List(#[source] StorageError),
    /// Creating the accounts failed (none was created).
    #[error("cannot create the accounts; nothing was imported")]
    CreateAccounts(#[source] StorageError),
    /// Writing a roster chunk failed; `cleanup` says what became of the accounts.
    #[error("cannot store the rosters; {cleanup}")]
    Rosters {
        cleanup: String,
        #[source]
        source: StorageError,
    },
}

/// A checked import: the normalised accounts and the ring size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    domain: String,
    localparts: Vec<String>,
    ring: Option<usize>,
}

impl Plan {
    /// Checks the numbers and normalises every address `{prefix}{i}@{domain}` for `i` in
    /// `start..start + count` (nodeprep/nameprep, and the same under PRECIS, like `user add`:
    /// [`auth::parse_new_account`]).
    pub fn new(
        prefix: &str,
        domain: &str,
        start: u64,
        count: usize,
        ring: Option<usize>,
    ) -> Result<Plan, ImportError> {
        if count == 0 {
            return Err(ImportError::NoAccounts);
        }
        if let Some(r) = ring {
            if !r.is_multiple_of(2) {
                return Err(ImportError::OddRing(r));
            }
            if r < 2 || r >= count {
                return Err(ImportError::RingOutOfRange { ring: r, count });
            }
        }
        let overflow = ImportError::NumbersOverflow { start, count };
        let Ok(count64) = u64::try_from(count) else {
            return Err(overflow);
        };
        // The last number is start + count - 1.
        if start.checked_add(count64 - 1).is_none() {
            return Err(overflow);
        }
        let mut localparts = Vec::with_capacity(count);
        let mut normalised_domain = None;
        for i in (0..count64).map(|k| start + k) {
            let jid = format!("{prefix}{i}@{domain}");
            let (local, dom) = auth::parse_new_account(&jid)?;
            normalised_domain.get_or_insert(dom);
            localparts.push(local);
        }
        Ok(Plan {
            domain: normalised_domain.unwrap_or_default(),
            localparts,
            ring,
        })
    }

    /// The accounts' domain, normalised (check that the configuration serves it).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The accounts' localparts, normalised, in number order.
    pub fn localparts(&self) -> &[String] {
        &self.localparts
    }

    /// Roster items the import writes: `count × R`.
    pub fn roster_items(&self) -> usize {
        self.ring.map_or(0, |r| r * self.localparts.len())
    }

    /// The roster of the user at `pos` (0-based in number order): R items, subscription `both`,
    /// no ask, no groups, named by the contact's localpart (see [`ring_neighbours`]).
    pub fn roster_of(&self, pos: usize) -> Vec<RosterItem> {
        let Some(r) = self.ring else {
            return Vec::new();
        };
        ring_neighbours(pos, self.localparts.len(), r)
            .map(|q| {
                let local = &self.localparts[q];
                RosterItem {
                    name: Some(local.clone()),
                    // Mutual by construction: q is on pos's roster iff pos is on q's. Both
                    // directions are subscribed, nothing is pending (RFC 6121 §3.1.6).
                    subscription: Subscription::Both,
                    ..RosterItem::new(format!("{local}@{}", self.domain))
                }
            })
            .collect()
    }
}

/// Positions (0-based, in a batch of `n`) of the ring contacts of the user at `pos`: pos+1, pos-1,
/// pos+2, pos-2, … pos±r/2, wrapping around the batch.
///
/// With `r` even and `r < n` these are `r` distinct positions other than `pos` (two of them
/// coincide only if k + k' ≡ 0 mod n for 1 ≤ k, k' ≤ r/2, i.e. k + k' = n > r), and `q` is a
/// neighbour of `pos` exactly when `pos` is one of `q`.
pub fn ring_neighbours(pos: usize, n: usize, r: usize) -> impl Iterator<Item = usize> {
    // k ≤ r/2 < n, so n - k does not underflow; pos < n, so the sums stay below 2n.
    (1..=r / 2).flat_map(move |k| [(pos + k) % n, (pos + (n - k)) % n])
}

/// The SCRAM credentials every account of one import shares: one fresh random salt per hash and
/// one PBKDF2 derivation per hash, with `iterations` (`auth.scram_iterations`), for every
/// mechanism `user add` stores.
///
/// Sharing them is deliberate and safe for a batch with one password (see the module docs): a
/// cracked credential reveals the shared password whatever the salts, so distinct salts would
/// only cost `count` derivations (minutes for 10,000 accounts) and protect nothing.
pub fn shared_credentials(password: &str, iterations: u32) -> Result<Vec<Credential>, ImportError> {
    auth::make_credentials(password, iterations).map_err(|_| ImportError::BadPassword)
}

/// What [`run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Accounts created.
    pub accounts: usize,
    /// Roster items created (over all accounts).
    pub roster_items: usize,
}

/// Creates the planned accounts with `creds` (from [`shared_credentials`]) and their ring
/// rosters; refuses with [`ImportError::Exists`] before writing anything if one exists.
pub async fn run(
    accounts: &dyn AccountStore,
    rosters: &dyn RosterStore,
    plan: &Plan,
    creds: &[Credential],
) -> Result<Imported, ImportError> {
    let existing: HashSet<String> = accounts
        .list_accounts(Some(&plan.domain))
        .await
        .map_err(ImportError::List)?
        .into_iter()
        .map(|(local, _)| local)
        .collect();
    if let Some(clash) = plan.localparts.iter().find(|l| existing.contains(*l)) {
        return Err(ImportError::Exists(format!("{clash}@{}", plan.domain)));
    }
    drop(existing);

    let batch: Vec<NewAccount<'_>> = plan
        .localparts
        .iter()
        .map(|local| NewAccount {
            localpart: local,
            domain: &plan.domain,
            creds,
        })
        .collect();
    accounts
        .create_accounts(&batch)
        .await
        .map_err(|e| match e {
            StorageError::AlreadyExists => ImportError::CreatedMeanwhile,
            other => ImportError::CreateAccounts(other),
        })?;
    drop(batch);

    if let Some(r) = plan.ring {
        let per_chunk = (ROSTER_CHUNK_ITEMS / r).max(1);
        let positions: Vec<usize> = (0..plan.localparts.len()).collect();
        for chunk in positions.chunks(per_chunk) {
            let items: Vec<Vec<RosterItem>> = chunk.iter().map(|&p| plan.roster_of(p)).collect();
            let entries: Vec<NewRoster<'_>> = chunk
                .iter()
                .zip(&items)
                .map(|(&p, items)| NewRoster {
                    localpart: &plan.localparts[p],
                    domain: &plan.domain,
                    items,
                })
                .collect();
            if let Err(source) = rosters.insert_many(&entries).await {
                let cleanup = undo(accounts, plan).await;
                return Err(ImportError::Rosters { cleanup, source });
            }
        }
    }
    Ok(Imported {
        accounts: plan.localparts.len(),
        roster_items: plan.roster_items(),
    })
}

/// Deletes the accounts of a failed import (their rosters go with them); says how that went.
async fn undo(accounts: &dyn AccountStore, plan: &Plan) -> String {
    let mut failed = 0usize;
    for local in &plan.localparts {
        if accounts.delete_account(local, &plan.domain).await.is_err() {
            failed += 1;
        }
    }
    if failed == 0 {
        format!(
            "the {} accounts of this import were deleted again",
            plan.localparts.len()
        )
    } else {
        format!(
            "{failed} of the {} accounts of this import could not be deleted again \
             (delete them with `starling user del`)",
            plan.localparts.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<usize>) -> Vec<usize> {
        v.sort_unstable();
        v
    }

    #[test]
    fn ring_neighbours_wrap() {
        assert_eq!(
            ring_neighbours(0, 20, 4).collect::<Vec<_>>(),
            [1, 19, 2, 18]
        );
        assert_eq!(
            ring_neighbours(19, 20, 4).collect::<Vec<_>>(),
            [0, 18, 1, 17]
        );
        assert_eq!(ring_neighbours(5, 3, 2).collect::<Vec<_>>(), [0, 1]);
        // The largest ring: everyone but oneself.
        assert_eq!(
            sorted(ring_neighbours(2, 7, 6).collect()),
            [0, 1, 3, 4, 5, 6]
        );
    }

    #[test]
    fn rings_are_mutual_and_distinct() {
        for n in 3..=12 {
            for r in (2..n).step_by(2) {
                for p in 0..n {
                    let mine = sorted(ring_neighbours(p, n, r).collect());
                    let mut distinct = mine.clone();
                    distinct.dedup();
                    assert_eq!(distinct.len(), r, "n={n} r={r} p={p}: {mine:?}");
                    assert!(!mine.contains(&p), "n={n} r={r} p={p}");
                    for q in mine {
                        assert!(
                            ring_neighbours(q, n, r).any(|x| x == p),
                            "n={n} r={r}: {q} on {p}'s roster but not {p} on {q}'s"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn plan_normalises_and_numbers() {
        let plan = Plan::new("Bench", "LocalHost", 9, 3, Some(2)).unwrap();
        assert_eq!(plan.domain(), "localhost");
        assert_eq!(plan.localparts(), ["bench9", "bench10", "bench11"]);
        assert_eq!(plan.roster_items(), 6);
        assert_eq!(
            plan.roster_of(0),
            [
                RosterItem {
                    name: Some("bench10".to_owned()),
                    subscription: Subscription::Both,
                    ..RosterItem::new("bench10@localhost")
                },
                RosterItem {
                    name: Some("bench11".to_owned()),
                    subscription: Subscription::Both,
                    ..RosterItem::new("bench11@localhost")
                },
            ]
        );
        let plain = Plan::new("u", "localhost", 1, 2, None).unwrap();
        assert_eq!(plain.roster_items(), 0);
        assert_eq!(plain.roster_of(0), []);
    }

    #[tokio::test]
    async fn failed_rosters_undo_the_accounts() {
        use sqlx::Connection as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let storage = starling_storage_sqlite::SqliteStorage::open(&path)
            .await
            .unwrap();
        storage
            .stores()
            .accounts
            .create_account("other", "localhost", &[])
            .await
            .unwrap();
        storage.close().await;
        // A real SQLite that refuses roster rows, as a full disk or a constraint would.
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse BEFORE INSERT ON roster_items \
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();

        let storage = starling_storage_sqlite::SqliteStorage::open(&path)
            .await
            .unwrap();
        let stores = storage.stores();
        let plan = Plan::new("u", "localhost", 1, 5, Some(2)).unwrap();
        let err = run(&*stores.accounts, &*stores.rosters, &plan, &[])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot store the rosters; the 5 accounts of this import were deleted again"
        );
        let cause = std::error::Error::source(&err)
            .map(|e| e.to_string())
            .unwrap();
        assert!(cause.contains("disk on fire"), "{cause}");
        assert_eq!(
            stores.accounts.list_accounts(None).await.unwrap(),
            [("other".to_owned(), "localhost".to_owned())]
        );
        storage.close().await;
    }

    #[test]
    fn plan_rejects() {
        let msg = |r: Result<Plan, ImportError>| r.unwrap_err().to_string();
        assert_eq!(
            msg(Plan::new("u", "localhost", 1, 0, None)),
            "--count must be at least 1"
        );
        assert_eq!(
            msg(Plan::new("u", "localhost", 1, 20, Some(3))),
            "--ring 3 is odd: each user gets R/2 contacts on either side, so R must be even"
        );
        assert_eq!(
            msg(Plan::new("u", "localhost", 1, 20, Some(20))),
            "--ring 20 is out of range: it must be at least 2 and less than --count (20)"
        );
        assert_eq!(
            msg(Plan::new("u", "localhost", 1, 20, Some(0))),
            "--ring 0 is out of range: it must be at least 2 and less than --count (20)"
        );
        assert_eq!(
            msg(Plan::new("u", "localhost", u64::MAX - 1, 3, None)),
            "--start 18446744073709551614 with --count 3 numbers accounts past 18446744073709551615"
        );
        // The last number exactly u64::MAX is fine.
        assert!(Plan::new("u", "localhost", u64::MAX - 2, 3, None).is_ok());
        assert_eq!(
            msg(Plan::new("a/b", "localhost", 1, 1, None)),
            "invalid address: a/b1@localhost: resource found while parsing a bare JID"
        );
    }
}
