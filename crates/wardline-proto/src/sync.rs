//! A device's inbox and its sync: the entries (MLS messages and the server's
//! notices: alerts, history shares, recalls), the polling endpoint's query and
//! response, and the frames of the sync WebSocket. Above messaging, routing
//! and patients, whose notices an entry or frame carries.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::b64::B64;
use crate::messaging::{MessageKind, Priority};

/// One entry of a device's inbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboxEntry {
    /// Position in this device's inbox; the sync cursor.
    pub seq: i64,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub kind: MessageKind,
    pub sender_user: Option<Uuid>,
    pub sender_device: Option<Uuid>,
    pub epoch: i64,
    pub priority: Priority,
    pub created_at: i64,
    /// The MLS message; absent for `membership` and `recall` entries.
    pub mls: Option<B64>,
    /// Ephemeral messages: when every device must have deleted it.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// `recall` entries: the message recalled.
    #[serde(default)]
    pub recalls: Option<Uuid>,
    /// `alert` entries: what is waiting for acknowledgement.
    #[serde(default)]
    pub alert: Option<Box<crate::routing::AlertNotice>>,
    /// `history` entries: who joined and needs the recent messages.
    #[serde(default)]
    pub history: Option<crate::routing::HistoryNotice>,
    /// `application` entries that are an earlier message shared again for
    /// members who joined after it: the original, checked by the server to
    /// be the sender's own in this conversation. Show, acknowledge, recall
    /// and reply to the original's id; the entry's `priority` is the
    /// original's.
    #[serde(default)]
    pub shared_again: Option<SharedAgain>,
}

/// The original of a message shared again.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SharedAgain {
    pub message_id: Uuid,
    /// When the original was accepted (Unix seconds).
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct SyncQuery {
    /// Return entries after this position (the last one the device stored).
    #[serde(default)]
    pub after: i64,
    /// At most this many entries (1–500, default 100).
    #[serde(default)]
    pub limit: Option<i64>,
    /// The sync WebSocket only, instead of an `Authorization` header (which
    /// browsers cannot send with an upgrade): a one-time ticket from
    /// `POST /api/v1/sync/ticket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// A one-time ticket that opens one sync WebSocket for the session that
/// asked for it: `GET /api/v1/sync/ws?after=N&ticket=…`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SocketTicket {
    /// Good for one upgrade.
    pub ticket: String,
    /// Unix seconds; 30 seconds after it was issued.
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncResponse {
    pub entries: Vec<InboxEntry>,
    /// Entries remain after the last one returned.
    pub more: bool,
    /// The highest position the device has acknowledged.
    pub acked: i64,
    /// The server's clock: devices expire messages by the later of it and
    /// their own, so turning a device's clock back keeps nothing.
    #[serde(default)]
    pub server_time: i64,
}

/// A frame the server sends on the sync WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Entry(Box<InboxEntry>),
    /// Everything up to the device's inbox end has been sent; the server's
    /// clock at that moment (Unix seconds; 0 from a server older than it),
    /// so that an open socket keeps a device's expiry clock current as a
    /// catch-up page does (`SyncPage.server_time`).
    Idle {
        #[serde(default)]
        server_time: i64,
    },
    /// A notice to the user that is not a conversation's message (a patient
    /// replied); sent when it happens and, on connecting, those not seen yet.
    Notice(crate::patients::StaffNotice),
    /// A frame of a later server version: ignore it.
    #[serde(other)]
    Unknown,
}

/// A frame the client sends on the sync WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Ack { up_to: i64 },
}
