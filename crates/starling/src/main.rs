//! The `starling` command: serve, manage users, check the configuration.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use starling_config::Config;

/// Starling: an XMPP server.
#[derive(Parser)]
#[command(name = "starling", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Manage user accounts (works while the server runs).
    #[command(subcommand)]
    User(UserCommand),
    /// Validate the configuration and print every problem, without starting anything.
    CheckConfig(ConfigArgs),
    /// List the reports users attached to blocks (XEP-0377), newest first.
    Reports(ReportsArgs),
    /// List the running server's sessions (through its control socket).
    Sessions(SessionsArgs),
    /// Send a message to every session of the running server (XEP-0133 §4.23).
    Announce(AnnounceArgs),
    /// Server-to-server connections of the running server.
    #[command(subcommand)]
    S2s(S2sCommand),
    /// Check federation with DOMAIN: DNS, connections, certificates, authentication; says what
    /// is wrong in plain words.
    CheckFederation(CheckFederationArgs),
    /// Invite people to register (XEP-0401/XEP-0445 invitations; works while the server runs).
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Import accounts and their data from another server (see docs/migrating.md).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Export accounts and their data for another server.
    #[command(subcommand)]
    Export(ExportCommand),
}

#[derive(Subcommand)]
enum InviteCommand {
    /// Create an invitation and print its xmpp: URI (the invitee opens it in a client that
    /// supports XEP-0401 invitations, such as Conversations, Monocles or Gajim).
    Create {
        /// How many accounts the invitation may create.
        #[arg(long, value_name = "N", default_value_t = 1)]
        reusable: u32,
        /// How long it is valid: 7d, 12h, 30m or seconds [default: registration.invite_lifetime,
        /// 7 days].
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Make the invitee and this local account mutual contacts ("both") on registration
        /// (XEP-0379); an existing user who opens the link becomes a contact too.
        #[arg(long, value_name = "JID")]
        contact: Option<String>,
        /// Reserve this user name for the invitee.
        #[arg(long, value_name = "NAME")]
        username: Option<String>,
        /// The host to register on [default: the contact's, else the first configured host].
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// List the invitations, optionally of one domain (expired ones are marked).
    List {
        domain: Option<String>,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Revoke an invitation, given its token or its whole xmpp: URI.
    Revoke {
        token: String,
        #[command(flatten)]
        common: ConfigArgs,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Import a XEP-0227 export: Prosody's (prosody-migrator to mod_storage_xep0227) or
    /// ejabberd's (ejabberdctl export_piefxis), or Starling's own.
    ///
    /// PATH is one file or a directory: every *.xml file in it that no other includes is read
    /// (with the files it includes). Everything is read and checked before anything is written:
    /// every account's host must be served by the configuration, and no account may exist
    /// already (unless --replace-existing). Then each account is written as one unit, with its
    /// SCRAM credentials (a plaintext password from the file becomes SCRAM keys with [auth]
    /// scram_iterations and is not stored), roster (groups, names, subscription states, pending
    /// requests both ways), vCard, private XML (XEP-0049), offline messages and message archive
    /// (XEP-0313). An account that fails halfway is deleted again and named; the others are
    /// imported. What the files hold that Starling cannot keep (PEP, privacy lists) is listed as
    /// skipped. Works while the server runs; the accounts' users should not be logged in.
    Xep0227 {
        /// The export: a file or a directory.
        path: PathBuf,
        /// Replace accounts that exist already: each is deleted, with everything it owns now,
        /// just before its imported version is written. Without it, any existing account stops
        /// the import before anything is written.
        #[arg(long)]
        replace_existing: bool,
        #[command(flatten)]
        common: ConfigArgs,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Write every account (of one domain, or of every configured host) as XEP-0227 files, one
    /// DIR/user@host.xml per account, in the layout Prosody's mod_storage_xep0227 uses: SCRAM
    /// credentials (never a password: none is stored), roster, pending subscription requests,
    /// vCard, private XML, offline messages and message archive. DIR is created (mode 0700) and
    /// must otherwise be empty; the files are readable by their owner only.
    Xep0227 {
        /// The directory to write.
        dir: PathBuf,
        /// Only the accounts of this domain.
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        common: ConfigArgs,
    },
}

#[derive(Args)]
struct SessionsArgs {
    /// Print JSON (one array of objects) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: ConfigArgs,
}

#[derive(Subcommand)]
enum S2sCommand {
    /// List the connections: direction, peer, domains, authentication, TLS, bidi, queued
    /// stanzas, age (through the control socket).
    List {
        /// Print JSON (one array of objects) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: ConfigArgs,
    },
}

#[derive(Args)]
struct CheckFederationArgs {
    /// The remote domain.
    domain: String,
    /// Our domain to authenticate as (default: the first host).
    #[arg(long, value_name = "DOMAIN")]
    from: Option<String>,
    #[command(flatten)]
    common: ConfigArgs,
}

#[derive(Args)]
struct AnnounceArgs {
    /// The text (a headline message from the server's domain).
    text: String,
    /// Only to the sessions of this host.
    #[arg(long, value_name = "DOMAIN")]
    host: Option<String>,
    #[command(flatten)]
    common: ConfigArgs,
}

#[derive(Args)]
struct ReportsArgs {
    /// Only the reports about this JID.
    #[arg(long)]
    jid: Option<String>,
    /// How many to list.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    common: ConfigArgs,
}

#[derive(Args, Default, Clone)]
struct ConfigArgs {
    /// Configuration file (TOML). Without it, built-in defaults are used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (database, generated certificates); overrides the file.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Default)]
struct ServeArgs {
    #[command(flatten)]
    common: ConfigArgs,
    /// Serve only this domain; overrides the file's hosts.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Address of the STARTTLS client listener; overrides the file's `[c2s] listen`.
    #[arg(long, value_name = "ADDR")]
    c2s_listen: Option<SocketAddr>,
    /// Address of the direct TLS (XEP-0368) client listener; overrides the file's
    /// `[c2s] direct_tls_listen`.
    #[arg(long, value_name = "ADDR")]
    c2s_tls_listen: Option<SocketAddr>,
    /// Address of the HTTP listener (/health, /ready); overrides the file's `[http] listen`.
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<SocketAddr>,
    /// Address of the server-to-server listener (STARTTLS, usually port 5269); overrides the
    /// file's `[s2s] listen` and turns federation on.
    #[arg(long, value_name = "ADDR")]
    s2s_listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account.
    Add {
        /// The account, user@domain.
        jid: String,
        /// The password (prompted for when absent).
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Change an account's password.
    Passwd {
        jid: String,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Delete an account.
    Del {
        jid: String,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// List accounts, optionally of one domain.
    List {
        domain: Option<String>,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Disable an account: it keeps its data but cannot log in (logins get <account-disabled/>);
    /// a running server ends its sessions.
    Disable {
        jid: String,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Re-enable a disabled account.
    Enable {
        jid: String,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// End an account's sessions (a full JID: that session) on the running server; the account
    /// may log in again.
    Kick {
        jid: String,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Show an account's statistics from the running server: roster size, online resources and
    /// their addresses (XEP-0133 §4.10).
    Stats {
        jid: String,
        #[command(flatten)]
        common: ConfigArgs,
    },
    /// Create many numbered accounts at once, optionally with ring rosters (for benchmarks).
    ///
    /// Creates PREFIX{START}@DOMAIN … PREFIX{START+COUNT-1}@DOMAIN, all with the same password.
    /// If any of them exists already, nothing is imported and the first one is named: import
    /// never replaces or merges accounts (delete them first, or pick another --prefix or
    /// --start).
    ///
    /// With --ring R, user i gets the R contacts i±1 … i±R/2 (wrapping around the batch), each
    /// with subscription "both", no pending request, no group, and the contact's user name as
    /// its name; the rosters are mutual by construction.
    ///
    /// Speed: the SCRAM credentials are derived once for the whole import (one random salt per
    /// hash) and stored for every account, instead of once per account. This weakens nothing:
    /// the accounts share one password by construction, so cracking any one credential reveals
    /// them all, whatever the salts. Use it for test accounts, not for people.
    ///
    /// The accounts are written in one transaction, the rosters in chunks of 50,000 items; a
    /// running server's writes wait for each. If a roster chunk fails, the import's accounts are
    /// deleted again.
    Import(ImportArgs),
}

#[derive(Args)]
struct ImportArgs {
    /// User-name prefix; the accounts are PREFIX followed by a number.
    #[arg(long)]
    prefix: String,
    /// Number of accounts.
    #[arg(long)]
    count: usize,
    /// Number of the first account.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Password of every account (prompted for when absent).
    #[arg(long)]
    password: Option<String>,
    /// Domain of the accounts; it must be served by the configuration [default: the first
    /// configured host].
    #[arg(long)]
    domain: Option<String>,
    /// Give every user R mutual contacts ("both"); R even, at least 2, less than --count.
    #[arg(long, value_name = "R")]
    ring: Option<usize>,
    #[command(flatten)]
    common: ConfigArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    if let Command::CheckConfig(args) = &command {
        return check_config(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve(args).await,
            Command::User(cmd) => user(cmd).await,
            Command::Reports(args) => reports(args).await,
            Command::Invite(cmd) => invite(cmd).await,
            Command::Import(ImportCommand::Xep0227 {
                path,
                replace_existing,
                common,
            }) => import_xep0227(&path, replace_existing, &common).await,
            Command::Export(ExportCommand::Xep0227 {
                dir,
                domain,
                common,
            }) => export_xep0227(&dir, domain, &common).await,
            Command::Sessions(args) => sessions(args).await,
            Command::Announce(args) => announce(args).await,
            Command::S2s(cmd) => s2s_command(cmd).await,
            Command::CheckFederation(args) => check_federation(args).await,
            Command::CheckConfig(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration (or the defaults) and applies command-line overrides.
fn load_config(args: &ConfigArgs) -> Result<Config, starling_config::ConfigErrors> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

fn check_config(args: &ConfigArgs) -> ExitCode {
    let config = match load_config(args) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} problem(s) found", errors.0.len());
            return ExitCode::FAILURE;
        }
    };
    let problems = config.check_files();
    if !problems.is_empty() {
        for e in &problems {
            eprintln!("{e}");
        }
        eprintln!("{} problem(s) found", problems.len());
        return ExitCode::FAILURE;
    }
    let source = args
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults".to_owned());
    println!("configuration OK ({source})");
    ExitCode::SUCCESS
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // No colour codes in files and journals.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load_config(&args.common).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(domain) = args.domain {
        let domain = domain.to_ascii_lowercase();
        let existing = config.hosts.iter().find(|h| h.domain == domain).cloned();
        config.hosts = vec![existing.unwrap_or(starling_config::HostConfig {
            domain,
            certificate: None,
            key: None,
            ..Default::default()
        })];
    }
    if let Some(addr) = args.c2s_listen {
        config.c2s.listen = vec![addr];
    }
    if let Some(addr) = args.c2s_tls_listen {
        config.c2s.direct_tls_listen = vec![addr];
    }
    if let Some(addr) = args.http_listen {
        config.http.listen = vec![addr];
    }
    if let Some(addr) = args.s2s_listen {
        config.s2s.listen = vec![addr];
    }
    let problems = config.check_files();
    if !problems.is_empty() {
        bail!(
            "{}",
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let mut signals = Signals::install()?;
    init_logging(&config.log.level);
    tracing::info!("Starling {} starting", env!("CARGO_PKG_VERSION"));
    tracing::info!("data directory: {}", config.data_dir.display());
    let server = starling::start(&config).await?;
    let domains: Vec<&str> = config.hosts.iter().map(|h| h.domain.as_str()).collect();
    tracing::info!("serving {}", domains.join(", "));
    for h in config.hosts.iter().filter(|h| h.certificate.is_none()) {
        let by_acme = server.acme.as_ref().is_some_and(|acme| {
            acme.targets()
                .iter()
                .any(|t| t.names.first() == Some(&h.domain))
        });
        if by_acme {
            tracing::info!(
                "{}: certificate managed by ACME ({}, {}), kept in {}/certs",
                h.domain,
                config.acme.directory,
                config.acme.challenge,
                config.data_dir.display()
            );
        } else {
            tracing::info!(
                "{}: using a self-signed certificate from {}/certs (clients will ask you to trust it)",
                h.domain,
                config.data_dir.display()
            );
        }
    }
    if let Some(d) = domains.first() {
        tracing::info!(
            "add a user with: starling user add alice@{d}{}",
            data_dir_hint(&args.common)
        );
    }
    signals.wait(&server).await;
    tracing::info!("shutting down");
    server.shutdown(Duration::from_secs(10)).await;
    tracing::info!("stopped");
    Ok(())
}

fn data_dir_hint(args: &ConfigArgs) -> String {
    let mut hint = String::new();
    if let Some(c) = &args.config {
        hint.push_str(&format!(" --config {}", c.display()));
    }
    if let Some(d) = &args.data_dir {
        hint.push_str(&format!(" --data-dir {}", d.display()));
    }
    hint
}

/// Signal handlers, installed before the server starts so that a SIGHUP or SIGTERM during start-up
/// is not fatal.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Returns on Ctrl-C or SIGTERM; reloads certificates on SIGHUP.
    async fn wait(&mut self, server: &starling::RunningServer) {
        #[cfg(unix)]
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = self.term.recv() => return,
                _ = self.hup.recv() => {
                    match server.reload_tls().await {
                        Ok(()) => tracing::info!("certificates reloaded"),
                        Err(e) => tracing::error!("certificate reload failed, keeping the old ones: {e}"),
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = server;
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Reads a password: from the flag, else prompted (twice, hidden) on a terminal, else one line of stdin.
fn read_password(given: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let second = rpassword::prompt_password("Repeat: ").context("reading the password")?;
        if first != second {
            bail!("the passwords do not match");
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `reports`: one report per paragraph, newest first.
async fn reports(args: ReportsArgs) -> anyhow::Result<()> {
    let config = load_config(&args.common).map_err(|e| anyhow::anyhow!("{e}"))?;
    let jid = match args.jid {
        Some(j) => Some(
            starling_proto::Jid::new(&j)
                .map_err(|e| anyhow::anyhow!("{j} is not a JID: {e}"))?
                .to_string(),
        ),
        None => None,
    };
    let storage = starling::server::open_storage(&config).await?;
    let found = storage
        .stores()
        .blocking
        .reports(jid.as_deref(), args.limit)
        .await;
    storage.close().await;
    // What users wrote is shown with its control characters escaped, so that a report cannot
    // forge lines of its own (a line break in a reason) or rewrite one (a carriage return).
    let clean = |text: &str| -> String {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().collect()
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let mut out = std::io::stdout().lock();
    for stored in found? {
        let r = stored.report;
        writeln!(
            out,
            "#{} {} {}@{} reported {}: {}",
            stored.id,
            starling_module_api::mam::query::format_datetime(r.received_us),
            r.localpart,
            r.domain,
            r.jid,
            clean(&r.reason)
        )?;
        if !r.stanza_ids.is_empty() {
            writeln!(out, "  messages: {}", clean(&r.stanza_ids.join(" ")))?;
        }
        if let Some(text) = r.text {
            for line in text.lines() {
                writeln!(out, "  > {}", clean(line))?;
            }
        }
    }
    Ok(())
}

/// Fails unless `config` serves `domain` (already normalised).
async fn invite(cmd: InviteCommand) -> anyhow::Result<()> {
    use starling::invite as inv;
    let common = match &cmd {
        InviteCommand::Create { common, .. }
        | InviteCommand::List { common, .. }
        | InviteCommand::Revoke { common, .. } => common.clone(),
    };
    let config = load_config(&common).map_err(|e| anyhow::anyhow!("{e}"))?;
    let storage = starling::server::open_storage(&config).await?;
    let store = storage.stores().invites;
    let result = match cmd {
        InviteCommand::Create {
            reusable,
            expires,
            contact,
            username,
            domain,
            ..
        } => {
            let args = inv::CreateArgs {
                uses: reusable,
                lifetime: expires.as_deref().map(inv::parse_lifetime).transpose()?,
                contact,
                username,
                domain,
            };
            let created = inv::create(&config, store.as_ref(), args).await?;
            // The URI alone on stdout, for scripts; the rest on stderr.
            println!("{}", created.uri());
            eprintln!(
                "valid until {} for {} registration(s)",
                inv::format_time(created.invite.expires_at),
                created.invite.uses_left
            );
            Ok(())
        }
        InviteCommand::List { domain, .. } => {
            for i in store.list_invites(domain.as_deref()).await? {
                println!("{}", inv::describe(&i));
            }
            Ok(())
        }
        InviteCommand::Revoke { token, .. } => {
            let hash = starling_accounts::invites::token_hash(&inv::token_of(&token)?);
            if store.delete_invite(&hash).await? {
                println!("revoked");
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "no such invitation (already used, revoked or never made)"
                ))
            }
        }
    };
    storage.close().await;
    result
}

fn check_served(config: &Config, domain: &str) -> anyhow::Result<()> {
    if config.hosts.iter().any(|h| h.domain == domain) {
        Ok(())
    } else {
        bail!(
            "{domain} is not served by this configuration (hosts: {})",
            config
                .hosts
                .iter()
                .map(|h| h.domain.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Accounts of an anonymous host are made at login, without a password (RFC 4505): none is
/// made or given a password by hand.
fn check_not_anonymous(config: &Config, domain: &str) -> anyhow::Result<()> {
    if config.is_anonymous_host(domain) {
        bail!(
            "{domain} is an anonymous host: its accounts are made at login (SASL ANONYMOUS) \
             and have no password"
        )
    }
    Ok(())
}

async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    use starling_accounts as auth;
    let common = match &cmd {
        UserCommand::Add { common, .. }
        | UserCommand::Passwd { common, .. }
        | UserCommand::Del { common, .. }
        | UserCommand::List { common, .. }
        | UserCommand::Disable { common, .. }
        | UserCommand::Enable { common, .. }
        | UserCommand::Kick { common, .. }
        | UserCommand::Stats { common, .. } => common.clone(),
        UserCommand::Import(args) => args.common.clone(),
    };
    let config = load_config(&common).map_err(|e| anyhow::anyhow!("{e}"))?;
    match cmd {
        UserCommand::Import(args) => return import(args, &config).await,
        UserCommand::Kick { jid, .. } => return kick(&config, &jid).await,
        UserCommand::Stats { jid, .. } => return stats(&config, &jid).await,
        _ => {}
    }
    let served = |domain: &str| check_served(&config, domain);
    let storage = starling::server::open_storage(&config).await?;
    let store = storage.stores().accounts;
    let iterations = config.auth.scram_iterations;
    let disable = matches!(cmd, UserCommand::Disable { .. });
    let result = match cmd {
        UserCommand::Add { jid, password, .. } => {
            // A new name must mean the same under PRECIS as under stringprep (RFC 7622 §3.3).
            let (local, domain) = auth::parse_new_account(&jid)?;
            served(&domain)?;
            check_not_anonymous(&config, &domain)?;
            let password = read_password(password)?;
            auth::create_account(store.as_ref(), &local, &domain, &password, iterations)
                .await
                .map_err(|e| match e {
                    auth::AccountError::Storage(starling_storage::StorageError::AlreadyExists) => {
                        anyhow::anyhow!("{local}@{domain} already exists")
                    }
                    other => other.into(),
                })?;
            println!("created {local}@{domain}");
            Ok(())
        }
        UserCommand::Passwd { jid, password, .. } => {
            let (local, domain) = auth::parse_account(&jid)?;
            check_not_anonymous(&config, &domain)?;
            let password = read_password(password)?;
            auth::set_password(store.as_ref(), &local, &domain, &password, iterations)
                .await
                .map_err(|e| match e {
                    auth::AccountError::Storage(starling_storage::StorageError::NotFound) => {
                        anyhow::anyhow!("{local}@{domain} does not exist")
                    }
                    other => other.into(),
                })?;
            println!("password changed for {local}@{domain}");
            end_sessions(
                &config,
                &format!("{local}@{domain}"),
                Reason::PasswordChanged,
            )
            .await
        }
        UserCommand::Del { jid, .. } => {
            let (local, domain) = auth::parse_account(&jid)?;
            match store.delete_account(&local, &domain).await {
                Ok(()) => {
                    println!("deleted {local}@{domain}");
                    end_sessions(&config, &format!("{local}@{domain}"), Reason::Deleted).await
                }
                Err(starling_storage::StorageError::NotFound) => {
                    Err(anyhow::anyhow!("{local}@{domain} does not exist"))
                }
                Err(e) => Err(e.into()),
            }
        }
        UserCommand::List { domain, .. } => {
            let domain = domain.map(|d| d.to_ascii_lowercase());
            let accounts = store.list_accounts(domain.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            for (local, domain) in accounts {
                writeln!(out, "{local}@{domain}")?;
            }
            Ok(())
        }
        UserCommand::Disable { jid, .. } | UserCommand::Enable { jid, .. } => {
            let (local, domain) = auth::parse_account(&jid)?;
            match store.set_disabled(&local, &domain, disable).await {
                Ok(()) if disable => {
                    println!("disabled {local}@{domain}");
                    end_sessions(&config, &format!("{local}@{domain}"), Reason::Disabled).await
                }
                Ok(()) => {
                    println!("enabled {local}@{domain}");
                    Ok(())
                }
                Err(starling_storage::StorageError::NotFound) => {
                    Err(anyhow::anyhow!("{local}@{domain} does not exist"))
                }
                Err(e) => Err(e.into()),
            }
        }
        // Handled above.
        UserCommand::Import(_) | UserCommand::Kick { .. } | UserCommand::Stats { .. } => Ok(()),
    };
    storage.close().await;
    result
}

/// `user import`: everything is checked before the database is opened.
async fn import(args: ImportArgs, config: &Config) -> anyhow::Result<()> {
    use starling::import;
    let domain = match args.domain {
        Some(d) => d,
        None => config
            .hosts
            .first()
            .map(|h| h.domain.clone())
            .context("the configuration serves no domain")?,
    };
    let plan = import::Plan::new(&args.prefix, &domain, args.start, args.count, args.ring)?;
    check_served(config, plan.domain())?;
    check_not_anonymous(config, plan.domain())?;
    let password = read_password(args.password)?;
    let started = std::time::Instant::now();
    // One derivation for the whole batch: see `import::shared_credentials` for why that is safe.
    let creds = import::shared_credentials(&password, config.auth.scram_iterations)?;
    let storage = starling::server::open_storage(config).await?;
    let stores = storage.stores();
    let result = import::run(&*stores.accounts, &*stores.rosters, &plan, &creds).await;
    storage.close().await;
    let done = result?;
    let ring = match args.ring {
        Some(r) => format!(" (ring {r}: {} roster items)", done.roster_items),
        None => String::new(),
    };
    println!(
        "imported {} accounts{ring} in {:.1} s",
        done.accounts,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `import xep0227`: read and check everything, then write account by account.
async fn import_xep0227(
    path: &std::path::Path,
    replace_existing: bool,
    common: &ConfigArgs,
) -> anyhow::Result<()> {
    use starling::xep0227;
    let config = load_config(common).map_err(|e| anyhow::anyhow!("{e}"))?;
    let export = xep0227::read(path)?;
    for w in &export.warnings {
        eprintln!("warning: {w}");
    }
    // Accounts of an anonymous host are made at login only: its domain is not a target.
    if let Some(a) = export
        .accounts
        .iter()
        .find(|a| config.is_anonymous_host(&a.domain))
    {
        check_not_anonymous(&config, &a.domain)?;
    }
    let served: Vec<String> = config
        .hosts
        .iter()
        .filter(|h| !h.anonymous)
        .map(|h| h.domain.clone())
        .collect();
    let options = xep0227::ImportOptions {
        iterations: config.auth.scram_iterations,
        replace_existing,
    };
    let storage = starling::server::open_storage(&config).await?;
    let result = xep0227::import(&storage.stores(), &export, &served, options).await;
    storage.close().await;
    let r = result?;
    println!(
        "read {} file(s): {} account(s)",
        export.files.len(),
        export.accounts.len()
    );
    println!(
        "imported {} account(s) ({} replaced, {} from a plaintext password turned into SCRAM \
         keys): {} roster item(s), {} pending subscription request(s), {} vCard(s), {} private \
         XML element(s), {} offline message(s), {} archived message(s)",
        r.accounts,
        r.replaced,
        r.from_password,
        r.roster_items,
        r.pending_in,
        r.vcards,
        r.private,
        r.offline,
        r.archived
    );
    if !export.warnings.is_empty() {
        println!(
            "{} warning(s): data skipped or read differently (listed above)",
            export.warnings.len()
        );
    }
    if !r.failed.is_empty() {
        for (jid, what) in &r.failed {
            eprintln!("not imported: {jid}: {what}");
        }
        bail!("{} account(s) not imported (listed above)", r.failed.len());
    }
    Ok(())
}

// ----- commands for the running server (its control socket) -----

#[cfg(unix)]
use starling::control::{ControlError, Reason, Request, Response};

/// Asks the server running with `config`'s data directory.
#[cfg(unix)]
async fn ask(config: &Config, request: &Request) -> Result<Response, ControlError> {
    starling::control::request(&config.data_dir, request).await
}

/// What only the running server can answer: its error, or that none runs.
#[cfg(unix)]
async fn ask_running(config: &Config, request: &Request) -> anyhow::Result<Response> {
    match ask(config, request).await? {
        Response::Error { message } => bail!("the server refused: {message}"),
        other => Ok(other),
    }
}

/// After a change in the database: tells a running server to end the account's sessions. No
/// server running is fine (there are no sessions).
#[cfg(unix)]
async fn end_sessions(config: &Config, jid: &str, reason: Reason) -> anyhow::Result<()> {
    let request = Request::EndSessions {
        jid: jid.to_owned(),
        reason,
    };
    match ask(config, &request).await {
        Ok(Response::Ended { sessions }) => {
            if sessions > 0 {
                println!("ended {sessions} session(s) of {jid}");
            }
            Ok(())
        }
        Err(ControlError::NotRunning(_)) => Ok(()),
        Ok(Response::Error { message }) => {
            bail!(
                "the database is changed, but the running server refused to end the sessions of {jid}: {message}"
            )
        }
        Ok(other) => bail!("unexpected answer from the server: {other:?}"),
        Err(e) => bail!(
            "the database is changed, but the running server could not be told to end the sessions of {jid}: {e}"
        ),
    }
}

#[cfg(unix)]
async fn kick(config: &Config, jid: &str) -> anyhow::Result<()> {
    let request = Request::EndSessions {
        jid: jid.to_owned(),
        reason: Reason::Kicked,
    };
    match ask_running(config, &request).await? {
        Response::Ended { sessions } => {
            println!("ended {sessions} session(s) of {jid}");
            Ok(())
        }
        other => bail!("unexpected answer from the server: {other:?}"),
    }
}

#[cfg(unix)]
async fn stats(config: &Config, jid: &str) -> anyhow::Result<()> {
    let request = Request::UserStats {
        jid: jid.to_owned(),
    };
    match ask_running(config, &request).await? {
        Response::UserStats {
            roster_size,
            resources,
            ips,
        } => {
            println!("roster size: {roster_size}");
            println!("online resources: {}", resources.join(" "));
            println!("addresses: {}", ips.join(" "));
            Ok(())
        }
        other => bail!("unexpected answer from the server: {other:?}"),
    }
}

#[cfg(unix)]
async fn sessions(args: SessionsArgs) -> anyhow::Result<()> {
    let config = load_config(&args.common).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Response::Sessions { sessions } = ask_running(&config, &Request::Sessions).await? else {
        bail!("unexpected answer from the server");
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&sessions)?)?;
        return Ok(());
    }
    for s in sessions {
        let mut state = vec![if s.available {
            "available"
        } else {
            "unavailable"
        }];
        if s.detached {
            state.push("detached");
        }
        if s.inactive {
            state.push("inactive");
        }
        writeln!(
            out,
            "{} {} {}",
            s.jid,
            s.ip.as_deref().unwrap_or("-"),
            state.join(",")
        )?;
    }
    Ok(())
}

/// `s2s list`.
#[cfg(unix)]
async fn s2s_command(cmd: S2sCommand) -> anyhow::Result<()> {
    let S2sCommand::List { json, common } = cmd;
    let config = load_config(&common).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Response::S2s { enabled, links } = ask_running(&config, &Request::S2s).await? else {
        bail!("unexpected answer from the server");
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&links)?)?;
        return Ok(());
    }
    if !enabled {
        writeln!(out, "federation is off ([s2s] listen is empty)")?;
        return Ok(());
    }
    if links.is_empty() {
        writeln!(out, "no server-to-server connections")?;
    }
    for l in links {
        writeln!(
            out,
            "{:<8} {:<22} {} <-> {} {}{}{} queued={} age={}s",
            l.direction,
            l.peer.as_deref().unwrap_or("-"),
            l.local,
            if l.remote.is_empty() {
                "-".to_owned()
            } else {
                l.remote.join(",")
            },
            l.auth,
            if l.tls { " tls" } else { " PLAINTEXT" },
            if l.bidi { " bidi" } else { "" },
            l.queued,
            l.age_secs
        )?;
    }
    Ok(())
}

/// `check-federation DOMAIN`.
async fn check_federation(args: CheckFederationArgs) -> anyhow::Result<()> {
    let config = load_config(&args.common).map_err(|e| anyhow::anyhow!("{e}"))?;
    let local = match args.from {
        Some(d) => d.to_ascii_lowercase(),
        None => config
            .hosts
            .first()
            .map(|h| h.domain.clone())
            .ok_or_else(|| anyhow::anyhow!("no host is configured"))?,
    };
    check_served(&config, &local)?;
    let hosts: Vec<starling_net::HostTls> = config
        .hosts
        .iter()
        .map(|h| starling_net::HostTls {
            domain: h.domain.clone(),
            certificate: h.certificate.clone(),
            key: h.key.clone(),
        })
        .collect();
    let data_dir = config.data_dir.clone();
    let tls =
        tokio::task::spawn_blocking(move || starling_net::TlsManager::load(&hosts, &data_dir))
            .await??;
    let s2s = starling::server::s2s_service(
        &config,
        &std::sync::Arc::new(tls),
        tokio_util::sync::CancellationToken::new(),
        tokio_util::task::TaskTracker::new(),
    )?;
    let remote = args.domain.trim_end_matches('.').to_ascii_lowercase();
    let mut out = std::io::stdout().lock();
    writeln!(out, "checking federation from {local} to {remote}")?;
    let report = s2s.check(&local, &remote).await;
    write!(out, "{}", report.render())?;
    if report.federates() {
        writeln!(out, "\nresult: {local} can federate with {remote}")?;
        Ok(())
    } else {
        writeln!(
            out,
            "\nresult: {local} cannot federate with {remote} (see the FAIL lines above)"
        )?;
        drop(out);
        bail!("{local} cannot federate with {remote}");
    }
}

#[cfg(not(unix))]
async fn s2s_command(_: S2sCommand) -> anyhow::Result<()> {
    bail!("the control socket needs a Unix system")
}

/// `export xep0227`.
async fn export_xep0227(
    dir: &std::path::Path,
    domain: Option<String>,
    common: &ConfigArgs,
) -> anyhow::Result<()> {
    let config = load_config(common).map_err(|e| anyhow::anyhow!("{e}"))?;
    let domains = match domain {
        Some(d) => {
            let d = d.to_ascii_lowercase();
            check_served(&config, &d)?;
            vec![d]
        }
        None => config.hosts.iter().map(|h| h.domain.clone()).collect(),
    };
    let storage = starling::server::open_storage(&config).await?;
    let result = starling::xep0227::write(&storage.stores(), &domains, dir).await;
    storage.close().await;
    let r = result?;
    println!(
        "exported {} account(s) to {}: {} roster item(s), {} pending subscription request(s), \
         {} vCard(s), {} private XML element(s), {} offline message(s), {} archived message(s)",
        r.accounts,
        dir.display(),
        r.roster_items,
        r.pending_in,
        r.vcards,
        r.private,
        r.offline,
        r.archived
    );
    Ok(())
}
#[cfg(unix)]
async fn announce(args: AnnounceArgs) -> anyhow::Result<()> {
    let config = load_config(&args.common).map_err(|e| anyhow::anyhow!("{e}"))?;
    let request = Request::Announce {
        text: args.text,
        host: args.host.map(|h| h.to_ascii_lowercase()),
    };
    match ask_running(&config, &request).await? {
        Response::Announced { sessions } => {
            println!("sent to {sessions} session(s)");
            Ok(())
        }
        other => bail!("unexpected answer from the server: {other:?}"),
    }
}

#[cfg(not(unix))]
enum Reason {
    Deleted,
    Disabled,
    PasswordChanged,
}

#[cfg(not(unix))]
async fn end_sessions(_: &Config, _: &str, _: Reason) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(not(unix))]
async fn kick(_: &Config, _: &str) -> anyhow::Result<()> {
    bail!("the control socket needs a Unix system")
}

#[cfg(not(unix))]
async fn stats(_: &Config, _: &str) -> anyhow::Result<()> {
    bail!("the control socket needs a Unix system")
}

#[cfg(not(unix))]
async fn sessions(_: SessionsArgs) -> anyhow::Result<()> {
    bail!("the control socket needs a Unix system")
}

#[cfg(not(unix))]
async fn announce(_: AnnounceArgs) -> anyhow::Result<()> {
    bail!("the control socket needs a Unix system")
}
