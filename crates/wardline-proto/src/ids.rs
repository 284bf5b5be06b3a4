//! Identifiers. All are random UUIDs (v4) so that an id reveals neither
//! creation order nor tenant.

use uuid::Uuid;

pub type OrgId = Uuid;
pub type UserId = Uuid;
pub type SessionId = Uuid;
/// Chosen by the client when it first runs and kept in its profile; sessions are
/// bound to it so that a lost device's sessions can be revoked on their own.
pub type DeviceId = Uuid;
