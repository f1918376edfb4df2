//! Declarative module registration.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use starling_proto::{BareJid, Element, FullJid, Jid, StanzaError, StanzaKind, ns};

use crate::commands::AdhocCommand;
use crate::{ComponentDomain, ComponentHandler, Context, EventListener, SessionEntry};

/// A feature module.
pub trait Module: Send + Sync + 'static {
    /// Short name, used in logs and configuration.
    fn name(&self) -> &'static str;
    /// Declares everything the module handles.
    fn register(self: Arc<Self>, reg: &mut Registrar);
}

/// Whom an IQ is addressed to, from the server's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IqTarget {
    /// The server itself: `to` is a local domain.
    Server,
    /// An account, answered by the server on its behalf: `to` is a local bare JID, or absent
    /// (RFC 6120 §10.3.3: no `to` means the sender's own account).
    Account,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IqType {
    Get,
    Set,
}

impl IqType {
    pub fn from_attr(s: &str) -> Option<IqType> {
        match s {
            "get" => Some(IqType::Get),
            "set" => Some(IqType::Set),
            _ => None,
        }
    }
}

/// What an IQ handler answers.
#[derive(Debug)]
pub enum IqOutcome {
    /// `type='result'` with this payload (or empty).
    Result(Option<Element>),
    Error(StanzaError),
}

/// An IQ request as handlers see it.
pub struct IqRoute<'a> {
    /// The whole `<iq/>`, `from` stamped.
    pub iq: &'a Element,
    /// The single payload child.
    pub payload: &'a Element,
    /// The sender (a local session's full JID, or a remote entity).
    pub from: &'a Jid,
    /// For [`IqTarget::Account`]: the account addressed (the sender's own when `to` was absent).
    pub account: Option<&'a BareJid>,
}

#[async_trait]
pub trait IqHandler: Send + Sync {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome;
}

/// Where in routing a stanza hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    /// Sent by a local client (stamped), before any routing decision.
    FromClient,
    /// Addressed to the bare JID of a local account (RFC 6121 §8.5.2), or to a full JID with no
    /// such resource where the RFC treats it as bare (§8.5.3.2.1).
    ToBare,
    /// Addressed to the full JID of a local session that exists.
    ToFull,
    /// A message for a local account that exists but has no resource to receive it
    /// (RFC 6121 §8.5.2.2.1): offline storage's point. Unhandled, it bounces with
    /// `<service-unavailable/>`.
    Offline,
    /// Leaving for an address that is no local domain: a component's (XEP-0114 or internal),
    /// and later another server's. Every stanza passes here, a client's and one a module sends
    /// (presence broadcasts, probes), before it is handed over; unhandled, it goes on.
    ToRemote,
}

/// What a hook did with a stanza.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookResult {
    /// Not for this hook: the next one (then the router's default) sees it.
    Pass,
    /// Handled: nothing else sees it.
    Handled,
}

/// A stanza hook. Hooks at one point run by descending priority; the first `Handled` stops the rest
/// and the router's default rules.
///
/// A hook may change the stanza it is given (an archive adds `<stanza-id/>` before delivery, as
/// ejabberd's `run_fold` hooks do): the next hook, and whatever the router does when all pass,
/// sees the changed stanza. It is changed in place, so a hook that only reads costs nothing more.
#[async_trait]
pub trait StanzaHook: Send + Sync {
    async fn on_stanza(&self, ctx: &Context, point: HookPoint, stanza: &mut Element) -> HookResult;
}

/// One stanza hook registration.
pub struct HookRegistration {
    pub kind: StanzaKind,
    pub point: HookPoint,
    pub priority: i32,
    pub hook: Arc<dyn StanzaHook>,
}

