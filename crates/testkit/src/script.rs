//! Protocol scripts: XMPP conversations written as text, in the spirit of Prosody's scansion, run
//! against a fresh in-process [`TestServer`].
//!
//! The format is described in `tests/scripts/README.md` at the workspace root. In short:
//!
//! ```text
//! # A comment.
//! [Client] alice
//!     user: alice
//!     password: secret
//!     resource: laptop
//!
//! -----
//!
//! alice connects
//!
//! alice sends:
//!     <iq type="get" id="p1"><ping xmlns="urn:xmpp:ping"/></iq>
//!
//! alice receives:
//!     <iq type="result" id="p1" to="${alice's full JID}"/>
//!
//! alice disconnects
//! ```
//!
//! # Procedure
//!
//! 1. [`parse`] reads the client declarations (before the `-----` line) and the steps; every XML
//!    block is checked for well-formedness at once (variables replaced by a placeholder), so a
//!    broken script fails before any server starts, naming the line.
//! 2. [`run`] starts a [`TestServer`] (domain `localhost`), creates each declared account, then
//!    performs the steps in order: `connects` logs in with STARTTLS, SCRAM-SHA-256 and binds the
//!    declared resource; `sends:` writes the block (variables substituted) as it is; `receives:`
//!    matches the next stanzas exactly with [`crate::matcher`] (`{*}` wildcards), in order, or in
//!    any order after `receives, in any order:`, and keeps the values of `{$NAME}` captures for
//!    later `${NAME}` references; `receives nothing` waits [`SILENCE`]; `disconnects` ends the
//!    stream politely, `drops` closes the TCP connection without `</stream:stream>`;
//!    `server restarts` stops the server, keeping its data directory, and starts a new one on it.
//! 3. The first failing step ends the run with a [`ScriptError`] naming the script, the line, the
//!    step and, for a mismatch, the expected and the received XML.
//!
//! # Hazards
//!
//! - Frames are never skipped (see the crate documentation): a script must account for every
//!   stanza each client receives, in order. `disconnects` and the end of the script fail if a
//!   stanza has already arrived unread; stanzas still in flight at that moment are not seen.
//! - `receives nothing` proves silence for [`SILENCE`] only; a stanza the server sends later is
//!   reported by whichever step reads that client next.
//! - `server restarts` discards whatever the connected clients had not read yet (the old server
//!   may send presence while its sessions end); they must `connect` again.
//! - Blocks are sent verbatim, indentation included: whitespace between and inside elements reaches
//!   the server (and other clients) as whitespace text, which the matcher ignores.
//! - `receives, in any order:` pairs each received stanza with the first expected one it matches;
//!   with overlapping patterns (one more general than another) a valid order can be rejected, so
//!   keep the stanzas of such a block distinct.
//! - Variables are substituted as text (XML-escaped) before parsing: a value containing markup
//!   cannot change the structure of a block.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use starling_proto::{Element, Node};
use starling_stream::{Decoder, Frame};

use crate::client::{Client, Security};
use crate::matcher::{TEST_LIMITS, WILDCARD, matches, to_stream_xml};
use crate::server::TestServer;

/// How long `X receives nothing` waits.
pub const SILENCE: Duration = Duration::from_millis(200);

/// What a variable becomes while a script is checked, before any client is connected.
const PLACEHOLDER: &str = "placeholder@localhost/placeholder";

/// The synthetic stream header XML blocks are parsed under (default namespace `jabber:client`).
const HEADER: &str =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Why a script could not be read, parsed or run.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The script is malformed; `line` is 1-based.
    #[error("{origin}:{line}: {message}")]
    Parse {
        origin: String,
        line: usize,
        message: String,
    },
    /// A step failed while running; `step` is the step as written.
    #[error("{origin}:{line}: step `{step}` failed: {message}")]
    Step {
        origin: String,
        line: usize,
        step: String,
        message: String,
    },
}

impl ScriptError {
    /// The 1-based line the error is about (`None` for [`ScriptError::Read`]).
    pub fn line(&self) -> Option<usize> {
        match self {
            ScriptError::Read { .. } => None,
            ScriptError::Parse { line, .. } | ScriptError::Step { line, .. } => Some(*line),
        }
    }
}

/// A client declared with `[Client] NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientDecl {
    /// The name steps use.
    pub name: String,
    /// The account's localpart (the domain is the test server's).
    pub user: String,
    pub password: String,
    /// The resource to bind; `None` lets the server generate one.
    pub resource: Option<String>,
    /// Line of the `[Client]` header.
    pub line: usize,
}

/// An indented block of XML after `sends:` or `receives:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlBlock {
    /// The lines joined with `\n`, indentation kept, variables not yet substituted.
    pub text: String,
    /// The line of the block's first line.
    pub first_line: usize,
    /// The line where each top-level element starts, in order (at least one).
    pub element_lines: Vec<usize>,
}

/// One step of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// `X connects`.
    Connect(String),
    /// `X disconnects`: `</stream:stream>`, then wait for the server's and EOF.
    Disconnect(String),
    /// `X drops`: the TCP connection is closed without ending the stream.
    Drop(String),
    /// `X sends:` and its block.
    Send(String, XmlBlock),
    /// `X receives:` (in order) or `X receives, in any order:` and its block.
    Receive {
        client: String,
        block: XmlBlock,
        any_order: bool,
    },
    /// `X receives nothing`.
    Nothing(String),
    /// `server restarts`.
    Restart,
}

/// A step and where it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// 1-based line of the step.
    pub line: usize,
    /// The step line as written, trimmed (for error messages).
    pub text: String,
    pub kind: StepKind,
}

