//! Tests of parsing, validation and error reporting.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use starling_config::{
    AcmeChallenge, AcmeConfig, ArchiveConfig, AuthConfig, C2sConfig, ComponentsConfig, Config,
    ConfigError, ConfigErrors, HostConfig, HttpConfig, LETS_ENCRYPT_DIRECTORY,
    LETS_ENCRYPT_STAGING_DIRECTORY, LogConfig, MucConfig, OfflineConfig, PepConfig, PubsubConfig,
    PushConfig, RegistrationConfig, RegistrationMode, RosterConfig, SCHEMA, Secret, StorageBackend,
    StorageConfig, StreamManagementConfig, UploadConfig,
};
use starling_config::{
    ExternalService, ExternalServiceType, ExternalServicesConfig, ExternalTransport, WebConfig,
};

const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../starling.example.toml"
));

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_toml_str(text, "starling.toml")
}

/// The (key, line, message) triples of a config that must fail.
fn errors(text: &str) -> Vec<(String, Option<usize>, String)> {
    match parse(text) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(ConfigErrors(errors)) => {
            assert!(!errors.is_empty());
            errors
                .into_iter()
                .map(|e| {
                    assert_eq!(e.file, "starling.toml");
                    (e.key, e.line, e.message)
                })
                .collect()
        }
    }
}

/// The (key, line) pairs of a config that must fail.
fn keys(text: &str) -> Vec<(String, Option<usize>)> {
    errors(text).into_iter().map(|(k, l, _)| (k, l)).collect()
}

fn one_error(text: &str) -> (String, Option<usize>, String) {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn kl(key: &str, line: usize) -> (String, Option<usize>) {
    (key.to_owned(), Some(line))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// defaults and the example file

#[test]
fn empty_text_is_the_default() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(parse("# nothing\n\n").unwrap(), Config::default());
}

#[test]
fn default_values() {
    let c = Config::default();
    assert_eq!(c.data_dir, PathBuf::from("./starling-data"));
    assert_eq!(c.log.level, "info");
    assert_eq!(
        c.hosts,
        vec![HostConfig {
            domain: "localhost".into(),
            certificate: None,
            key: None,
            ..Default::default()
        }]
    );
    assert_eq!(c.c2s.listen, vec![addr("127.0.0.1:5222")]);
    assert_eq!(c.c2s.direct_tls_listen, vec![addr("127.0.0.1:5223")]);
    assert!(c.c2s.require_encryption);
    assert_eq!(c.c2s.max_stanza_size, 262_144);
    assert_eq!(c.c2s.preauth_max_stanza_size, 8192);
    assert_eq!(c.c2s.preauth_max_elements, 32);
    assert_eq!(c.c2s.auth_timeout, Duration::from_secs(60));
    assert_eq!(c.c2s.rate, 10_240);
    assert_eq!(c.c2s.burst, Duration::from_secs(2));
    assert_eq!(c.c2s.keepalive_interval, Some(Duration::from_secs(300)));
    assert!(c.auth.allow_plain);
    assert_eq!(c.auth.scram_iterations, 4096);
    assert_eq!(c.auth.failures_before_delay, 3);
    assert_eq!(c.auth.max_delay, Duration::from_secs(10));
    assert_eq!(c.auth.account_lock_after, 10);
    assert_eq!(c.auth.ip_lock_after, 20);
    assert_eq!(c.auth.lock_window, Duration::from_secs(600));
    assert_eq!(c.auth.lock_duration, Duration::from_secs(300));
    // XEP-0484 FAST tokens: 14 days.
    assert_eq!(c.auth.fast_token_lifetime, Duration::from_secs(14 * 86_400));
    assert_eq!(c.storage.backend, StorageBackend::Sqlite);
    assert_eq!(c.storage.path, PathBuf::from("starling.db"));
    assert_eq!(
        c.database_path(),
        PathBuf::from("./starling-data/starling.db")
    );
    assert_eq!(c.offline.max_messages, 1000);
    assert_eq!(c.roster.max_items, 1000);
    assert_eq!(c.roster.max_pending_requests, 100);
    assert_eq!(c.http.listen, vec![addr("127.0.0.1:5280")]);
}

#[test]
fn example_parses_to_the_default() {
    let config = Config::from_toml_str(EXAMPLE, "starling.example.toml").unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn example_with_certificate_lines_uncommented() {
    let text = EXAMPLE
        .replace("# certificate = ", "certificate = ")
        .replace("# key = ", "key = ");
    assert_ne!(text, EXAMPLE);
    let config = parse(&text).unwrap();
    let expected = Config {
        hosts: vec![HostConfig {
            domain: "localhost".into(),
            certificate: Some("/etc/letsencrypt/live/example.org/fullchain.pem".into()),
            key: Some("/etc/letsencrypt/live/example.org/privkey.pem".into()),
            ..Default::default()
        }],
        ..Config::default()
    };
    assert_eq!(config, expected);
}

/// Every key of [`SCHEMA`] is documented in the example, in its section, below a comment that
/// gives the default; and the example shows no key the schema does not know.
#[test]
fn example_documents_every_key() {
    let sections: Vec<&str> = SCHEMA
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| !s.is_empty())
        .collect();
    let mut expected = BTreeSet::new();
    for (section, keys) in SCHEMA {
        for key in *keys {
            if section.is_empty() && sections.contains(key) {
                continue; // a section, shown as a header
            }
            expected.insert(format!("{section}.{key}"));
        }
    }

    let lines: Vec<&str> = EXAMPLE.lines().collect();
    let mut documented = BTreeSet::new();
    let mut headers = BTreeSet::new();
    let mut section = String::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            section = name.to_owned();
            headers.insert(section.clone());
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            headers.insert(section.clone());
            continue;
        }
        let setting = line.strip_prefix("# ").unwrap_or(line);
        let Some((key, _)) = setting.split_once(" = ") else {
            continue;
        };
        if !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        // The comment block right above the key (other commented keys included) states the
        // default, or that the key is required.
        let block: Vec<&str> = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with('#'))
            .copied()
            .collect();
        assert!(
            block
                .iter()
                .any(|l| l.contains("Default: ") || l.contains("Required")),
            "{section}.{key}: no comment with the default above line {}",
            i + 1
        );
        documented.insert(format!("{section}.{key}"));
    }
    assert_eq!(documented, expected);
    let expected_headers: BTreeSet<String> = sections.iter().map(|s| s.to_string()).collect();
    assert_eq!(headers, expected_headers);
}

// ---------------------------------------------------------------------------------------------
// full override

