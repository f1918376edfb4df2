//! The error type shared by every store trait.

/// A boxed error from a backend (database driver, I/O, corrupt row …).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The thing to create exists already (e.g. an account with that
    /// localpart and domain).
    #[error("already exists")]
    AlreadyExists,
    /// The thing to change or delete does not exist.
    #[error("not found")]
    NotFound,
    /// The backend failed, or the request was malformed in a way only the
    /// backend can report. The source says why.
    #[error("storage backend error: {0}")]
    Backend(#[source] BoxError),
}

impl StorageError {
    /// Wraps any backend error.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        Self::Backend(err.into())
    }
}
