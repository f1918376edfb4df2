//! Starling's typed configuration: one TOML file, validated completely at start.
//!
//! # Procedure
//!
//! 1. [`Config::load`] reads the file (an unreadable file is one error with an empty key) and hands
//!    the text to [`Config::from_toml_str`].
//! 2. The text is parsed into a span-carrying TOML tree (`toml::de::DeTable`). Syntax errors are all
//!    collected (the parser recovers) and returned without looking further, since a broken tree
//!    would only produce follow-up noise.
//! 3. The tree is walked against [`SCHEMA`], starting from [`Config::default()`]: every key that is
//!    present overrides its default; every unknown key, every type error and every out-of-range
//!    value is recorded with its dotted key path (`c2s.listen[1]`, `host[0].domain`) and the line
//!    it sits on. Walking goes on after an error, so one run reports *all* problems.
//! 4. Cross-field checks run on the result (unique domains, certificate/key pairs, listener
//!    conflicts, size relations).
//! 5. If anything was recorded the errors come back sorted by line as [`ConfigErrors`]; otherwise
//!    the [`Config`].
//!
//! [`Config::check_files`] is separate because it touches the file system: it checks that the
//! configured certificate and key files can be read and look like PEM. Both `check-config` and the
//! server start call it.
//!
//! # Hazards
//!
//! * Unknown keys are errors, not warnings: a misspelt option (`max_stanza_sise`) would otherwise be
//!   silently ignored and the default used, which is how insecure deployments happen.
//! * A missing section means "all defaults", and a missing file content (empty text) is the
//!   zero-configuration [`Config::default()`]: one `localhost` host with a self-signed certificate,
//!   listeners on loopback only.
//! * Relative paths: `storage.path` is resolved against `data_dir` ([`Config::database_path`]);
//!   `data_dir` and certificate/key paths are used as written, i.e. relative to the server's working
//!   directory.
//! * Host domains are stored in their normalised form (nameprep, RFC 7622 §3.2), e.g.
//!   `Example.ORG` becomes `example.org`; duplicates are detected after normalisation.
//! * The listener conflict check covers identical addresses and an unspecified address
//!   (`0.0.0.0`, `[::]`) sharing a port with a specific one of the same family; it cannot know
//!   about other programs holding a port. Port 0 (ephemeral, used by tests) is never a conflict.

mod parse;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The conventional name of the configuration file.
pub const DEFAULT_FILE_NAME: &str = "starling.toml";

/// Every known key, per section: `""` is the top level, `"host"` each `[[host]]` table.
///
/// Keys not listed here are rejected. Sections (`log`, `host`, `c2s`, `auth`, `storage`,
/// `offline`, `roster`) are themselves keys of the top level.
pub const SCHEMA: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "data_dir",
            "admins",
            "log",
            "host",
            "c2s",
            "auth",
            "storage",
            "offline",
            "roster",
            "stream_management",
            "components",
            "archive",
            "push",
            "registration",
            "pep",
            "pubsub",
            "muc",
            "http",
            "web",
            "external_services",
            "upload",
            "acme",
            "s2s",
        ],
    ),
    ("log", &["level"]),
    (
        "host",
        &[
            "domain",
            "certificate",
            "key",
            "anonymous",
            "anonymous_federation",
        ],
    ),
    (
        "c2s",
        &[
            "listen",
            "direct_tls_listen",
            "require_encryption",
            "max_stanza_size",
            "preauth_max_stanza_size",
            "preauth_max_elements",
            "max_elements",
            "max_attributes_per_element",
            "max_attributes",
            "max_namespace_declarations",
            "max_queued_stanzas",
            "max_queued_bytes",
            "max_resources",
            "max_connections_per_ip",
            "max_connections",
            "auth_timeout",
            "rate",
            "burst",
            "keepalive_interval",
            "idle_timeout",
            "ping_timeout",
        ],
    ),
    (
        "auth",
        &[
            "allow_plain",
            "scram_iterations",
            "failures_before_delay",
            "max_delay",
            "account_lock_after",
            "ip_lock_after",
            "lock_window",
            "lock_duration",
            "fast_token_lifetime",
            "anonymous_logins_per_ip",
            "scram_hashes",
        ],
    ),
    ("storage", &["backend", "path"]),
    ("offline", &["max_messages"]),
    ("roster", &["max_items", "max_pending_requests"]),
    (
        "stream_management",
        &["resume_timeout", "max_unacked", "request_after"],
    ),
    ("components", &["listen", "secrets"]),
    ("http", &["listen", "tls_listen", "public_url", "metrics"]),
    ("web", &["enabled", "converse_url", "converse_dir"]),
    (
        "external_services",
        &["services", "turn_secret", "credential_ttl"],
    ),
    (
        "upload",
        &[
            "enabled",
            "domains",
            "max_file_size",
            "quota_per_user",
            "expire_after_days",
        ],
    ),
    (
        "s2s",
        &[
            "listen",
            "direct_tls_listen",
            "ca_file",
            "hosts",
            "require_tls",
            "dialback",
            "dialback_secret",
            "max_stanza_size",
            "max_queued_stanzas",
            "connect_timeout",
            "idle_timeout",
            "max_connections",
            "max_connections_per_ip",
        ],
    ),
    (
        "acme",
        &[
            "enabled",
            "contact",
            "directory",
            "ca_file",
            "renew_before_days",
            "challenge",
        ],
    ),
    (
        "archive",
        &["enabled", "retention_days", "max_messages", "max_page_size"],
    ),
    (
        "push",
        &[
            "enabled",
            "include_body",
            "include_sender",
            "min_interval",
            "timeout",
            "max_registrations",
        ],
    ),
    (
        "pep",
        &["enabled", "max_nodes", "max_items", "max_item_size"],
    ),
    (
        "pubsub",
        &["enabled", "max_nodes", "max_items", "max_item_size"],
    ),
    (
        "muc",
        &[
            "enabled",
            "domains",
            "max_occupants",
            "history_length",
            "max_history",
            "max_rooms_per_user",
            "room_queue",
            "occupant_rate",
            "occupant_burst",
            "room_rate",
            "room_burst",
            "archive",
        ],
    ),
    (
        "registration",
        &[
            "mode",
            "max_per_ip",
            "ip_window",
            "invite_lifetime",
            "user_invites",
            "min_password_length",
        ],
    ),
];

