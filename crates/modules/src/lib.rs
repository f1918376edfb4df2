//! Starling's feature modules, one folder per RFC section or XEP. Each declares what it handles in
//! `register`; none knows about sessions, sockets or another module's internals.

pub mod adhoc;
pub mod admin;
pub mod anonymous;
pub mod avatars;
pub mod blocking;
pub mod bookmarks;
pub mod caps;
pub mod carbons;
/// XEP-0082 timestamps (moved to `starling_proto` so that c2s formats FAST token expiries too).
pub use starling_proto::clock;
pub mod disco;
pub mod external_services;
pub mod invites;
pub mod mam;
pub mod offline;
pub mod ping;
pub mod presence;
pub mod private;
pub mod pubsub;
pub mod push;
pub mod roster;
pub mod subscription;
pub mod time;
pub mod vcard;
pub mod version;

use std::sync::Arc;

use starling_module_api::Module;

/// Settings of the default modules, from the server configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleOptions {
    /// Offline messages kept per account (XEP-0160); 0 turns offline storage off.
    pub offline_max_messages: usize,
    /// Roster and stored-request limits per account (RFC 6121 §2, §3.1.3).
    pub roster: roster::RosterLimits,
    /// Message archives (XEP-0313); `None` turns archiving off.
    pub archive: Option<mam::MamOptions>,
    /// Push notifications (XEP-0357); `None` turns them off.
    pub push: Option<push::PushOptions>,
    /// Ad-hoc commands (XEP-0050) and who administers the server (XEP-0133).
    pub adhoc: adhoc::AdhocOptions,
    /// PBKDF2 iterations for passwords the server sets (XEP-0133 add-user, change-user-password).
    pub scram_iterations: u32,
    /// What the XEP-0401 invitation commands may make.
    pub invites: invites::InviteOptions,
    /// The anonymous hosts (RFC 4505 logins): their users' outbound federation is refused
    /// unless the host allows it.
    pub anonymous_hosts: Vec<anonymous::AnonymousHost>,
    /// Personal eventing (XEP-0163) with these limits; `None` turns it off.
    pub pep: Option<pubsub::Limits>,
    /// The pubsub service at `pubsub.<host>` (XEP-0060) with these limits; `None` turns it off.
    pub pubsub: Option<pubsub::Limits>,
}

impl Default for ModuleOptions {
    fn default() -> Self {
        ModuleOptions {
            offline_max_messages: 1000,
            roster: roster::RosterLimits::default(),
            archive: Some(mam::MamOptions::default()),
            push: Some(push::PushOptions::default()),
            adhoc: adhoc::AdhocOptions::default(),
            // RFC 7677 §4: at least 4096 (the configuration's default).
            scram_iterations: 4096,
            invites: invites::InviteOptions::default(),
            anonymous_hosts: Vec::new(),
            pep: Some(pubsub::Limits::default()),
            pubsub: Some(pubsub::Limits::service_default()),
        }
    }
}

/// The modules a server runs by default.
pub fn default_modules(options: &ModuleOptions) -> Vec<Arc<dyn Module>> {
    // The presence module changes rosters through the roster module's service (interested
    // resources, the per-account change lock, pushes); the roster module hears nothing from it
    // and tells it of removals only through Event::RosterChanged. The roster module is registered
    // first, so it forgets an ended session before the presence module broadcasts its end.
    let rosters = Arc::new(roster::RosterService::new(options.roster));
    // What sessions fetched from their archive before their initial presence: the offline
    // module does not deliver it again (XEP-0313 §7.1.1).
    let seen = Arc::new(mam::seen::Seen::new());
    let mut modules: Vec<Arc<dyn Module>> = vec![
        Arc::new(disco::Disco),
        Arc::new(ping::Ping),
        Arc::new(roster::Roster::new(rosters.clone())),
        Arc::new(presence::Presence::new(rosters.clone())),
        Arc::new(invites::Invites::new(
            rosters,
            options.invites,
            options
                .anonymous_hosts
                .iter()
                .map(|h| h.domain.clone())
                .collect(),
        )),
        Arc::new(offline::Offline::new(
            options.offline_max_messages,
            seen.clone(),
        )),
        Arc::new(carbons::Carbons::new()),
        Arc::new(blocking::Blocking::new()),
        Arc::new(vcard::Vcard),
        Arc::new(private::Private),
        Arc::new(version::Version),
        Arc::new(time::Time),
        Arc::new(adhoc::Adhoc::new(options.adhoc.clone())),
        Arc::new(
            adhoc::admin::AdminCommands::new(options.scram_iterations).with_anonymous_hosts(
                options
                    .anonymous_hosts
                    .iter()
                    .map(|h| h.domain.clone())
                    .collect(),
            ),
        ),
    ];
    if let Some(archive) = options.archive {
        modules.push(Arc::new(mam::Mam::new(archive, seen)));
    }
    if let Some(push) = options.push {
        modules.push(Arc::new(push::Push::new(push)));
    }
    if let Some(limits) = options.pep {
        // PEP learns whom to notify from the caps every resource advertises (XEP-0115),
        // resolved once per hash.
        let caps = caps::CapsCache::new();
        modules.push(Arc::new(caps::Caps::new(caps.clone())));
        let pep = pubsub::pep::Pep::new(limits, caps);
        modules.push(pep.clone());
        // What rides on PEP: XEP-0398 avatar conversion, XEP-0402 bookmarks compatibility.
        modules.push(avatars::Avatars::new(pep.clone()));
        modules.push(bookmarks::BookmarksSync::new(pep));
    }
    if let Some(limits) = options.pubsub {
        // Guests of anonymous hosts may subscribe, not create nodes: their accounts vanish.
        modules.push(pubsub::service::PubsubService::new(
            limits,
            options
                .anonymous_hosts
                .iter()
                .map(|h| h.domain.clone())
                .collect(),
        ));
    }
    if let Some(anonymous) = anonymous::Anonymous::new(&options.anonymous_hosts) {
        modules.push(Arc::new(anonymous));
    }
    modules
}
