//! The in-memory session registry of a single server process.

use std::collections::HashMap;
use std::sync::RwLock;

use starling_module_api::{SessionEntry, SessionHandle, SessionId, SessionRegistry};
use starling_proto::{BareJid, FullJid};

/// Bare JID → its bound resources. A lock held only for map operations, never across an await.
#[derive(Default)]
pub struct LocalRegistry {
    map: RwLock<HashMap<BareJid, Vec<SessionEntry>>>,
}

impl LocalRegistry {
    pub fn new() -> Self {
        LocalRegistry::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<BareJid, Vec<SessionEntry>>> {
        // A panic while holding the lock cannot leave the map inconsistent (each operation is a
        // single insert/remove), so a poisoned lock is still usable.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<BareJid, Vec<SessionEntry>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionRegistry for LocalRegistry {
    fn bind(&self, jid: FullJid, handle: SessionHandle) -> Option<SessionHandle> {
        let mut map = self.write();
        let list = map.entry(jid.to_bare()).or_default();
        let entry = SessionEntry {
            jid: jid.clone(),
            handle,
            priority: None,
        };
        if let Some(existing) = list.iter_mut().find(|e| e.jid == jid) {
            let old = std::mem::replace(existing, entry);
            return Some(old.handle);
        }
        list.push(entry);
        None
    }

    fn unbind(&self, jid: &FullJid, id: SessionId) {
        let mut map = self.write();
        let bare = jid.to_bare();
        if let Some(list) = map.get_mut(&bare) {
            list.retain(|e| !(e.jid == *jid && e.handle.id() == id));
            if list.is_empty() {
                map.remove(&bare);
            }
        }
    }

    fn get(&self, jid: &FullJid) -> Option<SessionEntry> {
        self.read()
            .get(&jid.to_bare())?
            .iter()
            .find(|e| e.jid == *jid)
            .cloned()
    }

    fn resources(&self, bare: &BareJid) -> Vec<SessionEntry> {
        self.read().get(bare).cloned().unwrap_or_default()
    }

    fn set_priority(&self, jid: &FullJid, id: SessionId, priority: Option<i8>) {
        let mut map = self.write();
        if let Some(e) = map
            .get_mut(&jid.to_bare())
            .and_then(|l| l.iter_mut().find(|e| e.jid == *jid && e.handle.id() == id))
        {
            e.priority = priority;
        }
    }

    fn count(&self) -> usize {
        self.read().values().map(Vec::len).sum()
    }

    fn all(&self) -> Vec<SessionEntry> {
        self.read().values().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn handle(id: SessionId) -> SessionHandle {
        let (tx, _rx) = mpsc::channel(1);
        SessionHandle::new(id, tx)
    }

    #[test]
    fn bind_replace_unbind() {
        let r = LocalRegistry::new();
        let a: FullJid = "u@d/a".parse().unwrap();
        let b: FullJid = "u@d/b".parse().unwrap();
        assert!(r.bind(a.clone(), handle(1)).is_none());
        assert!(r.bind(b.clone(), handle(2)).is_none());
        assert_eq!(r.count(), 2);
        // Same resource again: the old session comes back to be closed.
        assert_eq!(r.bind(a.clone(), handle(3)).map(|h| h.id()), Some(1));
        assert_eq!(r.count(), 2);
        // The replaced session unbinding late must not remove its successor.
        r.unbind(&a, 1);
        assert_eq!(r.get(&a).map(|e| e.handle.id()), Some(3));
        r.set_priority(&b, 2, Some(5));
        assert_eq!(r.get(&b).and_then(|e| e.priority), Some(5));
        r.unbind(&a, 3);
        r.unbind(&b, 2);
        assert_eq!(r.count(), 0);
        assert!(r.resources(&a.to_bare()).is_empty());
    }
}