#[test]
fn every_option_can_be_set() {
    let text = r#"
data_dir = "/var/lib/starling"
admins = ["root@example.org"]

[log]
level = "warn,starling_c2s=debug"

[[host]]
domain = "Example.ORG"
certificate = "/etc/tls/example.pem"
key = "/etc/tls/example.key"

[[host]]
domain = "chat.example.net"

[[host]]
domain = "guest.example.net"
anonymous = true
anonymous_federation = true

[c2s]
listen = ["0.0.0.0:5222", "[::]:5222"]
direct_tls_listen = []
require_encryption = false
max_stanza_size = 0x10000
preauth_max_stanza_size = 1_024
preauth_max_elements = 1
max_elements = 100
max_attributes_per_element = 8
max_attributes = 200
max_namespace_declarations = 4
max_queued_stanzas = 16
max_queued_bytes = 65536
max_resources = 3
max_connections_per_ip = 5
max_connections = 500
auth_timeout = 10
rate = 0
burst = 5
keepalive_interval = 0
idle_timeout = 0
ping_timeout = 5

[auth]
allow_plain = false
scram_iterations = 10000
failures_before_delay = 0
max_delay = 5
account_lock_after = 0
ip_lock_after = 50
lock_window = 3600
lock_duration = 60
fast_token_lifetime = 86400
anonymous_logins_per_ip = 0
scram_hashes = ["sha-1", "SHA-512"]

[storage]
backend = "sqlite"
path = "/srv/db/starling.sqlite"

[offline]
max_messages = 25

[roster]
max_items = 50
max_pending_requests = 7

[stream_management]
resume_timeout = 0
max_unacked = 10
request_after = 1

[components]
listen = ["127.0.0.1:5347"]

[components.secrets]
"Gateway.Example.ORG" = "sixteen chars at least"

[http]
listen = ["0.0.0.0:8080", "[::1]:5280"]
tls_listen = ["0.0.0.0:8443"]
public_url = "https://chat.example.org/xmpp/"
metrics = false

[web]
enabled = true
converse_url = "https://static.example.org/converse/dist/"
converse_dir = "/srv/converse"

[external_services]
turn_secret = "sixteen chars at least"
credential_ttl = 3600
services = [
  { type = "stun", host = "turn.example.org" },
  { type = "turn", host = "2001:db8::1", port = 3479, transport = "tcp", restricted = true },
  { type = "turns", host = "turn.example.org", restricted = true },
]

[archive]
enabled = false
retention_days = 30
max_messages = 5000
max_page_size = 100

[push]
enabled = false
include_body = true
include_sender = false
min_interval = 0
timeout = 5
max_registrations = 3

[registration]
mode = "open"
max_per_ip = 2
ip_window = 600
invite_lifetime = 86400
user_invites = false
min_password_length = 12

[pep]
enabled = false
max_nodes = 10
max_items = 50
max_item_size = 4096

[pubsub]
enabled = false
max_nodes = 20
max_items = 60
max_item_size = 2048

[muc]
enabled = true
domains = ["Chat.Example.org", "rooms.example.com"]
max_occupants = 50
history_length = 5
max_history = 10
max_rooms_per_user = 0
room_queue = 16
occupant_rate = 0
occupant_burst = 5
room_rate = 50
room_burst = 60
archive = false

[upload]
enabled = false
domains = ["Files.Example.org"]
max_file_size = 1000
quota_per_user = 5000
expire_after_days = 0
"#;
    let expected = Config {
        data_dir: "/var/lib/starling".into(),
        admins: vec!["root@example.org".into()],
        log: LogConfig {
            level: "warn,starling_c2s=debug".into(),
        },
        hosts: vec![
            HostConfig {
                domain: "example.org".into(),
                certificate: Some("/etc/tls/example.pem".into()),
                key: Some("/etc/tls/example.key".into()),
                ..Default::default()
            },
            HostConfig {
                domain: "chat.example.net".into(),
                certificate: None,
                key: None,
                ..Default::default()
            },
            HostConfig {
                domain: "guest.example.net".into(),
                anonymous: true,
                anonymous_federation: true,
                ..Default::default()
            },
        ],
        c2s: C2sConfig {
            listen: vec![addr("0.0.0.0:5222"), addr("[::]:5222")],
            direct_tls_listen: vec![],
            require_encryption: false,
            max_stanza_size: 65536,
            preauth_max_stanza_size: 1024,
            preauth_max_elements: 1,
            max_elements: 100,
            max_attributes_per_element: 8,
            max_attributes: 200,
            max_namespace_declarations: 4,
            max_queued_stanzas: 16,
            max_queued_bytes: 65536,
            max_resources: 3,
            max_connections_per_ip: 5,
            max_connections: 500,
            auth_timeout: Duration::from_secs(10),
            rate: 0,
            burst: Duration::from_secs(5),
            keepalive_interval: None,
            idle_timeout: None,
            ping_timeout: Duration::from_secs(5),
        },
        auth: AuthConfig {
            allow_plain: false,
            scram_iterations: 10_000,
            failures_before_delay: 0,
            max_delay: Duration::from_secs(5),
            account_lock_after: 0,
            ip_lock_after: 50,
            lock_window: Duration::from_secs(3600),
            lock_duration: Duration::from_secs(60),
            fast_token_lifetime: Duration::from_secs(86_400),
            anonymous_logins_per_ip: 0,
            scram_hashes: vec!["SHA-512".to_owned(), "SHA-1".to_owned()],
        },
        storage: StorageConfig {
            backend: StorageBackend::Sqlite,
            path: "/srv/db/starling.sqlite".into(),
        },
        offline: OfflineConfig { max_messages: 25 },
        roster: RosterConfig {
            max_items: 50,
            max_pending_requests: 7,
        },
        stream_management: StreamManagementConfig {
            resume_timeout: Duration::ZERO,
            max_unacked: 10,
            request_after: 1,
        },
        components: ComponentsConfig {
            listen: vec![addr("127.0.0.1:5347")],
            secrets: vec![(
                "gateway.example.org".to_owned(),
                Secret("sixteen chars at least".to_owned()),
            )],
        },
        archive: ArchiveConfig {
            enabled: false,
            retention_days: 30,
            max_messages: 5000,
            max_page_size: 100,
        },
        push: PushConfig {
            enabled: false,
            include_body: true,
            include_sender: false,
            min_interval: Duration::ZERO,
            timeout: Duration::from_secs(5),
            max_registrations: 3,
        },
        registration: RegistrationConfig {
            mode: RegistrationMode::Open,
            max_per_ip: 2,
            ip_window: Duration::from_secs(600),
            invite_lifetime: Duration::from_secs(86400),
            user_invites: false,
            min_password_length: 12,
        },
        pep: PepConfig {
            enabled: false,
            max_nodes: 10,
            max_items: 50,
            max_item_size: 4096,
        },
        pubsub: PubsubConfig {
            enabled: false,
            max_nodes: 20,
            max_items: 60,
            max_item_size: 2048,
        },
        muc: MucConfig {
            enabled: true,
            domains: vec!["chat.example.org".into(), "rooms.example.com".into()],
            max_occupants: 50,
            history_length: 5,
            max_history: 10,
            max_rooms_per_user: 0,
            room_queue: 16,
            occupant_rate: 0,
            occupant_burst: 5,
            room_rate: 50,
            room_burst: 60,
            archive: false,
        },
        http: HttpConfig {
            listen: vec![addr("0.0.0.0:8080"), addr("[::1]:5280")],
            tls_listen: vec![addr("0.0.0.0:8443")],
            public_url: Some("https://chat.example.org/xmpp".into()),
            metrics: false,
        },
        web: WebConfig {
            enabled: true,
            converse_url: "https://static.example.org/converse/dist".into(),
            converse_dir: Some("/srv/converse".into()),
        },
        external_services: ExternalServicesConfig {
            services: vec![
                ExternalService {
                    kind: ExternalServiceType::Stun,
                    host: "turn.example.org".into(),
                    port: 3478,
                    transport: ExternalTransport::Udp,
                    restricted: false,
                },
                ExternalService {
                    kind: ExternalServiceType::Turn,
                    host: "2001:db8::1".into(),
                    port: 3479,
                    transport: ExternalTransport::Tcp,
                    restricted: true,
                },
                ExternalService {
                    kind: ExternalServiceType::Turns,
                    host: "turn.example.org".into(),
                    port: 5349,
                    transport: ExternalTransport::Tcp,
                    restricted: true,
                },
            ],
            turn_secret: Some(Secret("sixteen chars at least".into())),
            credential_ttl: Duration::from_secs(3600),
        },
        upload: UploadConfig {
            enabled: false,
            domains: vec!["files.example.org".into()],
            max_file_size: 1000,
            quota_per_user: 5000,
            expire_after_days: 0,
        },
        acme: AcmeConfig::default(),
        s2s: starling_config::S2sConfig::default(),
    };
    let config = parse(text).unwrap();
    assert_eq!(config, expected);
    assert_eq!(
        config.database_path(),
        PathBuf::from("/srv/db/starling.sqlite")
    );
}

#[test]
fn missing_sections_and_keys_keep_defaults() {
    let config = parse("[c2s]\nrate = 99\n[auth]\n").unwrap();
    let mut expected = Config::default();
    expected.c2s.rate = 99;
    assert_eq!(config, expected);
}

#[test]
fn dotted_keys_and_inline_tables_work() {
    let config = parse("c2s.rate = 5\nhost = [{ domain = \"a.example\" }]\n").unwrap();
    assert_eq!(config.c2s.rate, 5);
    assert_eq!(config.hosts.len(), 1);
    assert_eq!(config.hosts[0].domain, "a.example");
}

#[test]
fn database_path_is_relative_to_data_dir() {
    let config = parse("data_dir = \"/data\"\n[storage]\npath = \"sub/x.db\"\n").unwrap();
    assert_eq!(config.database_path(), PathBuf::from("/data/sub/x.db"));
}

// ---------------------------------------------------------------------------------------------
// error reporting

#[test]
fn error_display_format() {
    let text = "\n\n[c2s]\nmax_stanza_size = 1000\n";
    let err = parse(text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "starling.toml:4: c2s.max_stanza_size: must be at least 10000"
    );
    let e = ConfigError {
        file: String::new(),
        key: "host[0].key".into(),
        line: None,
        message: "gone".into(),
    };
    assert_eq!(e.to_string(), "host[0].key: gone");
    let e = ConfigError {
        file: "f.toml".into(),
        key: String::new(),
        line: None,
        message: "unreadable".into(),
    };
    assert_eq!(e.to_string(), "f.toml: unreadable");
}

