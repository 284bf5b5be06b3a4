//! Wake-ups between nodes. Several stateless nodes may share one database; a
//! message accepted on one must wake the sync sockets open on the others.
//!
//! The database stays the truth: a wake-up only shortens the wait. A lost one
//! (a node reconnecting) delays delivery until the socket's next poll, so an
//! implementation may drop wake-ups but must never block a sender for long.
//! The trait lives here, beside the stores, because its one networked
//! implementation (PostgreSQL `NOTIFY`, in `wardline-store-sql`) belongs to an
//! engine, and engines depend on this crate, not on the services.

use async_trait::async_trait;
use wardline_proto::DeviceId;

use crate::Result;

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Tells every other node that these devices' inboxes grew. Called after
    /// the rows are committed, so a node woken by it finds them.
    async fn announce(&self, devices: &[DeviceId]) -> Result<()>;
}

/// A node alone (SQLite, one process): there is nobody to tell.
pub struct LocalOnly;

#[async_trait]
impl Bus for LocalOnly {
    async fn announce(&self, _devices: &[DeviceId]) -> Result<()> {
        Ok(())
    }
}
