//! XEP-0030 Service Discovery for the server and for accounts. Everything shown comes from what
//! modules registered (`Registrar::server_feature`, `server_identity`, `account_feature`,
//! `component`) or components attached at run time, never from a list kept here.

use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::{
    CAPS_NODE, Context, Identity, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Module,
    Registrar,
};
use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition, ns};

pub struct Disco;

impl Module for Disco {
    fn name(&self) -> &'static str {
        "disco"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        for target in [IqTarget::Server, IqTarget::Account] {
            reg.iq(target, IqType::Get, ns::DISCO_INFO, "query", self.clone());
            reg.iq(target, IqType::Get, ns::DISCO_ITEMS, "query", self.clone());
        }
        reg.server_identity(Identity {
            category: "server",
            kind: "im",
            name: Some("Starling"),
        });
        reg.server_feature(ns::DISCO_INFO);
        reg.server_feature(ns::DISCO_ITEMS);
        // XEP-0115 §6.3: the server advertises its own capabilities.
        reg.server_feature(ns::CAPS);
        reg.account_feature(ns::DISCO_INFO);
        reg.account_feature(ns::DISCO_ITEMS);
    }
}

fn identity_element(i: &Identity) -> Element {
    Element::new("identity", ns::DISCO_INFO)
        .with_attr("category", i.category)
        .with_attr("type", i.kind)
        .with_opt_attr("name", i.name)
}

fn feature_element(var: &str) -> Element {
    Element::new("feature", ns::DISCO_INFO).with_attr("var", var)
}

#[async_trait]
impl IqHandler for Disco {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        let info = &ctx.server;
        let is_info = req.payload.ns() == ns::DISCO_INFO;
        let node = req.payload.attr("node");
        if let Some(node) = node {
            // XEP-0115 §6.2: the server's caps node answers like the server itself.
            let caps_node = format!("{CAPS_NODE}#{}", info.caps_ver);
            if !(is_info && req.account.is_none() && node == caps_node) {
                // Other nodes, at the server or at an account, are answered by the modules that
                // registered for them (the ad-hoc commands, PEP); one nobody knows is
                // <item-not-found/> (XEP-0030 §3.2).
                for handler in info.disco_nodes.iter() {
                    if let Some(outcome) = handler.disco_node(ctx, &req, node, is_info).await {
                        return outcome;
                    }
                }
                return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::ItemNotFound));
            }
        }
        let mut query = Element::new("query", req.payload.ns()).with_opt_attr("node", node);
        match (req.account, is_info) {
            (None, true) => {
                for i in &info.server_identities {
                    query.append_child(identity_element(i));
                }
                for f in &info.server_features {
                    query.append_child(feature_element(f));
                }
            }
            (Some(_), true) => {
                // XEP-0030 §3.1: an account is "account/registered".
                query.append_child(identity_element(&Identity {
                    category: "account",
                    kind: "registered",
                    name: None,
                }));
                for i in &info.account_identities {
                    query.append_child(identity_element(i));
                }
                for f in &info.account_features {
                    query.append_child(feature_element(f));
                }
            }
            // XEP-0030 §4: the server's items are its services, the component domains under the
            // host asked (and those under no host). An account's are what modules list (PEP's
            // nodes, XEP-0060 §5.2).
            (None, false) => {
                let host = req
                    .iq
                    .attr("to")
                    .and_then(|t| Jid::new(t).ok())
                    .map(|j| j.domain().as_str().to_owned())
                    .or_else(|| info.domains.first().cloned())
                    .unwrap_or_default();
                for domain in ctx.components.items_for(&host) {
                    query.append_child(
                        Element::new("item", ns::DISCO_ITEMS).with_attr("jid", domain),
                    );
                }
            }
            (Some(_), false) => {
                for handler in info.disco_nodes.iter() {
                    for item in handler.account_items(ctx, &req).await {
                        query.append_child(item);
                    }
                }
            }
        }
        IqOutcome::Result(Some(query))
    }
}