#[test]
fn unknown_keys_at_every_level() {
    let text = r#"bogus = 1
[log]
levle = "info"
[[host]]
domain = "a.example"
cert = "x"
[c2s]
listen_addr = []
[c2s.tls]
x = 1
[auth]
plain = true
[storage]
kind = "sqlite"
[extra]
"#;
    assert_eq!(
        keys(text),
        vec![
            kl("bogus", 1),
            kl("log.levle", 3),
            kl("host[0].cert", 6),
            kl("c2s.listen_addr", 8),
            kl("c2s.tls", 9),
            kl("auth.plain", 12),
            kl("storage.kind", 14),
            kl("extra", 15),
        ]
    );
    let (_, _, message) = one_error("[log]\nlevle = \"info\"\n");
    assert_eq!(message, "unknown key; expected one of: level");
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let text = r#"data_dir = 5
[log]
level = "loud"
[[host]]
domain = "bad domain"
[c2s]
listen = ["127.0.0.1:5222", "localhost:5222"]
max_stanza_size = 100
auth_timeout = 0
[auth]
scram_iterations = 1
[storage]
backend = "postgres"
"#;
    let errs = errors(text);
    let got: Vec<(String, Option<usize>)> = errs.iter().map(|(k, l, _)| (k.clone(), *l)).collect();
    assert_eq!(
        got,
        vec![
            kl("data_dir", 1),
            kl("log.level", 3),
            kl("host[0].domain", 5),
            kl("c2s.listen[1]", 7),
            kl("c2s.max_stanza_size", 8),
            kl("c2s.auth_timeout", 9),
            kl("auth.scram_iterations", 11),
            kl("storage.backend", 13),
        ]
    );
    let messages: Vec<&str> = errs.iter().map(|(_, _, m)| m.as_str()).collect();
    assert_eq!(messages[0], "expected a string, found integer");
    assert_eq!(
        messages[3],
        "\"localhost:5222\" is not a socket address (like \"127.0.0.1:5222\" or \"[::1]:5222\")"
    );
    assert_eq!(messages[5], "must be at least 1");
    assert_eq!(messages[6], "must be at least 4096");
    assert_eq!(
        messages[7],
        "unknown storage backend \"postgres\"; known: sqlite"
    );

    // Display lists them all, one per line.
    let shown = parse(text).unwrap_err().to_string();
    assert_eq!(shown.lines().count(), 8);
    assert_eq!(
        shown.lines().nth(4),
        Some("starling.toml:8: c2s.max_stanza_size: must be at least 10000")
    );
}

#[test]
fn syntax_errors_are_reported_with_lines() {
    let errs = errors("a = 1\nb = \n[c2s\n");
    assert!(errs.iter().all(|(k, _, _)| k.is_empty()), "{errs:?}");
    assert_eq!(errs[0].1, Some(2));
    assert_eq!(errs.last().map(|e| e.1), Some(Some(3)));
    let (k, l, _) = one_error("[c2s]\nrate = 1\nrate = 2\n");
    assert_eq!((k.as_str(), l), ("", Some(3)));
}

#[test]
fn type_errors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "data_dir = []",
            "data_dir",
            "expected a string, found array",
        ),
        ("log = 5", "log", "expected a table ([log]), found integer"),
        (
            "[log]\nlevel = true",
            "log.level",
            "expected a string, found boolean",
        ),
        (
            "[host]\ndomain = \"a.example\"",
            "host",
            "expected an array of tables ([[host]]), found table",
        ),
        (
            "host = [\"a.example\"]",
            "host[0]",
            "expected a table, found string",
        ),
        (
            "[[host]]\ndomain = 1",
            "host[0].domain",
            "expected a string, found integer",
        ),
        (
            "[[host]]\ndomain = \"a.example\"\ncertificate = 1\nkey = \"k\"",
            "host[0].certificate",
            "expected a string, found integer",
        ),
        (
            "[c2s]\nlisten = \"127.0.0.1:5222\"",
            "c2s.listen",
            "expected an array of socket addresses, found string",
        ),
        (
            "[c2s]\ndirect_tls_listen = [5223]",
            "c2s.direct_tls_listen[0]",
            "expected a string, found integer",
        ),
        (
            "[c2s]\nrequire_encryption = \"yes\"",
            "c2s.require_encryption",
            "expected a boolean (true or false), found string",
        ),
        (
            "[c2s]\nmax_stanza_size = \"256k\"",
            "c2s.max_stanza_size",
            "expected an integer, found string",
        ),
        (
            "[c2s]\nburst = 1.5",
            "c2s.burst",
            "expected an integer, found float",
        ),
        (
            "[c2s]\nauth_timeout = 1979-05-27",
            "c2s.auth_timeout",
            "expected an integer, found datetime",
        ),
        (
            "[auth]\nallow_plain = 1",
            "auth.allow_plain",
            "expected a boolean (true or false), found integer",
        ),
        (
            "[storage]\nbackend = {}",
            "storage.backend",
            "expected a string, found table",
        ),
        (
            "[storage]\npath = 1",
            "storage.path",
            "expected a string, found integer",
        ),
    ];
    for (text, key, message) in cases {
        let (k, _, m) = one_error(text);
        assert_eq!((k.as_str(), m.as_str()), (*key, *message), "for {text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// semantic checks

#[test]
fn host_domain_is_required_and_valid() {
    assert_eq!(
        one_error("\n[[host]]\ncertificate = \"c\"\nkey = \"k\"\n"),
        (
            "host[0].domain".into(),
            Some(2),
            "missing (required)".into()
        )
    );
    for bad in [
        "",
        "a b",
        "user@example.org",
        "example.org/res",
        "-x.example",
        "a..b",
    ] {
        let (k, l, _) = one_error(&format!("[[host]]\ndomain = {bad:?}\n"));
        assert_eq!((k.as_str(), l), ("host[0].domain", Some(2)), "for {bad:?}");
    }
    let (_, _, m) = one_error("[[host]]\ndomain = \"\"\n");
    assert_eq!(m, "must not be empty");
    for (good, normal) in [
        ("Example.ORG", "example.org"),
        ("localhost.", "localhost"),
        ("192.0.2.1", "192.0.2.1"),
        ("[2001:db8::1]", "[2001:db8::1]"),
        ("bücher.example", "bücher.example"),
    ] {
        let config = parse(&format!("[[host]]\ndomain = {good:?}\n")).unwrap();
        assert_eq!(config.hosts[0].domain, normal, "for {good:?}");
    }
}

/// `anonymous_federation` belongs to anonymous hosts only; both are booleans; the per-address
/// limit of anonymous logins has a ceiling.
#[test]
fn anonymous_hosts() {
    let c = parse(
        "[[host]]\ndomain = \"a.example\"\n[[host]]\ndomain = \"guest.example\"\nanonymous = true\n",
    )
    .unwrap();
    assert!(!c.hosts[0].anonymous && c.hosts[1].anonymous);
    assert!(!c.hosts[1].anonymous_federation);
    assert!(c.is_anonymous_host("guest.example"));
    assert!(!c.is_anonymous_host("a.example"));
    assert_eq!(c.auth.anonymous_logins_per_ip, 20);
    assert_eq!(
        one_error("[[host]]\ndomain = \"a.example\"\nanonymous_federation = true\n"),
        (
            "host[0].anonymous_federation".to_owned(),
            Some(3),
            "only an anonymous host (anonymous = true) has it".to_owned()
        )
    );
    assert_eq!(
        one_error("[[host]]\ndomain = \"a.example\"\nanonymous = \"yes\"\n"),
        (
            "host[0].anonymous".to_owned(),
            Some(3),
            "expected a boolean (true or false), found string".to_owned()
        )
    );
    assert_eq!(
        one_error("[auth]\nscram_hashes = [\"SHA-1\", \"MD5\"]\n"),
        (
            "auth.scram_hashes[1]".to_owned(),
            Some(2),
            "unknown hash \"MD5\"; known: SHA-512, SHA-256, SHA-1".to_owned()
        )
    );
    assert_eq!(
        one_error("[auth]\nscram_hashes = []\n"),
        (
            "auth.scram_hashes".to_owned(),
            Some(2),
            "at least one hash is needed".to_owned()
        )
    );
    assert_eq!(
        one_error("[auth]\nanonymous_logins_per_ip = 1000001\n"),
        (
            "auth.anonymous_logins_per_ip".to_owned(),
            Some(2),
            "must be at most 1000000".to_owned()
        )
    );
}

#[test]
fn duplicate_domains_case_insensitive() {
    let text = "[[host]]\ndomain = \"example.org\"\n[[host]]\ndomain = \"EXAMPLE.org\"\n";
    assert_eq!(
        one_error(text),
        (
            "host[1].domain".into(),
            Some(4),
            "duplicate domain \"example.org\" (also host[0].domain)".into()
        )
    );
}

#[test]
fn no_hosts_is_an_error() {
    let (k, l, m) = one_error("host = []\n");
    assert_eq!(
        (k.as_str(), l, m.as_str()),
        ("host", Some(1), "at least one [[host]] is required")
    );
}

#[test]
fn certificate_and_key_together() {
    let text = "[[host]]\ndomain = \"a.example\"\ncertificate = \"c.pem\"\n\
                [[host]]\ndomain = \"b.example\"\nkey = \"k.pem\"\n";
    let errs = errors(text);
    assert_eq!(
        errs,
        vec![
            (
                "host[0].key".into(),
                Some(3),
                "missing: certificate and key must be set together".into()
            ),
            (
                "host[1].certificate".into(),
                Some(6),
                "missing: certificate and key must be set together".into()
            ),
        ]
    );
    let (k, _, m) =
        one_error("[[host]]\ndomain = \"a.example\"\ncertificate = \"\"\nkey = \"k\"\n");
    assert_eq!(
        (k.as_str(), m.as_str()),
        ("host[0].certificate", "must not be empty")
    );
}

#[test]
fn listen_entries_are_named() {
    let text = "[c2s]\nlisten = [\"127.0.0.1:5222\",\n  \"127.0.0.1\",\n  \"[::1]:5222\"]\n";
    let (k, l, _) = one_error(text);
    assert_eq!((k.as_str(), l), ("c2s.listen[1]", Some(3)));
}

#[test]
fn duplicate_addresses_across_lists() {
    let text = "[c2s]\nlisten = [\"127.0.0.1:5222\"]\ndirect_tls_listen = [\"127.0.0.1:5222\"]\n";
    assert_eq!(
        one_error(text),
        (
            "c2s.direct_tls_listen[0]".into(),
            Some(3),
            "address 127.0.0.1:5222 is also used by c2s.listen[0]".into()
        )
    );
    let text = "[c2s]\nlisten = [\"[::1]:5222\", \"[::1]:5222\"]\n";
    let (k, _, _) = one_error(text);
    assert_eq!(k, "c2s.listen[1]");
}

#[test]
fn unspecified_address_conflicts_with_same_port() {
    let text = "[c2s]\nlisten = [\"0.0.0.0:5222\", \"192.0.2.7:5222\"]\ndirect_tls_listen = []\n";
    assert_eq!(
        one_error(text),
        (
            "c2s.listen[1]".into(),
            Some(2),
            "address 192.0.2.7:5222 conflicts with 0.0.0.0:5222 (c2s.listen[0])".into()
        )
    );
    // Different families, different ports and port 0 do not conflict.
    let ok = "[c2s]\nlisten = [\"0.0.0.0:5222\", \"[::]:5222\", \"127.0.0.1:0\"]\n\
              direct_tls_listen = [\"0.0.0.0:5223\", \"127.0.0.1:0\"]\n";
    let config = parse(ok).unwrap();
    assert_eq!(config.c2s.listen.len(), 3);
    assert_eq!(config.c2s.direct_tls_listen.len(), 2);
}

#[test]
fn at_least_one_listener() {
    let text = "[c2s]\nlisten = []\ndirect_tls_listen = []\n";
    assert_eq!(
        one_error(text),
        (
            "c2s.listen".into(),
            Some(2),
            "no listeners: c2s.listen and c2s.direct_tls_listen are both empty".into()
        )
    );
    let config = parse("[c2s]\nlisten = []\n").unwrap();
    assert!(config.c2s.listen.is_empty());
    assert_eq!(config.c2s.direct_tls_listen, vec![addr("127.0.0.1:5223")]);
}

#[test]
fn size_limits() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "max_stanza_size = 9999",
            "c2s.max_stanza_size",
            "must be at least 10000",
        ),
        (
            "max_stanza_size = -1",
            "c2s.max_stanza_size",
            "must be at least 10000",
        ),
        (
            "preauth_max_stanza_size = 511",
            "c2s.preauth_max_stanza_size",
            "must be at least 512",
        ),
        (
            "preauth_max_stanza_size = 300000",
            "c2s.preauth_max_stanza_size",
            "must not exceed c2s.max_stanza_size (262144)",
        ),
        (
            "max_stanza_size = 10000\npreauth_max_stanza_size = 10001",
            "c2s.preauth_max_stanza_size",
            "must not exceed c2s.max_stanza_size (10000)",
        ),
        (
            "preauth_max_elements = 0",
            "c2s.preauth_max_elements",
            "must be at least 1",
        ),
        ("auth_timeout = 0", "c2s.auth_timeout", "must be at least 1"),
        ("burst = 0", "c2s.burst", "must be at least 1"),
        ("rate = -5", "c2s.rate", "must be at least 0"),
        (
            "keepalive_interval = -1",
            "c2s.keepalive_interval",
            "must be at least 0",
        ),
        (
            "rate = 9223372036854775807\nburst = 3",
            "c2s.burst",
            "rate × burst does not fit in 64 bits",
        ),
    ];
    for (body, key, message) in cases {
        let (k, l, m) = one_error(&format!("[c2s]\n{body}\n"));
        assert_eq!((k.as_str(), m.as_str()), (*key, *message), "for {body:?}");
        assert!(l.is_some(), "for {body:?}");
    }
    // Larger than i64: a TOML parse error, not a panic.
    let errs = errors("[c2s]\nrate = 99999999999999999999\n");
    assert_eq!(errs[0].1, Some(2));
}

