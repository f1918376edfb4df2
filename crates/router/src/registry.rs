//! The in-memory session registry of a single server process.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use starling_module_api::{
    Resources, SessionEntry, SessionHandle, SessionId, SessionRegistry, presence_priority,
};
use starling_proto::{BareJid, Element, FullJid};

/// Bare JID → its bound resources. A lock held only for map operations, never across an await.
/// Each account's list is an immutable snapshot: [`SessionRegistry::resources`], asked once per
/// message to a bare JID, shares it instead of copying it; binding, unbinding and presence
/// changes, far rarer, build a new one.
#[derive(Default)]
pub struct LocalRegistry {
    map: RwLock<HashMap<BareJid, Resources>>,
}

impl LocalRegistry {
    pub fn new() -> Self {
        LocalRegistry::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<BareJid, Resources>> {
        // A panic while holding the lock cannot leave the map inconsistent (each operation is a
        // single insert/remove), so a poisoned lock is still usable.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<BareJid, Resources>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions bound now, counted (a walk over every account under the read lock: for the
    /// metrics endpoint, once per scrape, never on the message path).
    pub fn bound_sessions(&self) -> usize {
        self.read().values().map(|r| r.len()).sum()
    }
}

#[async_trait]
impl SessionRegistry for LocalRegistry {
    async fn bind(&self, jid: FullJid, handle: SessionHandle) -> Option<SessionEntry> {
        let mut map = self.write();
        let slot = map.entry(jid.to_bare()).or_default();
        let entry = SessionEntry {
            jid: jid.clone(),
            handle,
            priority: None,
            presence: None,
        };
        let mut list = slot.to_vec();
        let replaced = match list.iter_mut().find(|e| e.jid == jid) {
            Some(existing) => Some(std::mem::replace(existing, entry)),
            None => {
                list.push(entry);
                None
            }
        };
        *slot = list.into();
        replaced
    }

    async fn unbind(&self, jid: &FullJid, id: SessionId) -> Option<SessionEntry> {
        let mut map = self.write();
        let bare = jid.to_bare();
        let slot = map.get_mut(&bare)?;
        let pos = slot
            .iter()
            .position(|e| e.jid == *jid && e.handle.id() == id)?;
        let mut list = slot.to_vec();
        let entry = list.swap_remove(pos);
        if list.is_empty() {
            map.remove(&bare);
        } else {
            *slot = list.into();
        }
        Some(entry)
    }

    async fn get(&self, jid: &FullJid) -> Option<SessionEntry> {
        self.read()
            .get(&jid.to_bare())?
            .iter()
            .find(|e| e.jid == *jid)
            .cloned()
    }

    async fn resources(&self, bare: &BareJid) -> Resources {
        self.read().get(bare).cloned().unwrap_or_default()
    }

    async fn all(&self) -> Vec<Resources> {
        self.read().values().cloned().collect()
    }

    async fn set_presence(
        &self,
        jid: &FullJid,
        id: SessionId,
        presence: Option<Arc<Element>>,
    ) -> Option<Option<Arc<Element>>> {
        let mut map = self.write();
        let slot = map.get_mut(&jid.to_bare())?;
        let pos = slot
            .iter()
            .position(|e| e.jid == *jid && e.handle.id() == id)?;
        let mut list = slot.to_vec();
        let e = list.get_mut(pos)?;
        e.priority = presence.as_deref().map(presence_priority);
        let before = std::mem::replace(&mut e.presence, presence);
        *slot = list.into();
        Some(before)
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

    #[tokio::test]
    async fn bind_replace_unbind() {
        let r = LocalRegistry::new();
        let a: FullJid = "u@d/a".parse().unwrap();
        let b: FullJid = "u@d/b".parse().unwrap();
        let bare = a.to_bare();
        assert!(r.bind(a.clone(), handle(1)).await.is_none());
        assert!(r.bind(b.clone(), handle(2)).await.is_none());
        assert_eq!(r.resources(&bare).await.len(), 2);
        assert_eq!(r.bound_sessions(), 2);
        // Same resource again: the old session comes back to be closed.
        assert_eq!(
            r.bind(a.clone(), handle(3)).await.map(|e| e.handle.id()),
            Some(1)
        );
        assert_eq!(r.resources(&bare).await.len(), 2);
        // The replaced session unbinding late must not remove its successor.
        assert!(r.unbind(&a, 1).await.is_none());
        assert_eq!(r.get(&a).await.map(|e| e.handle.id()), Some(3));
        let p = Arc::new(
            Element::new("presence", starling_proto::ns::CLIENT)
                .with_child(Element::new("priority", starling_proto::ns::CLIENT).with_text("5")),
        );
        assert_eq!(r.set_presence(&b, 2, Some(p)).await, Some(None));
        assert_eq!(r.get(&b).await.and_then(|e| e.priority), Some(5));
        // Another session id does not touch it.
        assert_eq!(r.set_presence(&b, 9, None).await, None);
        assert!(r.get(&b).await.is_some_and(|e| e.is_available()));
        assert!(r.unbind(&a, 3).await.is_some());
        let last = r.unbind(&b, 2).await.unwrap();
        assert_eq!(last.priority, Some(5));
        assert!(r.resources(&bare).await.is_empty());
        assert_eq!(r.bound_sessions(), 0);
        // The last resource gone, the account's entry is gone too (no empty lists kept).
        assert!(r.read().is_empty());
    }
}