/// A parsed script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// Where the script came from (a file path or a test's name), for messages.
    pub origin: String,
    /// `[Server]` `archive: on`: the server keeps message archives (XEP-0313), which the test
    /// server otherwise does not (archived messages carry a `<stanza-id/>` the other scripts do
    /// not expect).
    pub archive: bool,
    pub clients: Vec<ClientDecl>,
    pub steps: Vec<Step>,
}

/// A variable reference `${...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Var {
    Domain,
    Bare(String),
    Full(String),
    /// A value an earlier `receives:` step captured with `{$NAME}`.
    Captured(String),
}

/// The marker of a capture in an expected attribute value: `{$NAME}`.
fn capture_name(value: &str) -> Option<&str> {
    value.strip_prefix("{$")?.strip_suffix('}')
}

/// Where a capture sits in an expected element: the element-child indexes from the top element,
/// the attribute, and the variable it sets.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Capture {
    path: Vec<usize>,
    ns: Option<String>,
    attr: String,
    var: String,
}

/// Copies `el`, turning every attribute value `{$NAME}` into the wildcard and recording where it
/// was. A `{$` in text is refused: captures work in attribute values only.
fn strip_captures(
    el: &Element,
    path: &mut Vec<usize>,
    out: &mut Vec<Capture>,
) -> Result<Element, String> {
    let mut copy = Element::new(el.name(), el.ns());
    for a in el.attrs() {
        let value = match capture_name(&a.value) {
            Some(var) => {
                if !is_valid_name(var) || var == "domain" {
                    return Err(format!("invalid capture name `{{${var}}}`"));
                }
                out.push(Capture {
                    path: path.clone(),
                    ns: a.namespace().map(str::to_owned),
                    attr: a.name.to_string(),
                    var: var.to_owned(),
                });
                WILDCARD
            }
            None => a.value.as_str(),
        };
        copy.set_attr_ns(&a.ns, &a.name, value);
    }
    let mut index = 0;
    for node in el.nodes() {
        match node {
            Node::Text(t) => {
                if t.contains("{$") {
                    return Err(format!(
                        "`{}` in text: captures (`{{$NAME}}`) work in attribute values only",
                        t.trim()
                    ));
                }
                copy.append_text(t.clone());
            }
            Node::Element(child) => {
                path.push(index);
                let c = strip_captures(child, path, out)?;
                path.pop();
                copy.append_child(c);
                index += 1;
            }
            // Expected stanzas are parsed from the script: never serialised subtrees.
            Node::Raw(_) => return Err("a serialised subtree in an expected stanza".into()),
        }
    }
    Ok(copy)
}

/// The values of `captures` in `actual`, which matched the stripped expected element.
fn read_captures(actual: &Element, captures: &[Capture]) -> Result<Vec<(String, String)>, String> {
    captures
        .iter()
        .map(|c| {
            let mut el = actual;
            for &i in &c.path {
                el = el
                    .children()
                    .nth(i)
                    .ok_or_else(|| format!("internal: no child {i} for capture `{}`", c.var))?;
            }
            let value = match &c.ns {
                None => el.attr(&c.attr),
                Some(ns) => el.attr_ns(ns, &c.attr),
            };
            value.map(|v| (c.var.clone(), v.to_owned())).ok_or_else(|| {
                format!(
                    "internal: no attribute `{}` for capture `{}`",
                    c.attr, c.var
                )
            })
        })
        .collect()
}

// ------------------------------------------------------------------------------------ parsing

fn parse_err(origin: &str, line: usize, message: impl Into<String>) -> ScriptError {
    ScriptError::Parse {
        origin: origin.to_owned(),
        line,
        message: message.into(),
    }
}

fn is_indented(line: &str) -> bool {
    line.starts_with([' ', '\t'])
}