#[test]
fn scram_iterations_bounds() {
    assert_eq!(
        one_error("[auth]\nscram_iterations = 4095\n"),
        (
            "auth.scram_iterations".into(),
            Some(2),
            "must be at least 4096".into()
        )
    );
    let (_, _, m) = one_error("[auth]\nscram_iterations = 4294967296\n");
    assert_eq!(m, "must be at most 4294967295");
    let config = parse("[auth]\nscram_iterations = 4294967295\n").unwrap();
    assert_eq!(config.auth.scram_iterations, u32::MAX);
}

#[test]
fn throttle_bounds() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "failures_before_delay = -1",
            "auth.failures_before_delay",
            "must be at least 0",
        ),
        (
            "failures_before_delay = 1000001",
            "auth.failures_before_delay",
            "must be at most 1000000",
        ),
        (
            "account_lock_after = 1000001",
            "auth.account_lock_after",
            "must be at most 1000000",
        ),
        (
            "ip_lock_after = -3",
            "auth.ip_lock_after",
            "must be at least 0",
        ),
        ("max_delay = -1", "auth.max_delay", "must be at least 0"),
        (
            "max_delay = 604801",
            "auth.max_delay",
            "must be at most 604800",
        ),
        ("lock_window = 0", "auth.lock_window", "must be at least 1"),
        (
            "lock_duration = 0",
            "auth.lock_duration",
            "must be at least 1",
        ),
        (
            "lock_duration = 604801",
            "auth.lock_duration",
            "must be at most 604800",
        ),
        (
            "fast_token_lifetime = 31536001",
            "auth.fast_token_lifetime",
            "must be at most 31536000",
        ),
        (
            "ip_lock_after = \"20\"",
            "auth.ip_lock_after",
            "expected an integer, found string",
        ),
        (
            "lock_window = 1.5",
            "auth.lock_window",
            "expected an integer, found float",
        ),
    ];
    for (body, key, message) in cases {
        let (k, l, m) = one_error(&format!("[auth]\n{body}\n"));
        assert_eq!((k.as_str(), m.as_str()), (*key, *message), "for {body:?}");
        assert_eq!(l, Some(2), "for {body:?}");
    }
    // Zero switches delays and locks off; the extremes are accepted.
    let config = parse(
        "[auth]\nmax_delay = 0\naccount_lock_after = 0\nip_lock_after = 1000000\n\
         failures_before_delay = 1000000\nlock_window = 604800\nlock_duration = 1\n",
    )
    .unwrap();
    assert_eq!(config.auth.max_delay, Duration::ZERO);
    assert_eq!(config.auth.account_lock_after, 0);
    assert_eq!(config.auth.ip_lock_after, 1_000_000);
    assert_eq!(config.auth.failures_before_delay, 1_000_000);
    assert_eq!(config.auth.lock_window, Duration::from_secs(604_800));
    assert_eq!(config.auth.lock_duration, Duration::from_secs(1));
}

#[test]
fn max_delay_must_stay_below_the_auth_timeout() {
    // A failure held back past the deadline would end the stream instead of being answered.
    assert_eq!(
        one_error("[c2s]\nauth_timeout = 10\n[auth]\nmax_delay = 10\n"),
        (
            "auth.max_delay".into(),
            Some(4),
            "must be less than c2s.auth_timeout (10 s)".into()
        )
    );
    assert_eq!(
        one_error("[auth]\nmax_delay = 60\n"),
        (
            "auth.max_delay".into(),
            Some(2),
            "must be less than c2s.auth_timeout (60 s)".into()
        )
    );
    // Only the timeout written: the error points at it (max_delay is the default 10).
    assert_eq!(
        one_error("[c2s]\nauth_timeout = 5\n"),
        (
            "auth.max_delay".into(),
            Some(2),
            "must be less than c2s.auth_timeout (5 s)".into()
        )
    );
    assert!(parse("[c2s]\nauth_timeout = 11\n[auth]\nmax_delay = 10\n").is_ok());
    assert!(parse("[c2s]\nauth_timeout = 1\n[auth]\nmax_delay = 0\n").is_ok());
    // Not checked against a timeout that was itself wrong.
    let (k, _, _) = one_error("[c2s]\nauth_timeout = 0\n");
    assert_eq!(k, "c2s.auth_timeout");
}

#[test]
fn keepalive_zero_disables() {
    let config = parse("[c2s]\nkeepalive_interval = 0\n").unwrap();
    assert_eq!(config.c2s.keepalive_interval, None);
    let config = parse("[c2s]\nkeepalive_interval = 45\n").unwrap();
    assert_eq!(config.c2s.keepalive_interval, Some(Duration::from_secs(45)));
}

