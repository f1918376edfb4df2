//! Sessions as the router and modules see them: a handle to send to, and the registry of who is
//! bound where.

use std::sync::Arc;

use starling_proto::{BareJid, Element, FullJid, StreamError, ns};
use tokio::sync::mpsc;

/// Unique id of a session within this server process.
pub type SessionId = u64;

/// What can be asked of a session.
#[derive(Debug)]
pub enum SessionCommand {
    /// Deliver this stanza (already addressed and stamped). Boxed, like the error below, so that
    /// a command is two words: every session's queue allocates its first block of 32 slots up
    /// front, and idle sessions should not pay for 32 inline elements.
    Stanza(Box<Element>),
    /// Close the stream with this error (e.g. `<conflict/>` when a new session takes the resource).
    Close(Box<StreamError>),
}

/// A cheap, cloneable handle to a session's outbound queue.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    id: SessionId,
    tx: mpsc::Sender<SessionCommand>,
}

impl SessionHandle {
    pub fn new(id: SessionId, tx: mpsc::Sender<SessionCommand>) -> Self {
        SessionHandle { id, tx }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Queues a stanza. Returns false when the session is gone or its queue is full; a full queue
    /// means the peer does not read, and the session is closed so that memory stays bounded.
    pub fn send(&self, stanza: Element) -> bool {
        match self.tx.try_send(SessionCommand::Stanza(Box::new(stanza))) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(
                    session = self.id,
                    "outbound queue full; closing the session"
                );
                self.close(
                    StreamError::new(starling_proto::StreamErrorCondition::PolicyViolation)
                        .with_text("too many stanzas queued: the client is not reading"),
                );
                false
            }
        }
    }

    /// Queues a stanza, waiting while the queue is full: for bulk delivery from a task other than
    /// the session's own (the session drains its queue meanwhile). Never call it from the
    /// session's own task: it would wait for itself. Returns false when the session is gone.
    pub async fn send_waiting(&self, stanza: Element) -> bool {
        self.tx
            .send(SessionCommand::Stanza(Box::new(stanza)))
            .await
            .is_ok()
    }

    /// Asks the session to close its stream with `error`. Never blocks.
    pub fn close(&self, error: StreamError) {
        // If the queue is full, the session is already being closed or will notice its peer.
        let _ = self.tx.try_send(SessionCommand::Close(Box::new(error)));
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One bound resource.
#[derive(Clone, Debug)]
pub struct SessionEntry {
    pub jid: FullJid,
    pub handle: SessionHandle,
    /// `None` until the session sends available presence; then its priority (RFC 6121 §4.7.2.3).
    pub priority: Option<i8>,
    /// The last available presence the session broadcast (stamped, without 'to'), answered to
    /// probes and sent to newly subscribed contacts (RFC 6121 §4.3.2). `None` while unavailable.
    pub presence: Option<Arc<Element>>,
}

/// The priority of an available presence stanza: its `<priority/>` child, 0 when absent or not an
/// integer in -128..=127 (RFC 6121 §4.7.2.3).
pub fn presence_priority(presence: &Element) -> i8 {
    presence
        .get_child("priority", ns::CLIENT)
        .and_then(|p| p.text().trim().parse::<i8>().ok())
        .unwrap_or(0)
}

impl SessionEntry {
    /// Whether the session has sent available presence (RFC 6121 §4.2).
    pub fn is_available(&self) -> bool {
        self.presence.is_some()
    }

    /// Available with a non-negative priority: eligible for messages to the bare JID.
    pub fn receives_bare_messages(&self) -> bool {
        matches!(self.priority, Some(p) if p >= 0)
    }
}

/// Who is bound where. The local implementation is a map in memory; a clustered one can replace it
/// without touching modules.
pub trait SessionRegistry: Send + Sync {
    /// Binds `jid` to `handle`. If the resource was already bound, the older session's entry is
    /// returned (the caller closes it with `<conflict/>` and reports it ended).
    fn bind(&self, jid: FullJid, handle: SessionHandle) -> Option<SessionEntry>;
    /// Removes the binding if it still belongs to session `id`, returning its last entry.
    fn unbind(&self, jid: &FullJid, id: SessionId) -> Option<SessionEntry>;
    /// The session bound to `jid`.
    fn get(&self, jid: &FullJid) -> Option<SessionEntry>;
    /// Every bound resource of `bare`.
    fn resources(&self, bare: &BareJid) -> Vec<SessionEntry>;
    /// Records a session's broadcast presence (`None`: unavailable) and the priority it carries.
    /// Returns the previous presence, or `None` if session `id` is not bound to `jid`.
    #[allow(clippy::option_option)]
    fn set_presence(
        &self,
        jid: &FullJid,
        id: SessionId,
        presence: Option<Arc<Element>>,
    ) -> Option<Option<Arc<Element>>>;
    /// Number of bound sessions.
    fn count(&self) -> usize;
    /// Every bound session (for shutdown and administration).
    fn all(&self) -> Vec<SessionEntry>;
}
