//! Walks the span-carrying TOML tree, collecting every problem with its key path and line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::{
    AcmeChallenge, Config, ConfigError, ConfigErrors, EXTERNAL_SERVICE_KEYS, ExternalService,
    ExternalServiceType, ExternalTransport, HostConfig, MAX_ANONYMOUS_LOGINS_PER_IP,
    MAX_ARCHIVE_MESSAGES, MAX_ARCHIVE_PAGE, MAX_AUTH_FAILURE_COUNT, MAX_CREDENTIAL_TTL,
    MAX_FAST_TOKEN_LIFETIME, MAX_INVITE_LIFETIME, MAX_LOCK_SECONDS, MAX_MIN_PASSWORD_LENGTH,
    MAX_OFFLINE_MESSAGES, MAX_PENDING_REQUESTS, MAX_PEP_ITEM_SIZE, MAX_PEP_ITEMS, MAX_PEP_NODES,
    MAX_PUBSUB_NODES, MAX_PUSH_INTERVAL, MAX_PUSH_REGISTRATIONS, MAX_REGISTRATIONS_PER_IP,
    MAX_REQUEST_AFTER, MAX_RESUME_TIMEOUT, MAX_RETENTION_DAYS, MAX_ROSTER_ITEMS, MAX_UNACKED_RANGE,
    MIN_COMPONENT_SECRET, MIN_CREDENTIAL_TTL, MIN_MAX_STANZA_SIZE, MIN_PREAUTH_MAX_STANZA_SIZE,
    MIN_SCRAM_ITERATIONS, MIN_TURN_SECRET, PUSH_TIMEOUT_RANGE, RegistrationMode, SCHEMA,
    SCRAM_HASHES, Secret, StorageBackend,
};

type Span = Range<usize>;
type Value<'i> = Spanned<DeValue<'i>>;

/// Parses `text`, returning the configuration or every problem found.
pub(crate) fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let mut cx = Cx {
        text,
        file,
        errors: Vec::new(),
        spans: HashMap::new(),
    };
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for e in syntax_errors {
            cx.error("", e.span(), e.message());
        }
        return Err(cx.finish());
    }
    let mut config = Config::default();
    cx.read_document(doc.get_ref(), &mut config);
    cx.cross_checks(&config);
    if cx.errors.is_empty() {
        Ok(config)
    } else {
        Err(cx.finish())
    }
}

struct Cx<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<ConfigError>,
    /// Span of every key path that was read, for cross-field errors.
    spans: HashMap<String, Span>,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn known_keys(section: &str) -> &'static [&'static str] {
    SCHEMA
        .iter()
        .find(|(name, _)| *name == section)
        .map_or(&[], |(_, keys)| *keys)
}

