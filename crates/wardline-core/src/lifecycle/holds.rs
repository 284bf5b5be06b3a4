//! Legal holds: placed on a user, a conversation or a patient (sealed
//! register), released with a reason; while one is open nothing it covers is
//! deleted.

use super::*;

/// Which active holds cover what.
pub(super) struct Holds {
    users: HashSet<String>,
    conversations: HashSet<String>,
    patients: HashSet<String>,
    pub(super) count: i64,
}

impl Holds {
    pub(super) fn of(rows: &[HoldRow]) -> Holds {
        let mut h = Holds {
            users: HashSet::new(),
            conversations: HashSet::new(),
            patients: HashSet::new(),
            count: 0,
        };
        for r in rows.iter().filter(|r| r.released_at.is_none()) {
            h.count += 1;
            match r.scope {
                HoldScope::User => h.users.insert(r.target.clone()),
                HoldScope::Conversation => h.conversations.insert(r.target.clone()),
                HoldScope::Patient => h.patients.insert(r.target.clone()),
            };
        }
        h
    }

    pub(super) fn conversation(&self, c: &LifecycleConversation) -> bool {
        self.conversations.contains(&c.id.to_string())
            || c.patient_ref_bidx
                .as_ref()
                .is_some_and(|b| self.patients.contains(b))
            || c.members
                .iter()
                .any(|u| self.users.contains(&u.to_string()))
    }

    pub(super) fn sender(&self, u: Option<UserId>) -> bool {
        u.is_some_and(|u| self.users.contains(&u.to_string()))
    }
}

impl LifecycleService {
    pub async fn place_hold(&self, p: &Caller, req: PlaceHoldRequest) -> ApiResult<LegalHold> {
        let matter = req.matter.trim();
        let reason = req.reason.trim();
        let target = req.target.trim();
        check_text(matter, "matter", 200)?;
        check_text(reason, "reason", 2000)?;
        let stored_target = match req.scope {
            HoldScope::User => {
                let id = parse_id(target, "user")?;
                found(self.directory.get_user(p.org_id, id.into()).await, "user")?;
                id.to_string()
            }
            HoldScope::Conversation => {
                let id = parse_id(target, "conversation")?;
                found(
                    self.messages.get_conversation(p.org_id, id).await,
                    "conversation",
                )?;
                id.to_string()
            }
            HoldScope::Patient => {
                if target.is_empty() || target.chars().count() > 100 {
                    return Err(ApiError::invalid_field(
                        "target",
                        "a patient reference must be 1 to 100 characters",
                    ));
                }
                let index = patient_index(&self.vault, p.org_id, target);
                p.audit.patient_ref(&index);
                index
            }
        };
        let id = Uuid::new_v4();
        p.audit.target("legal_hold", id);
        let (key_row, key) = self.vault.new_key_row(p.org_id)?;
        let row_id = id.to_string();
        let seal = |col: &str, v: &str| {
            Vault::seal(
                &key,
                FieldRef {
                    table: "legal_holds",
                    row_id: &row_id,
                    column: col,
                },
                v,
            )
        };
        let row = HoldRow {
            id,
            org_id: p.org_id,
            scope: req.scope,
            target: stored_target,
            dek_id: key_row.id.clone(),
            target_enc: seal("target", target),
            matter_enc: seal("matter", matter),
            reason_enc: seal("reason", reason),
            placed_by: p.user_id,
            placed_at: self.clock.now(),
            released_by: None,
            released_at: None,
            release_reason_enc: None,
        };
        self.store.insert_hold(&row, &key_row).await?;
        self.open_hold(&row).await
    }

    async fn open_hold(&self, h: &HoldRow) -> ApiResult<LegalHold> {
        let key = self.vault.record_key(&h.dek_id).await?;
        let row_id = h.id.to_string();
        let open = |col: &str, v: &[u8]| -> ApiResult<String> {
            Ok(Vault::open_str(
                &key,
                FieldRef {
                    table: "legal_holds",
                    row_id: &row_id,
                    column: col,
                },
                v,
            )?)
        };
        Ok(LegalHold {
            id: h.id,
            scope: h.scope,
            target: open("target", &h.target_enc)?,
            matter: open("matter", &h.matter_enc)?,
            reason: open("reason", &h.reason_enc)?,
            placed_by: h.placed_by.into(),
            placed_at: h.placed_at,
            released_by: h.released_by.map(Into::into),
            released_at: h.released_at,
            release_reason: h
                .release_reason_enc
                .as_deref()
                .map(|v| open("release_reason", v))
                .transpose()?,
        })
    }

    pub async fn holds(&self, org: OrgId) -> ApiResult<LegalHoldList> {
        let mut holds = Vec::new();
        for h in self.store.list_holds(org).await? {
            holds.push(self.open_hold(&h).await?);
        }
        Ok(LegalHoldList { holds })
    }

    pub async fn release_hold(
        &self,
        p: &Caller,
        id: Uuid,
        req: ReleaseHoldRequest,
    ) -> ApiResult<LegalHold> {
        p.audit.target("legal_hold", id);
        let reason = req.reason.trim();
        check_text(reason, "reason", 2000)?;
        let h = found(self.store.get_hold(p.org_id, id).await, "legal hold")?;
        let key = self.vault.record_key(&h.dek_id).await?;
        let sealed = Vault::seal(
            &key,
            FieldRef {
                table: "legal_holds",
                row_id: &id.to_string(),
                column: "release_reason",
            },
            reason,
        );
        if !self
            .store
            .release_hold(p.org_id, id, p.user_id, self.clock.now(), &sealed)
            .await?
        {
            return Err(ApiError::conflict("this hold was released already"));
        }
        self.open_hold(&self.store.get_hold(p.org_id, id).await?)
            .await
    }
}

pub(super) fn active_hold_ids(rows: &[HoldRow]) -> Vec<Uuid> {
    rows.iter()
        .filter(|r| r.released_at.is_none())
        .map(|r| r.id)
        .collect()
}

fn parse_id(s: &str, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s)
        .map_err(|_| ApiError::invalid_field("target", format!("target must be a {what} id")))
}
