//! XEP-0049 private XML storage (`jabber:iq:private`): a user keeps XML elements on the server,
//! each filed under its element name and namespace, readable and writable only by the user.
//!
//! # Procedure (XEP-0049 §2.3)
//!
//! - get or set addressed to another account: `<forbidden/>` (§2.3 prefers it to
//!   `<service-unavailable/>`; §5: nobody but the user may touch the data);
//! - set: every child element of `<query/>` (a set MAY hold several) replaces what was stored
//!   under its name and namespace, all of them or none; empty result. A set with no child:
//!   `<not-acceptable/>` (§2.3: at least one child MUST be included);
//! - get: one child naming the element wanted; the result holds the stored element, or, when
//!   nothing is stored, the empty element as asked (what Prosody and ejabberd answer). A get with
//!   no child: `<bad-request/>` (§2.3 "Bad Format", which XEP-0086 maps to `bad-request`); with
//!   more than one: `<bad-request/>` (§2.3: a client MUST NOT ask for more than one);
//! - a child that is not in a namespace of its own (none, or `jabber:iq:private` itself):
//!   `<not-acceptable/>` (§2.3: the root of the fragment is scoped by its own namespace);
//! - a child in a reserved namespace, one starting with `jabber:` or `http://jabber.org/`, or
//!   `vcard-temp`: `<not-acceptable/>` (§2.3 allows this, and it keeps rosters and vCards from
//!   having shadow copies here).
//!
//! # Limits
//!
//! An element may be at most [`MAX_ELEMENT_BYTES`] serialised (`<not-acceptable/>` with a text
//! beyond, as for vCards), and an account may keep at most [`MAX_ELEMENTS`] distinct elements
//! (`<policy-violation/>` with a text for a set that would add more), so that one account cannot
//! grow the database without bound. The count is checked before the write, not under a lock: two
//! concurrent sets of one account can together pass the limit by the size of one of them.
//!
//! What is stored is each element re-serialised as the client sent it (its namespace declared
//! on it), and a get returns exactly that element.

use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::parse_stored;
use starling_module_api::{
    Context, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Module, Registrar,
};
use starling_proto::{Element, StanzaError, StanzaErrorCondition};
use starling_storage::PrivateElement;

/// The `jabber:iq:private` namespace.
pub const NS: &str = "jabber:iq:private";

/// The largest element accepted, in bytes of its serialisation (bookmarks of a few hundred rooms
/// fit).
pub const MAX_ELEMENT_BYTES: usize = 64 * 1024;

/// The most distinct elements (name and namespace) one account may keep.
pub const MAX_ELEMENTS: u64 = 64;

/// The XEP-0049 module. See the module docs.
pub struct Private;

impl Module for Private {
    fn name(&self) -> &'static str {
        "private"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(IqTarget::Account, IqType::Get, NS, "query", self.clone());
        reg.iq(IqTarget::Account, IqType::Set, NS, "query", self);
    }
}

fn error(condition: StanzaErrorCondition, text: &str) -> IqOutcome {
    IqOutcome::Error(StanzaError::new(condition).with_text(text))
}

/// Why a child cannot be stored or asked for (§2.3), or `None`.
fn refused_namespace(child: &Element) -> Option<&'static str> {
    let ns = child.ns();
    if ns.is_empty() || ns == NS {
        return Some("each element must be in a namespace of its own");
    }
    if ns.starts_with("jabber:") || ns.starts_with("http://jabber.org/") || ns == "vcard-temp" {
        return Some("this namespace is reserved");
    }
    None
}

