//! The lifecycle policy's rules: what applies in a conversation (its own
//! settings, else the organisation's), a message's lifespan, the blind index
//! of a patient reference used by legal holds, and the validation of the
//! lifecycle and device sections of the organisation's policy.

use wardline_proto::OrgId;
use wardline_proto::lifecycle::*;

use crate::error::{ApiError, ApiResult};
use crate::vault::Vault;

const DAY: i64 = 86_400;

/// What applies in a conversation: its own settings, else the policy's.
pub fn effective(policy: &LifecyclePolicy, own: &ConversationLifecycle) -> EffectiveLifecycle {
    EffectiveLifecycle {
        retention: own.retention.unwrap_or(policy.retention),
        message_ttl_secs: match (own.message_ttl_secs, policy.message_ttl_secs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
    }
}

/// A message's lifespan: the shortest of what the sender asked for and what
/// the conversation and policy say.
pub fn message_ttl(
    policy: &LifecyclePolicy,
    own: &ConversationLifecycle,
    requested: Option<i64>,
) -> ApiResult<Option<i64>> {
    if let Some(t) = requested
        && !(60..=policy.max_ttl_secs).contains(&t)
    {
        return Err(ApiError::validation(format!(
            "ttl_secs must be between 60 and {} (organisation policy)",
            policy.max_ttl_secs
        )));
    }
    let base = effective(policy, own).message_ttl_secs;
    Ok(match (requested, base) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Blind index of a patient reference as written on conversations (case and
/// surrounding spaces ignored), for legal holds on a patient.
pub fn patient_index(vault: &Vault, org: OrgId, reference: &str) -> String {
    vault.index(org, "patient-ref", &reference.trim().to_lowercase())
}

/// A retention setting within 1 to 36,500 days (or forever) and not below the
/// retention minimum.
pub fn check_retention(r: Retention, what: &'static str, minimum_days: i64) -> ApiResult<()> {
    if let Retention::Days(d) = r {
        if !(1..=36_500).contains(&d) {
            return Err(ApiError::invalid_field(
                what,
                format!("{what} must be between 1 and 36500 days, or forever"),
            ));
        }
        if d < minimum_days {
            return Err(ApiError::invalid_field(
                what,
                format!(
                    "{what} ({d} days) is shorter than the retention minimum ({minimum_days} days)"
                ),
            ));
        }
    }
    Ok(())
}

pub fn validate_policy(p: &LifecyclePolicy) -> ApiResult<()> {
    if !(0..=36_500).contains(&p.minimum_days) {
        return Err(ApiError::invalid_field(
            "minimum_days",
            "minimum_days must be between 0 and 36500",
        ));
    }
    check_retention(p.retention, "retention", p.minimum_days)?;
    if !(60..=365 * DAY).contains(&p.max_ttl_secs) {
        return Err(ApiError::invalid_field(
            "max_ttl_secs",
            "max_ttl_secs must be between 60 and 31536000",
        ));
    }
    if let Some(t) = p.message_ttl_secs
        && !(60..=p.max_ttl_secs).contains(&t)
    {
        return Err(ApiError::invalid_field(
            "message_ttl_secs",
            "message_ttl_secs must be between 60 and max_ttl_secs",
        ));
    }
    if !(0..=7 * DAY).contains(&p.recall_window_secs) {
        return Err(ApiError::invalid_field(
            "recall_window_secs",
            "recall_window_secs must be between 0 and 604800",
        ));
    }
    Ok(())
}

pub fn validate_device_policy(p: &DevicePolicy) -> ApiResult<()> {
    if !(4..=64).contains(&p.min_pin_length) {
        return Err(ApiError::invalid_field(
            "devices.min_pin_length",
            "devices.min_pin_length must be between 4 and 64",
        ));
    }
    if !(30..=DAY).contains(&p.lock_after_idle_secs) {
        return Err(ApiError::invalid_field(
            "devices.lock_after_idle_secs",
            "devices.lock_after_idle_secs must be between 30 and 86400",
        ));
    }
    if p.max_offline_days.is_some_and(|d| !(1..=365).contains(&d)) {
        return Err(ApiError::invalid_field(
            "devices.max_offline_days",
            "devices.max_offline_days must be between 1 and 365",
        ));
    }
    if p.allowed_attachment_types.len() > 100
        || p.allowed_attachment_types
            .iter()
            .any(|t| t.is_empty() || t.len() > 100 || !t.contains('/'))
    {
        return Err(ApiError::invalid_field(
            "devices.allowed_attachment_types",
            "devices.allowed_attachment_types are MIME types like image/png or image/* (at most 100)",
        ));
    }
    if p.min_os_versions.len() > 20
        || p.min_os_versions
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > 32 || v.is_empty() || v.len() > 32)
    {
        return Err(ApiError::invalid_field(
            "devices.min_os_versions",
            "devices.min_os_versions maps a platform to a version (1–32 characters each)",
        ));
    }
    Ok(())
}