/// A hook on the one outbound path: it sees every stanza of its kind just before it is queued to
/// a local session, whoever sent it (a routed message, a presence broadcast, a roster push, an
/// offline message, an error the server generated), with the full JID of the session that gets
/// it: a message to a bare JID is seen once per resource it goes to. It may change the stanza
/// for that session (its `to` stays as routed: a bare JID stays bare) or drop it by returning
/// [`HookResult::Handled`]; a dropped stanza counts as delivered (it is neither bounced nor
/// stored offline), which is what blocking (XEP-0191 §5.3: the server "MUST NOT deliver any XML
/// stanzas from the contact to the user") and client state indication (XEP-0352: held back,
/// not refused) need.
///
/// Its own trait rather than a [`HookPoint`] of [`StanzaHook`] because it needs the recipient,
/// which a stanza's `to` does not say.
#[async_trait]
pub trait OutboundHook: Send + Sync {
    async fn on_outbound(&self, ctx: &Context, to: &FullJid, stanza: &mut Element) -> HookResult;
}

/// One outbound hook registration.
pub struct OutboundRegistration {
    pub kind: StanzaKind,
    pub priority: i32,
    pub hook: Arc<dyn OutboundHook>,
}

/// Told which local sessions a message was delivered to: after the router queued a message to
/// the session of a full JID (RFC 6121 §8.5.3.1), or to the chosen resources of a bare JID
/// (§8.5.2.1.1), or a message error it generated itself to its sender's session (RFC 6120
/// §8.3), with the full JIDs that took it. Message carbons (XEP-0280) copy it to the
/// account's other resources from here. `message` is the stanza as routed, after the ToFull or
/// ToBare hooks and before any outbound hook changed a session's copy. Not called for stanzas
/// modules deliver themselves (presence, roster pushes, offline messages) nor for deliveries an
/// outbound hook dropped.
///
/// The router copies the message for the hooks, and for a message to a bare JID leaves its fast
/// path (one queueing per resource, no copy for the last one), only when a hook
/// [`wants`](DeliveredHook::wants) the recipient; a hook that has nothing to do for most
/// accounts says so there and costs them nothing.
#[async_trait]
pub trait DeliveredHook: Send + Sync {
    /// Whether this hook wants to hear of a message delivered to `to` (a full JID of the
    /// recipient account; for a bare-JID delivery, the first chosen resource). Asked before the
    /// router copies anything: it must be cheap and never wait. By default, always.
    fn wants(&self, _to: &FullJid) -> bool {
        true
    }

    async fn delivered(&self, ctx: &Context, message: &Element, to: &[FullJid]);
}

/// A session feature a client can switch on as it binds with XEP-0386 Bind2 (inside its SASL2
/// `<authenticate/>`), instead of with a request of its own after binding: XEP-0280 carbons'
/// `<enable xmlns='urn:xmpp:carbons:2'/>`, for instance. Registered per namespace with
/// [`Registrar::bind_inline`]; c2s lists the namespaces in Bind2's `<inline/>` stream feature
/// (`<feature var='…'/>`) and, for each child of the client's `<bind/>` in one of them, calls
/// the handler after the resource is bound and before the SASL2 `<success/>` goes out.
#[async_trait]
pub trait BindInline: Send + Sync {
    /// Switches the feature on for `session` (bound a moment ago, in the registry) as `request`
    /// (the child of `<bind/>` in the registered namespace) asks. Returns what goes into
    /// Bind2's `<bound/>` for it, if the feature defines an answer.
    async fn bind_inline(
        &self,
        ctx: &Context,
        session: &SessionEntry,
        request: &Element,
    ) -> Option<Element>;
}

/// Answers service discovery (XEP-0030) for nodes at the server's domain and at accounts: the
/// disco module asks each registered handler, in registration order, about a `node` it does not
/// know itself; the first that answers wins, and a node nobody answers for is
/// `<item-not-found/>` (XEP-0030 §3.2). The ad-hoc module answers for
/// `http://jabber.org/protocol/commands` and the command nodes at the server's domain; PEP for
/// the nodes of an account (XEP-0060 §5.3) and an account's disco#items (§5.2).
#[async_trait]
pub trait DiscoNodes: Send + Sync {
    /// disco#info (`info`) or disco#items of `node` for the request `req` (addressed to a local
    /// domain, or to an account when `req.account` is set); `None` if `node` is not this
    /// handler's.
    async fn disco_node(
        &self,
        ctx: &Context,
        req: &IqRoute<'_>,
        node: &str,
        info: bool,
    ) -> Option<IqOutcome>;

