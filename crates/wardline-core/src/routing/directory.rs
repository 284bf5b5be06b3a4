//! The routing directory: departments, care teams, clinical roles and their
//! ladders, presence, and directory search.

use super::*;

impl RoutingService {
    pub async fn directory(&self, org: OrgId) -> ApiResult<RoutingDirectory> {
        Ok(RoutingDirectory {
            departments: self.store.list_departments(org).await?,
            care_teams: self.store.list_teams(org).await?,
            roles: self.store.list_roles(org).await?,
        })
    }

    pub async fn create_department(
        &self,
        org: OrgId,
        req: CreateDepartmentRequest,
    ) -> ApiResult<Department> {
        let d = Department {
            id: Uuid::new_v4(),
            name: name(&req.name, "name")?,
            created_at: self.clock.now(),
        };
        found(self.store.insert_department(org, &d).await, "department")?;
        Ok(d)
    }

    pub async fn create_team(&self, org: OrgId, req: CreateCareTeamRequest) -> ApiResult<CareTeam> {
        self.department_exists(org, req.department_id).await?;
        let mut members = req.members.clone();
        members.sort();
        members.dedup();
        if members.len() > 500 {
            return Err(ApiError::validation("a care team has at most 500 members"));
        }
        for u in &members {
            self.active_user(org, (*u).into()).await?;
        }
        let t = CareTeam {
            id: Uuid::new_v4(),
            name: name(&req.name, "name")?,
            department_id: req.department_id,
            members,
            created_at: self.clock.now(),
        };
        found(self.store.insert_team(org, &t).await, "care team")?;
        Ok(t)
    }

    pub async fn add_team_member(
        &self,
        org: OrgId,
        team: Uuid,
        user: UserId,
    ) -> ApiResult<CareTeam> {
        found(self.store.get_team(org, team).await, "care team")?;
        self.active_user(org, user).await?;
        if !self
            .store
            .add_team_member(org, team, user, self.clock.now())
            .await?
        {
            return Err(ApiError::conflict("already on this care team"));
        }
        Ok(self.store.get_team(org, team).await?)
    }

    pub async fn remove_team_member(
        &self,
        org: OrgId,
        team: Uuid,
        user: UserId,
    ) -> ApiResult<CareTeam> {
        if !found(
            self.store.remove_team_member(org, team, user).await,
            "care team",
        )? {
            return Err(ApiError::not_found("care team member"));
        }
        Ok(self.store.get_team(org, team).await?)
    }

    /// A role as the request describes it (checked), with `id` and `created_at`.
    pub(super) async fn role_from(
        &self,
        org: OrgId,
        id: Uuid,
        created_at: i64,
        req: CreateRoleRequest,
    ) -> ApiResult<ClinicalRole> {
        self.department_exists(org, req.department_id).await?;
        if let Some(f) = req.fallback_role_id {
            if f == id {
                return Err(ApiError::validation("a role cannot be its own fallback"));
            }
            found(self.store.get_role(org, f).await, "fallback role")?;
        }
        if let Some(e) = &req.escalation {
            crate::policy::routing::validate_escalation(e)?;
        }
        let mut holders = req.holders.clone();
        holders.sort();
        holders.dedup();
        if holders.len() > 500 {
            return Err(ApiError::validation("a role has at most 500 holders"));
        }
        for u in &holders {
            self.active_user(org, (*u).into()).await?;
        }
        Ok(ClinicalRole {
            id,
            name: name(&req.name, "name")?,
            department_id: req.department_id,
            fallback_role_id: req.fallback_role_id,
            holders,
            escalation: req.escalation,
            created_at,
        })
    }

    pub async fn create_role(&self, org: OrgId, req: CreateRoleRequest) -> ApiResult<ClinicalRole> {
        let r = self
            .role_from(org, Uuid::new_v4(), self.clock.now(), req)
            .await?;
        found(self.store.insert_role(org, &r).await, "clinical role")?;
        Ok(r)
    }

    /// Replaces a role's name, department, fallback, holders and ladders
    /// (shifts stay; open escalations follow the new ladder from their next step).
    pub async fn update_role(
        &self,
        org: OrgId,
        id: Uuid,
        req: CreateRoleRequest,
        audit: &AuditScope,
    ) -> ApiResult<ClinicalRole> {
        let old = found(self.store.get_role(org, id).await, "clinical role")?;
        let r = self.role_from(org, id, old.created_at, req).await?;
        // A fallback chain must not come back to this role.
        let mut next = r.fallback_role_id;
        for _ in 0..=MAX_FALLBACK_DEPTH {
            let Some(f) = next else { break };
            if f == id {
                return Err(ApiError::validation(
                    "the fallback chain would lead back to this role",
                ));
            }
            next = self.store.get_role(org, f).await?.fallback_role_id;
        }
        found(
            self.store.update_role(org, &r, self.clock.now()).await,
            "clinical role",
        )?;
        audit.changed(&old, &r);
        Ok(r)
    }