/// The keys of one entry of `external_services.services` (a table each, checked like a section).
pub const EXTERNAL_SERVICE_KEYS: &[&str] = &["type", "host", "port", "transport", "restricted"];

/// Smallest accepted `c2s.max_stanza_size`.
// RFC 6120 §13.12: a maximum stanza size must not be smaller than 10000 bytes.
pub const MIN_MAX_STANZA_SIZE: usize = 10_000;
/// Smallest accepted `c2s.preauth_max_stanza_size`: enough for a SASL `<auth/>`/`<response/>`.
pub const MIN_PREAUTH_MAX_STANZA_SIZE: usize = 512;
/// Smallest accepted `auth.scram_iterations`.
// RFC 7677 §4 / RFC 5802 §5.1: iteration count should be at least 4096.
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;
/// Largest accepted `auth.failures_before_delay`, `auth.account_lock_after` and
/// `auth.ip_lock_after`: counts beyond it protect nothing.
pub const MAX_AUTH_FAILURE_COUNT: u32 = 1_000_000;
/// Largest accepted `auth.lock_window` and `auth.lock_duration`, in seconds (one week).
pub const MAX_LOCK_SECONDS: u64 = 7 * 24 * 3600;
/// Largest accepted `auth.fast_token_lifetime`, in seconds (one year).
pub const MAX_FAST_TOKEN_LIFETIME: u64 = 365 * 24 * 3600;
/// Largest accepted `auth.anonymous_logins_per_ip`.
pub const MAX_ANONYMOUS_LOGINS_PER_IP: u32 = 1_000_000;
/// Largest accepted `offline.max_messages`. Each stored message can be as large as
/// `c2s.max_stanza_size`, so the queue of one account is bounded by the product of the two.
pub const MAX_OFFLINE_MESSAGES: usize = 100_000;
/// Largest accepted `roster.max_items`. A roster result carries every item, each of at most
/// 4 KiB as serialised, so a full roster of this many is some 400 MiB.
pub const MAX_ROSTER_ITEMS: usize = 100_000;
/// Largest accepted `stream_management.resume_timeout`, in seconds (one hour).
pub const MAX_RESUME_TIMEOUT: u64 = 3600;
/// Accepted range of `stream_management.max_unacked`.
pub const MAX_UNACKED_RANGE: (u64, u64) = (10, 100_000);
/// Largest accepted `stream_management.request_after`.
pub const MAX_REQUEST_AFTER: u64 = 10_000;
/// Largest accepted `archive.retention_days` (a hundred years).
pub const MAX_RETENTION_DAYS: u64 = 36_500;
/// Largest accepted `archive.max_messages`.
pub const MAX_ARCHIVE_MESSAGES: u64 = 1_000_000_000;
/// Largest accepted `archive.max_page_size`.
pub const MAX_ARCHIVE_PAGE: u64 = 1000;
/// Largest accepted `push.min_interval`, in seconds (one hour).
pub const MAX_PUSH_INTERVAL: u64 = 3600;
/// Accepted range of `push.timeout`, in seconds.
pub const PUSH_TIMEOUT_RANGE: (u64, u64) = (1, 300);
/// Largest accepted `push.max_registrations`.
pub const MAX_PUSH_REGISTRATIONS: u64 = 100;
/// Largest accepted `roster.max_pending_requests`.
pub const MAX_PENDING_REQUESTS: usize = 10_000;

/// The whole server configuration. [`Config::default()`] is the zero-configuration setup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Data directory: SQLite database, generated certificates, the control socket.
    pub data_dir: PathBuf,
    /// `admins`: the accounts allowed to run the XEP-0133 administration commands, as
    /// normalised bare JIDs (`user@domain`), each at one of the hosts. Default: none.
    pub admins: Vec<String>,
    /// `[log]`.
    pub log: LogConfig,
    /// `[[host]]`: the virtual hosts, never empty, domains unique.
    pub hosts: Vec<HostConfig>,
    /// `[c2s]`: client-to-server listeners and limits.
    pub c2s: C2sConfig,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[offline]`: offline message storage (XEP-0160).
    pub offline: OfflineConfig,
    /// `[roster]`: roster and subscription limits (RFC 6121).
    pub roster: RosterConfig,
    /// `[stream_management]`: XEP-0198.
    pub stream_management: StreamManagementConfig,
    /// `[components]`: XEP-0114 external components.
    pub components: ComponentsConfig,
    /// `[archive]`: message archives (XEP-0313).
    pub archive: ArchiveConfig,
    /// `[push]`: push notifications (XEP-0357).
    pub push: PushConfig,
    /// `[registration]`
    pub registration: RegistrationConfig,
    /// `[pep]`: personal eventing (XEP-0163) and its limits.
    pub pep: PepConfig,
    /// `[pubsub]`: the publish-subscribe service at `pubsub.<host>` (XEP-0060) and its limits.
    pub pubsub: PubsubConfig,
    /// `[muc]`: the multi-user chat service (XEP-0045) at `conference.<host>` and its limits.
    pub muc: MucConfig,
    /// `[http]`: the HTTP listener (health and readiness today).
    pub http: HttpConfig,
    /// `[web]`: the web client page at `/web` (Converse.js).
    pub web: WebConfig,
    /// `[external_services]`: STUN/TURN servers announced with XEP-0215.
    pub external_services: ExternalServicesConfig,
    /// `[upload]`: HTTP file upload (XEP-0363) at `upload.<host>`, files served by the HTTP
    /// listener.
    pub upload: UploadConfig,
    /// `[acme]`: certificates from an ACME CA (RFC 8555), obtained and renewed by the server.
    pub acme: AcmeConfig,
    /// `[s2s]`: federation with other servers (RFC 6120 server-to-server).
    pub s2s: S2sConfig,
}

/// `[pep]` section (XEP-0163 personal eventing: OMEMO keys, avatars, bookmarks, nicknames).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PepConfig {
    /// Whether accounts have a PEP service (default true).
    pub enabled: bool,
    /// Most nodes per account (default 256; `policy-violation` beyond). 1 to [`MAX_PEP_NODES`].
    pub max_nodes: u64,
    /// Most items kept per node: what a node's `pubsub#max_items` `max` means and the most it
    /// may be set to (default 1000). 1 to [`MAX_PEP_ITEMS`].
    pub max_items: u64,
    /// Largest item payload in bytes (default 262144: avatars fit; `not-acceptable` beyond).
    /// 1024 to [`MAX_PEP_ITEM_SIZE`].
    pub max_item_size: u64,
}