#[async_trait]
impl IqHandler for Private {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        // Registered for IqTarget::Account only: the router always names the account.
        let Some(account) = req.account else {
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::ServiceUnavailable));
        };
        let Some(node) = account.node() else {
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::ServiceUnavailable));
        };
        let (localpart, domain) = (node.as_str(), account.domain().as_str());
        if req.from.to_bare() != *account {
            // §2.3, §5: only the user's own resources.
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::Forbidden));
        }
        let children: Vec<&Element> = req.payload.children().collect();
        for child in &children {
            if let Some(why) = refused_namespace(child) {
                return error(StanzaErrorCondition::NotAcceptable, why);
            }
        }
        if req.iq.attr("type") == Some("set") {
            set(ctx, account, localpart, domain, &children).await
        } else {
            get(ctx, account, localpart, domain, &children).await
        }
    }
}

async fn get(
    ctx: &Context,
    account: &starling_proto::BareJid,
    localpart: &str,
    domain: &str,
    children: &[&Element],
) -> IqOutcome {
    let [asked] = children else {
        // §2.3: no child is "Bad Format"; more than one a client MUST NOT send.
        let text = if children.is_empty() {
            "name the element to get"
        } else {
            "ask for one element at a time"
        };
        return error(StanzaErrorCondition::BadRequest, text);
    };
    let found = ctx
        .stores
        .private
        .get(localpart, domain, asked.name(), asked.ns())
        .await;
    let element = match found {
        Ok(Some(xml)) => match parse_stored(&xml) {
            Ok(el) => el,
            Err(e) => {
                tracing::error!(%account, error = %e, "stored private XML unreadable");
                return IqOutcome::Error(StanzaError::new(
                    StanzaErrorCondition::InternalServerError,
                ));
            }
        },
        // Nothing stored: the element as asked, empty.
        Ok(None) => Element::new(asked.name(), asked.ns()),
        Err(e) => {
            tracing::error!(%account, error = %e, "loading private XML failed");
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::InternalServerError));
        }
    };
    IqOutcome::Result(Some(Element::new("query", NS).with_child(element)))
}

async fn set(
    ctx: &Context,
    account: &starling_proto::BareJid,
    localpart: &str,
    domain: &str,
    children: &[&Element],
) -> IqOutcome {
    if children.is_empty() {
        // §2.3: at least one child MUST be included.
        return error(
            StanzaErrorCondition::NotAcceptable,
            "include the element to store",
        );
    }
    let mut elements: Vec<PrivateElement> = Vec::with_capacity(children.len());
    for child in children {
        let xml = child.to_xml();
        if xml.len() > MAX_ELEMENT_BYTES {
            return error(
                StanzaErrorCondition::NotAcceptable,
                &format!("an element may be at most {MAX_ELEMENT_BYTES} bytes"),
            );
        }
        // The same element twice in one set: the later one wins, as two sets in a row would.
        elements.retain(|e| !(e.name == child.name() && e.namespace == child.ns()));
        elements.push(PrivateElement::new(child.name(), child.ns(), xml));
    }
    let store = &ctx.stores.private;
    let internal = |what: &str, e: &dyn std::fmt::Display| {
        tracing::error!(%account, error = %e, "{what}");
        IqOutcome::Error(StanzaError::new(StanzaErrorCondition::InternalServerError))
    };
    let held = match store.count(localpart, domain).await {
        Ok(n) => n,
        Err(e) => return internal("counting private XML failed", &e),
    };
    let mut added = 0u64;
    for e in &elements {
        match store.get(localpart, domain, &e.name, &e.namespace).await {
            Ok(None) => added += 1,
            Ok(Some(_)) => {}
            Err(e) => return internal("loading private XML failed", &e),
        }
    }
    if held + added > MAX_ELEMENTS {
        return error(
            StanzaErrorCondition::PolicyViolation,
            &format!("an account may keep at most {MAX_ELEMENTS} private elements"),
        );
    }
    match store.set(localpart, domain, &elements).await {
        Ok(()) => {
            ctx.router
                .emit(starling_module_api::Event::PrivateChanged {
                    account: account.clone(),
                    namespaces: elements.into_iter().map(|e| e.namespace).collect(),
                })
                .await;
            IqOutcome::Result(None)
        }
        Err(e) => internal("storing private XML failed", &e),
    }
}
