//! What travels inside an MLS application message: the content clinicians
//! exchange. The server never sees any of it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wardline_crypto::DataKey;
use wardline_proto::messaging::B64;

/// Associated data of attachment ciphertext: a blob cannot be passed off as
/// anything else sealed with the same kind of key.
const ATTACHMENT_CONTEXT: &[u8] = b"wardline/attachment/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    File,
    Photo,
    Voice,
}

/// An encrypted blob on the server and what is needed to open it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    pub id: Uuid,
    pub kind: AttachmentKind,
    pub name: String,
    pub mime: String,
    pub size: u64,
    /// AES-256-GCM key of this one blob.
    pub key: B64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MessageContent {
    pub text: String,
    /// The message this one answers (threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
    /// This is that earlier message, shared again for members who joined
    /// after it (MLS gives a new member nothing from before): an escalation
    /// brought in the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_again: Option<Uuid>,
    /// This message forwards another one, from another conversation (where
    /// the device policy's `allow_forwarding` lets it): who wrote it and when.
    /// Inside the encrypted content, as everything here: the server does not
    /// learn that a message was forwarded, nor from where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<Forwarded>,
}

/// Where a forwarded message came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// The user who wrote the original.
    pub sender_user: Uuid,
    /// When the original was sent (Unix seconds, server time).
    pub sent_at: i64,
    /// The patient the original's conversation is about, if it was a
    /// patient thread: a forward into another conversation keeps saying
    /// which patient it concerns (encrypted with the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_ref: Option<String>,
}

impl MessageContent {
    pub fn text(text: impl Into<String>) -> Self {
        MessageContent {
            text: text.into(),
            ..Default::default()
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("content serialises")
    }

    pub fn from_bytes(b: &[u8]) -> Option<MessageContent> {
        serde_json::from_slice(b).ok()
    }
}

/// Encrypts a blob under a fresh key; returns (ciphertext, key).
pub fn seal_attachment(data: &[u8]) -> (Vec<u8>, B64) {
    let key = DataKey::generate();
    (
        key.seal(data, ATTACHMENT_CONTEXT),
        B64(key.expose().to_vec()),
    )
}

pub fn open_attachment(sealed: &[u8], key: &B64) -> Option<Vec<u8>> {
    let key = DataKey::from_bytes(&key.0).ok()?;
    key.open(sealed, ATTACHMENT_CONTEXT).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_round_trip_and_fail_closed() {
        let (sealed, key) = seal_attachment(b"x-ray image bytes");
        assert!(!sealed.windows(5).any(|w| w == b"x-ray"));
        assert_eq!(
            open_attachment(&sealed, &key).unwrap(),
            b"x-ray image bytes"
        );
        let (_, other) = seal_attachment(b"");
        assert!(open_attachment(&sealed, &other).is_none());
    }
}
