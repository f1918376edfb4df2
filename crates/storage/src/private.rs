//! Private XML storage (XEP-0049, `jabber:iq:private`): per account, any number of XML elements,
//! each filed under its element name and namespace.

use async_trait::async_trait;

use crate::StorageError;

/// One stored element of an account's private XML storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateElement {
    /// The element's local name (`storage`).
    pub name: String,
    /// The element's namespace (`storage:bookmarks`).
    pub namespace: String,
    /// The serialized element (XML text), stored and returned as given.
    pub xml: String,
}

impl PrivateElement {
    /// An element for `(name, namespace)` with its serialization `xml`.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        xml: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            xml: xml.into(),
        }
    }
}

/// The private XML storage of all accounts: at most one element per account, name and
/// namespace (XEP-0049 §2.3: a get names an element by its namespace and name; a set replaces
/// what was stored under the same).
///
/// `localpart` and `domain` name the owning account; they are already normalised and, like
/// `name` and `namespace`, compared byte-for-byte (see the crate docs). Deleting the account
/// deletes its elements.
#[async_trait]
pub trait PrivateStore: Send + Sync {
    /// The element stored under `(name, namespace)`, exactly as set; `None` if there is none or
    /// the account does not exist.
    async fn get(
        &self,
        localpart: &str,
        domain: &str,
        name: &str,
        namespace: &str,
    ) -> Result<Option<String>, StorageError>;

    /// Stores every element of `elements`, each replacing what was stored under its name and
    /// namespace, all or nothing. An empty slice changes nothing (but still fails for an unknown
    /// account).
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist, and with
    /// [`StorageError::Backend`] if two elements share a name and namespace. Atomic.
    async fn set(
        &self,
        localpart: &str,
        domain: &str,
        elements: &[PrivateElement],
    ) -> Result<(), StorageError>;

    /// Every element of the account, sorted by namespace, then name (UTF-8 byte order). Empty
    /// for an unknown account. For export (XEP-0227).
    async fn all(&self, localpart: &str, domain: &str)
    -> Result<Vec<PrivateElement>, StorageError>;

    /// How many elements the account stores; 0 for an unknown account.
    async fn count(&self, localpart: &str, domain: &str) -> Result<u64, StorageError>;
}