impl Cx<'_> {
    fn line(&self, span: &Span) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&mut self, key: &str, span: Option<Span>, message: impl Into<String>) {
        let line = span.map(|s| self.line(&s));
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            key: key.to_owned(),
            line,
            message: message.into(),
        });
    }

    /// An error on `key`, located at the first recorded span among `at`.
    fn error_near(&mut self, key: &str, at: &[&str], message: impl Into<String>) {
        let span = at.iter().find_map(|k| self.spans.get(*k).cloned());
        self.error(key, span, message);
    }

    fn finish(mut self) -> ConfigErrors {
        // Stable: errors on one line keep the order they were found in.
        self.errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        // The recovering parser can report one syntax error twice.
        self.errors.dedup();
        ConfigErrors(self.errors)
    }

    fn type_error(&mut self, key: &str, value: &Value<'_>, expected: &str) {
        let found = value.get_ref().type_str();
        self.error(
            key,
            Some(value.span()),
            format!("expected {expected}, found {found}"),
        );
    }

    /// Reports every key of `table` that `section` of [`SCHEMA`] does not know.
    fn unknown_keys(&mut self, table: &DeTable<'_>, section: &str, prefix: &str) {
        let known = known_keys(section);
        for (key, _) in table.iter() {
            let name: &str = key.get_ref();
            if !known.contains(&name) {
                let path = join(prefix, name);
                let message = format!("unknown key; expected one of: {}", known.join(", "));
                self.error(&path, Some(key.span()), message);
            }
        }
    }

    /// Looks up `name` in `table`, recording its span under `prefix.name`.
    fn value<'t, 'i>(
        &mut self,
        table: &'t DeTable<'i>,
        prefix: &str,
        name: &str,
    ) -> Option<(String, &'t Value<'i>)> {
        let value = table.get(name)?;
        let key = join(prefix, name);
        self.spans.insert(key.clone(), value.span());
        Some((key, value))
    }

    /// A sub-table `[name]` of the document, with its unknown keys reported.
    fn section<'t, 'i>(&mut self, root: &'t DeTable<'i>, name: &str) -> Option<&'t DeTable<'i>> {
        let (key, value) = self.value(root, "", name)?;
        match value.get_ref() {
            DeValue::Table(table) => {
                self.unknown_keys(table, name, &key);
                Some(table)
            }
            _ => {
                self.type_error(&key, value, &format!("a table ([{name}])"));
                None
            }
        }
    }

    fn as_string(&mut self, key: &str, value: &Value<'_>) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.type_error(key, value, "a string");
                None
            }
        }
    }

    fn string(&mut self, table: &DeTable<'_>, prefix: &str, name: &str) -> Option<String> {
        let (key, value) = self.value(table, prefix, name)?;
        self.as_string(&key, value)
    }

    /// A string that must not be empty, as a path.
    fn path(&mut self, table: &DeTable<'_>, prefix: &str, name: &str) -> Option<PathBuf> {
        let (key, value) = self.value(table, prefix, name)?;
        let s = self.as_string(&key, value)?;
        if s.is_empty() {
            self.error(&key, Some(value.span()), "must not be empty");
            return None;
        }
        Some(PathBuf::from(s))
    }

    fn bool(&mut self, table: &DeTable<'_>, prefix: &str, name: &str) -> Option<bool> {
        let (key, value) = self.value(table, prefix, name)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(&key, value, "a boolean (true or false)");
                None
            }
        }
    }

    /// An integer in `min..=max`.
    fn uint(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        name: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let (key, value) = self.value(table, prefix, name)?;
        let DeValue::Integer(int) = value.get_ref() else {
            self.type_error(&key, value, "an integer");
            return None;
        };
        let Ok(n) = i128::from_str_radix(int.as_str(), int.radix()) else {
            self.error(&key, Some(value.span()), "integer out of range");
            return None;
        };
        if n < i128::from(min) {
            self.error(&key, Some(value.span()), format!("must be at least {min}"));
            None
        } else if n > i128::from(max) {
            self.error(&key, Some(value.span()), format!("must be at most {max}"));
            None
        } else {
            u64::try_from(n).ok()
        }
    }

    fn usize(&mut self, table: &DeTable<'_>, prefix: &str, name: &str, min: u64) -> Option<usize> {
        let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
        self.uint(table, prefix, name, min, max)
            .and_then(|n| usize::try_from(n).ok())
    }

    fn seconds(&mut self, table: &DeTable<'_>, prefix: &str, name: &str, min: u64) -> Option<u64> {
        self.uint(table, prefix, name, min, u64::MAX)
    }

    fn read_document(&mut self, root: &DeTable<'_>, config: &mut Config) {
        self.unknown_keys(root, "", "");

        if let Some(dir) = self.path(root, "", "data_dir") {
            config.data_dir = dir;
        }

        if let Some(admins) = self.admins(root) {
            config.admins = admins;
        }

        if let Some(log) = self.section(root, "log")
            && let Some(level) = self.string(log, "log", "level")
        {
            match check_log_filter(&level) {
                Ok(()) => config.log.level = level,
                Err(message) => self.error_near("log.level", &["log.level"], message),
            }
        }

        self.read_hosts(root, config);

        if let Some(c2s) = self.section(root, "c2s") {
            self.read_c2s(c2s, config);
        }

        if let Some(auth) = self.section(root, "auth") {
            self.read_auth(auth, config);
        }

        if let Some(storage) = self.section(root, "storage") {
            if let Some(name) = self.string(storage, "storage", "backend") {
                match StorageBackend::from_name(&name) {
                    Some(backend) => config.storage.backend = backend,
                    None => {
                        let known: Vec<&str> =
                            StorageBackend::ALL.iter().map(|b| b.as_str()).collect();
                        let message = format!(
                            "unknown storage backend {name:?}; known: {}",
                            known.join(", ")
                        );
                        self.error_near("storage.backend", &["storage.backend"], message);
                    }
                }
            }
            if let Some(path) = self.path(storage, "storage", "path") {
                config.storage.path = path;
            }
        }

        if let Some(offline) = self.section(root, "offline") {
            let max = MAX_OFFLINE_MESSAGES as u64;
            if let Some(n) = self.uint(offline, "offline", "max_messages", 0, max)
                && let Ok(n) = usize::try_from(n)
            {
                config.offline.max_messages = n;
            }
        }

        if let Some(roster) = self.section(root, "roster") {
            let max = MAX_ROSTER_ITEMS as u64;
            if let Some(n) = self.uint(roster, "roster", "max_items", 1, max)
                && let Ok(n) = usize::try_from(n)
            {
                config.roster.max_items = n;
            }
            let max = MAX_PENDING_REQUESTS as u64;
            if let Some(n) = self.uint(roster, "roster", "max_pending_requests", 1, max)
                && let Ok(n) = usize::try_from(n)
            {
                config.roster.max_pending_requests = n;
            }
        }

        if let Some(components) = self.section(root, "components") {
            self.read_components(components, config);
        }

        if let Some(s2s) = self.section(root, "s2s") {
            self.read_s2s(s2s, config);
        }

        if let Some(http) = self.section(root, "http") {
            if let Some(list) = self.addresses(http, "http", "listen") {
                config.http.listen = list;
            }
            if let Some(list) = self.addresses(http, "http", "tls_listen") {
                config.http.tls_listen = list;
            }
            if let Some((key, value)) = self.value(http, "http", "public_url")
                && let Some(url) = self.as_string(&key, value)
            {
                match check_public_url(&url) {
                    Ok(url) => config.http.public_url = Some(url),
                    Err(why) => self.error(&key, Some(value.span()), why),
                }
            }
            if let Some(b) = self.bool(http, "http", "metrics") {
                config.http.metrics = b;
            }
        }

        if let Some(web) = self.section(root, "web") {
            self.read_web(web, config);
        }

        if let Some(services) = self.section(root, "external_services") {
            self.read_external_services(services, config);
        }

        if let Some(acme) = self.section(root, "acme") {
            self.read_acme(acme, config);
        }

        if let Some(archive) = self.section(root, "archive") {
            let p = "archive";
            if let Some(b) = self.bool(archive, p, "enabled") {
                config.archive.enabled = b;
            }
            if let Some(n) = self.uint(archive, p, "retention_days", 0, MAX_RETENTION_DAYS) {
                config.archive.retention_days = n;
            }
            if let Some(n) = self.uint(archive, p, "max_messages", 0, MAX_ARCHIVE_MESSAGES) {
                config.archive.max_messages = n;
            }
            if let Some(n) = self.uint(archive, p, "max_page_size", 1, MAX_ARCHIVE_PAGE)
                && let Ok(n) = usize::try_from(n)
            {
                config.archive.max_page_size = n;
            }
        }

        if let Some(push) = self.section(root, "push") {
            let p = "push";
            if let Some(b) = self.bool(push, p, "enabled") {
                config.push.enabled = b;
            }
            if let Some(b) = self.bool(push, p, "include_body") {
                config.push.include_body = b;
            }
            if let Some(b) = self.bool(push, p, "include_sender") {
                config.push.include_sender = b;
            }
            if let Some(n) = self.uint(push, p, "min_interval", 0, MAX_PUSH_INTERVAL) {
                config.push.min_interval = Duration::from_secs(n);
            }
            let (lo, hi) = PUSH_TIMEOUT_RANGE;
            if let Some(n) = self.uint(push, p, "timeout", lo, hi) {
                config.push.timeout = Duration::from_secs(n);
            }
            if let Some(n) = self.uint(push, p, "max_registrations", 1, MAX_PUSH_REGISTRATIONS)
                && let Ok(n) = usize::try_from(n)
            {
                config.push.max_registrations = n;
            }
        }

        if let Some(pep) = self.section(root, "pep") {
            let p = "pep";
            if let Some(b) = self.bool(pep, p, "enabled") {
                config.pep.enabled = b;
            }
            if let Some(n) = self.uint(pep, p, "max_nodes", 1, MAX_PEP_NODES) {
                config.pep.max_nodes = n;
            }
            if let Some(n) = self.uint(pep, p, "max_items", 1, MAX_PEP_ITEMS) {
                config.pep.max_items = n;
            }
            if let Some(n) = self.uint(pep, p, "max_item_size", 1024, MAX_PEP_ITEM_SIZE) {
                config.pep.max_item_size = n;
            }
        }

        if let Some(pubsub) = self.section(root, "pubsub") {
            let p = "pubsub";
            if let Some(b) = self.bool(pubsub, p, "enabled") {
                config.pubsub.enabled = b;
            }
            if let Some(n) = self.uint(pubsub, p, "max_nodes", 1, MAX_PUBSUB_NODES) {
                config.pubsub.max_nodes = n;
            }
            if let Some(n) = self.uint(pubsub, p, "max_items", 1, MAX_PEP_ITEMS) {
                config.pubsub.max_items = n;
            }
            if let Some(n) = self.uint(pubsub, p, "max_item_size", 1024, MAX_PEP_ITEM_SIZE) {
                config.pubsub.max_item_size = n;
            }
        }

        if let Some(muc) = self.section(root, "muc") {
            self.read_muc(muc, config);
        }

        if let Some(upload) = self.section(root, "upload") {
            self.read_upload(upload, config);
        }

        if let Some(reg) = self.section(root, "registration") {
            self.read_registration(reg, config);
        }

        if let Some(sm) = self.section(root, "stream_management") {
            let p = "stream_management";
            if let Some(n) = self.uint(sm, p, "resume_timeout", 0, MAX_RESUME_TIMEOUT) {
                config.stream_management.resume_timeout = Duration::from_secs(n);
            }
            let (lo, hi) = MAX_UNACKED_RANGE;
            if let Some(n) = self.uint(sm, p, "max_unacked", lo, hi)
                && let Ok(n) = usize::try_from(n)
            {
                config.stream_management.max_unacked = n;
            }
            if let Some(n) = self.uint(sm, p, "request_after", 1, MAX_REQUEST_AFTER)
                && let Ok(n) = u32::try_from(n)
            {
                config.stream_management.request_after = n;
            }
        }
    }

    fn read_registration(&mut self, table: &DeTable<'_>, config: &mut Config) {
        let p = "registration";
        let r = &mut config.registration;
        if let Some(name) = self.string(table, p, "mode") {
            match RegistrationMode::from_name(&name) {
                Some(mode) => r.mode = mode,
                None => {
                    let known: Vec<&str> =
                        RegistrationMode::ALL.iter().map(|m| m.as_str()).collect();
                    let message = format!(
                        "unknown registration mode {name:?}; known: {}",
                        known.join(", ")
                    );
                    self.error_near("registration.mode", &["registration.mode"], message);
                }
            }
        }
        if let Some(n) = self.uint(table, p, "max_per_ip", 1, MAX_REGISTRATIONS_PER_IP)
            && let Ok(n) = u32::try_from(n)
        {
            r.max_per_ip = n;
        }
        if let Some(n) = self.uint(table, p, "ip_window", 1, MAX_INVITE_LIFETIME) {
            r.ip_window = Duration::from_secs(n);
        }
        if let Some(n) = self.uint(table, p, "invite_lifetime", 60, MAX_INVITE_LIFETIME) {
            r.invite_lifetime = Duration::from_secs(n);
        }
        if let Some(b) = self.bool(table, p, "user_invites") {
            r.user_invites = b;
        }
        if let Some(n) = self.uint(table, p, "min_password_length", 1, MAX_MIN_PASSWORD_LENGTH)
            && let Ok(n) = usize::try_from(n)
        {
            r.min_password_length = n;
        }
    }

    fn read_upload(&mut self, table: &DeTable<'_>, config: &mut Config) {
        let p = "upload";
        if let Some(b) = self.bool(table, p, "enabled") {
            config.upload.enabled = b;
        }
        if let Some(domains) = self.domain_list(table, p, "domains") {
            config.upload.domains = domains;
        }
        if let Some(n) = self.uint(table, p, "max_file_size", 1, crate::MAX_UPLOAD_FILE_SIZE) {
            config.upload.max_file_size = n;
        }
        if let Some(n) = self.uint(table, p, "quota_per_user", 1, 1 << 50) {
            config.upload.quota_per_user = n;
        }
        if let Some(n) = self.uint(
            table,
            p,
            "expire_after_days",
            0,
            crate::MAX_UPLOAD_EXPIRE_DAYS,
        ) {
            config.upload.expire_after_days = n;
        }
    }

    /// An array of domains, normalised; a domain listed twice is an error.
    fn domain_list(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        name: &str,
    ) -> Option<Vec<String>> {
        let (key, value) = self.value(table, prefix, name)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(&key, value, "an array of domains");
            return None;
        };
        let mut domains: Vec<String> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            self.spans.insert(item_key.clone(), item.span());
            let Some(raw) = self.as_string(&item_key, item) else {
                continue;
            };
            match normalise_domain(&raw) {
                Ok(d) if domains.contains(&d) => {
                    self.error(&item_key, Some(item.span()), format!("{d} is listed twice"));
                }
                Ok(d) => domains.push(d),
                Err(m) => self.error(&item_key, Some(item.span()), m),
            }
        }
        Some(domains)
    }

    fn read_muc(&mut self, muc: &DeTable<'_>, config: &mut Config) {
        let p = "muc";
        if let Some(b) = self.bool(muc, p, "enabled") {
            config.muc.enabled = b;
        }
        if let Some((key, value)) = self.value(muc, p, "domains") {
            if let DeValue::Array(items) = value.get_ref() {
                let mut domains: Vec<String> = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_key = format!("{key}[{i}]");
                    self.spans.insert(item_key.clone(), item.span());
                    let Some(raw) = self.as_string(&item_key, item) else {
                        continue;
                    };
                    match normalise_domain(&raw) {
                        Ok(d) if domains.contains(&d) => {
                            self.error(
                                &item_key,
                                Some(item.span()),
                                format!("{d} is listed twice"),
                            );
                        }
                        Ok(d) => domains.push(d),
                        Err(m) => self.error(&item_key, Some(item.span()), m),
                    }
                }
                config.muc.domains = domains;
            } else {
                self.type_error(&key, value, "an array of domains");
            }
        }
        if let Some(n) = self.uint(muc, p, "max_occupants", 1, crate::MAX_MUC_OCCUPANTS) {
            config.muc.max_occupants = n;
        }
        if let Some(n) = self.uint(muc, p, "max_history", 0, crate::MAX_MUC_HISTORY) {
            config.muc.max_history = n;
        }
        if let Some(n) = self.uint(muc, p, "history_length", 0, crate::MAX_MUC_HISTORY) {
            config.muc.history_length = n;
        }
        if let Some(n) = self.uint(muc, p, "max_rooms_per_user", 0, u64::from(u32::MAX)) {
            config.muc.max_rooms_per_user = n;
        }
        if let Some(n) = self.uint(muc, p, "room_queue", 16, 1 << 20) {
            config.muc.room_queue = n;
        }
        let max = u64::from(u32::MAX);
        if let Some(n) = self.uint(muc, p, "occupant_rate", 0, max) {
            config.muc.occupant_rate = n;
        }
        if let Some(n) = self.uint(muc, p, "occupant_burst", 1, max) {
            config.muc.occupant_burst = n;
        }
        if let Some(n) = self.uint(muc, p, "room_rate", 0, max) {
            config.muc.room_rate = n;
        }
        if let Some(n) = self.uint(muc, p, "room_burst", 1, max) {
            config.muc.room_burst = n;
        }
        if let Some(b) = self.bool(muc, p, "archive") {
            config.muc.archive = b;
        }
    }

    fn read_web(&mut self, web: &DeTable<'_>, config: &mut Config) {
        if let Some(b) = self.bool(web, "web", "enabled") {
            config.web.enabled = b;
        }
        if let Some((key, value)) = self.value(web, "web", "converse_url")
            && let Some(url) = self.as_string(&key, value)
        {
            match check_converse_url(&url) {
                Ok(url) => config.web.converse_url = url,
                Err(why) => self.error(&key, Some(value.span()), why),
            }
        }
        if let Some(dir) = self.path(web, "web", "converse_dir") {
            config.web.converse_dir = Some(dir);
        }
    }

    fn read_external_services(&mut self, table: &DeTable<'_>, config: &mut Config) {
        let p = "external_services";
        if let Some((key, value)) = self.value(table, p, "turn_secret")
            && let Some(secret) = self.as_string(&key, value)
        {
            if secret.chars().count() < MIN_TURN_SECRET {
                let message = format!("must be at least {MIN_TURN_SECRET} characters");
                self.error(&key, Some(value.span()), message);
            } else {
                config.external_services.turn_secret = Some(Secret(secret));
            }
        }
        if let Some(n) = self.uint(
            table,
            p,
            "credential_ttl",
            MIN_CREDENTIAL_TTL,
            MAX_CREDENTIAL_TTL,
        ) {
            config.external_services.credential_ttl = Duration::from_secs(n);
        }
        let Some((key, value)) = self.value(table, p, "services") else {
            return;
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(
                &key,
                value,
                "an array of tables ({ type = \"stun\", host = … })",
            );
            return;
        };
        // Whether a secret was configured, even a refused one (no second error then).
        let has_secret = table.contains_key("turn_secret");
        let mut services = Vec::with_capacity(items.len());
        let mut complete = true;
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("{key}[{i}]");
            match self.external_service(item, &prefix, has_secret) {
                Some(service) => services.push(service),
                None => complete = false,
            }
        }
        if complete {
            config.external_services.services = services;
        }
    }

    /// One entry of `external_services.services`, or `None` after recording why not.
    fn external_service(
        &mut self,
        item: &Value<'_>,
        prefix: &str,
        has_secret: bool,
    ) -> Option<ExternalService> {
        let DeValue::Table(table) = item.get_ref() else {
            self.type_error(prefix, item, "a table");
            return None;
        };
        for (name, _) in table.iter() {
            let name_str: &str = name.get_ref();
            if !EXTERNAL_SERVICE_KEYS.contains(&name_str) {
                let message = format!(
                    "unknown key; expected one of: {}",
                    EXTERNAL_SERVICE_KEYS.join(", ")
                );
                self.error(&join(prefix, name_str), Some(name.span()), message);
            }
        }
        let errors_before = self.errors.len();
        let kind = match self.string(table, prefix, "type") {
            None if !table.contains_key("type") => {
                self.error(
                    &join(prefix, "type"),
                    Some(item.span()),
                    "missing (required)",
                );
                None
            }
            None => None,
            Some(name) => match name.as_str() {
                "stun" => Some(ExternalServiceType::Stun),
                "turn" => Some(ExternalServiceType::Turn),
                "turns" => Some(ExternalServiceType::Turns),
                _ => {
                    let key = join(prefix, "type");
                    self.error_near(&key, &[&key], "must be \"stun\", \"turn\" or \"turns\"");
                    None
                }
            },
        };
        let host = match self.string(table, prefix, "host") {
            None if !table.contains_key("host") => {
                self.error(
                    &join(prefix, "host"),
                    Some(item.span()),
                    "missing (required)",
                );
                None
            }
            None => None,
            Some(host) if is_service_host(&host) => Some(host),
            Some(_) => {
                let key = join(prefix, "host");
                let message = "must be a domain name or an IP address (without brackets)";
                self.error_near(&key, &[&key], message);
                None
            }
        };
        let port = self
            .uint(table, prefix, "port", 1, u64::from(u16::MAX))
            .and_then(|n| u16::try_from(n).ok());
        let transport = match self.string(table, prefix, "transport").as_deref() {
            None => None,
            Some("udp") => Some(ExternalTransport::Udp),
            Some("tcp") => Some(ExternalTransport::Tcp),
            Some(_) => {
                let key = join(prefix, "transport");
                self.error_near(&key, &[&key], "must be \"udp\" or \"tcp\"");
                None
            }
        };
        let restricted = self.bool(table, prefix, "restricted").unwrap_or(false);
        if restricted && !has_secret {
            let key = join(prefix, "restricted");
            self.error_near(
                &key,
                &[&key],
                "a restricted service needs external_services.turn_secret for its credentials",
            );
        }
        let kind = kind?;
        let transport = transport.unwrap_or(match kind {
            ExternalServiceType::Turns => ExternalTransport::Tcp,
            _ => ExternalTransport::Udp,
        });
        if kind == ExternalServiceType::Turns && transport == ExternalTransport::Udp {
            // RFC 7065 §3: turns is TURN over TLS, which runs over TCP.
            let key = join(prefix, "transport");
            self.error_near(&key, &[&key], "a turns service runs over tcp");
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(ExternalService {
            kind,
            host: host?,
            port: port.unwrap_or(match kind {
                ExternalServiceType::Turns => 5349,
                _ => 3478,
            }),
            transport,
            restricted,
        })
    }

    /// `admins`: an array of bare JIDs (`user@domain`), normalised; duplicates are errors.
    fn admins(&mut self, root: &DeTable<'_>) -> Option<Vec<String>> {
        let (key, value) = self.value(root, "", "admins")?;
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(&key, value, "an array of JIDs (\"user@domain\")");
            return None;
        };
        let mut admins: Vec<String> = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            self.spans.insert(item_key.clone(), item.span());
            let Some(s) = self.as_string(&item_key, item) else {
                ok = false;
                continue;
            };
            let jid = match jid::BareJid::new(&s) {
                Ok(j) if j.node().is_some() => j,
                _ => {
                    ok = false;
                    let message =
                        format!("{s:?} is not an account's bare JID (like \"admin@example.org\")");
                    self.error(&item_key, Some(item.span()), message);
                    continue;
                }
            };
            let normalised = jid.to_string();
            if admins.contains(&normalised) {
                ok = false;
                self.error(
                    &item_key,
                    Some(item.span()),
                    format!("{normalised} is listed twice"),
                );
                continue;
            }
            admins.push(normalised);
        }
        ok.then_some(admins)
    }

    fn read_components(&mut self, table: &DeTable<'_>, config: &mut Config) {
        if let Some(list) = self.addresses(table, "components", "listen") {
            config.components.listen = list;
        }
        let Some((key, value)) = self.value(table, "components", "secrets") else {
            return;
        };
        let DeValue::Table(secrets) = value.get_ref() else {
            self.type_error(&key, value, "a table of domain = \"secret\"");
            return;
        };
        for (name, secret) in secrets.iter() {
            let raw: &str = name.get_ref();
            let entry = join(&key, raw);
            self.spans.insert(entry.clone(), name.span());
            let domain = match normalise_domain(raw) {
                Ok(d) => d,
                Err(message) => {
                    self.error(&entry, Some(name.span()), message);
                    continue;
                }
            };
            let Some(secret) = self.as_string(&entry, secret) else {
                continue;
            };
            if secret.chars().count() < MIN_COMPONENT_SECRET {
                let message = format!(
                    "a component secret must be at least {MIN_COMPONENT_SECRET} characters"
                );
                self.error(&entry, Some(name.span()), message);
                continue;
            }
            config.components.secrets.push((domain, Secret(secret)));
        }
    }

    fn read_s2s(&mut self, table: &DeTable<'_>, config: &mut Config) {
        let p = "s2s";
        let c = &mut config.s2s;
        if let Some(list) = self.addresses(table, p, "listen") {
            c.listen = list;
        }
        if let Some(list) = self.addresses(table, p, "direct_tls_listen") {
            c.direct_tls_listen = list;
        }
        if let Some(path) = self.path(table, p, "ca_file") {
            c.ca_file = Some(path);
        }
        if let Some(b) = self.bool(table, p, "require_tls") {
            c.require_tls = b;
        }
        if let Some(b) = self.bool(table, p, "dialback") {
            c.dialback = b;
        }
        if let Some((key, value)) = self.value(table, p, "dialback_secret")
            && let Some(secret) = self.as_string(&key, value)
        {
            if secret.chars().count() < MIN_COMPONENT_SECRET {
                let message = format!(
                    "the dialback secret must be at least {MIN_COMPONENT_SECRET} characters"
                );
                self.error(&key, Some(value.span()), message);
            } else {
                c.dialback_secret = Some(Secret(secret));
            }
        }
        if let Some(n) = self.usize(table, p, "max_stanza_size", 10_000) {
            c.max_stanza_size = n;
        }
        if let Some(n) = self.usize(table, p, "max_queued_stanzas", 1) {
            c.max_queued_stanzas = n;
        }
        if let Some(n) = self.seconds(table, p, "connect_timeout", 1) {
            c.connect_timeout = Duration::from_secs(n);
        }
        if let Some(n) = self.seconds(table, p, "idle_timeout", 1) {
            c.idle_timeout = Duration::from_secs(n);
        }
        if let Some(n) = self.usize(table, p, "max_connections", 1) {
            c.max_connections = n;
        }
        if let Some(n) = self.usize(table, p, "max_connections_per_ip", 1) {
            c.max_connections_per_ip = n;
        }
        let Some((key, value)) = self.value(table, p, "hosts") else {
            return;
        };
        let DeValue::Table(hosts) = value.get_ref() else {
            self.type_error(&key, value, "a table of domain = \"address:port\"");
            return;
        };
        for (name, target) in hosts.iter() {
            let raw: &str = name.get_ref();
            let entry = join(&key, raw);
            self.spans.insert(entry.clone(), name.span());
            let domain = match normalise_domain(raw) {
                Ok(d) => d,
                Err(message) => {
                    self.error(&entry, Some(name.span()), message);
                    continue;
                }
            };
            let texts: Vec<(String, Span)> = match target.get_ref() {
                DeValue::Array(items) => items
                    .iter()
                    .filter_map(|i| match i.get_ref() {
                        DeValue::String(s) => Some((s.to_string(), i.span())),
                        _ => None,
                    })
                    .collect(),
                DeValue::String(s) => vec![(s.to_string(), target.span())],
                _ => {
                    self.type_error(&entry, target, "\"address:port\" or an array of them");
                    continue;
                }
            };
            let mut addrs = Vec::new();
            for (text, span) in texts {
                match text.parse::<SocketAddr>() {
                    Ok(a) => addrs.push(a),
                    Err(_) => {
                        let message =
                            format!("{text:?} is not a socket address (like \"127.0.0.2:5269\")");
                        self.error(&entry, Some(span), message);
                    }
                }
            }
            if !addrs.is_empty() {
                config.s2s.hosts.push((domain, addrs));
            }
        }
    }

    fn read_hosts(&mut self, root: &DeTable<'_>, config: &mut Config) {
        let Some((key, value)) = self.value(root, "", "host") else {
            return;
        };
        let tables = match value.get_ref() {
            DeValue::Array(items) => items,
            _ => {
                self.type_error(&key, value, "an array of tables ([[host]])");
                return;
            }
        };
        if tables.is_empty() {
            self.error(
                &key,
                Some(value.span()),
                "at least one [[host]] is required",
            );
            return;
        }
        let mut hosts = Vec::with_capacity(tables.len());
        // lowercased normalised domain → key path of its first occurrence
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut complete = true;
        for (i, item) in tables.iter().enumerate() {
            let prefix = format!("host[{i}]");
            let DeValue::Table(table) = item.get_ref() else {
                self.type_error(&prefix, item, "a table");
                complete = false;
                continue;
            };
            self.unknown_keys(table, "host", &prefix);

            let domain_key = join(&prefix, "domain");
            let domain = match self.string(table, &prefix, "domain") {
                None if !table.contains_key("domain") => {
                    self.error(&domain_key, Some(item.span()), "missing (required)");
                    None
                }
                None => None,
                Some(raw) => match normalise_domain(&raw) {
                    Ok(domain) => Some(domain),
                    Err(message) => {
                        self.error_near(&domain_key, &[&domain_key], message);
                        None
                    }
                },
            };
            if let Some(domain) = &domain {
                // nameprep already case-folds names; lowercase also catches IPv6 literals.
                let folded = domain.to_lowercase();
                if let Some(first) = seen.get(&folded) {
                    let message = format!("duplicate domain {domain:?} (also {first})");
                    self.error_near(&domain_key, &[&domain_key], message);
                } else {
                    seen.insert(folded, domain_key.clone());
                }
            }

            let certificate = self.path(table, &prefix, "certificate");
            let key = self.path(table, &prefix, "key");
            let (cert_key, key_key) = (join(&prefix, "certificate"), join(&prefix, "key"));
            match (table.contains_key("certificate"), table.contains_key("key")) {
                (true, false) => self.error_near(
                    &key_key,
                    &[&cert_key],
                    "missing: certificate and key must be set together",
                ),
                (false, true) => self.error_near(
                    &cert_key,
                    &[&key_key],
                    "missing: certificate and key must be set together",
                ),
                _ => {}
            }

            let anonymous = self.bool(table, &prefix, "anonymous").unwrap_or(false);
            let anonymous_federation = self
                .bool(table, &prefix, "anonymous_federation")
                .unwrap_or(false);
            if anonymous_federation && !anonymous {
                let key = join(&prefix, "anonymous_federation");
                self.error_near(
                    &key,
                    &[&key],
                    "only an anonymous host (anonymous = true) has it",
                );
            }

            match domain {
                Some(domain) => hosts.push(HostConfig {
                    domain,
                    certificate,
                    key,
                    anonymous,
                    anonymous_federation,
                }),
                None => complete = false,
            }
        }
        if complete {
            config.hosts = hosts;
        }
    }

    fn read_auth(&mut self, auth: &DeTable<'_>, config: &mut Config) {
        let a = &mut config.auth;
        if let Some(b) = self.bool(auth, "auth", "allow_plain") {
            a.allow_plain = b;
        }
        let min = u64::from(MIN_SCRAM_ITERATIONS);
        if let Some(n) = self.uint(auth, "auth", "scram_iterations", min, u32::MAX.into())
            && let Ok(n) = u32::try_from(n)
        {
            a.scram_iterations = n;
        }
        let max_count = u64::from(MAX_AUTH_FAILURE_COUNT);
        let count = |cx: &mut Self, name: &str, field: &mut u32| {
            if let Some(n) = cx.uint(auth, "auth", name, 0, max_count)
                && let Ok(n) = u32::try_from(n)
            {
                *field = n;
            }
        };
        count(self, "failures_before_delay", &mut a.failures_before_delay);
        count(self, "account_lock_after", &mut a.account_lock_after);
        count(self, "ip_lock_after", &mut a.ip_lock_after);
        if let Some(n) = self.uint(auth, "auth", "max_delay", 0, MAX_LOCK_SECONDS) {
            a.max_delay = Duration::from_secs(n);
        }
        if let Some(n) = self.uint(auth, "auth", "lock_window", 1, MAX_LOCK_SECONDS) {
            a.lock_window = Duration::from_secs(n);
        }
        if let Some(n) = self.uint(auth, "auth", "lock_duration", 1, MAX_LOCK_SECONDS) {
            a.lock_duration = Duration::from_secs(n);
        }
        if let Some(n) = self.uint(
            auth,
            "auth",
            "fast_token_lifetime",
            0,
            MAX_FAST_TOKEN_LIFETIME,
        ) {
            a.fast_token_lifetime = Duration::from_secs(n);
        }
        let max = u64::from(MAX_ANONYMOUS_LOGINS_PER_IP);
        if let Some(n) = self.uint(auth, "auth", "anonymous_logins_per_ip", 0, max)
            && let Ok(n) = u32::try_from(n)
        {
            a.anonymous_logins_per_ip = n;
        }
        if let Some(hashes) = self.scram_hashes(auth) {
            a.scram_hashes = hashes;
        }
    }

    /// `auth.scram_hashes`: a non-empty array of [`SCRAM_HASHES`] values, kept in their order
    /// (strongest first) whatever the file's.
    fn scram_hashes(&mut self, auth: &DeTable<'_>) -> Option<Vec<String>> {
        let (key, value) = self.value(auth, "auth", "scram_hashes")?;
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(
                &key,
                value,
                "an array of hash names (\"SHA-256\", \"SHA-1\", …)",
            );
            return None;
        };
        let mut named = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            self.spans.insert(item_key.clone(), item.span());
            let Some(name) = self.as_string(&item_key, item) else {
                ok = false;
                continue;
            };
            match SCRAM_HASHES.iter().find(|h| h.eq_ignore_ascii_case(&name)) {
                Some(h) => named.push(*h),
                None => {
                    ok = false;
                    let message =
                        format!("unknown hash {name:?}; known: {}", SCRAM_HASHES.join(", "));
                    self.error(&item_key, Some(item.span()), message);
                }
            }
        }
        if ok && named.is_empty() {
            self.error(
                &key,
                Some(value.span()),
                "at least one hash is needed".to_owned(),
            );
            return None;
        }
        ok.then(|| {
            SCRAM_HASHES
                .iter()
                .filter(|h| named.contains(h))
                .map(|h| (*h).to_owned())
                .collect()
        })
    }

    fn read_c2s(&mut self, c2s: &DeTable<'_>, config: &mut Config) {
        let c = &mut config.c2s;
        if let Some(list) = self.addresses(c2s, "c2s", "listen") {
            c.listen = list;
        }
        if let Some(list) = self.addresses(c2s, "c2s", "direct_tls_listen") {
            c.direct_tls_listen = list;
        }
        if let Some(b) = self.bool(c2s, "c2s", "require_encryption") {
            c.require_encryption = b;
        }
        let min_max = MIN_MAX_STANZA_SIZE as u64;
        if let Some(n) = self.usize(c2s, "c2s", "max_stanza_size", min_max) {
            c.max_stanza_size = n;
        }
        let min_pre = MIN_PREAUTH_MAX_STANZA_SIZE as u64;
        if let Some(n) = self.usize(c2s, "c2s", "preauth_max_stanza_size", min_pre) {
            c.preauth_max_stanza_size = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "preauth_max_elements", 1) {
            c.preauth_max_elements = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "max_elements", 1) {
            c.max_elements = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "max_attributes_per_element", 1) {
            c.max_attributes_per_element = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "max_attributes", 1) {
            c.max_attributes = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "max_namespace_declarations", 0) {
            c.max_namespace_declarations = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "max_queued_stanzas", 1) {
            c.max_queued_stanzas = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "max_queued_bytes", 1024) {
            c.max_queued_bytes = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "max_resources", 0) {
            c.max_resources = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "max_connections_per_ip", 0) {
            c.max_connections_per_ip = n;
        }
        if let Some(n) = self.usize(c2s, "c2s", "max_connections", 0) {
            c.max_connections = n;
        }
        if let Some(n) = self.seconds(c2s, "c2s", "auth_timeout", 1) {
            c.auth_timeout = Duration::from_secs(n);
        }
        if let Some(n) = self.uint(c2s, "c2s", "rate", 0, u64::MAX) {
            c.rate = n;
        }
        if let Some(n) = self.seconds(c2s, "c2s", "burst", 1) {
            c.burst = Duration::from_secs(n);
        }
        if let Some(n) = self.seconds(c2s, "c2s", "idle_timeout", 0) {
            c.idle_timeout = (n > 0).then(|| Duration::from_secs(n));
        }
        if let Some(n) = self.seconds(c2s, "c2s", "ping_timeout", 1) {
            c.ping_timeout = Duration::from_secs(n);
        }
        if let Some(n) = self.seconds(c2s, "c2s", "keepalive_interval", 0) {
            c.keepalive_interval = (n > 0).then(|| Duration::from_secs(n));
        }
    }

    /// `<prefix>.<name>`: an array of socket address strings. `None` if absent or any entry is
    /// bad.
    fn addresses(
        &mut self,
        table: &DeTable<'_>,
        prefix: &str,
        name: &str,
    ) -> Option<Vec<SocketAddr>> {
        let (key, value) = self.value(table, prefix, name)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(&key, value, "an array of socket addresses");
            return None;
        };
        let mut addrs = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            self.spans.insert(item_key.clone(), item.span());
            let Some(s) = self.as_string(&item_key, item) else {
                ok = false;
                continue;
            };
            match s.parse::<SocketAddr>() {
                Ok(addr) => addrs.push(addr),
                Err(_) => {
                    ok = false;
                    let message = format!(
                        "{s:?} is not a socket address (like \"127.0.0.1:5222\" or \"[::1]:5222\")"
                    );
                    self.error(&item_key, Some(item.span()), message);
                }
            }
        }
        ok.then_some(addrs)
    }

    fn read_acme(&mut self, acme: &DeTable<'_>, config: &mut Config) {
        let p = "acme";
        if let Some(b) = self.bool(acme, p, "enabled") {
            config.acme.enabled = b;
        }
        if let Some((key, value)) = self.value(acme, p, "contact")
            && let Some(contact) = self.as_string(&key, value)
        {
            match check_acme_contact(&contact) {
                Ok(contact) => config.acme.contact = Some(contact),
                Err(why) => self.error(&key, Some(value.span()), why),
            }
        }
        if let Some((key, value)) = self.value(acme, p, "directory")
            && let Some(url) = self.as_string(&key, value)
        {
            let host = url.strip_prefix("https://").unwrap_or_default();
            if host.is_empty() || host.starts_with('/') || host.contains(char::is_whitespace) {
                let message = "must be an https:// URL (RFC 8555 §6.1), like \"https://acme-v02.api.letsencrypt.org/directory\"";
                self.error(&key, Some(value.span()), message);
            } else {
                config.acme.directory = url;
            }
        }
        if let Some(path) = self.path(acme, p, "ca_file") {
            config.acme.ca_file = Some(path);
        }
        let (min, max) = crate::RENEW_BEFORE_DAYS_RANGE;
        if let Some(n) = self.uint(acme, p, "renew_before_days", min, max) {
            config.acme.renew_before_days = n;
        }
        if let Some((key, value)) = self.value(acme, p, "challenge")
            && let Some(name) = self.as_string(&key, value)
        {
            match AcmeChallenge::from_name(&name) {
                Some(challenge) => config.acme.challenge = challenge,
                None => {
                    let known: Vec<String> = AcmeChallenge::ALL
                        .iter()
                        .map(|c| format!("{:?}", c.as_str()))
                        .collect();
                    let message = format!(
                        "unknown ACME challenge {name:?}; known: {}",
                        known.join(", ")
                    );
                    self.error(&key, Some(value.span()), message);
                }
            }
        }
    }

    /// Whether an error was already reported for `key` or an entry of it (`key[i]`).
    fn failed(&self, key: &str) -> bool {
        self.errors.iter().any(|e| {
            e.key == key
                || e.key
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with('['))
        })
    }

    /// Checks between fields, on the values that were accepted. A check is skipped when one of
    /// its fields was already reported: it would compare against the default, not what was
    /// written.
    fn cross_checks(&mut self, config: &Config) {
        // An administrator must be an account of a host served, or it could never log in.
        for (i, admin) in config.admins.iter().enumerate() {
            let domain = admin.rsplit('@').next().unwrap_or_default();
            if !config.hosts.iter().any(|h| h.domain == domain) {
                let key = format!("admins[{i}]");
                let message = format!("{admin} is not at one of the hosts ([[host]] domains)");
                self.error_near(&key, &[&key], message);
            }
        }
        // ACME needs someone to tell about the account, and a listener for the challenge: plain
        // HTTP for HTTP-01, c2s direct TLS or HTTPS for TLS-ALPN-01.
        if config.acme.enabled && !self.failed("acme.enabled") {
            if config.acme.contact.is_none() && !self.failed("acme.contact") {
                let message = "acme.contact is required when ACME is enabled (the CA's notices about the account go there), like \"mailto:admin@example.org\"";
                self.error_near("acme.contact", &["acme.enabled", "acme"], message);
            }
            match config.acme.challenge {
                _ if self.failed("acme.challenge") => {}
                AcmeChallenge::Http01 => {
                    if config.http.listen.is_empty() && !self.failed("http.listen") {
                        let message = "ACME validates over plain HTTP (HTTP-01): [http] listen needs an address, like [\"0.0.0.0:80\"]";
                        self.error_near("http.listen", &["http.listen", "acme.enabled"], message);
                    }
                }
                AcmeChallenge::TlsAlpn01 => {
                    if config.c2s.direct_tls_listen.is_empty()
                        && config.http.tls_listen.is_empty()
                        && !self.failed("c2s.direct_tls_listen")
                        && !self.failed("http.tls_listen")
                    {
                        let message = "ACME validates over TLS on port 443 (TLS-ALPN-01): [c2s] direct_tls_listen or [http] tls_listen needs an address, like [\"0.0.0.0:443\"]";
                        self.error_near(
                            "acme.challenge",
                            &["acme.challenge", "acme.enabled"],
                            message,
                        );
                    }
                }
            }
        }
        let c = &config.c2s;
        if !self.failed("c2s.listen") && !self.failed("c2s.direct_tls_listen") {
            let http = if self.failed("http.listen") {
                &[][..]
            } else {
                &config.http.listen[..]
            };
            let https = if self.failed("http.tls_listen") {
                &[][..]
            } else {
                &config.http.tls_listen[..]
            };
            self.listener_checks(c, http, https);
        }

        if c.preauth_max_stanza_size > c.max_stanza_size
            && !self.failed("c2s.max_stanza_size")
            && !self.failed("c2s.preauth_max_stanza_size")
        {
            let message = format!(
                "must not exceed c2s.max_stanza_size ({})",
                c.max_stanza_size
            );
            self.error_near(
                "c2s.preauth_max_stanza_size",
                &["c2s.preauth_max_stanza_size", "c2s.max_stanza_size"],
                message,
            );
        }

        // A failure held back past the authentication deadline would end the stream with
        // <connection-timeout/> instead of answering it.
        let a = &config.auth;
        if a.max_delay >= c.auth_timeout
            && !self.failed("auth.max_delay")
            && !self.failed("c2s.auth_timeout")
        {
            let message = format!(
                "must be less than c2s.auth_timeout ({} s)",
                c.auth_timeout.as_secs()
            );
            self.error_near(
                "auth.max_delay",
                &["auth.max_delay", "c2s.auth_timeout"],
                message,
            );
        }

        // A component cannot take a virtual host's domain: its accounts would become the
        // component's (XEP-0114 serves whole domains).
        for (domain, _) in &config.components.secrets {
            if config.hosts.iter().any(|h| h.domain == *domain) {
                let key = format!("components.secrets.{domain}");
                let message = "is a virtual host ([[host]]), not a component domain";
                self.error_near(&key, &[&key, "components.secrets"], message);
            }
        }
        // The conference service serves whole domains, as components do.
        if config.muc.enabled {
            for (i, domain) in config.muc.domains.iter().enumerate() {
                let key = format!("muc.domains[{i}]");
                if config.hosts.iter().any(|h| h.domain == *domain) {
                    self.error_near(
                        &key,
                        &[&key],
                        "is a virtual host ([[host]]), not a service domain",
                    );
                } else if config.components.secrets.iter().any(|(d, _)| d == domain) {
                    self.error_near(
                        &key,
                        &[&key],
                        "is an external component's domain ([components.secrets])",
                    );
                }
            }
        }
        // The upload service serves whole domains too.
        if config.upload.enabled {
            let muc_domains = if config.muc.enabled {
                config.muc.service_domains(&config.hosts)
            } else {
                Vec::new()
            };
            for (i, domain) in config.upload.domains.iter().enumerate() {
                let key = format!("upload.domains[{i}]");
                let taken = if config.hosts.iter().any(|h| h.domain == *domain) {
                    Some("is a virtual host ([[host]]), not a service domain")
                } else if config.components.secrets.iter().any(|(d, _)| d == domain) {
                    Some("is an external component's domain ([components.secrets])")
                } else if muc_domains.contains(domain) {
                    Some("is a multi-user chat service's domain ([muc])")
                } else {
                    None
                };
                if let Some(message) = taken {
                    self.error_near(&key, &[&key], message);
                }
            }
        }
        if config.upload.quota_per_user < config.upload.max_file_size
            && !self.failed("upload.quota_per_user")
            && !self.failed("upload.max_file_size")
        {
            let message = format!(
                "must be at least upload.max_file_size ({})",
                config.upload.max_file_size
            );
            self.error_near(
                "upload.quota_per_user",
                &["upload.quota_per_user", "upload.max_file_size"],
                message,
            );
        }
        if config.muc.history_length > config.muc.max_history
            && !self.failed("muc.history_length")
            && !self.failed("muc.max_history")
        {
            let message = format!(
                "must not exceed muc.max_history ({})",
                config.muc.max_history
            );
            self.error_near(
                "muc.history_length",
                &["muc.history_length", "muc.max_history"],
                message,
            );
        }
        if !config.components.listen.is_empty() && config.components.secrets.is_empty() {
            self.error_near(
                "components.listen",
                &["components.listen"],
                "no component can connect: [components.secrets] names none",
            );
        }

        if c.rate.checked_mul(c.burst.as_secs()).is_none()
            && !self.failed("c2s.rate")
            && !self.failed("c2s.burst")
        {
            self.error_near(
                "c2s.burst",
                &["c2s.burst", "c2s.rate"],
                "rate × burst does not fit in 64 bits",
            );
        }
    }

    /// Listener conflicts (c2s, then HTTP), in file order (later entries name the earlier one),
    /// and that there is at least one client listener.
    fn listener_checks(&mut self, c: &crate::C2sConfig, http: &[SocketAddr], https: &[SocketAddr]) {
        let clients = c.listen.len() + c.direct_tls_listen.len();
        let all: Vec<(String, SocketAddr)> = c
            .listen
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("c2s.listen[{i}]"), *a))
            .chain(
                c.direct_tls_listen
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("c2s.direct_tls_listen[{i}]"), *a)),
            )
            .chain(
                http.iter()
                    .enumerate()
                    .map(|(i, a)| (format!("http.listen[{i}]"), *a)),
            )
            .chain(
                https
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("http.tls_listen[{i}]"), *a)),
            )
            .collect();
        for (j, (key, addr)) in all.iter().enumerate() {
            if let Some((first, other)) = all[..j].iter().find(|(_, a)| addresses_conflict(a, addr))
            {
                let message = if other == addr {
                    format!("address {addr} is also used by {first}")
                } else {
                    format!("address {addr} conflicts with {other} ({first})")
                };
                self.error_near(key, &[key], message);
            }
        }
        if clients == 0 {
            self.error_near(
                "c2s.listen",
                &["c2s.listen", "c2s.direct_tls_listen", "c2s"],
                "no listeners: c2s.listen and c2s.direct_tls_listen are both empty",
            );
        }
    }
}