fn is_separator(line: &str) -> bool {
    let t = line.trim_end();
    t.len() >= 3 && t.chars().all(|c| c == '-')
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Parses a script. `origin` names it in messages (usually the file path).
pub fn parse(source: &str, origin: &str) -> Result<Script, ScriptError> {
    let lines: Vec<&str> = source
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut clients: Vec<ClientDecl> = Vec::new();
    let mut archive: Option<bool> = None;
    let mut i = 0;

    // Declarations, up to the separator.
    let mut separator_seen = false;
    while i < lines.len() {
        let line = lines[i];
        let no = i + 1;
        i += 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if is_separator(line) {
            separator_seen = true;
            break;
        }
        if line.trim_end() == "[Server]" {
            if archive.is_some() {
                return Err(parse_err(origin, no, "`[Server]` is declared twice"));
            }
            archive = Some(false);
            while i < lines.len() && (is_indented(lines[i]) || lines[i].trim().is_empty()) {
                let kv = lines[i].trim();
                let kv_no = i + 1;
                i += 1;
                if kv.is_empty() || kv.starts_with('#') {
                    continue;
                }
                match kv.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("archive", "on")) => archive = Some(true),
                    Some(("archive", "off")) => archive = Some(false),
                    _ => {
                        return Err(parse_err(
                            origin,
                            kv_no,
                            format!("unknown server setting `{kv}` (archive: on|off)"),
                        ));
                    }
                }
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("[Client]") else {
            if is_indented(line) {
                return Err(parse_err(
                    origin,
                    no,
                    "indented line outside a `[Client]` declaration",
                ));
            }
            return Err(parse_err(
                origin,
                no,
                format!(
                    "expected `[Client] NAME` or the `-----` line, found `{}`",
                    line.trim()
                ),
            ));
        };
        let name = rest.trim();
        if !is_valid_name(name) {
            return Err(parse_err(
                origin,
                no,
                format!("invalid client name `{name}` (letters, digits, `_`, `-`, `.`)"),
            ));
        }
        if clients.iter().any(|c| c.name == name) {
            return Err(parse_err(
                origin,
                no,
                format!("client `{name}` is declared twice"),
            ));
        }
        let (mut user, mut password, mut resource) = (None, None, None);
        while i < lines.len() && (is_indented(lines[i]) || lines[i].trim().is_empty()) {
            let kv = lines[i].trim();
            let kv_no = i + 1;
            i += 1;
            if kv.is_empty() || kv.starts_with('#') {
                continue;
            }
            let Some((key, value)) = kv.split_once(':') else {
                return Err(parse_err(
                    origin,
                    kv_no,
                    format!("expected `key: value`, found `{kv}`"),
                ));
            };
            let value = value.trim().to_owned();
            let slot = match key.trim() {
                "user" => &mut user,
                "password" => &mut password,
                "resource" => &mut resource,
                other => {
                    return Err(parse_err(
                        origin,
                        kv_no,
                        format!("unknown client setting `{other}` (user, password, resource)"),
                    ));
                }
            };
            if slot.is_some() {
                return Err(parse_err(
                    origin,
                    kv_no,
                    format!("`{}` is given twice", key.trim()),
                ));
            }
            if value.is_empty() {
                return Err(parse_err(
                    origin,
                    kv_no,
                    format!("`{}` is empty", key.trim()),
                ));
            }
            *slot = Some(value);
        }
        let (Some(user), Some(password)) = (user, password) else {
            return Err(parse_err(
                origin,
                no,
                format!("client `{name}` needs `user:` and `password:`"),
            ));
        };
        if let Some(other) = clients
            .iter()
            .find(|c| c.user == user && c.password != password)
        {
            return Err(parse_err(
                origin,
                no,
                format!(
                    "client `{name}` uses account `{user}` like `{}`, with another password",
                    other.name
                ),
            ));
        }
        clients.push(ClientDecl {
            name: name.to_owned(),
            user,
            password,
            resource,
            line: no,
        });
    }
    if !separator_seen {
        return Err(parse_err(
            origin,
            lines.len().max(1),
            "missing the `-----` line that ends the client declarations",
        ));
    }

    // Steps.
    let names: Vec<&str> = clients.iter().map(|c| c.name.as_str()).collect();
    // Variables captured by the `receives:` steps so far.
    let mut captured: Vec<String> = Vec::new();
    let mut steps = Vec::new();
    while i < lines.len() {
        let line = lines[i];
        let no = i + 1;
        i += 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if is_indented(line) {
            return Err(parse_err(
                origin,
                no,
                "indented line outside a `sends:` or `receives:` block",
            ));
        }
        let text = line.trim().to_owned();
        if text == "server restarts" {
            steps.push(Step {
                line: no,
                text,
                kind: StepKind::Restart,
            });
            continue;
        }
        let (who, action) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let action = action.trim();
        if !names.contains(&who) {
            return Err(parse_err(
                origin,
                no,
                if names.is_empty() {
                    format!("unknown client `{who}`: no client is declared")
                } else {
                    format!(
                        "unknown client `{who}` (declared: {}), or unknown step `{text}`",
                        names.join(", ")
                    )
                },
            ));
        }
        let who = who.to_owned();
        let kind = match action {
            "connects" => StepKind::Connect(who),
            "disconnects" => StepKind::Disconnect(who),
            "drops" => StepKind::Drop(who),
            "receives nothing" => StepKind::Nothing(who),
            "sends:" | "receives:" | "receives, in any order:" => {
                let receiving = action != "sends:";
                let block = read_block(
                    &lines,
                    &mut i,
                    origin,
                    no,
                    &text,
                    &names,
                    &mut captured,
                    receiving,
                )?;
                if action == "sends:" {
                    StepKind::Send(who, block)
                } else {
                    StepKind::Receive {
                        client: who,
                        block,
                        any_order: action != "receives:",
                    }
                }
            }
            _ => {
                return Err(parse_err(
                    origin,
                    no,
                    format!(
                        "unknown step `{text}`: expected `{who} connects`, `disconnects`, `drops`, \
                         `sends:`, `receives:`, `receives, in any order:`, `receives nothing`, \
                         or `server restarts`"
                    ),
                ));
            }
        };
        steps.push(Step {
            line: no,
            text,
            kind,
        });
    }
    Ok(Script {
        origin: origin.to_owned(),
        archive: archive.unwrap_or(false),
        clients,
        steps,
    })
}

/// Reads the indented block after the step on line `step_no` (`*i` is the next line) and checks
/// its XML and variables. In a `receives:` block (`receiving`), `{$NAME}` captures are checked and
/// added to `captured`.
#[allow(clippy::too_many_arguments)]
fn read_block(
    lines: &[&str],
    i: &mut usize,
    origin: &str,
    step_no: usize,
    step: &str,
    names: &[&str],
    captured: &mut Vec<String>,
    receiving: bool,
) -> Result<XmlBlock, ScriptError> {
    let start = *i;
    let mut end = start;
    while end < lines.len() && (is_indented(lines[end]) || lines[end].trim().is_empty()) {
        end += 1;
    }
    // Trailing blank lines belong to no block.
    let mut last = end;
    while last > start && lines[last - 1].trim().is_empty() {
        last -= 1;
    }
    *i = end;
    if last == start {
        return Err(parse_err(
            origin,
            step_no,
            format!("`{step}` needs an indented block of XML on the following lines"),
        ));
    }
    let text = lines[start..last].join("\n");
    let first_line = start + 1;
    // Variables: check each reference, then parse with placeholders.
    let checked = substitute(&text, |var| match var {
        Var::Domain => Ok("localhost".to_owned()),
        Var::Bare(n) | Var::Full(n) if names.contains(&n.as_str()) => Ok(PLACEHOLDER.to_owned()),
        Var::Bare(n) | Var::Full(n) => Err(format!(
            "unknown client `{n}` in a variable (declared: {})",
            names.join(", ")
        )),
        Var::Captured(n) if captured.contains(n) => Ok(PLACEHOLDER.to_owned()),
        Var::Captured(n) => Err(format!(
            "`${{{n}}}` is used before a `receives:` step captures it with `{{${n}}}`"
        )),
    })
    .map_err(|(offset, message)| parse_err(origin, first_line + line_of(&text, offset), message))?;
    let elements = split_elements(&checked).map_err(|(offset, message)| {
        parse_err(origin, first_line + line_of(&checked, offset), message)
    })?;
    if receiving {
        for (el, offset) in &elements {
            let mut found = Vec::new();
            strip_captures(el, &mut Vec::new(), &mut found).map_err(|message| {
                parse_err(origin, first_line + line_of(&checked, *offset), message)
            })?;
            for c in found {
                if !captured.contains(&c.var) {
                    captured.push(c.var);
                }
            }
        }
    }
    Ok(XmlBlock {
        element_lines: elements
            .iter()
            .map(|(_, offset)| first_line + line_of(&checked, *offset))
            .collect(),
        text,
        first_line,
    })
}

/// 0-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Replaces every `${...}` in `text` with what `value` gives. Errors carry the byte offset of the
/// reference.
fn substitute(
    text: &str,
    mut value: impl FnMut(&Var) -> Result<String, String>,
) -> Result<String, (usize, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(close) = after.find('}') else {
            return Err((offset + at, "unterminated `${` (missing `}`)".to_owned()));
        };
        let inner = &after[..close];
        let var = parse_var(inner).ok_or_else(|| {
            (
                offset + at,
                format!(
                    "unknown variable `${{{inner}}}`: use `${{domain}}`, `${{NAME's JID}}`, \
                     `${{NAME's full JID}}` or a name captured earlier with `{{$NAME}}`"
                ),
            )
        })?;
        let v = value(&var).map_err(|m| (offset + at, m))?;
        starling_proto::element::escape_attr(&v, &mut out);
        let consumed = at + 2 + close + 1;
        rest = &rest[consumed..];
        offset += consumed;
    }
    out.push_str(rest);
    Ok(out)
}