#[test]
fn log_level_filters() {
    for good in [
        "error",
        "WARN",
        "info",
        "debug",
        "trace",
        "off",
        "starling=debug",
        "info,starling_c2s=trace,sqlx::query=warn",
        "info,",
    ] {
        let config = parse(&format!("[log]\nlevel = {good:?}\n")).unwrap();
        assert_eq!(config.log.level, good);
    }
    for bad in [
        "",
        ",",
        "verbose",
        "starling=",
        "=debug",
        "starling=loud",
        "a b=info",
        "[span]=info",
    ] {
        let (k, l, _) = one_error(&format!("[log]\nlevel = {bad:?}\n"));
        assert_eq!((k.as_str(), l), ("log.level", Some(2)), "for {bad:?}");
    }
    let (_, _, m) = one_error("[log]\nlevel = \"info,verbose\"\n");
    assert_eq!(
        m,
        "invalid directive \"verbose\": expected a level (off, error, warn, info, debug, trace) or target=level"
    );
}

#[test]
fn storage_checks() {
    assert_eq!(
        one_error("[storage]\nbackend = \"SQLite\"\n"),
        (
            "storage.backend".into(),
            Some(2),
            "unknown storage backend \"SQLite\"; known: sqlite".into()
        )
    );
    let (k, _, m) = one_error("[storage]\npath = \"\"\n");
    assert_eq!(
        (k.as_str(), m.as_str()),
        ("storage.path", "must not be empty")
    );
    let (k, _, m) = one_error("data_dir = \"\"\n");
    assert_eq!((k.as_str(), m.as_str()), ("data_dir", "must not be empty"));
}

/// `[push]`: defaults (body off, sender on) and the bounds of every number.
#[test]
fn push_defaults_and_bounds() {
    let c = Config::default();
    assert!(c.push.enabled && !c.push.include_body && c.push.include_sender);
    assert_eq!(c.push.min_interval, Duration::from_secs(2));
    assert_eq!(c.push.timeout, Duration::from_secs(30));
    assert_eq!(c.push.max_registrations, 10);
    let config =
        parse("[push]\nmin_interval = 3600\ntimeout = 300\nmax_registrations = 100\n").unwrap();
    assert_eq!(config.push.min_interval, Duration::from_secs(3600));
    assert_eq!(config.push.timeout, Duration::from_secs(300));
    assert_eq!(config.push.max_registrations, 100);
    for (text, key, message) in [
        (
            "min_interval = 3601",
            "push.min_interval",
            "must be at most 3600",
        ),
        ("timeout = 0", "push.timeout", "must be at least 1"),
        ("timeout = 301", "push.timeout", "must be at most 300"),
        (
            "max_registrations = 0",
            "push.max_registrations",
            "must be at least 1",
        ),
        (
            "max_registrations = 101",
            "push.max_registrations",
            "must be at most 100",
        ),
        (
            "include_body = \"yes\"",
            "push.include_body",
            "expected a boolean (true or false), found string",
        ),
    ] {
        assert_eq!(
            one_error(&format!("[push]\n{text}\n")),
            (key.into(), Some(2), message.into()),
            "{text}"
        );
    }
}

/// `[pubsub]`: the service at `pubsub.<host>` runs by default; the bounds of every number.
#[test]
fn pubsub_defaults_and_bounds() {
    let c = Config::default();
    assert_eq!(
        c.pubsub,
        PubsubConfig {
            enabled: true,
            max_nodes: 10_000,
            max_items: 1000,
            max_item_size: 262_144,
        }
    );
    let config = parse(
        "[pubsub]\nenabled = false\nmax_nodes = 1000000\nmax_items = 1\nmax_item_size = 1024\n",
    )
    .unwrap();
    assert!(!config.pubsub.enabled);
    assert_eq!(config.pubsub.max_nodes, 1_000_000);
    assert_eq!(config.pubsub.max_items, 1);
    assert_eq!(config.pubsub.max_item_size, 1024);
    for (text, key, message) in [
        ("max_nodes = 0", "pubsub.max_nodes", "must be at least 1"),
        (
            "max_nodes = 1000001",
            "pubsub.max_nodes",
            "must be at most 1000000",
        ),
        ("max_items = 0", "pubsub.max_items", "must be at least 1"),
        (
            "max_item_size = 1023",
            "pubsub.max_item_size",
            "must be at least 1024",
        ),
        (
            "max_item_size = 16777217",
            "pubsub.max_item_size",
            "must be at most 16777216",
        ),
        (
            "enabled = 1",
            "pubsub.enabled",
            "expected a boolean (true or false), found integer",
        ),
    ] {
        assert_eq!(
            one_error(&format!("[pubsub]\n{text}\n")),
            (key.into(), Some(2), message.into()),
            "{text}"
        );
    }
}

/// `[muc]`: the service runs at `conference.<host>` of every host that is not anonymous by
/// default; its domains are normalised and may be neither a host nor a component's; the bounds
/// of every number.
#[test]
fn muc_defaults_domains_and_bounds() {
    let c = parse(
        "[[host]]\ndomain = \"example.org\"\n[[host]]\ndomain = \"guest.example.org\"\nanonymous = true\n",
    )
    .unwrap();
    assert_eq!(c.muc, MucConfig::default());
    assert!(c.muc.enabled && c.muc.domains.is_empty());
    assert_eq!(c.muc.service_domains(&c.hosts), ["conference.example.org"]);
    assert_eq!(
        one_error("[[host]]\ndomain = \"example.org\"\n[muc]\ndomains = [\"example.org\"]\n"),
        (
            "muc.domains[0]".into(),
            Some(4),
            "is a virtual host ([[host]]), not a service domain".into()
        )
    );
    for (text, key, message) in [
        (
            "max_occupants = 0",
            "muc.max_occupants",
            "must be at least 1",
        ),
        (
            "max_occupants = 100001",
            "muc.max_occupants",
            "must be at most 100000",
        ),
        ("room_queue = 15", "muc.room_queue", "must be at least 16"),
        (
            "occupant_burst = 0",
            "muc.occupant_burst",
            "must be at least 1",
        ),
        (
            "history_length = 101",
            "muc.history_length",
            "must not exceed muc.max_history (100)",
        ),
        (
            "domains = [\"a..b\"]",
            "muc.domains[0]",
            "\"a..b\" is not a valid XMPP domain: ",
        ),
        (
            "domains = \"conference.example.org\"",
            "muc.domains",
            "expected an array of domains, found string",
        ),
    ] {
        let (k, line, m) = one_error(&format!("[muc]\n{text}\n"));
        assert_eq!((k.as_str(), line), (key, Some(2)), "{text}");
        assert!(m.starts_with(message), "{text}: {m}");
    }
}

/// `[upload]`: the service runs at `upload.<host>` of every host that is not anonymous by
/// default, only with an HTTP listener; its domains are normalised and may be neither a host,
/// a component's nor the conference service's; the bounds of every number.
#[test]
fn upload_defaults_domains_and_bounds() {
    let c = parse(
        "[[host]]\ndomain = \"example.org\"\n[[host]]\ndomain = \"guest.example.org\"\nanonymous = true\n",
    )
    .unwrap();
    assert_eq!(c.upload, UploadConfig::default());
    assert_eq!(c.upload.max_file_size, 104_857_600);
    assert_eq!(c.upload.quota_per_user, 1_073_741_824);
    assert_eq!(c.upload.expire_after_days, 30);
    assert_eq!(c.upload.service_domains(&c.hosts), ["upload.example.org"]);
    assert!(c.upload.active(&c.http));
    let c = parse("[http]\nlisten = []\n").unwrap();
    assert!(c.upload.enabled && !c.upload.active(&c.http));
    let c = parse("[upload]\ndomains = [\"Up.Example.org\", \"files.example.net\"]\n").unwrap();
    assert_eq!(
        c.upload.service_domains(&c.hosts),
        ["up.example.org", "files.example.net"]
    );
    assert_eq!(
        one_error("[[host]]\ndomain = \"example.org\"\n[upload]\ndomains = [\"example.org\"]\n"),
        (
            "upload.domains[0]".into(),
            Some(4),
            "is a virtual host ([[host]]), not a service domain".into()
        )
    );
    assert_eq!(
        one_error(
            "[[host]]\ndomain = \"example.org\"\n[upload]\ndomains = [\"conference.example.org\"]\n"
        ),
        (
            "upload.domains[0]".into(),
            Some(4),
            "is a multi-user chat service's domain ([muc])".into()
        )
    );
    for (text, key, message) in [
        (
            "max_file_size = 0",
            "upload.max_file_size",
            "must be at least 1",
        ),
        (
            "max_file_size = 1099511627777",
            "upload.max_file_size",
            "must be at most 1099511627776",
        ),
        (
            "quota_per_user = 1000",
            "upload.quota_per_user",
            "must be at least upload.max_file_size (104857600)",
        ),
        (
            "expire_after_days = 36501",
            "upload.expire_after_days",
            "must be at most 36500",
        ),
        ("enabled = 1", "upload.enabled", "expected a boolean"),
        (
            "domains = [\"a.example\", \"A.example\"]",
            "upload.domains[1]",
            "a.example is listed twice",
        ),
        (
            "domains = \"upload.example.org\"",
            "upload.domains",
            "expected an array of domains, found string",
        ),
    ] {
        let (k, line, m) = one_error(&format!("[upload]\n{text}\n"));
        assert_eq!((k.as_str(), line), (key, Some(2)), "{text}");
        assert!(m.starts_with(message), "{text}: {m}");
    }
}

