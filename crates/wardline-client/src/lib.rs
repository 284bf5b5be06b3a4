//! Wardline client SDK.
//!
//! * [`ApiClient`]: typed calls to the HTTP API, with the server's errors
//!   surfaced as [`ClientError::Api`] (code and message from the server).
//! * [`Profile`]: what a signed-in client keeps between runs (server, device id,
//!   session token), stored in a file only its owner can read.
//!
//! Later: device identity, MLS state, sync and the local encrypted store.

pub mod api;
pub mod profile;

pub use api::{ApiClient, ClientError};
pub use profile::Profile;