impl Default for PepConfig {
    fn default() -> Self {
        PepConfig {
            enabled: true,
            max_nodes: 256,
            max_items: 1000,
            max_item_size: 256 * 1024,
        }
    }
}

/// Largest accepted `pep.max_nodes`.
pub const MAX_PEP_NODES: u64 = 100_000;
/// Largest accepted `pep.max_items`.
pub const MAX_PEP_ITEMS: u64 = 1_000_000;
/// Largest accepted `pep.max_item_size` (a stanza carrying it must still fit
/// `c2s.max_stanza_size`).
pub const MAX_PEP_ITEM_SIZE: u64 = 16 * 1024 * 1024;

/// `[pubsub]` section: a publish-subscribe service (XEP-0060) at `pubsub.<host>` for every
/// virtual host, where the accounts of the hosts (not of anonymous hosts) create nodes they own
/// and anyone may subscribe. Each `pubsub.<host>` is a component domain: a host, or an external
/// component, at that name needs `enabled = false`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubsubConfig {
    /// Whether the service runs (default true).
    pub enabled: bool,
    /// Most nodes of one service, all creators together (default 10000; `policy-violation`
    /// beyond). 1 to [`MAX_PUBSUB_NODES`].
    pub max_nodes: u64,
    /// Most items kept per node: what `pubsub#max_items` `max` means and the most it may be set
    /// to (default 1000). 1 to [`MAX_PEP_ITEMS`].
    pub max_items: u64,
    /// Largest item payload in bytes (default 262144; `not-acceptable` beyond). 1024 to
    /// [`MAX_PEP_ITEM_SIZE`].
    pub max_item_size: u64,
}

impl Default for PubsubConfig {
    fn default() -> Self {
        PubsubConfig {
            enabled: true,
            max_nodes: 10_000,
            max_items: 1000,
            max_item_size: 256 * 1024,
        }
    }
}

/// Largest accepted `pubsub.max_nodes`.
pub const MAX_PUBSUB_NODES: u64 = 1_000_000;

/// `[muc]` section: multi-user chat (XEP-0045). Each service domain is a component domain: a
/// host, or an external component, at that name needs another `domains` list or
/// `enabled = false`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MucConfig {
    /// Whether the service runs (default true).
    pub enabled: bool,
    /// The service's domains, normalised; empty (the default) means `conference.<host>` for
    /// every virtual host that is not anonymous.
    pub domains: Vec<String>,
    /// Most occupants of a room: a new room's limit and the most its owners may set
    /// (default 1000; admins and owners enter beyond it). 1 to [`MAX_MUC_OCCUPANTS`].
    pub max_occupants: u64,
    /// Messages of history a new room sends newcomers (default 20). 0 to `max_history`.
    pub history_length: u64,
    /// The most history a room's owners may set (default 100). 0 to [`MAX_MUC_HISTORY`].
    pub max_history: u64,
    /// Rooms of a service one user may own (default 100; 0: no limit).
    pub max_rooms_per_user: u64,
    /// Messages waiting for one busy room before more are refused with
    /// `resource-constraint` (default 1024). 16 to 1048576.
    pub room_queue: u64,
    /// Messages (to all, or private through the room) one occupant may send per second on
    /// average (default 10; 0: no limit), and at once (`occupant_burst`, default 30); beyond,
    /// `resource-constraint`.
    pub occupant_rate: u64,
    pub occupant_burst: u64,
    /// Messages to all one room takes per second on average (default 200; 0: no limit), and
    /// at once (`room_burst`, default 400).
    pub room_rate: u64,
    pub room_burst: u64,
    /// Whether new rooms archive their messages (XEP-0313 on the room; default true). Owners
    /// change it per room (`muc#roomconfig_enablearchiving`).
    pub archive: bool,
}

impl Default for MucConfig {
    fn default() -> Self {
        MucConfig {
            enabled: true,
            domains: Vec::new(),
            max_occupants: 1000,
            history_length: 20,
            max_history: 100,
            max_rooms_per_user: 100,
            room_queue: 1024,
            occupant_rate: 10,
            occupant_burst: 30,
            room_rate: 200,
            room_burst: 400,
            archive: true,
        }
    }
}

impl MucConfig {
    /// The service domains for these virtual hosts.
    pub fn service_domains(&self, hosts: &[HostConfig]) -> Vec<String> {
        if !self.domains.is_empty() {
            return self.domains.clone();
        }
        hosts
            .iter()
            .filter(|h| !h.anonymous)
            .map(|h| format!("conference.{}", h.domain))
            .collect()
    }
}

/// Largest accepted `muc.max_occupants`.
pub const MAX_MUC_OCCUPANTS: u64 = 100_000;
/// Largest accepted `muc.max_history`.
pub const MAX_MUC_HISTORY: u64 = 10_000;

/// `[log]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A tracing filter: a level name (`error|warn|info|debug|trace|off`) or a comma list of
    /// `target=level` / `level` directives, as `tracing_subscriber::EnvFilter` accepts.
    pub level: String,
}

/// One `[[host]]` table: a virtual host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// The XMPP domain (normalised jid domainpart).
    pub domain: String,
    /// PEM certificate chain; `None` together with `key` means "generate a self-signed one".
    pub certificate: Option<PathBuf>,
    /// PEM private key; set exactly when `certificate` is.
    pub key: Option<PathBuf>,
    /// An anonymous host (default false): SASL ANONYMOUS (RFC 4505) is its only mechanism, and
    /// every login gets a fresh random account that is deleted, with everything it owns, when
    /// its session ends. No account there has a password: registration, password changes and
    /// `starling user add` are refused.
    pub anonymous: bool,
    /// Whether this anonymous host's users may send stanzas to other servers (default false:
    /// refused with `<not-allowed/>`). Only with `anonymous = true`. Takes effect with
    /// federation; until then such stanzas get `<remote-server-not-found/>` either way.
    pub anonymous_federation: bool,
}

