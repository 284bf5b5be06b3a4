//! Encrypted attachments: the checks before a body is read, the upload, and
//! the download.

use super::*;
use crate::caller::Caller;

impl MessagingService {
    /// Everything an upload is checked for before its body is read (finding
    /// M3 of 2026-11-30: bodies up to 100 MiB were buffered, and copied,
    /// before the organisation's 25 MiB limit applied): the device, the
    /// membership, the size the caller declares (`content_length`), and a
    /// place among the session's uploads in flight.
    pub async fn begin_upload(
        &self,
        p: &Caller,
        id: Uuid,
        content_length: Option<u64>,
    ) -> ApiResult<UploadPermit> {
        let device = self.device_of(p).await?;
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, &p.audit).await?;
        let max = self.policy(p.org_id).await?.max_attachment_bytes;
        if content_length.is_some_and(|n| n > max as u64) {
            return Err(attachment_too_large(max));
        }
        {
            let mut u = self.uploads.lock().expect("uploads lock");
            let n = u.entry(p.session_id).or_insert(0);
            if *n >= MAX_UPLOADS_PER_SESSION {
                return Err(ApiError {
                    message: format!(
                        "at most {MAX_UPLOADS_PER_SESSION} uploads at a time per session; wait for one to finish"
                    ),
                    ..ApiError::rate_limited(1)
                });
            }
            *n += 1;
        }
        Ok(UploadPermit {
            max_bytes: max,
            conversation: id,
            device: device.id.into(),
            org: p.org_id,
            session: p.session_id,
            uploads: self.uploads.clone(),
        })
    }

    /// Stores an attachment read under `permit` (at most its `max_bytes`).
    pub async fn upload_attachment(
        &self,
        permit: UploadPermit,
        data: &[u8],
    ) -> ApiResult<AttachmentUploaded> {
        if data.len() as i64 > permit.max_bytes {
            return Err(attachment_too_large(permit.max_bytes));
        }
        if data.is_empty() {
            return Err(ApiError::validation("an attachment cannot be empty"));
        }
        let id = permit.conversation;
        let attachment_id = Uuid::new_v4();
        let size = data.len() as i64;
        let (key_row, key) = self.vault.new_key_row(permit.org)?;
        let row = AttachmentRow {
            id: attachment_id,
            conversation_id: id,
            uploader_device: permit.device.into(),
            data: Vault::seal_bytes(&key, attachment_field(&attachment_id.to_string()), data),
            created_at: self.clock.now(),
            dek_id: Some(key_row.id.clone()),
        };
        self.store.insert_attachment(&row, &key_row).await?;
        Ok(AttachmentUploaded {
            attachment_id,
            size,
        })
    }

    pub async fn attachment(&self, p: &Caller, id: Uuid, attachment: Uuid) -> ApiResult<Vec<u8>> {
        let c = self.member_conversation(p, id).await?;
        self.tag_patient(&c, &p.audit).await?;
        match self.store.get_attachment(id, attachment).await {
            Ok((a, None)) => Ok(a.data),
            Ok((a, Some(key))) => Ok(Vault::open_bytes(
                &self.vault.unwrap_key(&key)?,
                attachment_field(&a.id.to_string()),
                &a.data,
            )?),
            Err(StoreError::NotFound) => Err(ApiError::not_found("attachment")),
            Err(e) => Err(e.into()),
        }
    }
}

pub(super) fn attachment_field(id: &str) -> FieldRef<'_> {
    FieldRef {
        table: "attachments",
        row_id: id,
        column: "data",
    }
}