    pub async fn set_presence(
        &self,
        p: &Principal,
        req: SetPresenceRequest,
    ) -> ApiResult<Presence> {
        let now = self.clock.now();
        if let Some(u) = req.until
            && !(now < u && u <= now + 7 * DAY)
        {
            return Err(ApiError::validation(
                "until must be in the future and at most 7 days ahead",
            ));
        }
        let presence = Presence {
            user_id: p.user_id.into(),
            status: req.status,
            until: req.until,
            updated_at: now,
        };
        self.store.set_presence(p.org_id, &presence).await?;
        Ok(presence)
    }

    /// One's own presence as it applies now: a lapsed status (or none ever
    /// set) is `available`, with no `until`.
    pub async fn own_presence(&self, p: &Principal) -> ApiResult<Presence> {
        let now = self.clock.now();
        let me: UserId = p.user_id;
        let mine = self.presence_map(p.org_id).await?.remove(&me);
        let status = presence_now(mine.as_ref(), now);
        Ok(match mine {
            Some(m) if m.status == status => m,
            _ => Presence {
                user_id: me.into(),
                status,
                until: None,
                updated_at: mine.map_or(0, |m| m.updated_at),
            },
        })
    }

    pub(super) async fn presence_map(&self, org: OrgId) -> ApiResult<HashMap<UserId, Presence>> {
        Ok(self
            .store
            .list_presence(org)
            .await?
            .into_iter()
            .map(|p| (p.user_id.into(), p))
            .collect())
    }

    pub(super) async fn person(
        &self,
        org: OrgId,
        user: UserId,
        presence: &HashMap<UserId, Presence>,
    ) -> ApiResult<OnCallPerson> {
        Ok(OnCallPerson {
            user_id: user.into(),
            display_name: self.directory.user(org, user).await?.display_name,
            presence: presence_now(presence.get(&user), self.clock.now()),
        })
    }

    /// People whose name, clinical role, department or care team matches `q`.
    pub async fn search(&self, org: OrgId, q: &str) -> ApiResult<DirectorySearchResult> {
        let q = q.trim().to_lowercase();
        if q.is_empty() || q.chars().count() > 100 {
            return Err(ApiError::bad_request("q must be 1 to 100 characters"));
        }
        let now = self.clock.now();
        let dir = self.directory(org).await?;
        let presence = self.presence_map(org).await?;
        let dept_name: HashMap<Uuid, &str> = dir
            .departments
            .iter()
            .map(|d| (d.id, d.name.as_str()))
            .collect();
        let mut on_call: HashMap<UserId, Vec<String>> = HashMap::new();
        for r in &dir.roles {
            if let Some(s) = self.shift_at(org, r.id, now).await? {
                on_call
                    .entry(s.user_id.into())
                    .or_default()
                    .push(r.name.clone());
            }
        }
        let mut entries = Vec::new();
        for u in self.directory.list(org).await? {
            if u.status != UserStatus::Active {
                continue;
            }
            let roles: Vec<&ClinicalRole> = dir
                .roles
                .iter()
                .filter(|r| r.holders.contains(&u.id))
                .collect();
            let teams: Vec<&CareTeam> = dir
                .care_teams
                .iter()
                .filter(|t| t.members.contains(&u.id))
                .collect();
            let departments: BTreeSet<String> = roles
                .iter()
                .filter_map(|r| r.department_id)
                .chain(teams.iter().filter_map(|t| t.department_id))
                .filter_map(|d| dept_name.get(&d).map(|n| n.to_string()))
                .collect();
            let entry = DirectoryEntry {
                user_id: u.id,
                display_name: u.display_name.clone(),
                roles: roles.iter().map(|r| r.name.clone()).collect(),
                departments: departments.into_iter().collect(),
                care_teams: teams.iter().map(|t| t.name.clone()).collect(),
                presence: presence_now(presence.get(&Into::into(u.id)), now),
                on_call: on_call.remove(&Into::into(u.id)).unwrap_or_default(),
            };
            let hit = std::iter::once(&entry.display_name)
                .chain(&entry.roles)
                .chain(&entry.departments)
                .chain(&entry.care_teams)
                .chain(&entry.on_call)
                .any(|s| s.to_lowercase().contains(&q));
            if hit {
                entries.push(entry);
                if entries.len() == MAX_SEARCH_RESULTS {
                    break;
                }
            }
        }
        Ok(DirectorySearchResult { entries })
    }
}
