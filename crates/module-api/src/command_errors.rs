//! XEP-0050's namespace and errors, shared by [`crate::commands`] and [`crate::forms`] (a form
//! lacking a required field is a command's `<bad-payload/>`).

use starling_proto::{Element, StanzaError, StanzaErrorCondition};

/// `http://jabber.org/protocol/commands`: the protocol's namespace, its disco feature and the
/// node under which commands are listed (XEP-0050 §2.2).
pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";

/// XEP-0050 §4.4: `<bad-request/>` with `<bad-payload/>`: the form lacks a required field (or
/// is otherwise not what the stage asked for).
pub fn bad_payload(text: impl Into<String>) -> StanzaError {
    command_error(StanzaErrorCondition::BadRequest, "bad-payload").with_text(text)
}

/// A stanza error with one of XEP-0050 §4.4's specific conditions (`malformed-action`,
/// `bad-action`, `bad-locale`, `bad-payload`, `bad-sessionid`, `session-expired`).
pub fn command_error(condition: StanzaErrorCondition, specific: &str) -> StanzaError {
    let mut e = StanzaError::new(condition);
    e.app = Some(Element::new(specific, NS_COMMANDS));
    e
}