fn parse_var(inner: &str) -> Option<Var> {
    let inner = inner.trim();
    if inner == "domain" {
        return Some(Var::Domain);
    }
    if let Some(name) = inner.strip_suffix("'s full JID") {
        return is_valid_name(name).then(|| Var::Full(name.to_owned()));
    }
    if let Some(name) = inner.strip_suffix("'s JID") {
        return is_valid_name(name).then(|| Var::Bare(name.to_owned()));
    }
    is_valid_name(inner).then(|| Var::Captured(inner.to_owned()))
}

/// Parses a block into its top-level elements, each with the byte offset where it starts. Errors
/// carry the byte offset near the problem.
fn split_elements(text: &str) -> Result<Vec<(Element, usize)>, (usize, String)> {
    let doc = format!("{HEADER}{text}");
    let mut dec = Decoder::new(TEST_LIMITS);
    let mut input = doc.as_bytes();
    match dec.next_frame(&mut input) {
        Ok(Some(Frame::Header(_))) => {}
        other => {
            return Err((
                0,
                format!("internal: synthetic header not accepted: {other:?}"),
            ));
        }
    }
    let mut out = Vec::new();
    loop {
        let pos = (doc.len() - input.len())
            .saturating_sub(HEADER.len())
            .min(text.len());
        let start = text
            .get(pos..)
            .and_then(|rest| rest.find(|c: char| !c.is_ascii_whitespace()))
            .map_or(text.len(), |skip| pos + skip);
        match dec.next_frame(&mut input) {
            Ok(Some(Frame::Element(el))) => out.push((el, start)),
            Ok(Some(Frame::Close)) => {
                return Err((start, "`</stream:stream>` is not a stanza".to_owned()));
            }
            Ok(Some(Frame::Header(_))) => {
                return Err((start, "a stream header is not a stanza".to_owned()));
            }
            Ok(None) if dec.in_stanza() => {
                return Err((start, "incomplete XML: an element is not closed".to_owned()));
            }
            Ok(None) => break,
            Err(e) => return Err((start, format!("invalid XML: {e}"))),
        }
    }
    if out.is_empty() {
        return Err((0, "the block contains no element".to_owned()));
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------ running

/// Reads, parses and runs the script at `path` against a fresh [`TestServer`].
pub async fn run_script(path: &Path) -> Result<(), ScriptError> {
    let source = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
        path: path.display().to_string(),
        source,
    })?;
    run_source(&source, &path.display().to_string()).await
}

/// Parses and runs a script given as text; `origin` names it in messages.
pub async fn run_source(source: &str, origin: &str) -> Result<(), ScriptError> {
    let script = parse(source, origin)?;
    run(&script).await
}

/// Runs a parsed script against a fresh [`TestServer`], which is stopped at the end.
pub async fn run(script: &Script) -> Result<(), ScriptError> {
    let archive = script.archive;
    let server = TestServer::start_with(|c| c.archive.enabled = archive).await;
    let mut created: Vec<&str> = Vec::new();
    for c in &script.clients {
        if !created.contains(&c.user.as_str()) {
            server.add_user(&c.user, &c.password).await;
            created.push(&c.user);
        }
    }
    let mut runner = Runner {
        script,
        server: Some(server),
        connected: HashMap::new(),
        bound: HashMap::new(),
        captures: HashMap::new(),
    };
    let outcome = runner.run_steps().await;
    // Whatever happened, stop the server politely (the clients are dropped first).
    runner.connected.clear();
    if let Some(server) = runner.server.take() {
        server.stop().await;
    }
    outcome
}

