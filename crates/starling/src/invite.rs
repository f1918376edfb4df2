//! `starling invite`: invitations made by the operator (XEP-0401, XEP-0445, XEP-0379).
//!
//! The command line parses and checks; [`create`] stores the invitation through
//! [`starling_accounts::invites`], the same path a user's or an admin's ad-hoc command takes.

use std::time::Duration;

use starling_accounts::invites::{self, CreatedInvite, InviteRequest};
use starling_accounts::{AccountError, new_localpart, parse_account};
use starling_config::{Config, MAX_INVITE_LIFETIME};
use starling_storage::{Invite, InviteStore};

/// Why `starling invite …` refused.
#[derive(Debug, thiserror::Error)]
pub enum InviteCliError {
    #[error(
        "{0:?} is not a duration: use a number of seconds or a number with s, m, h or d \
         (like 7d or 12h)"
    )]
    BadDuration(String),
    #[error("the lifetime must be between 1 minute and 365 days")]
    LifetimeRange,
    #[error("--reusable must be at least 1")]
    NoUses,
    #[error("{domain} is not served by this configuration (hosts: {hosts})")]
    NotServed { domain: String, hosts: String },
    #[error("{0} is an anonymous host: its accounts are made at login, not by invitation")]
    AnonymousHost(String),
    #[error("--domain {domain} differs from the contact's domain {contact}")]
    DomainMismatch { domain: String, contact: String },
    #[error("no invitation in {0:?}: give the token or the whole xmpp: URI")]
    NoToken(String),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Invite(#[from] invites::InviteError),
    #[error(transparent)]
    Storage(#[from] starling_storage::StorageError),
}

/// Parses `7d`, `12h`, `30m`, `90s` or a plain number of seconds.
pub fn parse_lifetime(text: &str) -> Result<Duration, InviteCliError> {
    let bad = || InviteCliError::BadDuration(text.to_owned());
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or(InviteCliError::LifetimeRange)?;
    if !(60..=MAX_INVITE_LIFETIME).contains(&secs) {
        return Err(InviteCliError::LifetimeRange);
    }
    Ok(Duration::from_secs(secs))
}

/// What `starling invite create` was asked for.
#[derive(Debug, Default)]
pub struct CreateArgs {
    pub uses: u32,
    pub lifetime: Option<Duration>,
    pub contact: Option<String>,
    pub username: Option<String>,
    pub domain: Option<String>,
}

fn check_served(config: &Config, domain: &str) -> Result<(), InviteCliError> {
    if config.is_anonymous_host(domain) {
        return Err(InviteCliError::AnonymousHost(domain.to_owned()));
    }
    if config.hosts.iter().any(|h| h.domain == domain) {
        return Ok(());
    }
    Err(InviteCliError::NotServed {
        domain: domain.to_owned(),
        hosts: config
            .hosts
            .iter()
            .map(|h| h.domain.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Creates an invitation as the operator: it may always register an account (XEP-0445), and
/// with a contact the invitee and that account end as mutual contacts (XEP-0379).
pub async fn create(
    config: &Config,
    store: &dyn InviteStore,
    args: CreateArgs,
) -> Result<CreatedInvite, InviteCliError> {
    if args.uses == 0 {
        return Err(InviteCliError::NoUses);
    }
    let contact = args.contact.as_deref().map(parse_account).transpose()?;
    let domain = match (&args.domain, &contact) {
        (Some(d), Some((_, cd))) if !d.eq_ignore_ascii_case(cd) => {
            return Err(InviteCliError::DomainMismatch {
                domain: d.clone(),
                contact: cd.clone(),
            });
        }
        (_, Some((_, cd))) => cd.clone(),
        (Some(d), None) => d.to_ascii_lowercase(),
        (None, None) => config
            .hosts
            .first()
            .map(|h| h.domain.clone())
            .unwrap_or_default(),
    };
    check_served(config, &domain)?;
    let username = args.username.as_deref().map(new_localpart).transpose()?;
    let req = InviteRequest {
        domain,
        username,
        contact,
        register: true,
        uses: args.uses,
        lifetime: args.lifetime.unwrap_or(config.registration.invite_lifetime),
    };
    Ok(invites::create_invite(store, &req, starling_accounts::unix_now()).await?)
}

/// The token of `text`: a bare token, or the `preauth` value of an invitation URI.
pub fn token_of(text: &str) -> Result<String, InviteCliError> {
    let t = text.trim();
    if !t.starts_with("xmpp:") {
        return if t.is_empty() {
            Err(InviteCliError::NoToken(text.to_owned()))
        } else {
            Ok(t.to_owned())
        };
    }
    t.split(['?', ';'])
        .find_map(|kv| kv.strip_prefix("preauth="))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| InviteCliError::NoToken(text.to_owned()))
}

/// One line of `starling invite list`.
pub fn describe(invite: &Invite) -> String {
    let short = invite.token_hash.get(..12).unwrap_or(&invite.token_hash);
    let mut line = format!(
        "{short}  {}  uses left {}  expires {}",
        invite.domain,
        invite.uses_left,
        format_time(invite.expires_at)
    );
    if let Some(u) = &invite.username {
        line.push_str(&format!("  for {u}@{}", invite.domain));
    }
    if let Some((l, d)) = &invite.contact {
        line.push_str(&format!("  contact of {l}@{d}"));
    }
    if !invite.register {
        line.push_str("  (contact only)");
    }
    if invite.expires_at <= starling_accounts::unix_now() {
        line.push_str("  EXPIRED");
    }
    line
}

/// A Unix time as an XEP-0082 date-time (UTC).
pub fn format_time(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_lifetime("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_lifetime("30m").unwrap(), Duration::from_secs(1_800));
        assert_eq!(parse_lifetime("3600").unwrap(), Duration::from_secs(3_600));
        assert!(matches!(
            parse_lifetime("7w"),
            Err(InviteCliError::BadDuration(_))
        ));
        assert!(matches!(
            parse_lifetime("d"),
            Err(InviteCliError::BadDuration(_))
        ));
        assert!(matches!(
            parse_lifetime("10s"),
            Err(InviteCliError::LifetimeRange)
        ));
        assert!(matches!(
            parse_lifetime("366d"),
            Err(InviteCliError::LifetimeRange)
        ));
    }

    #[test]
    fn tokens_from_uris() {
        assert_eq!(token_of("abc").unwrap(), "abc");
        assert_eq!(
            token_of("xmpp:example.org?register;preauth=T0k").unwrap(),
            "T0k"
        );
        assert_eq!(
            token_of("xmpp:romeo@example.org?roster;preauth=T0k;ibr=y").unwrap(),
            "T0k"
        );
        assert!(token_of("xmpp:example.org?register").is_err());
    }
}
