//! Wire types of the Wardline HTTP API.
//!
//! Everything here is plain data with serde derives: the server and every client
//! share these definitions, so a field renamed here is renamed everywhere. Times
//! are Unix seconds (UTC) so that no client needs a date library to compare them.
//! No I/O lives in this crate.

pub mod audit;
pub mod auth;
pub mod b64;
pub mod directory;
pub mod error;
pub mod ids;
pub mod lifecycle;
pub mod messaging;
pub mod patients;
pub mod reports;
pub mod roles;
pub mod routing;
pub mod sync;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use ids::{DeviceId, OrgId, SessionId, UserId};
pub use roles::{Permission, Role};
