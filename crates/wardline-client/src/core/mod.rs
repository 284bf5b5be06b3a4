//! The protocol core of a Wardline client: no network, no threads, no
//! filesystem, so that it builds for `wasm32-unknown-unknown` as well as
//! natively (CI checks both).
//!
//! * [`mls`]: the device's MLS identity, key packages and groups.
//! * [`content`]: what travels inside MLS (text, replies, attachments) and
//!   attachment encryption.
//! * [`chat`]: the chat state machine (inbox entries in, requests out, outbox).
//! * [`search`]: search over the history on the device; urgent messages
//!   that may wait for an acknowledgement.
//! * [`store`]: sealing the device's state under a passphrase (Argon2id).

pub mod chat;
pub mod content;
pub mod mls;
pub mod patient;
pub mod search;
pub mod store;

pub use chat::{ChatCore, CoreError, Event, GroupChange, LocalConversation, LocalMessage, Plan};
pub use content::{AttachmentKind, AttachmentRef, Forwarded, MessageContent};
pub use store::{SealedStateKey, derive_key};