/// `[c2s]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct C2sConfig {
    /// STARTTLS listeners.
    pub listen: Vec<SocketAddr>,
    /// Direct TLS (XEP-0368) listeners.
    pub direct_tls_listen: Vec<SocketAddr>,
    /// Refuse to authenticate a stream that is not encrypted.
    pub require_encryption: bool,
    /// Maximum stanza size in bytes after authentication (advertised with XEP-0478).
    pub max_stanza_size: usize,
    /// Maximum stanza size in bytes before authentication.
    pub preauth_max_stanza_size: usize,
    /// Maximum number of elements in one stanza before authentication.
    pub preauth_max_elements: usize,
    /// Maximum number of elements in one stanza after authentication.
    pub max_elements: usize,
    /// Maximum attributes on one element (namespace declarations not included).
    pub max_attributes_per_element: usize,
    /// Maximum attributes in one stanza, its descendants included.
    pub max_attributes: usize,
    /// Maximum namespace declarations in one stanza (`xmlns:p`, and `xmlns` where it changes).
    pub max_namespace_declarations: usize,
    /// Stanzas waiting for a client that does not read, before its session is closed.
    pub max_queued_stanzas: usize,
    /// Bytes of stanzas waiting for a client that does not read, before its session is closed.
    pub max_queued_bytes: usize,
    /// Resources one account may bind at once; 0 = unlimited.
    pub max_resources: usize,
    /// Connections one IPv4 address or IPv6 /64 may hold at once; 0 = unlimited.
    pub max_connections_per_ip: usize,
    /// Client connections the server holds at once; 0 = unlimited.
    pub max_connections: usize,
    /// How long an unauthenticated stream may stay open.
    pub auth_timeout: Duration,
    /// Sustained read rate per connection in bytes/second; 0 means unlimited.
    pub rate: u64,
    /// How much of `rate` may be read at once, as a time span (`rate × burst` bytes).
    pub burst: Duration,
    /// Interval of whitespace keepalives to idle clients; `None` disables them.
    pub keepalive_interval: Option<Duration>,
    /// Silence after which the server pings a bound client (XEP-0199); `None` disables.
    pub idle_timeout: Option<Duration>,
    /// How long a pinged client has to answer before its session is closed.
    pub ping_timeout: Duration,
}

/// `[auth]` section.
///
/// The throttle keys follow Prosody's `mod_limit_auth` and ejabberd's `mod_fail2ban`: only wrong
/// passwords and unknown users count (per client address, IPv6 by /64, and per account); see
/// `starling_c2s::throttle` for the exact semantics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// Offer SASL PLAIN (only ever over TLS).
    pub allow_plain: bool,
    /// PBKDF2 iterations for newly set passwords; at least [`MIN_SCRAM_ITERATIONS`].
    pub scram_iterations: u32,
    /// Failed logins of an address or account (in its `lock_window`) answered at once; later
    /// ones wait 1 s, 2 s, 4 s, … up to `max_delay`.
    pub failures_before_delay: u32,
    /// The longest a failed login's answer is held back; zero disables delays. Less than
    /// `c2s.auth_timeout`.
    pub max_delay: Duration,
    /// Failed logins of one account (from any address) in `lock_window` after which it is locked
    /// for `lock_duration`: even the right password is refused. 0 never locks accounts.
    pub account_lock_after: u32,
    /// Failed logins from one address (any account) in `lock_window` after which it is locked
    /// for `lock_duration`. 0 never locks addresses.
    pub ip_lock_after: u32,
    /// How long failures are counted, from a key's first failure.
    pub lock_window: Duration,
    /// How long a lock lasts.
    pub lock_duration: Duration,
    /// How long an XEP-0484 FAST token (a client's one-round-trip login) is valid after it is
    /// issued; a client that logs in with a token with less than half of this left gets a new
    /// one. Zero turns FAST off. At most [`MAX_FAST_TOKEN_LIFETIME`].
    pub fast_token_lifetime: Duration,
    /// Anonymous logins (SASL ANONYMOUS on an `anonymous` host) one IPv4 address or IPv6 /64
    /// may make per hour; one more is refused with `<temporary-auth-failure/>`. 0 = unlimited.
    /// At most [`MAX_ANONYMOUS_LOGINS_PER_IP`].
    pub anonymous_logins_per_ip: u32,
    /// The hashes whose SCRAM mechanisms (and their -PLUS variants) are offered, from
    /// [`SCRAM_HASHES`], strongest first; at least one. Accounts get keys of every hash
    /// whatever this says; an account whose keys were imported for SHA-1 only can log in with
    /// SCRAM-SHA-1 only, so a server of such accounts offers `["SHA-1"]` (docs/migrating.md).
    pub scram_hashes: Vec<String>,
}

/// The values of `auth.scram_hashes`, strongest first.
pub const SCRAM_HASHES: &[&str] = &["SHA-512", "SHA-256", "SHA-1"];

/// `[storage]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    /// Which storage backend to use.
    pub backend: StorageBackend,
    /// Database path; relative paths are under `data_dir` (see [`Config::database_path`]).
    pub path: PathBuf,
}

/// `[offline]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineConfig {
    /// Most messages kept for one account while it has no available resource; a message beyond
    /// that is bounced to its sender. 0 disables offline storage (every such message bounces).
    /// At most [`MAX_OFFLINE_MESSAGES`].
    pub max_messages: usize,
}

/// `[roster]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterConfig {
    /// Most items on one account's roster (RFC 6121 §2); a roster set or a subscription stanza
    /// from the account that would add one more is refused. Requests from contacts not on the
    /// roster are not items: see `max_pending_requests`. 1 to [`MAX_ROSTER_ITEMS`].
    pub max_items: usize,
    /// Most inbound subscription requests (RFC 6121 §3.1.3) kept for one account from contacts
    /// that are not on its roster; a request from one more is refused. 1 to
    /// [`MAX_PENDING_REQUESTS`].
    pub max_pending_requests: usize,
}

