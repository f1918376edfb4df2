//! What a session already got from its archive before it became available.
//!
//! XEP-0313 §7.1.1: "A server MAY choose not to deliver offline messages to a client that has
//! already queried their MAM archive and received the archived copies of those messages". A
//! modern client logs in, fetches what it missed from the archive, then sends its initial
//! presence, which delivers the offline messages (XEP-0160): the same messages again. The
//! archive records, per session and only until its initial presence, the ids of the results it
//! sent; the offline module takes that set when it delivers, and deletes the messages whose
//! `<stanza-id/>` is in it instead of sending them.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use starling_module_api::SessionId;

/// Most ids remembered per session; results beyond are delivered offline as usual.
pub const MAX_PER_SESSION: usize = 10_000;

/// Shared by the archive (which records) and the offline module (which takes).
#[derive(Debug, Default)]
pub struct Seen {
    map: Mutex<HashMap<SessionId, HashSet<String>>>,
}

impl Seen {
    pub fn new() -> Self {
        Seen::default()
    }

    /// Remembers that `session` received the archived messages `ids`.
    pub fn record<'a>(&self, session: SessionId, ids: impl IntoIterator<Item = &'a str>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let set = map.entry(session).or_default();
        for id in ids {
            if set.len() >= MAX_PER_SESSION {
                break;
            }
            set.insert(id.to_owned());
        }
    }

    /// What `session` received, forgotten here.
    pub fn take(&self, session: SessionId) -> HashSet<String> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&session)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_take_and_cap() {
        let seen = Seen::new();
        seen.record(1, ["a", "b"]);
        seen.record(1, ["c"]);
        seen.record(2, ["x"]);
        let got = seen.take(1);
        assert_eq!(got.len(), 3);
        assert!(seen.take(1).is_empty(), "taken once");
        assert_eq!(seen.take(2).len(), 1);
        let many: Vec<String> = (0..MAX_PER_SESSION + 5).map(|i| i.to_string()).collect();
        seen.record(3, many.iter().map(String::as_str));
        assert_eq!(seen.take(3).len(), MAX_PER_SESSION);
    }
}
