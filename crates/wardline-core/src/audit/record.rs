//! Between [`AuditEvent`] and the stored [`AuditRow`]. Decoding is strict: a
//! value that does not read back to exactly the stored text (an unknown action,
//! a UUID in another case) is an error, because the verifier must hash what
//! was written, not a normalised version of it.

use std::str::FromStr;

use uuid::Uuid;
use wardline_crypto::merkle::Hash;
use wardline_proto::audit::{ActorKind, AuditAction, AuditEvent, FieldChange, Outcome};

use wardline_store::AuditRow;

pub fn to_row(e: &AuditEvent, leaf: &Hash, chain: &Hash, mac: &Hash) -> AuditRow {
    AuditRow {
        seq: e.seq,
        at_ms: e.at_ms,
        org_id: e.org_id.map(|u| u.to_string()),
        actor_kind: e.actor_kind.as_str().to_owned(),
        actor_id: e.actor_id.clone(),
        device_id: e.device_id.map(|u| u.to_string()),
        source_ip: e.source_ip.clone(),
        user_agent: e.user_agent.clone(),
        action: e.action.as_str().to_owned(),
        target_type: e.target_type.clone(),
        target_id: e.target_id.clone(),
        patient_id: e.patient_id.clone(),
        outcome: e.outcome.as_str().to_owned(),
        reason: e.reason.clone(),
        changes: (!e.changes.is_empty())
            .then(|| serde_json::to_string(&e.changes).expect("changes serialise")),
        leaf_hash: leaf.to_vec(),
        chain_hash: chain.to_vec(),
        mac: mac.to_vec(),
    }
}

fn parse_uuid(s: &Option<String>, what: &str) -> Result<Option<Uuid>, String> {
    match s {
        None => Ok(None),
        Some(text) => {
            let u = Uuid::from_str(text).map_err(|_| format!("{what} is not a UUID"))?;
            if u.to_string() != *text {
                return Err(format!("{what} is not in canonical form"));
            }
            Ok(Some(u))
        }
    }
}

/// The event a row holds, with its stored leaf hash (hex), as the API and
/// exports show it.
pub fn decode_for_wire(r: &AuditRow) -> Result<AuditEvent, String> {
    let mut e = decode(r)?;
    e.leaf_hash = Some(hex::encode(&r.leaf_hash));
    Ok(e)
}

/// The event a row holds, without its leaf hash (what the leaf commits to).
pub fn decode(r: &AuditRow) -> Result<AuditEvent, String> {
    Ok(AuditEvent {
        seq: r.seq,
        at_ms: r.at_ms,
        org_id: parse_uuid(&r.org_id, "org_id")?,
        actor_kind: ActorKind::parse(&r.actor_kind)
            .ok_or_else(|| format!("actor_kind {:?} is not a known value", r.actor_kind))?,
        actor_id: r.actor_id.clone(),
        device_id: parse_uuid(&r.device_id, "device_id")?,
        source_ip: r.source_ip.clone(),
        user_agent: r.user_agent.clone(),
        action: AuditAction::parse(&r.action)
            .ok_or_else(|| format!("action {:?} is not a known value", r.action))?,
        target_type: r.target_type.clone(),
        target_id: r.target_id.clone(),
        patient_id: r.patient_id.clone(),
        outcome: Outcome::parse(&r.outcome)
            .ok_or_else(|| format!("outcome {:?} is not a known value", r.outcome))?,
        reason: r.reason.clone(),
        changes: decode_changes(&r.changes)?,
        leaf_hash: None,
    })
}

/// Strict like the rest: the stored text must be exactly what these changes
/// serialise to, and an empty list is stored as nothing.
fn decode_changes(text: &Option<String>) -> Result<Vec<FieldChange>, String> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let changes: Vec<FieldChange> =
        serde_json::from_str(text).map_err(|e| format!("changes are not valid: {e}"))?;
    if changes.is_empty() || serde_json::to_string(&changes).ok().as_deref() != Some(text) {
        return Err("changes are not in canonical form".into());
    }
    Ok(changes)
}