/// `[stream_management]` section (XEP-0198).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamManagementConfig {
    /// How long a session whose connection was lost waits for its client to resume it; a
    /// client's shorter preference is honoured. Zero offers no resumption. At most
    /// [`MAX_RESUME_TIMEOUT`].
    pub resume_timeout: Duration,
    /// Stanzas sent to a client and not acknowledged that its session may hold; reaching it
    /// ends the session as a timeout does (what it holds is routed again).
    pub max_unacked: usize,
    /// Unacknowledged stanzas after which the server asks the client for an acknowledgement.
    pub request_after: u32,
}

impl Default for StreamManagementConfig {
    fn default() -> Self {
        StreamManagementConfig {
            resume_timeout: Duration::from_secs(300),
            max_unacked: 1000,
            request_after: 5,
        }
    }
}

/// `[archive]` section (XEP-0313 message archive management).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Whether users' messages are archived and the archive can be queried (default true).
    pub enabled: bool,
    /// Messages older than this many days are deleted (checked hourly); 0 (the default) keeps
    /// them forever. At most [`MAX_RETENTION_DAYS`].
    pub retention_days: u64,
    /// Most messages kept per account, the oldest deleted first (checked hourly); 0 (the
    /// default): no limit. At most [`MAX_ARCHIVE_MESSAGES`].
    pub max_messages: u64,
    /// Most messages in one page of query results, whatever the client asks (default 250).
    /// 1 to [`MAX_ARCHIVE_PAGE`].
    pub max_page_size: usize,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            retention_days: 0,
            max_messages: 0,
            max_page_size: 250,
        }
    }
}

/// `[push]` section (XEP-0357 push notifications).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushConfig {
    /// Whether clients may register app servers and are notified through them (default true).
    pub enabled: bool,
    /// Whether a notification carries the message's body (`last-message-body`). Default false:
    /// the body would pass through the app server and the platform's push service.
    pub include_body: bool,
    /// Whether a notification carries the sender's JID (`last-message-sender`). Default true.
    pub include_sender: bool,
    /// Least time between two notifications to one registration; messages meanwhile are
    /// counted into the next one (default 2 s). At most [`MAX_PUSH_INTERVAL`].
    pub min_interval: Duration,
    /// How long the app server has to answer a notification before it counts as lost (default
    /// 30 s); the registration stays. Within [`PUSH_TIMEOUT_RANGE`].
    pub timeout: Duration,
    /// Most registrations per account (default 10); enabling one more removes the oldest. 1 to
    /// [`MAX_PUSH_REGISTRATIONS`].
    pub max_registrations: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            include_body: false,
            include_sender: true,
            min_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            max_registrations: 10,
        }
    }
}

/// Who may create an account with XEP-0077 in-band registration (`[registration] mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationMode {
    /// Nobody: accounts are made by the operator only (`starling user add`, admin commands).
    Off,
    /// Whoever holds a valid invitation (XEP-0445); the default.
    Invite,
    /// Anyone (public registration), rate limited per IP address; invitations work too.
    Open,
}

impl RegistrationMode {
    pub const ALL: &[RegistrationMode] = &[
        RegistrationMode::Off,
        RegistrationMode::Invite,
        RegistrationMode::Open,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationMode::Off => "off",
            RegistrationMode::Invite => "invite",
            RegistrationMode::Open => "open",
        }
    }

    pub fn from_name(name: &str) -> Option<RegistrationMode> {
        Self::ALL.iter().copied().find(|m| m.as_str() == name)
    }
}

/// `[registration]` section (XEP-0077 in-band registration, XEP-0401/XEP-0445 invitations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// Who may register (default [`RegistrationMode::Invite`]: public registration is off).
    pub mode: RegistrationMode,
    /// Most accounts registered from one IP address within [`Self::ip_window`] (default 3);
    /// 1 to [`MAX_REGISTRATIONS_PER_IP`].
    pub max_per_ip: u32,
    /// The window of [`Self::max_per_ip`] (default 3600 s).
    pub ip_window: Duration,
    /// How long an invitation made by a user or an ad-hoc command is valid (default 7 days);
    /// `starling invite create --expires` chooses its own. At most [`MAX_INVITE_LIFETIME`].
    pub invite_lifetime: Duration,
    /// Whether every user may invite contacts who may register here (XEP-0401
    /// `urn:xmpp:invite#invite` with `ibr=y`; default true). When false, users' invitations
    /// are contact-only and only admins' may register.
    pub user_invites: bool,
    /// Shortest password accepted at registration and password change (default 8 characters).
    pub min_password_length: usize,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            mode: RegistrationMode::Invite,
            max_per_ip: 3,
            ip_window: Duration::from_secs(3600),
            invite_lifetime: Duration::from_secs(7 * 24 * 3600),
            user_invites: true,
            min_password_length: 8,
        }
    }
}

/// Largest `registration.max_per_ip`.
pub const MAX_REGISTRATIONS_PER_IP: u64 = 10_000;
/// Largest `registration.ip_window` and `registration.invite_lifetime` (one year, in seconds).
pub const MAX_INVITE_LIFETIME: u64 = 365 * 24 * 3600;
/// Largest `registration.min_password_length`.
pub const MAX_MIN_PASSWORD_LENGTH: u64 = 1024;

/// `[s2s]` section: federation (RFC 6120 server-to-server streams). Off unless a listener is
/// configured: outbound connections need it too (a peer verifies our dialback keys by calling
/// it back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S2sConfig {
    /// STARTTLS listeners (port 5269 by convention); default none: federation off.
    pub listen: Vec<SocketAddr>,
    /// XEP-0368 direct-TLS listeners (ALPN `xmpp-server`); default none.
    pub direct_tls_listen: Vec<SocketAddr>,
    /// PEM bundle of extra CAs trusted for peers' certificates, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// `[s2s.hosts]`: domain → `"address:port"` (or an array of them), instead of DNS.
    pub hosts: Vec<(String, Vec<SocketAddr>)>,
    /// Refuse peers that do not encrypt. Default: true.
    pub require_tls: bool,
    /// XEP-0220 dialback when a certificate does not verify. Default: true.
    pub dialback: bool,
    /// XEP-0185 dialback secret; default: generated once and kept in
    /// `<data_dir>/s2s/dialback.secret`.
    pub dialback_secret: Option<Secret>,
    /// Largest stanza a peer may send. Default: 512 KiB.
    pub max_stanza_size: usize,
    /// Stanzas waiting for one remote domain while its connection is negotiated. Default: 10,000.
    pub max_queued_stanzas: usize,
    /// From the first stanza for a domain to an authenticated connection; past it the queued
    /// stanzas get `<remote-server-timeout/>`. Default: 30 s.
    pub connect_timeout: Duration,
    /// An authenticated connection idle this long is closed. Default: 600 s.
    pub idle_timeout: Duration,
    /// Inbound connections at once, from all peers. Default: 1,000.
    pub max_connections: usize,
    /// Inbound connections at once from one IP address. Default: 32.
    pub max_connections_per_ip: usize,
}

