//! Starling's XMPP vocabulary, free of I/O: the element tree stanzas are held in, namespace names,
//! stream and stanza errors, and the stanza envelope helpers every layer shares.

pub mod clock;
pub mod element;
pub mod error;
pub mod ns;
pub mod stanza;

pub use element::{Attr, Element, Node};
pub use error::{
    ErrorType, StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition, error_reply,
};
pub use jid::{self, BareJid, FullJid, Jid};
pub use stanza::{StanzaKind, iq_result, is_standalone_chat_state};