struct Runner<'a> {
    script: &'a Script,
    server: Option<TestServer>,
    connected: HashMap<String, Client>,
    /// The last full JID each client was bound to (kept after it disconnects, so other clients can
    /// still expect stanzas from it).
    bound: HashMap<String, String>,
    /// Values captured with `{$NAME}`.
    captures: HashMap<String, String>,
}

impl Runner<'_> {
    async fn run_steps(&mut self) -> Result<(), ScriptError> {
        for step in &self.script.steps {
            self.run_step(step)
                .await
                .map_err(|message| ScriptError::Step {
                    origin: self.script.origin.clone(),
                    line: step.line,
                    step: step.text.clone(),
                    message,
                })?;
        }
        // Stanzas already received and never read mean the script missed them.
        let mut names: Vec<String> = self.connected.keys().cloned().collect();
        names.sort();
        for name in names {
            if let Some(client) = self.connected.get_mut(&name)
                && let Err(e) = client.expect_silence(Duration::ZERO).await
            {
                return Err(ScriptError::Step {
                    origin: self.script.origin.clone(),
                    line: self.script.steps.last().map_or(1, |s| s.line),
                    step: "end of script".to_owned(),
                    message: format!("{name} has unread input: {e}"),
                });
            }
        }
        Ok(())
    }

    fn decl(&self, name: &str) -> Result<&ClientDecl, String> {
        self.script
            .clients
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| format!("unknown client `{name}`"))
    }

    fn server(&self) -> Result<&TestServer, String> {
        self.server
            .as_ref()
            .ok_or_else(|| "the server is not running".to_owned())
    }

    fn client(&mut self, name: &str) -> Result<&mut Client, String> {
        self.connected
            .get_mut(name)
            .ok_or_else(|| format!("{name} is not connected (add `{name} connects` first)"))
    }

    /// The block's text with every variable replaced.
    fn resolve(&self, block: &XmlBlock) -> Result<String, String> {
        let domain = self.server()?.domain.clone();
        substitute(&block.text, |var| match var {
            Var::Domain => Ok(domain.clone()),
            Var::Bare(n) => {
                let decl = self.decl(n)?;
                Ok(format!("{}@{domain}", decl.user))
            }
            Var::Full(n) => self.bound.get(n).cloned().ok_or_else(|| {
                format!("`${{{n}'s full JID}}` is unknown: {n} has not connected yet")
            }),
            Var::Captured(n) => self
                .captures
                .get(n)
                .cloned()
                .ok_or_else(|| format!("`${{{n}}}` has not been captured")),
        })
        .map_err(|(offset, m)| {
            format!(
                "line {}: {m}",
                block.first_line + line_of(&block.text, offset)
            )
        })
    }

    async fn run_step(&mut self, step: &Step) -> Result<(), String> {
        match &step.kind {
            StepKind::Connect(name) => {
                if self.connected.contains_key(name) {
                    return Err(format!("{name} is already connected"));
                }
                let decl = self.decl(name)?.clone();
                let server = self.server()?;
                let client = Client::login(
                    server.starttls_addr,
                    Security::StartTls,
                    &server.domain,
                    &decl.user,
                    &decl.password,
                    decl.resource.as_deref(),
                )
                .await
                .map_err(|e| format!("login failed: {e}"))?;
                let jid = client
                    .jid()
                    .map(ToString::to_string)
                    .ok_or_else(|| "no JID bound after login".to_owned())?;
                self.bound.insert(name.clone(), jid);
                self.connected.insert(name.clone(), client);
                Ok(())
            }
            StepKind::Disconnect(name) => {
                let client = self.client(name)?;
                client
                    .expect_silence(Duration::ZERO)
                    .await
                    .map_err(|e| format!("unread input before disconnecting: {e}"))?;
                let client = self
                    .connected
                    .remove(name)
                    .ok_or_else(|| format!("{name} is not connected"))?;
                client
                    .close()
                    .await
                    .map_err(|e| format!("closing the stream: {e}"))
            }
            StepKind::Drop(name) => {
                self.client(name)?;
                // Dropping the client closes the TCP connection without `</stream:stream>` (and
                // without TLS close_notify).
                self.connected.remove(name);
                Ok(())
            }
            StepKind::Send(name, block) => {
                let xml = self.resolve(block)?;
                self.client(name)?
                    .send_xml(&xml)
                    .await
                    .map_err(|e| format!("sending: {e}"))
            }
            StepKind::Receive {
                client,
                block,
                any_order,
            } => {
                let xml = self.resolve(block)?;
                let expected = split_elements(&xml)
                    .map_err(|(_, m)| format!("after substituting variables: {m}"))?;
                let mut stripped = Vec::new();
                for ((el, _), line) in expected.iter().zip(block.element_lines.iter().copied()) {
                    let mut caps = Vec::new();
                    let el = strip_captures(el, &mut Vec::new(), &mut caps)
                        .map_err(|m| format!("line {line}: {m}"))?;
                    stripped.push(Expected {
                        element: el,
                        line,
                        captures: caps,
                    });
                }
                let c = self.client(client)?;
                let values = if *any_order {
                    receive_any_order(c, stripped).await?
                } else {
                    receive_in_order(c, &stripped).await?
                };
                self.captures.extend(values);
                Ok(())
            }
            StepKind::Nothing(name) => self
                .client(name)?
                .expect_silence(SILENCE)
                .await
                .map_err(|e| format!("{e}")),
            StepKind::Restart => {
                let server = self
                    .server
                    .take()
                    .ok_or_else(|| "the server is not running".to_owned())?;
                let mut clients: Vec<Client> = self.connected.drain().map(|(_, c)| c).collect();
                let (server, ()) = tokio::join!(server.restart(), async {
                    for c in &mut clients {
                        drain_until_closed(c).await;
                    }
                });
                drop(clients);
                self.server = Some(server);
                Ok(())
            }
        }
    }
}