impl Default for S2sConfig {
    fn default() -> Self {
        S2sConfig {
            listen: Vec::new(),
            direct_tls_listen: Vec::new(),
            ca_file: None,
            hosts: Vec::new(),
            require_tls: true,
            dialback: true,
            dialback_secret: None,
            max_stanza_size: 512 * 1024,
            max_queued_stanzas: 10_000,
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            max_connections: 1000,
            max_connections_per_ip: 32,
        }
    }
}

impl S2sConfig {
    /// Whether federation is on (a listener is configured).
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty() || !self.direct_tls_listen.is_empty()
    }
}

/// `[components]` section (XEP-0114).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComponentsConfig {
    /// Listeners for external components (`jabber:component:accept`); empty (the default): none.
    /// They speak no TLS: keep them on loopback or a private network.
    pub listen: Vec<SocketAddr>,
    /// `[components.secrets]`: component domain → its shared secret (at least
    /// [`MIN_COMPONENT_SECRET`] characters). A domain must not be a virtual host.
    pub secrets: Vec<(String, Secret)>,
}

/// `[http]` section: the one HTTP listener (today `/health` and `/ready`; later WebSocket, BOSH,
/// upload and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Listening addresses; default one loopback address (`127.0.0.1:5280`), empty: no HTTP
    /// listener. Plain HTTP: keep it on loopback or behind a reverse proxy.
    pub listen: Vec<SocketAddr>,
    /// HTTPS listening addresses, with the hosts' certificates (chosen by SNI, reloaded with
    /// them); default none.
    pub tls_listen: Vec<SocketAddr>,
    /// The base URL browsers and clients reach this listener at (`http` or `https`, a host, an
    /// optional port and path prefix; no query), without a trailing `/`: what a reverse proxy
    /// in front publishes, e.g. `https://chat.example.org`. The WebSocket and BOSH URLs
    /// advertised in host-meta, upload URLs and the web client page are built on it. `None`
    /// (the default): `http://` and the first listen address.
    pub public_url: Option<String>,
    /// Serve `GET /metrics` (Prometheus text format) on the listener. Default: true (the
    /// listener defaults to loopback).
    pub metrics: bool,
}

impl HttpConfig {
    /// [`HttpConfig::public_url`], or the first listen address over plain HTTP; `None` without
    /// a listener.
    pub fn base_url(&self) -> Option<String> {
        match &self.public_url {
            Some(url) => Some(url.clone()),
            None => self.listen.first().map(|a| format!("http://{a}")),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5280))],
            tls_listen: Vec::new(),
            public_url: None,
            metrics: true,
        }
    }
}

/// The Converse.js release the `/web` page loads from its CDN by default.
pub const CONVERSE_VERSION: &str = "14.0.0";

/// `[web]` section: the web client page at `/web` of the HTTP listener, an HTML page that loads
/// Converse.js preconfigured with this server's WebSocket URL and first domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebConfig {
    /// Whether `/web` is served (default false: 404).
    pub enabled: bool,
    /// Where the page loads `converse.min.js` and `converse.min.css` from (the `dist/` folder of a
    /// release), without a trailing `/`. Default: the project's CDN, pinned to
    /// [`CONVERSE_VERSION`].
    pub converse_url: String,
    /// A local directory to serve Converse.js from instead, under `/web/dist/`: where the operator
    /// ran `npm install converse.js` (its `node_modules/converse.js/dist` is served), or a `dist`
    /// folder itself. When set it wins over `converse_url`. Used as written (a relative path is
    /// relative to the server's working directory); the server checks it at start. Default: none.
    pub converse_dir: Option<PathBuf>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: false,
            converse_url: format!("https://cdn.conversejs.org/{CONVERSE_VERSION}/dist"),
            converse_dir: None,
        }
    }
}

/// `[upload]` section: HTTP file upload (XEP-0363). Each service domain is a component domain;
/// the files are stored under `data_dir/upload` and served by the HTTP listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    /// Whether the service runs (default true); it runs only with an HTTP listener.
    pub enabled: bool,
    /// The service's domains, normalised; empty (the default) means `upload.<host>` for every
    /// virtual host that is not anonymous.
    pub domains: Vec<String>,
    /// Largest file, in bytes (default 100 MiB). 1 to [`MAX_UPLOAD_FILE_SIZE`].
    pub max_file_size: u64,
    /// Bytes one user's files may take together (default 1 GiB); at least `max_file_size`.
    pub quota_per_user: u64,
    /// Days a file is kept (default 30; 0: for ever).
    pub expire_after_days: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            enabled: true,
            domains: Vec::new(),
            max_file_size: 100 * 1024 * 1024,
            quota_per_user: 1024 * 1024 * 1024,
            expire_after_days: 30,
        }
    }
}

