//! Clinical routing: the directory of departments, care teams and clinical
//! roles with presence; on-call schedules (manual and iCalendar); pages to a
//! role resolved to whoever covers it now; acknowledgement and the durable
//! escalation ladder; patient context with care-team access and break-glass;
//! response reports.
//!
//! The server still never reads content: a page opens (or reuses) an MLS
//! conversation with the person resolved, and escalation alerts are server
//! entries that name the waiting message, never its text.

mod access;
mod directory;
pub mod escalation;
pub mod ical;
mod report;
mod resolve;
mod shifts;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use uuid::Uuid;
use wardline_proto::directory::UserStatus;
use wardline_proto::messaging::{ConversationKind, CreateConversationRequest};
use wardline_proto::routing::*;
use wardline_proto::{OrgId, UserId};

use crate::audit::{AuditLog, AuditScope};
use crate::authz::Principal;
use crate::clock::Clock;
use crate::deps::Deps;
use crate::directory::DirectoryService;
use crate::error::{ApiError, ApiResult, check_text, found};
use crate::messaging::MessagingService;
use crate::patients::PatientService;
use crate::vault::{FieldRef, Vault};
use wardline_store::messaging::{MessageRow, MessagingStore};
use wardline_store::routing::{FeedRow, GrantRow, RoutingStore, presence_now};
use wardline_store::{LifecycleStore, Store, StoreError};

const DAY: i64 = 86_400;
/// How far a fallback role may lead to another fallback role.
const MAX_FALLBACK_DEPTH: usize = 3;
const MAX_SEARCH_RESULTS: usize = 50;
/// How often a subscribed schedule feed is imported again, and how soon
/// after a failed fetch.
const FEED_EVERY: i64 = 3600;
const FEED_RETRY: i64 = 900;

/// A name for the directory: trimmed, 1 to 100 characters.
fn name(value: &str, what: &'static str) -> ApiResult<String> {
    let v = value.trim();
    check_text(v, what, 100)?;
    Ok(v.to_owned())
}

/// Who a page to a role reaches now, and how.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub role: ClinicalRole,
    pub user: UserId,
    pub via: ResolvedVia,
    pub nobody_on_call: bool,
    pub notice: String,
}

#[derive(Clone)]
pub struct RoutingService {
    store: Arc<dyn RoutingStore>,
    /// Job leases (one node at a time for shift hand-offs).
    leases: Arc<dyn LifecycleStore>,
    messages: Arc<dyn MessagingStore>,
    directory_store: Arc<dyn Store>,
    directory: DirectoryService,
    messaging: MessagingService,
    patients: PatientService,
    vault: Vault,
    clock: Arc<dyn Clock>,
    audit: AuditLog,
    public_url: String,
}

impl RoutingService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        deps: &Deps,
        directory: DirectoryService,
        messaging: MessagingService,
        patients: PatientService,
        public_url: String,
    ) -> Self {
        let (store, leases, messages, directory_store, vault, clock, audit) = (
            deps.routing.clone(),
            deps.lifecycle.clone(),
            deps.messaging.clone(),
            deps.store.clone(),
            deps.vault.clone(),
            deps.clock.clone(),
            deps.audit.clone(),
        );
        RoutingService {
            store,
            leases,
            messages,
            directory_store,
            directory,
            messaging,
            patients,
            vault,
            clock,
            audit,
            public_url,
        }
    }

    /// The server's clock (the demo schedules shifts from it).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    async fn policy(&self, org: OrgId) -> ApiResult<RoutingPolicy> {
        Ok(self.directory_store.get_org(org).await?.policy.routing)
    }

    /// The user is an active member of the organisation.
    async fn active_user(&self, org: OrgId, user: UserId) -> ApiResult<()> {
        match self.directory_store.get_user(org, user).await {
            Ok(u) if u.status == UserStatus::Active => Ok(()),
            Ok(_) => Err(ApiError::validation(format!("user {user} is not active"))),
            Err(StoreError::NotFound) => Err(ApiError::validation(format!(
                "user {user} is not in this organisation"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn department_exists(&self, org: OrgId, id: Option<Uuid>) -> ApiResult<()> {
        if let Some(id) = id
            && !self
                .store
                .list_departments(org)
                .await?
                .iter()
                .any(|d| d.id == id)
        {
            return Err(ApiError::validation(
                "department_id is not a department here",
            ));
        }
        Ok(())
    }
}

/// Which of two shifts covering the same moment is on call (the greater),
/// never left to chance: the one that started last, so the incoming shift
/// takes over at hand-off; at equal starts a shift entered by hand (a
/// deliberate change) over an imported one; then the one ending later; then
/// the lower shift id, so every node and every read agree.
pub fn on_call_order(a: &Shift, b: &Shift) -> std::cmp::Ordering {
    a.starts_at
        .cmp(&b.starts_at)
        .then_with(|| (a.source == "manual").cmp(&(b.source == "manual")))
        .then_with(|| a.ends_at.cmp(&b.ends_at))
        .then_with(|| b.id.cmp(&a.id))
}

#[cfg(test)]
mod tests {
    use super::report::percentile;
    use super::shifts::calendar_locations;

    /// Issue 19, case 05: every URL of `realworld/05-webcal-urls.txt`.
    #[test]
    fn webcal_links_are_fetched_over_https_then_http() {
        let fixture = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/realworld/05-webcal-urls.txt"
        ));
        let urls: Vec<String> = fixture
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split('|').next().unwrap().trim().to_owned())
            .collect();
        assert_eq!(urls.len(), 4);
        for u in &urls {
            let u = u.as_str();
            let lower = u.to_ascii_lowercase();
            let got: Vec<String> = calendar_locations(u)
                .unwrap_or_else(|e| panic!("{u}: {}", e.message))
                .iter()
                .map(|l| l.scheme().to_owned())
                .collect();
            let want: &[&str] = if lower.starts_with("webcals:") {
                &["https"]
            } else if lower.starts_with("webcal:") {
                &["https", "http"]
            } else if lower.starts_with("https:") {
                &["https"]
            } else {
                &["http"]
            };
            assert_eq!(got, want, "{u}");
        }
        let l = calendar_locations("webcal://127.0.0.1:8000/oncall.ics?token=a%20b").unwrap();
        assert_eq!(
            l[1].as_str(),
            "http://127.0.0.1:8000/oncall.ics?token=a%20b"
        );
        let e = calendar_locations("ftp://example.org/x.ics").unwrap_err();
        assert!(e.message.contains("https://"), "{}", e.message);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        assert_eq!(percentile(vec![], 50), None);
        assert_eq!(percentile(vec![30], 90), Some(30));
        assert_eq!(percentile(vec![5, 1, 3, 2, 4], 50), Some(3));
        assert_eq!(percentile((1..=10).collect(), 90), Some(9));
    }
}
