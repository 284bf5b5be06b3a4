//! Row inserts that more than one store's transactions make: a message (a
//! submission, a server notice of the lifecycle or routing stores), its
//! routing record (inside its submission's transaction) and a data key (with
//! the record it protects). One copy here instead of a store reaching into
//! another's module.

use sqlx::{Any, Transaction};
use uuid::Uuid;

use crate::map_unique;
use wardline_store::messaging::MessageRow;
use wardline_store::routing::RoutedRow;
use wardline_store::{DataKeyRow, Result};

pub(crate) async fn insert_key(tx: &mut Transaction<'_, Any>, k: &DataKeyRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO data_keys (id, org_id, kek_id, wrapped, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&k.id)
    .bind(k.org_id.map(|o| o.to_string()))
    .bind(&k.kek_id)
    .bind(&k.wrapped)
    .bind(k.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| map_unique(e, "data key id"))?;
    Ok(())
}

pub(crate) async fn insert_message(tx: &mut Transaction<'_, Any>, m: &MessageRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, kind, sender_user, sender_device, epoch, priority, body, body_hash, created_at, dek_id, expires_at, recalls, alert, shared_again, original_created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(m.id.to_string())
    .bind(m.conversation_id.to_string())
    .bind(m.kind.as_str())
    .bind(m.sender_user.map(|u| u.to_string()))
    .bind(m.sender_device.map(|d| d.to_string()))
    .bind(m.epoch)
    .bind(m.priority.as_str())
    .bind(m.body.clone())
    .bind(m.body_hash.clone())
    .bind(m.created_at)
    .bind(m.dek_id.clone())
    .bind(m.expires_at)
    .bind(m.recalls.map(|r| r.to_string()))
    .bind(m.alert.clone())
    .bind(m.shared_again.map(|o| o.to_string()))
    .bind(m.original_created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| map_unique(e, "message"))?;
    Ok(())
}

/// Stores a routed message's record (inside its submission's transaction).
pub(crate) async fn insert_routed(tx: &mut Transaction<'_, Any>, r: &RoutedRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO routed_messages (message_id, org_id, conversation_id, sender_user, priority, role_id, resolved_user, resolved_via, department_id, state, step, next_at, lease_until, notified, merged_into, escalations, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, $13, $14, 0, $15)",
    )
    .bind(r.message_id.to_string())
    .bind(r.org_id.to_string())
    .bind(r.conversation_id.to_string())
    .bind(r.sender_user.to_string())
    .bind(r.priority.as_str())
    .bind(r.role_id.map(|u| u.to_string()))
    .bind(r.resolved_user.map(|u| u.to_string()))
    .bind(r.resolved_via.clone())
    .bind(r.department_id.map(|u| u.to_string()))
    .bind(r.state.as_str())
    .bind(r.step)
    .bind(r.next_at)
    .bind(ids_json(&r.notified))
    .bind(r.merged_into.map(|u| u.to_string()))
    .bind(r.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A list of ids as the JSON text column holds it.
pub(crate) fn ids_json<T: Copy + Into<Uuid>>(ids: &[T]) -> String {
    let ids: Vec<Uuid> = ids.iter().map(|&id| id.into()).collect();
    serde_json::to_string(&ids).expect("ids serialise")
}
