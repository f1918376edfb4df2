//! XEP-0313 message archives, the parts every archive shares: an account's (the `mam` module)
//! and a group chat room's (the `muc` crate). [`query`] reads a query and writes its answers;
//! [`writer`] commits the messages of many senders in one durable write.

pub mod query;
pub mod writer;