/// `[external_services]` section: XEP-0215 external service discovery (STUN and TURN servers
/// for audio and video calls).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalServicesConfig {
    /// The services announced, in order; empty (the default): XEP-0215 is not offered.
    pub services: Vec<ExternalService>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`), from which the
    /// credentials of restricted services are derived. Default: none.
    pub turn_secret: Option<Secret>,
    /// How long derived credentials stay valid (default one day), from
    /// [`MIN_CREDENTIAL_TTL`] to [`MAX_CREDENTIAL_TTL`] seconds.
    pub credential_ttl: Duration,
}

impl Default for ExternalServicesConfig {
    fn default() -> Self {
        ExternalServicesConfig {
            services: Vec::new(),
            turn_secret: None,
            credential_ttl: Duration::from_secs(86_400),
        }
    }
}

/// Shortest accepted `external_services.turn_secret`: anyone who guesses it can make
/// credentials for the TURN server.
pub const MIN_TURN_SECRET: usize = 16;
/// Shortest accepted `external_services.credential_ttl`, in seconds.
pub const MIN_CREDENTIAL_TTL: u64 = 60;
/// Longest accepted `external_services.credential_ttl`, in seconds (30 days).
pub const MAX_CREDENTIAL_TTL: u64 = 30 * 86_400;

/// Kinds of external service (XEP-0215 §8.3 registry, and `turns` of RFC 7065).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExternalServiceType {
    Stun,
    Turn,
    Turns,
}

impl ExternalServiceType {
    /// The `type` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalServiceType::Stun => "stun",
            ExternalServiceType::Turn => "turn",
            ExternalServiceType::Turns => "turns",
        }
    }
}

/// Transport protocols of an external service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExternalTransport {
    Udp,
    Tcp,
}

impl ExternalTransport {
    /// The `transport` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalTransport::Udp => "udp",
            ExternalTransport::Tcp => "tcp",
        }
    }
}

/// One entry of `external_services.services`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalService {
    /// `type`: `stun`, `turn` or `turns` (required).
    pub kind: ExternalServiceType,
    /// `host`: a domain name or IP address (required).
    pub host: String,
    /// `port`; default 3478 (`stun`, `turn`) or 5349 (`turns`), RFC 8489 §9 / RFC 8656 §5.
    pub port: u16,
    /// `transport`; default `udp` (`turns`: `tcp`, the only one accepted for it).
    pub transport: ExternalTransport,
    /// `restricted`: clients get credentials derived from `turn_secret` (default false; true
    /// needs `turn_secret`).
    pub restricted: bool,
}

impl UploadConfig {
    /// The service domains for these virtual hosts.
    pub fn service_domains(&self, hosts: &[HostConfig]) -> Vec<String> {
        if !self.domains.is_empty() {
            return self.domains.clone();
        }
        hosts
            .iter()
            .filter(|h| !h.anonymous)
            .map(|h| format!("upload.{}", h.domain))
            .collect()
    }

    /// Whether the service runs: enabled, with an HTTP or HTTPS listener to serve the files.
    pub fn active(&self, http: &HttpConfig) -> bool {
        self.enabled && !(http.listen.is_empty() && http.tls_listen.is_empty())
    }
}

/// Largest accepted `upload.max_file_size` (1 TiB).
pub const MAX_UPLOAD_FILE_SIZE: u64 = 1 << 40;
/// Largest accepted `upload.expire_after_days` (about 100 years).
pub const MAX_UPLOAD_EXPIRE_DAYS: u64 = 36_500;

/// Let's Encrypt's production ACME directory, `[acme] directory`'s default.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, for trying a setup out).
pub const LETS_ENCRYPT_STAGING_DIRECTORY: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";
/// Accepted range of `acme.renew_before_days`.
pub const RENEW_BEFORE_DAYS_RANGE: (u64, u64) = (1, 180);

/// `[acme]` section: certificates without effort. When enabled, every host without configured
/// `certificate`/`key` gets a certificate from the CA for itself and its service subdomains
/// (`conference.`, `pubsub.`, …), validated over HTTP-01 on the HTTP listener (the CA connects
/// to port 80) or over TLS-ALPN-01 on c2s direct TLS or HTTPS (the CA connects to port 443),
/// kept in `<data_dir>/certs/` and renewed before expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeConfig {
    /// Whether the server obtains certificates (default false).
    pub enabled: bool,
    /// The account's contact, a `mailto:` URL (an address written without `mailto:` gets it).
    /// Required when enabled.
    pub contact: Option<String>,
    /// The CA's directory URL, `https://` (default [`LETS_ENCRYPT_DIRECTORY`]).
    pub directory: String,
    /// A PEM certificate to trust as the root of the CA's own HTTPS instead of the system's
    /// roots (a private CA, or pebble's test CA); default none.
    pub ca_file: Option<PathBuf>,
    /// Renew this many days before expiry, or with a third of the lifetime left if that comes
    /// sooner (default 30).
    pub renew_before_days: u64,
    /// The challenge the CA validates (default HTTP-01).
    pub challenge: AcmeChallenge,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            enabled: false,
            contact: None,
            directory: LETS_ENCRYPT_DIRECTORY.to_owned(),
            ca_file: None,
            renew_before_days: 30,
            challenge: AcmeChallenge::Http01,
        }
    }
}

/// `[acme] challenge`: how the CA checks that the server answers for a name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// `"http-01"` (RFC 8555 §8.3): a plain HTTP request to port 80, answered by the HTTP
    /// listener.
    #[default]
    Http01,
    /// `"tls-alpn-01"` (RFC 8737): a TLS handshake on port 443 offering `acme-tls/1`, answered
    /// by c2s direct TLS or the HTTPS listener.
    TlsAlpn01,
}

impl AcmeChallenge {
    /// Every challenge, for error messages.
    pub const ALL: &[AcmeChallenge] = &[AcmeChallenge::Http01, AcmeChallenge::TlsAlpn01];

    /// The name used in the configuration file (ACME's own).
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::Http01 => "http-01",
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
        }
    }

    /// Parses a configuration name (exact, lowercase).
    pub fn from_name(name: &str) -> Option<AcmeChallenge> {
        Self::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for AcmeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shared secret: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Shortest accepted component secret.
pub const MIN_COMPONENT_SECRET: usize = 16;

/// Known storage backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageBackend {
    /// SQLite via sqlx.
    Sqlite,
}

impl StorageBackend {
    /// Every backend, for error messages.
    pub const ALL: &[StorageBackend] = &[StorageBackend::Sqlite];

    /// The name used in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageBackend::Sqlite => "sqlite",
        }
    }

    /// Parses a configuration name (exact, lowercase).
    pub fn from_name(name: &str) -> Option<StorageBackend> {
        Self::ALL.iter().copied().find(|b| b.as_str() == name)
    }
}