    /// The `<item/>`s this handler adds to the disco#items of the account `req.account` (no
    /// node asked), for the requester `req.from`. None by default.
    async fn account_items(&self, _ctx: &Context, _req: &IqRoute<'_>) -> Vec<Element> {
        Vec::new()
    }
}

/// The ad-hoc commands every module registered, in registration order.
#[derive(Clone, Default)]
pub struct Commands(Vec<Arc<dyn AdhocCommand>>);

impl Commands {
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn AdhocCommand>> {
        self.0.iter()
    }

    /// The command of `node`.
    pub fn get(&self, node: &str) -> Option<&Arc<dyn AdhocCommand>> {
        self.0.iter().find(|c| c.node() == node)
    }

    /// A node registered twice, if any (the router refuses to start then).
    pub fn duplicate(&self) -> Option<&str> {
        self.0.iter().enumerate().find_map(|(i, c)| {
            self.0[..i]
                .iter()
                .any(|p| p.node() == c.node())
                .then(|| c.node())
        })
    }
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|c| c.node()))
            .finish()
    }
}

/// The disco node handlers, in registration order.
#[derive(Clone, Default)]
pub struct DiscoNodeHandlers(Vec<Arc<dyn DiscoNodes>>);

impl DiscoNodeHandlers {
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn DiscoNodes>> {
        self.0.iter()
    }
}

impl std::fmt::Debug for DiscoNodeHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} disco node handler(s)", self.0.len())
    }
}

/// One IQ handler registration: target, type, payload namespace and element name, handler.
pub type IqRegistration = (
    IqTarget,
    IqType,
    &'static str,
    &'static str,
    Arc<dyn IqHandler>,
);

/// A disco identity (XEP-0030 §3.1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    pub category: &'static str,
    pub kind: &'static str,
    pub name: Option<&'static str>,
}

/// Collects registrations.
#[derive(Default)]
pub struct Registrar {
    pub(crate) iq: Vec<IqRegistration>,
    pub(crate) listeners: Vec<Arc<dyn EventListener>>,
    pub(crate) hooks: Vec<HookRegistration>,
    pub(crate) outbound: Vec<OutboundRegistration>,
    pub(crate) delivered: Vec<Arc<dyn DeliveredHook>>,
    pub(crate) components: Vec<(ComponentDomain, Arc<dyn ComponentHandler>)>,
    pub(crate) server_features: BTreeSet<&'static str>,
    pub(crate) account_features: BTreeSet<&'static str>,
    pub(crate) server_identities: BTreeSet<Identity>,
    pub(crate) account_identities: BTreeSet<Identity>,
    pub(crate) stream_features: Vec<Element>,
    pub(crate) bind_inline: Vec<(&'static str, Arc<dyn BindInline>)>,
    pub(crate) commands: Vec<Arc<dyn AdhocCommand>>,
    pub(crate) disco_nodes: Vec<Arc<dyn DiscoNodes>>,
}

impl Registrar {
    pub fn new() -> Self {
        Registrar::default()
    }

    /// Handles IQs of `iq_type` to `target` whose payload is `<name xmlns=ns/>`.
    pub fn iq(
        &mut self,
        target: IqTarget,
        iq_type: IqType,
        ns: &'static str,
        name: &'static str,
        handler: Arc<dyn IqHandler>,
    ) {
        self.iq.push((target, iq_type, ns, name, handler));
    }

    /// Sees `kind` stanzas at `point`, before the router's default rules; higher priority first.
    pub fn stanza_hook(
        &mut self,
        kind: StanzaKind,
        point: HookPoint,
        priority: i32,
        hook: Arc<dyn StanzaHook>,
    ) {
        self.hooks.push(HookRegistration {
            kind,
            point,
            priority,
            hook,
        });
    }

    /// Takes the stanza hooks.
    pub fn take_hooks(&mut self) -> Vec<HookRegistration> {
        std::mem::take(&mut self.hooks)
    }