/// Reads and discards frames until the server closes the connection (or the client's timeout).
async fn drain_until_closed(client: &mut Client) {
    while client.recv().await.is_ok() {}
}

/// The next element the client receives, or a message saying what came instead.
async fn next_element(client: &mut Client, waiting_for: &str) -> Result<Element, String> {
    match client.recv().await {
        Ok(Frame::Element(el)) => Ok(el),
        Ok(Frame::Close) => Err(format!(
            "expected {waiting_for}, but the server closed the stream (`</stream:stream>`)"
        )),
        Ok(Frame::Header(h)) => Err(format!("expected {waiting_for}, got a stream header {h:?}")),
        Err(e) => Err(format!("expected {waiting_for}, got {e}")),
    }
}

/// One stanza a `receives:` step expects.
struct Expected {
    /// With captures turned into wildcards.
    element: Element,
    line: usize,
    captures: Vec<Capture>,
}

fn describe_expected(exp: &Expected, index: usize, count: usize) -> String {
    if count == 1 {
        format!(
            "the stanza of line {}: {}",
            exp.line,
            to_stream_xml(&exp.element)
        )
    } else {
        format!(
            "stanza {} of {count} (line {}): {}",
            index + 1,
            exp.line,
            to_stream_xml(&exp.element)
        )
    }
}

/// Receives `expected` in order; returns the captured values.
async fn receive_in_order(
    client: &mut Client,
    expected: &[Expected],
) -> Result<Vec<(String, String)>, String> {
    let count = expected.len();
    let mut values = Vec::new();
    for (index, exp) in expected.iter().enumerate() {
        let what = describe_expected(exp, index, count);
        let actual = next_element(client, &what).await?;
        matches(&exp.element, &actual).map_err(|m| {
            if count == 1 {
                format!("line {}: {m}", exp.line)
            } else {
                format!("stanza {} of {count} (line {}): {m}", index + 1, exp.line)
            }
        })?;
        values.extend(read_captures(&actual, &exp.captures)?);
    }
    Ok(values)
}