#[test]
fn offline_max_messages_bounds() {
    let config = parse("[offline]\nmax_messages = 0\n").unwrap();
    assert_eq!(config.offline.max_messages, 0);
    let config = parse("[offline]\nmax_messages = 100000\n").unwrap();
    assert_eq!(config.offline.max_messages, 100_000);
    assert_eq!(
        one_error("[offline]\nmax_messages = 100001\n"),
        (
            "offline.max_messages".into(),
            Some(2),
            "must be at most 100000".into()
        )
    );
    assert_eq!(
        one_error("\n[offline]\nmax_messages = -1\n"),
        (
            "offline.max_messages".into(),
            Some(3),
            "must be at least 0".into()
        )
    );
    assert_eq!(
        one_error("[offline]\nmax_messages = \"10\"\n"),
        (
            "offline.max_messages".into(),
            Some(2),
            "expected an integer, found string".into()
        )
    );
    assert_eq!(
        one_error("[offline]\nmax_message = 10\n"),
        (
            "offline.max_message".into(),
            Some(2),
            "unknown key; expected one of: max_messages".into()
        )
    );
    assert_eq!(
        one_error("offline = 5\n"),
        (
            "offline".into(),
            Some(1),
            "expected a table ([offline]), found integer".into()
        )
    );
}

#[test]
fn roster_limits_bounds() {
    let config = parse("[roster]\nmax_items = 1\nmax_pending_requests = 1\n").unwrap();
    assert_eq!(config.roster.max_items, 1);
    assert_eq!(config.roster.max_pending_requests, 1);
    let config = parse("[roster]\nmax_items = 100000\nmax_pending_requests = 10000\n").unwrap();
    assert_eq!(config.roster.max_items, 100_000);
    assert_eq!(config.roster.max_pending_requests, 10_000);
    assert_eq!(
        errors("[roster]\nmax_items = 0\nmax_pending_requests = 0\n"),
        vec![
            (
                "roster.max_items".into(),
                Some(2),
                "must be at least 1".into()
            ),
            (
                "roster.max_pending_requests".into(),
                Some(3),
                "must be at least 1".into()
            ),
        ]
    );
    assert_eq!(
        one_error("[roster]\nmax_items = 100001\n"),
        (
            "roster.max_items".into(),
            Some(2),
            "must be at most 100000".into()
        )
    );
    assert_eq!(
        one_error("\n[roster]\nmax_pending_requests = 10001\n"),
        (
            "roster.max_pending_requests".into(),
            Some(3),
            "must be at most 10000".into()
        )
    );
    assert_eq!(
        one_error("[roster]\nmax_items = 1.5\n"),
        (
            "roster.max_items".into(),
            Some(2),
            "expected an integer, found float".into()
        )
    );
    assert_eq!(
        one_error("[roster]\nmax_contacts = 10\n"),
        (
            "roster.max_contacts".into(),
            Some(2),
            "unknown key; expected one of: max_items, max_pending_requests".into()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// files

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "starling-config-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn load_reads_a_file_and_reports_unreadable_ones() {
    let dir = TempDir::new("load");
    let file = dir.path().join("starling.toml");
    std::fs::write(&file, "[c2s]\nrate = 7\n").unwrap();
    assert_eq!(Config::load(&file).unwrap().c2s.rate, 7);

    std::fs::write(&file, "[c2s]\nrate = \"7\"\n").unwrap();
    let err = Config::load(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2: c2s.rate: expected an integer, found string",
            file.display()
        )
    );

    let missing = dir.path().join("missing.toml");
    let ConfigErrors(errs) = Config::load(&missing).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, "");
    assert_eq!(errs[0].line, None);
    assert_eq!(errs[0].file, missing.display().to_string());
    assert!(
        errs[0]
            .message
            .starts_with("cannot read configuration file: "),
        "{}",
        errs[0].message
    );
}

