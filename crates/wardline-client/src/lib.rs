//! Wardline client SDK.
//!
//! * [`core`]: the protocol core — device identity, MLS groups, the chat state
//!   machine with its offline outbox, and the passphrase-sealed local store.
//!   No I/O: it builds for `wasm32-unknown-unknown` (`--no-default-features`).
//! * natively (feature `native`, on by default): [`ApiClient`] (typed HTTP
//!   calls, the server's errors as [`ClientError::Api`]), [`Profile`] (server,
//!   device id and session token in an owner-only file), and [`chat::Chat`]
//!   (the core driven over HTTP and the sync WebSocket, state in a file).

pub mod core;

#[cfg(feature = "native")]
pub mod api;
#[cfg(feature = "native")]
pub mod chat;
#[cfg(feature = "native")]
pub mod patient_keys;
#[cfg(feature = "native")]
pub mod profile;

#[cfg(feature = "native")]
pub use api::{ApiClient, ClientError};
#[cfg(feature = "native")]
pub use profile::Profile;
