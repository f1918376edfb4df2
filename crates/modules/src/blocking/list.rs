//! One account's blocklist in memory, and XEP-0191 §4's JID matching.

use std::collections::HashSet;

/// One account's blocked JIDs, as stored (normalised, in the order they were blocked), indexed
/// for matching.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockList {
    items: Vec<String>,
    /// Entries that name a user, a user's resource or a domain's resource.
    exact: HashSet<String>,
    /// Entries that are a domain alone: the domain and everything at it or below it.
    domains: HashSet<String>,
}

/// A JID written canonically, cut into its parts without allocating: `node@domain/resource`.
/// The node and the domain never contain `/` (RFC 7622 §3.2, §3.3), and the domain never `@`,
/// so the first `/` ends the bare JID and the last `@` before it ends the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JidParts<'a> {
    pub bare: &'a str,
    pub node: Option<&'a str>,
    pub domain: &'a str,
    pub resource: Option<&'a str>,
}

impl<'a> JidParts<'a> {
    pub fn of(jid: &'a str) -> JidParts<'a> {
        let (bare, resource) = match jid.split_once('/') {
            Some((b, r)) => (b, Some(r)),
            None => (jid, None),
        };
        let (node, domain) = match bare.rsplit_once('@') {
            Some((n, d)) => (Some(n), d),
            None => (None, bare),
        };
        JidParts {
            bare,
            node,
            domain,
            resource,
        }
    }
}

impl BlockList {
    pub fn new(items: Vec<String>) -> BlockList {
        let mut list = BlockList::default();
        for item in items {
            list.add(item);
        }
        list
    }

    /// The blocked JIDs in the order they were blocked.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn contains(&self, item: &str) -> bool {
        self.exact.contains(item) || self.domains.contains(item)
    }

    /// Adds an entry (at the end); nothing if it is there.
    pub fn add(&mut self, item: String) {
        if self.contains(&item) {
            return;
        }
        let parts = JidParts::of(&item);
        if parts.node.is_none() && parts.resource.is_none() {
            self.domains.insert(item.clone());
        } else {
            self.exact.insert(item.clone());
        }
        self.items.push(item);
    }

    pub fn remove(&mut self, item: &str) {
        if self.exact.remove(item) || self.domains.remove(item) {
            self.items.retain(|i| i != item);
        }
    }

    /// Whether the canonical JID `jid` is blocked (XEP-0191 §4, in its order): the full JID
    /// itself; its bare JID (any resource); `domain/resource` (that resource of a JID without a
    /// node); its domain, or a domain it is a subdomain of.
    pub fn blocks(&self, jid: &str) -> bool {
        if self.items.is_empty() {
            return false;
        }
        if self.exact.contains(jid) {
            return true;
        }
        let parts = JidParts::of(jid);
        if parts.node.is_some() && parts.resource.is_some() && self.exact.contains(parts.bare) {
            return true;
        }
        if self.domains.is_empty() {
            return false;
        }
        let mut domain = parts.domain;
        loop {
            if self.domains.contains(domain) {
                return true;
            }
            match domain.split_once('.') {
                Some((_, parent)) if !parent.is_empty() => domain = parent,
                _ => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> BlockList {
        BlockList::new(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn parts() {
        assert_eq!(
            JidParts::of("a@b.c/r/s@t"),
            JidParts {
                bare: "a@b.c",
                node: Some("a"),
                domain: "b.c",
                resource: Some("r/s@t"),
            }
        );
        assert_eq!(
            JidParts::of("b.c"),
            JidParts {
                bare: "b.c",
                node: None,
                domain: "b.c",
                resource: None,
            }
        );
    }

    // XEP-0191 §4, rule 1: user@domain/resource matches only that resource.
    #[test]
    fn full_jid_matches_that_resource_only() {
        let l = list(&["romeo@montague.net/orchard"]);
        assert!(l.blocks("romeo@montague.net/orchard"));
        assert!(!l.blocks("romeo@montague.net/garden"));
        assert!(!l.blocks("romeo@montague.net"));
        assert!(!l.blocks("montague.net"));
    }

    // §4, rule 2: user@domain matches any resource.
    #[test]
    fn bare_jid_matches_every_resource() {
        let l = list(&["romeo@montague.net"]);
        assert!(l.blocks("romeo@montague.net"));
        assert!(l.blocks("romeo@montague.net/orchard"));
        assert!(!l.blocks("juliet@montague.net/orchard"));
        assert!(!l.blocks("montague.net"));
        assert!(!l.blocks("romeo@sub.montague.net"));
    }

    // §4, rule 3: domain/resource matches only that resource (of the domain itself).
    #[test]
    fn domain_resource_matches_that_resource_only() {
        let l = list(&["montague.net/bot"]);
        assert!(l.blocks("montague.net/bot"));
        assert!(!l.blocks("montague.net"));
        assert!(!l.blocks("romeo@montague.net/bot"));
    }

    // §4, rule 4: domain matches the domain, any user@domain, domain/resource and subdomains.
    #[test]
    fn domain_matches_everything_at_and_below_it() {
        let l = list(&["montague.net"]);
        for jid in [
            "montague.net",
            "montague.net/x",
            "romeo@montague.net",
            "romeo@montague.net/orchard",
            "chat.montague.net",
            "room@chat.montague.net/nick",
        ] {
            assert!(l.blocks(jid), "{jid}");
        }
        for jid in ["capulet.net", "xmontague.net", "romeo@montague.net.evil"] {
            assert!(!l.blocks(jid), "{jid}");
        }
    }

    #[test]
    fn order_add_remove() {
        let mut l = list(&["b@x", "a.example", "b@x"]);
        assert_eq!(l.items(), ["b@x", "a.example"]);
        l.add("c@y/z".into());
        l.remove("b@x");
        assert_eq!(l.items(), ["a.example", "c@y/z"]);
        assert!(!l.blocks("b@x"));
        l.remove("a.example");
        assert!(!l.blocks("q@a.example"));
        assert!(l.blocks("c@y/z"));
        assert_eq!(l.len(), 1);
    }
}
