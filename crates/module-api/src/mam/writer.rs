//! Group commit for archive writes: every message is archived before its sender's stream
//! acknowledges it (the hook that archives awaits the write, and the connection answers a
//! XEP-0198 `<r/>` only after routing returns), and one durable write serves the messages of
//! every session that arrived meanwhile.
//!
//! One task owns the writes. It takes the first waiting message, then every other one already
//! queued (up to [`MAX_BATCH`]), appends them in one transaction and answers each waiter. While a
//! batch is written, the next one gathers: under load a batch holds the messages of one commit
//! time, and a lone message is written at once.

use std::sync::Arc;

use async_trait::async_trait;
use starling_storage::{
    ArchiveStore, NewArchived, NewRoomArchived, RoomArchiveStore, StorageError,
};
use tokio::sync::{mpsc, oneshot};

/// A store that appends messages in batches, atomically: an account's archive
/// ([`ArchiveStore::append`]) or a room's ([`RoomArchiveStore::append`]).
#[async_trait]
pub trait BatchStore: Send + Sync + 'static {
    type Message: Send + Sync + 'static;
    /// Which archive this is, for the archive writes counter.
    const ARCHIVE: starling_metrics::Archive;
    /// Appends every message of `batch` as one atomic step.
    async fn append(&self, batch: &[Self::Message]) -> Result<u64, StorageError>;
    /// The message's archive id, for logs.
    fn id(message: &Self::Message) -> &str;
}

#[async_trait]
impl BatchStore for Arc<dyn ArchiveStore> {
    type Message = NewArchived;
    const ARCHIVE: starling_metrics::Archive = starling_metrics::Archive::User;
    async fn append(&self, batch: &[NewArchived]) -> Result<u64, StorageError> {
        ArchiveStore::append(&**self, batch).await
    }
    fn id(message: &NewArchived) -> &str {
        &message.id
    }
}

#[async_trait]
impl BatchStore for Arc<dyn RoomArchiveStore> {
    type Message = NewRoomArchived;
    const ARCHIVE: starling_metrics::Archive = starling_metrics::Archive::Room;
    async fn append(&self, batch: &[NewRoomArchived]) -> Result<u64, StorageError> {
        RoomArchiveStore::append(&**self, batch).await
    }
    fn id(message: &NewRoomArchived) -> &str {
        &message.id
    }
}

/// Most messages in one transaction.
pub const MAX_BATCH: usize = 512;
/// Messages waiting for the writer before senders wait for room.
const QUEUE: usize = 4096;

type Outcome = Result<(), Arc<StorageError>>;
type Reply = oneshot::Sender<Outcome>;

/// Why a message could not be archived.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store failed the batch that held it.
    #[error("archive write failed: {0}")]
    Store(Arc<StorageError>),
    /// The writer is gone (the server is shutting down).
    #[error("the archive writer has stopped")]
    Stopped,
}

/// The sending side of a writer of `M`s (an account's archive messages by default); cheap to
/// clone.
pub struct ArchiveWriter<M = NewArchived> {
    tx: mpsc::Sender<(M, Reply)>,
}

impl<M> Clone for ArchiveWriter<M> {
    fn clone(&self) -> Self {
        ArchiveWriter {
            tx: self.tx.clone(),
        }
    }
}

impl<M: Send + Sync + 'static> ArchiveWriter<M> {
    /// Starts the writer task for `store` on the current Tokio runtime.
    pub fn spawn<S: BatchStore<Message = M>>(store: S) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, rx));
        ArchiveWriter { tx }
    }

    /// Archives `message`, returning once it is durably stored.
    pub async fn write(&self, message: M) -> Result<(), WriteError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((message, reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WriteError::Store(e)),
            Err(_) => Err(WriteError::Stopped),
        }
    }
}

async fn run<S: BatchStore>(store: S, mut rx: mpsc::Receiver<(S::Message, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((first, reply)) = rx.recv().await {
        batch.push(first);
        replies.push(reply);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((m, r)) => {
                    batch.push(m);
                    replies.push(r);
                }
                Err(_) => break,
            }
        }
        let results: Vec<Outcome> = match store.append(&batch).await {
            Ok(_) => vec![Ok(()); batch.len()],
            Err(StorageError::AlreadyExists) if batch.len() > 1 => {
                // One message's id clashed (ids are random: practically never). The others must
                // not fail with it: write them one by one.
                write_singly(&store, &batch).await
            }
            Err(e) => {
                tracing::error!(error = %e, messages = batch.len(), "archiving failed");
                vec![Err(Arc::new(e)); batch.len()]
            }
        };
        batch.clear();
        let written = results.iter().filter(|r| r.is_ok()).count();
        starling_metrics::mam_written(S::ARCHIVE, written as u64);
        for (reply, result) in replies.drain(..).zip(results) {
            // A waiter that gave up (its connection dropped) does not need the answer.
            let _ = reply.send(result);
        }
    }
}

async fn write_singly<S: BatchStore>(store: &S, batch: &[S::Message]) -> Vec<Outcome> {
    let mut results = Vec::with_capacity(batch.len());
    for m in batch {
        results.push(match store.append(std::slice::from_ref(m)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, id = %S::id(m), "archiving a message failed");
                Err(Arc::new(e))
            }
        });
    }
    results
}
