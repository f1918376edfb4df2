//! Code that integration tests share: a test file that needs it says `mod common;`. (A
//! directory, so that Cargo does not build it as a test of its own.)

pub mod pubsub;