    /// Sees `kind` stanzas on the outbound path, just before they are queued to a local session
    /// (see [`OutboundHook`]); higher priority first.
    pub fn outbound_hook(&mut self, kind: StanzaKind, priority: i32, hook: Arc<dyn OutboundHook>) {
        self.outbound.push(OutboundRegistration {
            kind,
            priority,
            hook,
        });
    }

    /// Takes the outbound hooks.
    pub fn take_outbound_hooks(&mut self) -> Vec<OutboundRegistration> {
        std::mem::take(&mut self.outbound)
    }

    /// Is told which sessions the router delivered a message to (see [`DeliveredHook`]), after
    /// the hooks registered before it.
    pub fn delivered_hook(&mut self, hook: Arc<dyn DeliveredHook>) {
        self.delivered.push(hook);
    }

    /// Serves a component domain (see [`crate::components`]): every stanza addressed to it or to
    /// a JID at it goes to `handler`. The router refuses to start when the domain is a virtual
    /// host or registered twice.
    pub fn component(&mut self, domain: ComponentDomain, handler: Arc<dyn ComponentHandler>) {
        self.components.push((domain, handler));
    }

    /// Takes the component registrations.
    pub fn take_components(&mut self) -> Vec<(ComponentDomain, Arc<dyn ComponentHandler>)> {
        std::mem::take(&mut self.components)
    }

    /// Takes the delivered hooks, in registration order.
    pub fn take_delivered_hooks(&mut self) -> Vec<Arc<dyn DeliveredHook>> {
        std::mem::take(&mut self.delivered)
    }

    /// Hears every [`Event`](crate::Event) (see [`crate::events`]), after the listeners
    /// registered before it.
    pub fn events(&mut self, listener: Arc<dyn EventListener>) {
        self.listeners.push(listener);
    }

    /// Adds a feature to the server's disco#info.
    pub fn server_feature(&mut self, var: &'static str) {
        self.server_features.insert(var);
    }

    /// Adds a feature to every account's disco#info.
    pub fn account_feature(&mut self, var: &'static str) {
        self.account_features.insert(var);
    }

    /// Adds an identity to the server's disco#info.
    pub fn server_identity(&mut self, identity: Identity) {
        self.server_identities.insert(identity);
    }

    /// Adds an identity to every account's disco#info, after `account/registered` (PEP's
    /// `pubsub/pep`, XEP-0163 §6.1).
    pub fn account_identity(&mut self, identity: Identity) {
        self.account_identities.insert(identity);
    }

    /// Lets clients switch a session feature on inline as they bind with XEP-0386 Bind2: a
    /// child of `<bind/>` in namespace `ns` goes to `handler` (see [`BindInline`]).
    pub fn bind_inline(&mut self, ns: &'static str, handler: Arc<dyn BindInline>) {
        self.bind_inline.push((ns, handler));
    }

    /// Takes the Bind2 inline feature handlers, in registration order.
    pub fn take_bind_inline(&mut self) -> Vec<(&'static str, Arc<dyn BindInline>)> {
        std::mem::take(&mut self.bind_inline)
    }

    /// Offers a stream feature to clients after authentication.
    pub fn stream_feature(&mut self, feature: Element) {
        self.stream_features.push(feature);
    }

    /// Adds an ad-hoc command (XEP-0050) at the server's domain, run through the ad-hoc module
    /// (see [`crate::commands`]). Nodes must be unique: the router refuses to start otherwise.
    pub fn command(&mut self, command: Arc<dyn AdhocCommand>) {
        self.commands.push(command);
    }

    /// Answers disco#info and disco#items for some nodes at the server's domain (see
    /// [`DiscoNodes`]), after the handlers registered before it.
    pub fn disco_nodes(&mut self, handler: Arc<dyn DiscoNodes>) {
        self.disco_nodes.push(handler);
    }

    /// Takes the registered IQ handlers.
    pub fn take_iq_handlers(&mut self) -> Vec<IqRegistration> {
        std::mem::take(&mut self.iq)
    }

    /// Takes the event listeners, in registration order.
    pub fn take_event_listeners(&mut self) -> Vec<Arc<dyn EventListener>> {
        std::mem::take(&mut self.listeners)
    }