/// Whether two listeners cannot both be bound: same port (not 0), same family, and the same
/// address or one of them the unspecified address.
fn addresses_conflict(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Validates and normalises a host domain as a jid domainpart.
fn normalise_domain(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("must not be empty".to_owned());
    }
    // RFC 7622 §3.2: the domainpart is an IDNA2008 domain name or an IP literal, nameprep-ed.
    match jid::DomainPart::new(raw) {
        Ok(domain) => Ok(domain.as_str().to_owned()),
        Err(e) => Err(format!("{raw:?} is not a valid XMPP domain: {e}")),
    }
}

const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Accepts a subset of `tracing_subscriber::EnvFilter` syntax: comma-separated directives, each
/// a level name or `target=level`.
pub(crate) fn check_log_filter(filter: &str) -> Result<(), String> {
    let is_level = |s: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s.trim()));
    let is_target = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
    };
    let mut directives = 0;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        directives += 1;
        let valid = match directive.split_once('=') {
            Some((target, level)) => is_target(target.trim()) && is_level(level),
            None => is_level(directive),
        };
        if !valid {
            return Err(format!(
                "invalid directive {directive:?}: expected a level ({}) or target=level",
                LEVELS.join(", ")
            ));
        }
    }
    if directives == 0 {
        return Err(format!("must name a level ({})", LEVELS.join(", ")));
    }
    Ok(())
}

