//! Component domains: services (MUC, pubsub, upload, gateways) that own a whole domain.
//!
//! A service such as a multi-user chat lives at a domain of its own (`conference.example.org`)
//! and receives every stanza addressed to that domain or to any JID at it
//! (`room@conference.example.org/nick`), whatever its kind: the router does not apply the
//! RFC 6121 rules for accounts to them, it hands them over. This is what XEP-0114 external
//! components get from a server, and internal services get the same: both are a
//! [`ComponentHandler`] attached to a domain in [`Components`].
//!
//! Internal services register at start with
//! [`Registrar::component`](crate::Registrar::component), either at one domain or at a label
//! under each virtual host ([`ComponentDomain::Subdomain`]: `conference` gives
//! `conference.example.org` and `conference.example.net`). External components attach and detach
//! at run time through [`Components::attach`] and [`Components::detach`].
//!
//! What a component sends goes through [`StanzaRouter::route`](crate::StanzaRouter::route) like
//! anything the server generates: its `from` (a JID at the component's domain) is trusted, so it
//! reaches local users as any other stanza does. The server's disco#items lists the component
//! domains (XEP-0030 §4).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use starling_proto::{Element, Jid};

use crate::Context;

/// Receives every stanza addressed to a component's domain or a JID at it.
#[async_trait]
pub trait ComponentHandler: Send + Sync {
    /// `stanza` is addressed to the component (its `to` in canonical form); its `from` was
    /// stamped by the server (a local client's full JID) or by whoever generated it.
    async fn on_stanza(&self, ctx: &Context, stanza: Element);
}

/// Where an internal service registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ComponentDomain {
    /// `label.host` for each virtual host: `Subdomain("conference")` on hosts `example.org` and
    /// `example.net` serves `conference.example.org` and `conference.example.net` (one handler
    /// for both; the `to` of each stanza says which).
    Subdomain(&'static str),
    /// Exactly this domain.
    Domain(String),
}

impl ComponentDomain {
    /// The domains this stands for on a server with these virtual hosts.
    pub fn resolve(&self, hosts: &[String]) -> Vec<String> {
        match self {
            ComponentDomain::Subdomain(label) => {
                hosts.iter().map(|h| format!("{label}.{h}")).collect()
            }
            ComponentDomain::Domain(d) => vec![d.clone()],
        }
    }
}

/// Why a component domain cannot be attached.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComponentError {
    /// Not a domain (RFC 7622 §3.2), or a JID with a localpart or resource.
    #[error("'{0}' is not a domain")]
    InvalidDomain(String),
    /// A virtual host of this server: its accounts' stanzas are the router's to route.
    #[error("'{0}' is a virtual host of this server")]
    LocalHost(String),
    /// Another component serves it.
    #[error("'{0}' is served by another component already")]
    Taken(String),
}

/// The component domains of this server and their handlers. Read on every stanza to a domain
/// that is no virtual host (a lock held only for a look-up), written when a component attaches
/// or detaches.
pub struct Components {
    hosts: Vec<String>,
    map: RwLock<HashMap<String, Arc<dyn ComponentHandler>>>,
    /// Every other domain: server-to-server (RFC 6120), when federation is on.
    remote: OnceLock<Arc<dyn ComponentHandler>>,
}