/// Receives as many stanzas as `expected` has, each matching a different one of them, in any
/// order; returns the captured values.
async fn receive_any_order(
    client: &mut Client,
    mut expected: Vec<Expected>,
) -> Result<Vec<(String, String)>, String> {
    let count = expected.len();
    let mut values = Vec::new();
    while !expected.is_empty() {
        let remaining = expected
            .iter()
            .map(|e| format!("\n  line {}: {}", e.line, to_stream_xml(&e.element)))
            .collect::<String>();
        let what = format!(
            "one of the {} stanzas still expected (of {count}):{remaining}",
            expected.len()
        );
        let actual = next_element(client, &what).await?;
        match expected
            .iter()
            .position(|e| matches(&e.element, &actual).is_ok())
        {
            Some(i) => {
                let exp = expected.remove(i);
                values.extend(read_captures(&actual, &exp.captures)?);
            }
            None => {
                return Err(format!(
                    "received a stanza that matches none of the {} still expected (of {count}):\n\
                     received: {}\nexpected one of:{remaining}",
                    expected.len(),
                    to_stream_xml(&actual)
                ));
            }
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const HEAD: &str = "[Client] a\n\tuser: alice\n\tpassword: pw\n\tresource: r\n\n\
                        [Client] b\n\tuser: bob\n\tpassword: pw2\n\n-----\n";

    fn parse_ok(body: &str) -> Script {
        parse(&format!("{HEAD}{body}"), "t.scs").unwrap()
    }

    /// The parse error's line (counted in the whole source) and message.
    fn parse_fail(source: &str) -> (usize, String) {
        match parse(source, "t.scs").unwrap_err() {
            ScriptError::Parse { line, message, .. } => (line, message),
            other => panic!("not a parse error: {other}"),
        }
    }

    const HEAD_LINES: usize = 10;

    #[test]
    fn server_section() {
        assert!(!parse_ok("").archive);
        let on = parse(&format!("[Server]\n\tarchive: on\n\n{HEAD}"), "t.scs").unwrap();
        assert!(on.archive);
        let (line, msg) = parse_fail(&format!("[Server]\n\tarchive: maybe\n{HEAD}"));
        assert_eq!(
            (line, msg.as_str()),
            (
                2,
                "unknown server setting `archive: maybe` (archive: on|off)"
            )
        );
        let (line, msg) = parse_fail(&format!("[Server]\n[Server]\n{HEAD}"));
        assert_eq!((line, msg.as_str()), (2, "`[Server]` is declared twice"));
    }

    #[test]
    fn declarations() {
        let s = parse_ok("");
        assert_eq!(
            s.clients,
            vec![
                ClientDecl {
                    name: "a".into(),
                    user: "alice".into(),
                    password: "pw".into(),
                    resource: Some("r".into()),
                    line: 1,
                },
                ClientDecl {
                    name: "b".into(),
                    user: "bob".into(),
                    password: "pw2".into(),
                    resource: None,
                    line: 6,
                },
            ]
        );
        assert!(s.steps.is_empty());
        assert_eq!(s.origin, "t.scs");
    }

    #[test]
    fn every_step_kind() {
        let s = parse_ok(
            "# comment\n\
             a connects\n\
             a sends:\n\
             \t<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>\n\
             \n\
             a receives:\n\
             \t<iq type='result' id='1' to='${a's full JID}'/>\n\
             \t<message from=\"${b's JID}\" to='${domain}'>\n\
             \t\t<body>{*}</body>\n\
             \t</message>\n\
             a receives, in any order:\n\
             \t<presence/>\n\
             b receives nothing\n\
             a disconnects\n\
             b drops\n\
             server restarts\n",
        );
        let kinds: Vec<&StepKind> = s.steps.iter().map(|s| &s.kind).collect();
        assert_eq!(kinds.len(), 8);
        assert_eq!(kinds[0], &StepKind::Connect("a".into()));
        assert_eq!(
            kinds[1],
            &StepKind::Send(
                "a".into(),
                XmlBlock {
                    text: "\t<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>".into(),
                    element_lines: vec![HEAD_LINES + 4],
                    first_line: HEAD_LINES + 4,
                }
            )
        );
        match kinds[2] {
            StepKind::Receive {
                client,
                block,
                any_order,
            } => {
                assert_eq!(client, "a");
                assert!(!any_order);
                assert_eq!(block.element_lines, vec![HEAD_LINES + 7, HEAD_LINES + 8]);
                assert!(block.text.ends_with("\t</message>"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            kinds[3],
            StepKind::Receive {
                any_order: true,
                ..
            }
        ));
        assert_eq!(kinds[4], &StepKind::Nothing("b".into()));
        assert_eq!(kinds[5], &StepKind::Disconnect("a".into()));
        assert_eq!(kinds[6], &StepKind::Drop("b".into()));
        assert_eq!(kinds[7], &StepKind::Restart);
        assert_eq!(s.steps[0].line, HEAD_LINES + 2);
        assert_eq!(s.steps[0].text, "a connects");
        assert_eq!(s.steps[7].line, HEAD_LINES + 16);
    }

    #[test]
    fn several_elements_on_one_line() {
        let s = parse_ok("a sends:\n  <presence/> <message to='x@y'><body>hi</body></message>\n");
        match &s.steps[0].kind {
            StepKind::Send(_, block) => {
                assert_eq!(block.element_lines, vec![HEAD_LINES + 2, HEAD_LINES + 2]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn substitution_escapes_and_resolves() {
        let out = substitute("<a x='${a's JID}' y='${domain}'>${b's full JID}</a>", |v| {
            Ok(match v {
                Var::Domain => "d".to_owned(),
                Var::Bare(n) => format!("{n}@d"),
                Var::Full(n) => format!("{n}@d/<'&\">"),
                Var::Captured(n) => format!("[{n}]"),
            })
        })
        .unwrap();
        assert_eq!(out, "<a x='a@d' y='d'>b@d/&lt;&apos;&amp;&quot;&gt;</a>");
    }

    #[test]
    fn missing_separator() {
        let (line, msg) = parse_fail("[Client] a\n\tuser: a\n\tpassword: p\n");
        assert_eq!(line, 3);
        assert!(msg.contains("missing the `-----` line"), "{msg}");
    }

    #[test]
    fn declaration_errors() {
        let (line, msg) = parse_fail("hello\n-----\n");
        assert_eq!(
            (line, msg.as_str()),
            (
                1,
                "expected `[Client] NAME` or the `-----` line, found `hello`"
            )
        );
        let (line, msg) = parse_fail("[Client] a\n\tuser: a\n-----\n");
        assert_eq!(line, 1);
        assert!(msg.contains("needs `user:` and `password:`"), "{msg}");
        let (line, msg) = parse_fail("[Client] a\n\tuser: a\n\tpasswd: p\n-----\n");
        assert_eq!(line, 3);
        assert!(msg.contains("unknown client setting `passwd`"), "{msg}");
        let (line, msg) = parse_fail("[Client] a\n\tuser a\n-----\n");
        assert_eq!(line, 2);
        assert!(msg.contains("expected `key: value`"), "{msg}");
        let (line, msg) = parse_fail(
            "[Client] a\n\tuser: u\n\tpassword: p\n[Client] a\n\tuser: v\n\tpassword: p\n-----\n",
        );
        assert_eq!(line, 4);
        assert!(msg.contains("declared twice"), "{msg}");
        let (line, msg) = parse_fail(
            "[Client] a\n\tuser: u\n\tpassword: p\n[Client] b\n\tuser: u\n\tpassword: q\n-----\n",
        );
        assert_eq!(line, 4);
        assert!(msg.contains("another password"), "{msg}");
        let (line, msg) = parse_fail("[Client] a b\n\tuser: u\n\tpassword: p\n-----\n");
        assert_eq!(line, 1);
        assert!(msg.contains("invalid client name"), "{msg}");
    }

    #[test]
    fn step_errors_name_the_line() {
        let src = |body: &str| format!("{HEAD}{body}");
        let (line, msg) = parse_fail(&src("a connects\nc connects\n"));
        assert_eq!(line, HEAD_LINES + 2);
        assert!(msg.contains("unknown client `c` (declared: a, b)"), "{msg}");
        let (line, msg) = parse_fail(&src("a flies\n"));
        assert_eq!(line, HEAD_LINES + 1);
        assert!(msg.starts_with("unknown step `a flies`"), "{msg}");
        let (line, msg) = parse_fail(&src("a sends:\na connects\n"));
        assert_eq!(line, HEAD_LINES + 1);
        assert!(msg.contains("needs an indented block"), "{msg}");
        let (line, msg) = parse_fail(&src("a connects\n\t<presence/>\n"));
        assert_eq!(line, HEAD_LINES + 2);
        assert!(msg.contains("indented line outside"), "{msg}");
    }

    #[test]
    fn xml_errors_name_the_line() {
        let src = |body: &str| format!("{HEAD}{body}");
        // Not closed: reported where the element starts.
        let (line, msg) = parse_fail(&src(
            "a sends:\n\t<presence/>\n\n\t<message>\n\t<body>x</body>\n",
        ));
        assert_eq!(line, HEAD_LINES + 4);
        assert!(msg.contains("not closed"), "{msg}");
        // Mismatched tags.
        let (line, msg) = parse_fail(&src("a receives:\n\t<iq>\n\t</message>\n"));
        assert_eq!(line, HEAD_LINES + 2);
        assert!(msg.starts_with("invalid XML"), "{msg}");
        // Text between stanzas.
        let (line, msg) = parse_fail(&src("a receives:\n\t<iq/>\n\thello <iq/>\n"));
        assert_eq!(line, HEAD_LINES + 3);
        assert!(msg.contains("character data between stanzas"), "{msg}");
        // Unknown variable, unknown client in a variable, unterminated variable.
        let (line, msg) = parse_fail(&src("a sends:\n\t<iq/>\n\t<iq to='${c's JID}'/>\n"));
        assert_eq!(line, HEAD_LINES + 3);
        assert!(msg.contains("unknown client `c` in a variable"), "{msg}");
        let (line, msg) = parse_fail(&src("a sends:\n\t<iq to='${alice's name}'/>\n"));
        assert_eq!(line, HEAD_LINES + 2);
        assert!(msg.contains("unknown variable `${alice's name}`"), "{msg}");
        let (line, msg) = parse_fail(&src("a sends:\n\t<iq to='${domain'/>\n"));
        assert_eq!(line, HEAD_LINES + 2);
        assert!(msg.contains("unterminated"), "{msg}");
        // A stream close is no stanza.
        let (_, msg) = parse_fail(&src("a sends:\n\t</stream:stream>\n"));
        assert!(
            msg.starts_with("invalid XML") || msg.contains("not a stanza"),
            "{msg}"
        );
    }

    #[test]
    fn captures() {
        let s = parse_ok(
            "a receives:\n\
             \t<iq id='{$push}'><query xmlns='jabber:iq:roster' ver='{$v1}'/></iq>\n\
             a sends:\n\
             \t<iq type='result' id='${push}'/>\n\
             \t<iq type='get' id='g'><query xmlns='jabber:iq:roster' ver='${v1}'/></iq>\n",
        );
        assert_eq!(s.steps.len(), 2);
        let el = crate::matcher::parse_xml(
            "<iq id='{$push}' type='set'><query xmlns='q' ver='{$v}'/><x xml:lang='{$lang}'/></iq>",
        );
        let mut found = Vec::new();
        let stripped = strip_captures(&el, &mut Vec::new(), &mut found).unwrap();
        assert_eq!(
            to_stream_xml(&stripped),
            "<iq id='{*}' type='set'><query xmlns='q' ver='{*}'/><x xml:lang='{*}'/></iq>"
        );
        assert_eq!(
            found,
            vec![
                Capture {
                    path: vec![],
                    ns: None,
                    attr: "id".into(),
                    var: "push".into()
                },
                Capture {
                    path: vec![0],
                    ns: None,
                    attr: "ver".into(),
                    var: "v".into()
                },
                Capture {
                    path: vec![1],
                    ns: Some(starling_proto::ns::XML.into()),
                    attr: "lang".into(),
                    var: "lang".into()
                },
            ]
        );
        let actual = crate::matcher::parse_xml(
            "<iq id='p7' type='set'><query xmlns='q' ver='42'/><x xml:lang='en'/></iq>",
        );
        assert_eq!(
            read_captures(&actual, &found).unwrap(),
            vec![
                ("push".to_owned(), "p7".to_owned()),
                ("v".to_owned(), "42".to_owned()),
                ("lang".to_owned(), "en".to_owned())
            ]
        );
    }

    #[test]
    fn capture_errors() {
        let src = |body: &str| format!("{HEAD}{body}");
        // Used before it is captured (a capture in a `sends:` block captures nothing).
        let (line, msg) = parse_fail(&src(
            "a sends:\n\t<iq id='{$x}'/>\na sends:\n\t<iq id='${x}'/>\n",
        ));
        assert_eq!(line, HEAD_LINES + 4);
        assert_eq!(
            msg,
            "`${x}` is used before a `receives:` step captures it with `{$x}`"
        );
        let (line, msg) = parse_fail(&src(
            "a receives:\n\t<iq/>\n\t<message><body>{$b}</body></message>\n",
        ));
        assert_eq!(line, HEAD_LINES + 3);
        assert!(
            msg.contains("captures (`{$NAME}`) work in attribute values only"),
            "{msg}"
        );
        let (_, msg) = parse_fail(&src("a receives:\n\t<iq id='{$domain}'/>\n"));
        assert_eq!(msg, "invalid capture name `{$domain}`");
    }

    #[test]
    fn errors_display_origin_and_line() {
        let e = parse("x\n-----\n", "dir/f.scs").unwrap_err();
        assert_eq!(e.line(), Some(1));
        assert_eq!(
            e.to_string(),
            "dir/f.scs:1: expected `[Client] NAME` or the `-----` line, found `x`"
        );
    }

    #[test]
    fn crlf_line_endings() {
        let s = parse(
            "[Client] a\r\n\tuser: u\r\n\tpassword: p\r\n-----\r\na connects\r\n",
            "t",
        )
        .unwrap();
        assert_eq!(s.clients[0].password, "p");
        assert_eq!(s.steps[0].kind, StepKind::Connect("a".into()));
    }
}