/// `external_services.services[].host`: a domain name, an IPv4 or an IPv6 address (no brackets).
fn is_service_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
}

/// `[web] converse_url`: a base URL as for `public_url`, and nothing that could leave the
/// quoted HTML attribute or the Content-Security-Policy source it is written into.
fn check_converse_url(url: &str) -> Result<String, String> {
    let url = check_public_url(url)?;
    if url.contains(['\'', '"', ';', ',', '<', '>', '\\', '`']) {
        return Err("must not contain quotes, ';', ',', '<', '>', '\\' or '`'".to_owned());
    }
    Ok(url)
}

/// `[acme] contact`: an e-mail address, with or without `mailto:` (RFC 8555 §7.3 and RFC 6068),
/// returned as a `mailto:` URL; one address, no query (Let's Encrypt refuses `?` and `,`).
fn check_acme_contact(contact: &str) -> Result<String, String> {
    let address = contact.strip_prefix("mailto:").unwrap_or(contact);
    let (local, domain) = address
        .split_once('@')
        .ok_or("must be an e-mail address like \"mailto:admin@example.org\"")?;
    let bad = |c: char| c.is_whitespace() || c.is_control() || "?,<>\"@".contains(c);
    if local.is_empty()
        || domain.is_empty()
        || !domain.contains('.')
        || address.chars().any(|c| c != '@' && bad(c))
        || domain.contains('@')
    {
        return Err(format!(
            "{contact:?} is not one e-mail address like \"mailto:admin@example.org\""
        ));
    }
    Ok(format!("mailto:{address}"))
}

/// `[http] public_url`: `http://` or `https://`, a host, an optional port and path; no query,
/// fragment, user or whitespace. Returned without a trailing `/`.
fn check_public_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if rest.contains(['?', '#', '@']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be a plain base URL (no query, fragment, user or spaces)".to_owned());
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("must name a host".to_owned());
    }
    Ok(url.trim_end_matches('/').to_owned())
}