#[test]
fn check_files_reads_the_acme_ca_file() {
    let dir = TempDir::new("acme-ca");
    let not_pem = dir.path().join("junk.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let mut config = Config::default();
    config.acme.ca_file = Some(not_pem.clone());
    // Only when ACME is on.
    assert_eq!(config.check_files(), vec![]);
    config.acme.enabled = true;
    let errors = config.check_files();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "acme.ca_file");
    std::fs::write(
        &not_pem,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert_eq!(config.check_files(), vec![]);
}

#[test]
fn check_files_finds_missing_and_non_pem_files() {
    let dir = TempDir::new("files");
    let cert = dir.path().join("fullchain.pem");
    let key = dir.path().join("privkey.pem");
    std::fs::write(
        &cert,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(
        &key,
        "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let not_pem = dir.path().join("junk.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let missing = dir.path().join("missing.pem");

    let host = |domain: &str, c: &Path, k: &Path| HostConfig {
        domain: domain.into(),
        certificate: Some(c.to_path_buf()),
        key: Some(k.to_path_buf()),
        ..Default::default()
    };
    let mut config = Config::default();
    config.hosts.push(host("a.example", &cert, &key));
    assert_eq!(config.check_files(), vec![]);

    config.hosts.push(host("b.example", &missing, &not_pem));
    config.hosts.push(host("c.example", &not_pem, &cert));
    config.hosts.push(host("d.example", dir.path(), &key));
    let found: Vec<(String, String)> = config
        .check_files()
        .into_iter()
        .map(|e| {
            assert_eq!((e.file.as_str(), e.line), ("", None));
            (e.key, e.message)
        })
        .collect();
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "host[2].certificate",
            "host[2].key",
            "host[3].certificate",
            "host[3].key",
            "host[4].certificate"
        ]
    );
    assert!(
        found[0]
            .1
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{}",
        found[0].1
    );
    assert_eq!(
        found[1].1,
        format!("{} contains no PEM private key", not_pem.display())
    );
    assert_eq!(
        found[2].1,
        format!("{} contains no PEM certificate", not_pem.display())
    );
    assert_eq!(
        found[3].1,
        format!("{} contains no PEM private key", cert.display())
    );
    assert!(found[4].1.starts_with("cannot read "), "{}", found[4].1);
}

#[test]
fn cross_checks_skip_fields_already_reported() {
    // listen[0] is bad, so the default listen list must not be compared with direct_tls_listen.
    let text = "[c2s]\nlisten = [\"bad\"]\ndirect_tls_listen = [\"127.0.0.1:5222\"]\n";
    let (k, _, _) = one_error(text);
    assert_eq!(k, "c2s.listen[0]");
    let text = "[c2s]\nmax_stanza_size = 5\npreauth_max_stanza_size = 300000\n";
    let (k, _, _) = one_error(text);
    assert_eq!(k, "c2s.max_stanza_size");
}

#[test]
fn duplicate_ip_literal_domains_differing_in_case() {
    let text = "[[host]]\ndomain = \"[2001:DB8::1]\"\n[[host]]\ndomain = \"[2001:db8::1]\"\n";
    let (k, l, _) = one_error(text);
    assert_eq!((k.as_str(), l), ("host[1].domain", Some(4)));
}

/// `[components]`: a secret too short, a domain that is a virtual host, and listeners without
/// any secret are errors, each with its key.
#[test]
fn component_settings_are_checked() {
    let errors = parse(
        r#"
[components]
listen = ["127.0.0.1:5347"]

[components.secrets]
"gw.localhost" = "short"
"localhost" = "sixteen chars at least"
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains(
            "components.secrets.gw.localhost: a component secret must be at least 16 characters"
        ),
        "{errors}"
    );
    assert!(
        errors.contains(
            "components.secrets.localhost: is a virtual host ([[host]]), not a component domain"
        ),
        "{errors}"
    );
    let errors = parse("[components]\nlisten = [\"127.0.0.1:5347\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("components.listen: no component can connect"),
        "{errors}"
    );
    // Secrets never show in debug output.
    let config =
        parse("[components.secrets]\n\"gw.localhost\" = \"a long shared secret\"\n").unwrap();
    assert!(!format!("{config:?}").contains("a long shared secret"));
}

// ---------------------------------------------------------------------------------------------
// admins

#[test]
fn admins_are_normalised_bare_jids_at_a_host() {
    let c = parse("admins = [\"Admin@LOCALHOST\", \"root@localhost\"]\n").unwrap();
    assert_eq!(c.admins, vec!["admin@localhost", "root@localhost"]);
    assert_eq!(Config::default().admins, Vec::<String>::new());
}

#[test]
fn bad_admins_are_reported_with_their_line() {
    let text = "admins = [\n  \"localhost\",\n  \"a@localhost/res\",\n  \"b@elsewhere.org\",\n  \"c@localhost\",\n  \"C@localhost\",\n  3,\n]\n";
    assert_eq!(
        errors(text),
        vec![
            (
                "admins[0]".to_owned(),
                Some(2),
                "\"localhost\" is not an account's bare JID (like \"admin@example.org\")"
                    .to_owned()
            ),
            (
                "admins[1]".to_owned(),
                Some(3),
                "\"a@localhost/res\" is not an account's bare JID (like \"admin@example.org\")"
                    .to_owned()
            ),
            (
                "admins[4]".to_owned(),
                Some(6),
                "c@localhost is listed twice".to_owned()
            ),
            (
                "admins[5]".to_owned(),
                Some(7),
                "expected a string, found integer".to_owned()
            ),
        ]
    );
    // A valid list with an admin at no host: the cross-check names it.
    assert_eq!(
        errors("admins = [\"b@elsewhere.org\"]\n"),
        vec![(
            "admins[0]".to_owned(),
            Some(1),
            "b@elsewhere.org is not at one of the hosts ([[host]] domains)".to_owned()
        )]
    );
    assert_eq!(
        one_error("admins = \"a@localhost\"\n").2,
        "expected an array of JIDs (\"user@domain\"), found string"
    );
}

// ---------------------------------------------------------------------------------------------
// [http]

#[test]
fn http_listen_is_a_list_of_addresses() {
    let config = parse("[http]\nlisten = [\"127.0.0.1:0\", \"[::1]:8080\"]\n").unwrap();
    assert_eq!(
        config.http.listen,
        vec![addr("127.0.0.1:0"), addr("[::1]:8080")]
    );
    // Empty disables the listener, and that is no error (c2s still listens).
    let config = parse("[http]\nlisten = []\n").unwrap();
    assert!(config.http.listen.is_empty());
}

#[test]
fn http_errors_name_key_and_line() {
    assert_eq!(
        one_error("[http]\nlisten = [\"127.0.0.1:5280\",\n  \"localhost\"]\n"),
        (
            "http.listen[1]".into(),
            Some(3),
            "\"localhost\" is not a socket address (like \"127.0.0.1:5222\" or \"[::1]:5222\")"
                .into()
        )
    );
    assert_eq!(
        one_error("[http]\nlisten = \"127.0.0.1:5280\"\n"),
        (
            "http.listen".into(),
            Some(2),
            "expected an array of socket addresses, found string".into()
        )
    );
    assert_eq!(
        one_error("# web\n[http]\nlisten = []\nport = 80\n"),
        (
            "http.port".into(),
            Some(4),
            "unknown key; expected one of: listen, tls_listen, public_url, metrics".into()
        )
    );
}

#[test]
fn http_public_url_is_a_base_url() {
    let config = parse("[http]\npublic_url = \"http://[::1]:8080\"\n").unwrap();
    assert_eq!(config.http.base_url().as_deref(), Some("http://[::1]:8080"));
    assert_eq!(
        parse("").unwrap().http.base_url().as_deref(),
        Some("http://127.0.0.1:5280")
    );
    assert_eq!(
        one_error("[http]\npublic_url = \"chat.example.org\"\n"),
        (
            "http.public_url".into(),
            Some(2),
            "must start with http:// or https://".into()
        )
    );
    assert_eq!(
        one_error("[http]\npublic_url = \"https://chat.example.org/?a=b\"\n").2,
        "must be a plain base URL (no query, fragment, user or spaces)"
    );
    assert_eq!(
        one_error("[http]\npublic_url = \"https:///x\"\n").2,
        "must name a host"
    );
}

#[test]
fn http_metrics_is_on_by_default_and_can_be_turned_off() {
    assert!(parse("").unwrap().http.metrics);
    assert!(parse("[http]\nmetrics = true\n").unwrap().http.metrics);
    let config = parse("[http]\nmetrics = false\n").unwrap();
    assert!(!config.http.metrics);
    // The listener itself stays (health probes do not depend on metrics).
    assert_eq!(config.http.listen, vec![addr("127.0.0.1:5280")]);
    assert_eq!(
        one_error("[http]\nmetrics = \"yes\"\n"),
        (
            "http.metrics".into(),
            Some(2),
            "expected a boolean (true or false), found string".into()
        )
    );
}

#[test]
fn http_address_conflicts_with_c2s() {
    assert_eq!(
        one_error("[c2s]\nlisten = [\"127.0.0.1:5222\"]\n[http]\nlisten = [\"0.0.0.0:5222\"]\n"),
        (
            "http.listen[0]".into(),
            Some(4),
            "address 0.0.0.0:5222 conflicts with 127.0.0.1:5222 (c2s.listen[0])".into()
        )
    );
    assert_eq!(
        one_error("[http]\nlisten = [\"127.0.0.1:5280\"]\ntls_listen = [\"0.0.0.0:5280\"]\n"),
        (
            "http.tls_listen[0]".into(),
            Some(3),
            "address 0.0.0.0:5280 conflicts with 127.0.0.1:5280 (http.listen[0])".into()
        )
    );
    let (k, _, m) = one_error("[http]\nlisten = [\"127.0.0.1:5280\", \"127.0.0.1:5280\"]\n");
    assert_eq!(k, "http.listen[1]");
    assert_eq!(m, "address 127.0.0.1:5280 is also used by http.listen[0]");
}

// ---------------------------------------------------------------------------------------------
// [web]

#[test]
fn web_defaults_to_off_and_the_pinned_cdn() {
    let web = parse("").unwrap().web;
    assert!(!web.enabled);
    assert_eq!(
        web.converse_url,
        format!(
            "https://cdn.conversejs.org/{}/dist",
            starling_config::CONVERSE_VERSION
        )
    );
    assert_eq!(web.converse_dir, None);
}

#[test]
fn web_errors_name_key_and_line() {
    assert_eq!(
        one_error("[web]\nenabled = \"yes\"\n"),
        (
            "web.enabled".into(),
            Some(2),
            "expected a boolean (true or false), found string".into()
        )
    );
    assert_eq!(
        one_error("[web]\n\nconverse_url = \"cdn.conversejs.org\"\n"),
        (
            "web.converse_url".into(),
            Some(3),
            "must start with http:// or https://".into()
        )
    );
    // Nothing that could leave the HTML attribute or the CSP source it is written into.
    for bad in [
        "https://cdn.example.org/x';script-src *",
        "https://cdn.example.org/\\\"><script>",
        "https://cdn.example.org/a,b",
    ] {
        let text = format!("[web]\nconverse_url = '{}'\n", bad.replace('\'', ""));
        let (key, line, _) = one_error(&text);
        assert_eq!((key.as_str(), line), ("web.converse_url", Some(2)), "{bad}");
    }
    assert_eq!(
        one_error("[web]\nconverse_dir = \"\"\n"),
        (
            "web.converse_dir".into(),
            Some(2),
            "must not be empty".into()
        )
    );
    assert_eq!(one_error("[web]\nconverse = 1\n").0, "web.converse");
}

// ---------------------------------------------------------------------------------------------
// [external_services]

#[test]
fn external_services_default_to_none() {
    let config = parse("").unwrap().external_services;
    assert!(config.services.is_empty());
    assert_eq!(config.turn_secret, None);
    assert_eq!(config.credential_ttl, Duration::from_secs(86_400));
}

#[test]
fn external_services_errors_name_key_and_line() {
    let text = "[external_services]\nservices = [\n  { type = \"turn\", host = \"t.example\", restricted = true },\n]\n";
    assert_eq!(
        one_error(text),
        (
            "external_services.services[0].restricted".into(),
            Some(3),
            "a restricted service needs external_services.turn_secret for its credentials".into()
        )
    );
    let text = "[external_services]\nservices = [\n  { host = \"t.example\" },\n]\n";
    assert_eq!(
        one_error(text),
        (
            "external_services.services[0].type".into(),
            Some(3),
            "missing (required)".into()
        )
    );
    let text = "[external_services]\nservices = [\n  { type = \"stun\" },\n  { type = \"ftp\", host = \"x\" },\n]\n";
    assert_eq!(
        errors(text),
        vec![
            (
                "external_services.services[0].host".into(),
                Some(3),
                "missing (required)".into()
            ),
            (
                "external_services.services[1].type".into(),
                Some(4),
                "must be \"stun\", \"turn\" or \"turns\"".into()
            ),
        ]
    );
    let text = "[external_services]\nservices = [{ type = \"turns\", host = \"t\", transport = \"udp\" }]\n";
    assert_eq!(
        one_error(text),
        (
            "external_services.services[0].transport".into(),
            Some(2),
            "a turns service runs over tcp".into()
        )
    );
    let text = "[external_services]\nservices = [{ type = \"stun\", host = \"t\", transport = \"sctp\" }]\n";
    assert_eq!(one_error(text).2, "must be \"udp\" or \"tcp\"");
    let text = "[external_services]\nservices = [{ type = \"stun\", host = \"[::1]\" }]\n";
    assert_eq!(one_error(text).0, "external_services.services[0].host");
    let text = "[external_services]\nservices = [{ type = \"stun\", host = \"t\", port = 0 }]\n";
    assert_eq!(
        one_error(text),
        (
            "external_services.services[0].port".into(),
            Some(2),
            "must be at least 1".into()
        )
    );
    let text =
        "[external_services]\nservices = [{ type = \"stun\", host = \"t\", secret = \"x\" }]\n";
    assert_eq!(
        one_error(text),
        (
            "external_services.services[0].secret".into(),
            Some(2),
            "unknown key; expected one of: type, host, port, transport, restricted".into()
        )
    );
    assert_eq!(
        one_error("[external_services]\nturn_secret = \"short\"\n"),
        (
            "external_services.turn_secret".into(),
            Some(2),
            "must be at least 16 characters".into()
        )
    );
    assert_eq!(
        one_error("[external_services]\ncredential_ttl = 10\n"),
        (
            "external_services.credential_ttl".into(),
            Some(2),
            "must be at least 60".into()
        )
    );
    assert_eq!(
        one_error("[external_services]\nservices = {}\n").0,
        "external_services.services"
    );
}

#[test]
fn the_turn_secret_is_never_printed() {
    let config = parse("[external_services]\nturn_secret = \"sixteen chars at least\"\n").unwrap();
    assert!(!format!("{config:?}").contains("sixteen"));
}

#[test]
fn acme_section() {
    let defaults = parse("").unwrap().acme;
    assert_eq!(defaults, AcmeConfig::default());
    assert!(!defaults.enabled);
    assert_eq!(defaults.directory, LETS_ENCRYPT_DIRECTORY);
    assert_eq!(defaults.renew_before_days, 30);
    assert_eq!(defaults.challenge, AcmeChallenge::Http01);

    let config = parse(
        "[acme]\nenabled = true\ncontact = \"admin@example.org\"\n\
         directory = \"https://localhost:14000/dir\"\nca_file = \"pebble.pem\"\n\
         renew_before_days = 10\nchallenge = \"tls-alpn-01\"\n",
    )
    .unwrap();
    assert_eq!(
        config.acme,
        AcmeConfig {
            enabled: true,
            contact: Some("mailto:admin@example.org".into()),
            directory: "https://localhost:14000/dir".into(),
            ca_file: Some("pebble.pem".into()),
            renew_before_days: 10,
            challenge: AcmeChallenge::TlsAlpn01,
        }
    );
    assert_eq!(
        parse("[acme]\nchallenge = \"http-01\"\n")
            .unwrap()
            .acme
            .challenge,
        AcmeChallenge::Http01
    );
    let staging = format!("[acme]\ndirectory = \"{LETS_ENCRYPT_STAGING_DIRECTORY}\"\n");
    assert_eq!(
        parse(&staging).unwrap().acme.directory,
        LETS_ENCRYPT_STAGING_DIRECTORY
    );
}

/// Issue 18: `[s2s]` and `[s2s.hosts]` as documented in docs/federation.md.
#[test]
fn s2s_section() {
    let config = parse(
        "[s2s]\nlisten = [\"0.0.0.0:5269\"]\ndirect_tls_listen = [\"0.0.0.0:5270\"]\n\
         ca_file = \"peers.pem\"\nrequire_tls = false\ndialback = false\n\
         dialback_secret = \"a long dialback secret\"\nmax_stanza_size = 100000\n\
         max_queued_stanzas = 50\nconnect_timeout = 5\nidle_timeout = 60\n\
         max_connections = 100\nmax_connections_per_ip = 4\n\
         [s2s.hosts]\n\"Example.org\" = \"127.0.0.2:5269\"\n\
         \"other.example\" = [\"10.0.0.5:5269\", \"[::1]:5270\"]\n",
    )
    .unwrap();
    assert_eq!(
        config.s2s,
        starling_config::S2sConfig {
            listen: vec![addr("0.0.0.0:5269")],
            direct_tls_listen: vec![addr("0.0.0.0:5270")],
            ca_file: Some(PathBuf::from("peers.pem")),
            hosts: vec![
                ("example.org".into(), vec![addr("127.0.0.2:5269")]),
                (
                    "other.example".into(),
                    vec![addr("10.0.0.5:5269"), addr("[::1]:5270")]
                ),
            ],
            require_tls: false,
            dialback: false,
            dialback_secret: Some(Secret("a long dialback secret".into())),
            max_stanza_size: 100_000,
            max_queued_stanzas: 50,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_connections: 100,
            max_connections_per_ip: 4,
        }
    );
    assert!(config.s2s.enabled());
    assert!(!parse("").unwrap().s2s.enabled());
}

#[test]
fn s2s_errors_name_their_key() {
    assert_eq!(
        one_error("[s2s]\n[s2s.hosts]\n\"example.org\" = \"nowhere\"\n"),
        (
            "s2s.hosts.example.org".into(),
            Some(3),
            "\"nowhere\" is not a socket address (like \"127.0.0.2:5269\")".into()
        )
    );
    assert_eq!(one_error("[s2s]\nlisten = [\"x\"]\n").0, "s2s.listen[0]");
    assert_eq!(one_error("[s2s]\nport = 5269\n").0, "s2s.port");
    assert_eq!(
        one_error("[s2s]\ndialback_secret = \"short\"\n").0,
        "s2s.dialback_secret"
    );
}

#[test]
fn acme_errors_name_their_key() {
    assert_eq!(
        one_error("[acme]\nenabled = true\n"),
        (
            "acme.contact".into(),
            Some(2),
            "acme.contact is required when ACME is enabled (the CA's notices about the account \
             go there), like \"mailto:admin@example.org\""
                .into()
        )
    );
    assert_eq!(
        one_error("[acme]\ncontact = \"mailto:a@b.org?subject=x\"\n"),
        (
            "acme.contact".into(),
            Some(2),
            "\"mailto:a@b.org?subject=x\" is not one e-mail address like \"mailto:admin@example.org\""
                .into()
        )
    );
    assert_eq!(
        one_error("[acme]\ncontact = \"admin\"\n").2,
        "must be an e-mail address like \"mailto:admin@example.org\""
    );
    assert_eq!(
        one_error("[acme]\ndirectory = \"http://ca.example/dir\"\n").0,
        "acme.directory"
    );
    assert_eq!(
        one_error("[acme]\nrenew_before_days = 0\n").0,
        "acme.renew_before_days"
    );
    // Challenges by their ACME names only (RFC 8555 §9.7.8, RFC 8737 §6.3).
    assert_eq!(
        one_error("[acme]\nrenew_before_days = 10\nchallenge = \"dns-01\"\n"),
        (
            "acme.challenge".into(),
            Some(3),
            "unknown ACME challenge \"dns-01\"; known: \"http-01\", \"tls-alpn-01\"".into()
        )
    );
    assert_eq!(
        one_error("[acme]\nchallenge = \"TLS-ALPN-01\"\n").0,
        "acme.challenge"
    );
    assert_eq!(
        one_error("[acme]\nchallenge = 1\n"),
        (
            "acme.challenge".into(),
            Some(2),
            "expected a string, found integer".into()
        )
    );
    // TLS-ALPN-01 needs no plain HTTP listener, but a TLS one (the CA connects to port 443).
    let alpn = "[acme]\nenabled = true\ncontact = \"mailto:a@example.org\"\n\
                challenge = \"tls-alpn-01\"\n";
    let config = parse(&format!("[http]\nlisten = []\n{alpn}")).unwrap();
    assert_eq!(config.acme.challenge, AcmeChallenge::TlsAlpn01);
    assert!(config.http.listen.is_empty());
    assert_eq!(
        one_error(&format!(
            "[c2s]\ndirect_tls_listen = []\n[http]\ntls_listen = []\n{alpn}"
        )),
        (
            "acme.challenge".into(),
            Some(8),
            "ACME validates over TLS on port 443 (TLS-ALPN-01): [c2s] direct_tls_listen or \
             [http] tls_listen needs an address, like [\"0.0.0.0:443\"]"
                .into()
        )
    );
    assert!(
        parse(&format!(
            "[c2s]\ndirect_tls_listen = []\n[http]\ntls_listen = [\"0.0.0.0:443\"]\n{alpn}"
        ))
        .is_ok()
    );
    assert_eq!(
        one_error(
            "[http]\nlisten = []\n[acme]\nenabled = true\ncontact = \"mailto:a@example.org\"\n"
        ),
        (
            "http.listen".into(),
            Some(2),
            "ACME validates over plain HTTP (HTTP-01): [http] listen needs an address, like \
             [\"0.0.0.0:80\"]"
                .into()
        )
    );
}