    /// What service discovery and stream features show, for `domains`.
    pub fn server_info(&self, domains: Vec<String>) -> ServerInfo {
        let mut info = ServerInfo {
            domains,
            server_features: self.server_features.iter().copied().collect(),
            account_features: self.account_features.iter().copied().collect(),
            server_identities: self.server_identities.iter().cloned().collect(),
            account_identities: self.account_identities.iter().cloned().collect(),
            stream_features: self.stream_features.clone(),
            bind_inline_features: self.bind_inline.iter().map(|(ns, _)| *ns).collect(),
            caps_ver: String::new(),
            commands: Commands(self.commands.clone()),
            disco_nodes: DiscoNodeHandlers(self.disco_nodes.clone()),
        };
        info.caps_ver = info.compute_caps_ver();
        // XEP-0115 §6.3: the server's own capabilities in its stream features.
        info.stream_features.push(
            Element::new("c", ns::CAPS)
                .with_attr("hash", "sha-1")
                .with_attr("node", CAPS_NODE)
                .with_attr("ver", info.caps_ver.as_str()),
        );
        info
    }
}

/// The XEP-0115 node naming this software.
pub const CAPS_NODE: &str = "https://starling.chat/caps";

/// Everything modules declared, frozen at start.
#[derive(Clone, Debug, Default)]
pub struct ServerInfo {
    /// The virtual hosts, first is the default.
    pub domains: Vec<String>,
    /// Sorted, unique.
    pub server_features: Vec<&'static str>,
    pub account_features: Vec<&'static str>,
    pub server_identities: Vec<Identity>,
    /// Identities of every account beside `account/registered`, sorted.
    pub account_identities: Vec<Identity>,
    pub stream_features: Vec<Element>,
    /// The namespaces of the session features modules enable inline with XEP-0386 Bind2
    /// ([`BindInline`]), in registration order.
    pub bind_inline_features: Vec<&'static str>,
    /// XEP-0115 verification string of the server's disco#info (SHA-1, base64).
    pub caps_ver: String,
    /// The ad-hoc commands (XEP-0050) modules registered.
    pub commands: Commands,
    /// Who answers disco queries for nodes at the server's domain.
    pub disco_nodes: DiscoNodeHandlers,
}

impl ServerInfo {
    /// XEP-0115 §5.1: identities `category/type/lang/name<` sorted, then features `var<` sorted
    /// (i;octet), hashed with SHA-1 and base64-encoded.
    fn compute_caps_ver(&self) -> String {
        use base64::Engine as _;
        use sha1::Digest as _;
        let mut identities: Vec<String> = self
            .server_identities
            .iter()
            .map(|i| format!("{}/{}//{}<", i.category, i.kind, i.name.unwrap_or("")))
            .collect();
        identities.sort();
        let mut features: Vec<&str> = self.server_features.clone();
        features.sort_unstable();
        let mut s = identities.concat();
        for f in features {
            s.push_str(f);
            s.push('<');
        }
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_ver_matches_xep_0115_example() {
        // XEP-0115 §5.2, the simple example.
        let info = ServerInfo {
            server_identities: vec![Identity {
                category: "client",
                kind: "pc",
                name: Some("Exodus 0.9.1"),
            }],
            server_features: vec![
                "http://jabber.org/protocol/muc",
                "http://jabber.org/protocol/caps",
                "http://jabber.org/protocol/disco#items",
                "http://jabber.org/protocol/disco#info",
            ],
            ..ServerInfo::default()
        };
        assert_eq!(info.compute_caps_ver(), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }

    #[test]
    fn caps_are_a_stream_feature() {
        let mut reg = Registrar::new();
        reg.server_feature("urn:xmpp:ping");
        let info = reg.server_info(vec!["example.org".into()]);
        let c = info.stream_features.last().unwrap();
        assert_eq!(c.ns(), ns::CAPS);
        assert_eq!(c.attr("ver"), Some(info.caps_ver.as_str()));
        assert_eq!(c.attr("node"), Some(CAPS_NODE));
        assert_eq!(c.attr("hash"), Some("sha-1"));
    }
}