impl Components {
    /// No components yet, on a server with these virtual hosts.
    pub fn new(hosts: Vec<String>) -> Self {
        Components {
            hosts,
            map: RwLock::default(),
            remote: OnceLock::new(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<dyn ComponentHandler>>> {
        // Each operation is a single insert or remove: a poisoned lock is still consistent.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<dyn ComponentHandler>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `domain` with `handler` from now on. Returns the domain in canonical form (as
    /// stanzas will address it), or an error when it is no domain, is a virtual host, or is
    /// served already.
    pub fn attach(
        &self,
        domain: &str,
        handler: Arc<dyn ComponentHandler>,
    ) -> Result<String, ComponentError> {
        let canonical = canonical_domain(domain)?;
        if self.hosts.contains(&canonical) {
            return Err(ComponentError::LocalHost(canonical));
        }
        let mut map = self.write();
        if map.contains_key(&canonical) {
            return Err(ComponentError::Taken(canonical));
        }
        map.insert(canonical.clone(), handler);
        tracing::info!(domain = %canonical, "component attached");
        Ok(canonical)
    }

    /// Stops serving `domain`, if `handler` is what serves it (so that a connection that ended
    /// late cannot detach the one that replaced it). True if it was detached.
    pub fn detach(&self, domain: &str, handler: &Arc<dyn ComponentHandler>) -> bool {
        let Ok(canonical) = canonical_domain(domain) else {
            return false;
        };
        let mut map = self.write();
        if !map.get(&canonical).is_some_and(|h| Arc::ptr_eq(h, handler)) {
            return false;
        }
        map.remove(&canonical);
        tracing::info!(domain = %canonical, "component detached");
        true
    }

    /// The handler serving `domain` (canonical, as routing has it).
    pub fn get(&self, domain: &str) -> Option<Arc<dyn ComponentHandler>> {
        self.read().get(domain).cloned()
    }

    /// Whether `domain` (canonical) is a component domain.
    pub fn serves(&self, domain: &str) -> bool {
        self.read().contains_key(domain)
    }

    /// Hands every stanza for a domain that is neither a virtual host nor a component to
    /// `handler` from now on (the server-to-server service, set once at start). False if one
    /// was set already.
    pub fn set_remote(&self, handler: Arc<dyn ComponentHandler>) -> bool {
        self.remote.set(handler).is_ok()
    }

    /// What takes stanzas for other servers' domains; `None` without federation.
    pub fn remote(&self) -> Option<&Arc<dyn ComponentHandler>> {
        self.remote.get()
    }

    /// The component domains `host`'s disco#items shows (XEP-0030 §4), sorted: those under the
    /// host (`conference.example.org` under `example.org`) and those under no virtual host at
    /// all, which belong to the whole server.
    pub fn items_for(&self, host: &str) -> Vec<String> {
        let under = |domain: &str, host: &str| {
            domain
                .strip_suffix(host)
                .is_some_and(|rest| rest.ends_with('.'))
        };
        let mut items: Vec<String> = self
            .read()
            .keys()
            .filter(|d| under(d, host) || !self.hosts.iter().any(|h| under(d, h)))
            .cloned()
            .collect();
        items.sort();
        items
    }
}

/// `domain` in canonical form (RFC 7622 §3.2, through the `jid` crate), if it is a domain alone.
fn canonical_domain(domain: &str) -> Result<String, ComponentError> {
    let invalid = || ComponentError::InvalidDomain(domain.to_owned());
    let jid = Jid::new(domain).map_err(|_| invalid())?;
    if jid.node().is_some() || jid.resource().is_some() {
        return Err(invalid());
    }
    Ok(jid.domain().as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    #[async_trait]
    impl ComponentHandler for Nothing {
        async fn on_stanza(&self, _ctx: &Context, _stanza: Element) {}
    }

    #[test]
    fn attach_detach_and_disco_items() {
        let c = Components::new(vec!["example.org".into(), "example.net".into()]);
        let a: Arc<dyn ComponentHandler> = Arc::new(Nothing);
        let b: Arc<dyn ComponentHandler> = Arc::new(Nothing);
        assert_eq!(
            c.attach("MUC.Example.org", a.clone()),
            Ok("muc.example.org".into())
        );
        assert_eq!(
            c.attach("muc.example.org", b.clone()),
            Err(ComponentError::Taken("muc.example.org".into()))
        );
        assert_eq!(
            c.attach("example.net", b.clone()),
            Err(ComponentError::LocalHost("example.net".into()))
        );
        assert_eq!(
            c.attach("room@muc.example.org", b.clone()),
            Err(ComponentError::InvalidDomain("room@muc.example.org".into()))
        );
        assert_eq!(
            c.attach("gateway.example.com", b.clone()),
            Ok("gateway.example.com".into())
        );
        assert_eq!(
            c.items_for("example.org"),
            ["gateway.example.com", "muc.example.org"]
        );
        assert_eq!(c.items_for("example.net"), ["gateway.example.com"]);
        // Only the handler that serves it detaches it.
        assert!(!c.detach("muc.example.org", &b));
        assert!(c.serves("muc.example.org"));
        assert!(c.detach("muc.example.org", &a));
        assert!(c.get("muc.example.org").is_none());
        assert_eq!(
            ComponentDomain::Subdomain("upload").resolve(&["a.example".into(), "b.example".into()]),
            ["upload.a.example", "upload.b.example"]
        );
    }
}