impl fmt::Display for StorageBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configuration problem.
///
/// Displays as `starling.toml:12: c2s.max_stanza_size: must be at least 10000`; the file part is
/// left out when `file` is empty, the line when unknown, the key when empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to [`Config::from_toml_str`]/[`Config::load`]; empty for errors from
    /// [`Config::check_files`].
    pub file: String,
    /// Dotted key path (`c2s.listen[1]`, `host[0].domain`); empty when the problem is not about
    /// one key (syntax errors, unreadable file).
    pub key: String,
    /// 1-based line number, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self;
        if !e.file.is_empty() {
            f.write_str(&e.file)?;
            if let Some(line) = e.line {
                write!(f, ":{line}")?;
            }
            f.write_str(": ")?;
        } else if let Some(line) = e.line {
            write!(f, "line {line}: ")?;
        }
        if !e.key.is_empty() {
            write!(f, "{}: ", e.key)?;
        }
        f.write_str(&e.message)
    }
}

impl std::error::Error for ConfigError {}

/// All problems found in a configuration, in file order; never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./starling-data"),
            admins: Vec::new(),
            log: LogConfig::default(),
            hosts: vec![HostConfig {
                domain: "localhost".to_owned(),
                ..HostConfig::default()
            }],
            c2s: C2sConfig::default(),
            auth: AuthConfig::default(),
            storage: StorageConfig::default(),
            offline: OfflineConfig::default(),
            roster: RosterConfig::default(),
            stream_management: StreamManagementConfig::default(),
            components: ComponentsConfig::default(),
            archive: ArchiveConfig::default(),
            push: PushConfig::default(),
            pep: PepConfig::default(),
            pubsub: PubsubConfig::default(),
            muc: MucConfig::default(),
            registration: RegistrationConfig::default(),
            http: HttpConfig::default(),
            web: WebConfig::default(),
            external_services: ExternalServicesConfig::default(),
            upload: UploadConfig::default(),
            acme: AcmeConfig::default(),
            s2s: S2sConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
        }
    }
}

impl Default for C2sConfig {
    fn default() -> Self {
        C2sConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5222))],
            direct_tls_listen: vec![SocketAddr::from(([127, 0, 0, 1], 5223))],
            require_encryption: true,
            max_stanza_size: 262_144,
            preauth_max_stanza_size: 8192,
            preauth_max_elements: 32,
            max_elements: 5000,
            max_attributes_per_element: 64,
            max_attributes: 10_000,
            max_namespace_declarations: 128,
            max_queued_stanzas: 512,
            max_queued_bytes: 1024 * 1024,
            max_resources: 10,
            max_connections_per_ip: 100,
            max_connections: 50_000,
            auth_timeout: Duration::from_secs(60),
            rate: 10_240,
            burst: Duration::from_secs(2),
            keepalive_interval: Some(Duration::from_secs(300)),
            idle_timeout: Some(Duration::from_secs(300)),
            ping_timeout: Duration::from_secs(60),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            allow_plain: true,
            scram_iterations: MIN_SCRAM_ITERATIONS,
            failures_before_delay: 3,
            max_delay: Duration::from_secs(10),
            account_lock_after: 10,
            ip_lock_after: 20,
            lock_window: Duration::from_secs(600),
            lock_duration: Duration::from_secs(300),
            fast_token_lifetime: Duration::from_secs(14 * 24 * 3600),
            anonymous_logins_per_ip: 20,
            scram_hashes: SCRAM_HASHES.iter().map(|h| (*h).to_owned()).collect(),
        }
    }
}

impl Default for OfflineConfig {
    fn default() -> Self {
        OfflineConfig { max_messages: 1000 }
    }
}

impl Default for RosterConfig {
    fn default() -> Self {
        RosterConfig {
            max_items: 1000,
            max_pending_requests: 100,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Sqlite,
            path: PathBuf::from("starling.db"),
        }
    }
}

impl Config {
    /// Parses and validates configuration text. `source_name` (usually the file path) prefixes
    /// every error. Empty text gives [`Config::default()`].
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Config, ConfigErrors> {
        parse::parse(text, source_name)
    }

    /// Reads and validates a configuration file. An unreadable file is a single error with an
    /// empty key.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml_str(&text, &name),
            Err(e) => Err(ConfigErrors(vec![ConfigError {
                file: name,
                key: String::new(),
                line: None,
                message: format!("cannot read configuration file: {e}"),
            }])),
        }
    }

    /// Checks that every configured certificate and key file can be read and contains PEM data of
    /// the right kind. Returns the problems (empty when all is well), keyed like
    /// `host[0].certificate`, with empty `file` and no line.
    pub fn check_files(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for (i, host) in self.hosts.iter().enumerate() {
            let files = [
                ("certificate", host.certificate.as_deref()),
                ("key", host.key.as_deref()),
            ];
            for (field, path) in files {
                let Some(path) = path else { continue };
                if let Err(message) = check_pem_file(path, field == "key") {
                    errors.push(ConfigError {
                        file: String::new(),
                        key: format!("host[{i}].{field}"),
                        line: None,
                        message,
                    });
                }
            }
        }
        if self.acme.enabled
            && let Some(path) = &self.acme.ca_file
            && let Err(message) = check_pem_file(path, false)
        {
            errors.push(ConfigError {
                file: String::new(),
                key: "acme.ca_file".to_owned(),
                line: None,
                message,
            });
        }
        errors
    }

    /// Whether `domain` is one of the hosts marked `anonymous = true`.
    pub fn is_anonymous_host(&self, domain: &str) -> bool {
        self.hosts.iter().any(|h| h.anonymous && h.domain == domain)
    }

    /// `storage.path` resolved against `data_dir` (absolute paths are kept).
    pub fn database_path(&self) -> PathBuf {
        if self.storage.path.is_absolute() {
            self.storage.path.clone()
        } else {
            self.data_dir.join(&self.storage.path)
        }
    }
}

fn check_pem_file(path: &Path, is_key: bool) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let found = if is_key {
        // "-----BEGIN PRIVATE KEY-----", "-----BEGIN EC PRIVATE KEY-----", "... RSA PRIVATE KEY-----"
        contains(&data, b"-----BEGIN ") && contains(&data, b"PRIVATE KEY-----")
    } else {
        contains(&data, b"-----BEGIN CERTIFICATE-----")
    };
    if found {
        Ok(())
    } else if is_key {
        Err(format!("{} contains no PEM private key", path.display()))
    } else {
        Err(format!("{} contains no PEM certificate", path.display()))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
