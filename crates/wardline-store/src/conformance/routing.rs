//! Conformance of [`RoutingStore`](crate::RoutingStore).

#[allow(unused_imports)]
use super::*;

use wardline_proto::OrgId;
use wardline_proto::messaging::{ConversationKind, DeviceState, MessageKind, Priority};
use wardline_proto::routing::{
    CareTeam, ClinicalRole, Department, EscalationAction, EscalationPolicy, EscalationState,
    EscalationStep, Notification, Presence, PresenceStatus, Shift,
};

use crate::messaging::{
    ConversationDeviceRow, ConversationRow, MessageRow, Submission, SubmitOutcome,
};
use crate::routing::{EscalationEventRow, FeedRow, GrantRow, RoutedRow};

/// The tests of this module, for [`conformance_suite!`](crate::conformance_suite).
#[macro_export]
#[doc(hidden)]
macro_rules! conformance_routing_tests {
    ($open:path) => {
        $crate::conformance_suite!(@tests $open;
            departments_and_care_teams_are_scoped_by_organisation,
            clinical_roles_round_trip_and_updates_replace_holders,
            presence_is_one_row_per_user_scoped_by_organisation,
            reimport_replaces_only_unended_imported_shifts,
            schedule_feeds_are_leased_once_and_take_their_key_along,
            role_pages_find_the_newest_conversation_and_patient_threads,
            escalations_are_claimed_once_and_advance_by_compare_and_swap,
            acknowledging_closes_the_escalation_and_those_merged_into_it,
            server_notices_reach_only_the_named_devices,
            break_glass_grants_expire_and_end_once,
            notifications_are_listed_newest_first_per_organisation,
        );
    };
}

// ------------------------------------------------------------------ helpers

/// An organisation with a sender, a doctor and a nurse (one device each) and
/// a group conversation of the three, every device a member.
struct RoutingWard {
    org: OrgRow,
    dek: String,
    sender: UserId,
    sender_device: DeviceId,
    doc: UserId,
    doc_device: DeviceId,
    nurse: UserId,
    nurse_device: DeviceId,
    conversation: Uuid,
}

async fn routing_ward<E: Engine>(s: &E, slug: &str) -> RoutingWard {
    let (o, dek) = org_with_key(s, slug).await;
    let sender = inserted_user(s, o.id, &dek, "sender").await;
    let doc = inserted_user(s, o.id, &dek, "doc").await;
    let nurse = inserted_user(s, o.id, &dek, "nurse").await;
    let sender_device = inserted_device(s, o.id, sender, &[]).await;
    let doc_device = inserted_device(s, o.id, doc, &[]).await;
    let nurse_device = inserted_device(s, o.id, nurse, &[]).await;
    let mut w = RoutingWard {
        org: o,
        dek,
        sender,
        sender_device,
        doc,
        doc_device,
        nurse,
        nurse_device,
        conversation: Uuid::nil(),
    };
    w.conversation = routing_conversation(s, &w, 1, None, None).await;
    w
}

/// A group conversation of the ward's three people, opened by the sender.
async fn routing_conversation<E: Engine>(
    s: &E,
    w: &RoutingWard,
    created_at: i64,
    patient_bidx: Option<&str>,
    care_team: Option<Uuid>,
) -> Uuid {
    let c = ConversationRow {
        id: Uuid::new_v4(),
        org_id: w.org.id,
        kind: ConversationKind::Group,
        dek_id: w.dek.clone(),
        title_enc: None,
        patient_ref_enc: patient_bidx.map(|_| vec![6; 24]),
        direct_key: None,
        created_by: w.sender,
        created_at,
        epoch: 0,
        last_activity_at: created_at,
        lifecycle: Default::default(),
        patient_ref_bidx: patient_bidx.map(Into::into),
        role_id: None,
        routed_user: None,
        routed_via: None,
        care_team_id: care_team,
    };
    let devices = [
        (w.sender, w.sender_device),
        (w.doc, w.doc_device),
        (w.nurse, w.nurse_device),
    ]
    .map(|(user_id, device_id)| ConversationDeviceRow {
        device_id,
        user_id,
        state: DeviceState::Member,
    });
    s.create_conversation(&c, &[w.sender, w.doc, w.nurse], &devices)
        .await
        .unwrap();
    c.id
}

/// A routed record as a submission stores it (no lease, no steps run, not
/// acknowledged).
fn routing_routed(
    w: &RoutingWard,
    conversation: Uuid,
    priority: Priority,
    state: EscalationState,
    next_at: Option<i64>,
    created_at: i64,
) -> RoutedRow {
    RoutedRow {
        message_id: Uuid::new_v4(),
        org_id: w.org.id,
        conversation_id: conversation,
        sender_user: w.sender,
        priority,
        role_id: None,
        resolved_user: None,
        resolved_via: None,
        department_id: None,
        state,
        step: 0,
        next_at,
        lease_until: None,
        notified: vec![w.doc],
        merged_into: None,
        escalations: 0,
        acked_by: None,
        acked_device: None,
        acked_at: None,
        created_at,
    }
}

/// Submits the sender's application message carrying the routed record.
async fn routing_submit<E: Engine>(s: &E, w: &RoutingWard, r: &RoutedRow) {
    let m = MessageRow {
        id: r.message_id,
        conversation_id: r.conversation_id,
        kind: MessageKind::Application,
        sender_user: Some(w.sender),
        sender_device: Some(w.sender_device),
        epoch: 0,
        priority: r.priority,
        body: Some(vec![1; 16]),
        body_hash: Some(r.message_id.as_bytes().to_vec()),
        created_at: r.created_at,
        dek_id: None,
        expires_at: None,
        recalled_at: None,
        recalls: None,
        alert: None,
        shared_again: None,
        original_created_at: None,
    };
    let out = s
        .submit(&Submission {
            message: m,
            welcome: None,
            added: vec![],
            removed: vec![],
            keys: vec![],
            routed: Some(r.clone()),
        })
        .await
        .unwrap();
    assert!(matches!(out, SubmitOutcome::Accepted { epoch: 0, .. }));
}

fn routing_role(name: &str, holders: Vec<Uuid>, created_at: i64) -> ClinicalRole {
    ClinicalRole {
        id: Uuid::new_v4(),
        name: name.into(),
        department_id: None,
        fallback_role_id: None,
        holders,
        escalation: None,
        created_at,
    }
}

type RoutingRoleView = (
    Uuid,
    String,
    Option<Uuid>,
    Option<Uuid>,
    Vec<Uuid>,
    Option<EscalationPolicy>,
    i64,
);

fn routing_role_view(r: &ClinicalRole) -> RoutingRoleView {
    let mut holders = r.holders.clone();
    holders.sort();
    (
        r.id,
        r.name.clone(),
        r.department_id,
        r.fallback_role_id,
        holders,
        r.escalation.clone(),
        r.created_at,
    )
}

fn routing_team_view(t: &CareTeam) -> (Uuid, String, Option<Uuid>, Vec<Uuid>, i64) {
    let mut members = t.members.clone();
    members.sort();
    (t.id, t.name.clone(), t.department_id, members, t.created_at)
}

fn routing_shift(role: Uuid, user: Uuid, starts_at: i64, ends_at: i64, source: &str) -> Shift {
    Shift {
        id: Uuid::new_v4(),
        role_id: role,
        user_id: user,
        backup_user_id: None,
        starts_at,
        ends_at,
        source: source.into(),
    }
}

fn routing_ids(rows: &[RoutedRow]) -> Vec<Uuid> {
    rows.iter().map(|r| r.message_id).collect()
}

// -------------------------------------------------------------------- tests

pub async fn departments_and_care_teams_are_scoped_by_organisation<E: Engine>(s: Arc<E>) {
    let (a, ka) = org_with_key(s.as_ref(), "rt-dir-a").await;
    let (b, _) = org_with_key(s.as_ref(), "rt-dir-b").await;
    let u1 = inserted_user(s.as_ref(), a.id, &ka, "u1").await;
    let u2 = inserted_user(s.as_ref(), a.id, &ka, "u2").await;
    let u3 = inserted_user(s.as_ref(), a.id, &ka, "u3").await;

    assert!(s.list_departments(a.id).await.unwrap().is_empty());
    let cardio = Department {
        id: Uuid::new_v4(),
        name: "Cardiology".into(),
        created_at: 10,
    };
    let anaes = Department {
        id: Uuid::new_v4(),
        name: "Anaesthesia".into(),
        created_at: 11,
    };
    s.insert_department(a.id, &cardio).await.unwrap();
    s.insert_department(a.id, &anaes).await.unwrap();
    assert!(
        matches!(
            s.insert_department(
                a.id,
                &Department {
                    id: Uuid::new_v4(),
                    ..cardio.clone()
                }
            )
            .await,
            Err(StoreError::Conflict(_))
        ),
        "department names are unique per organisation"
    );
    let cardio_b = Department {
        id: Uuid::new_v4(),
        name: "Cardiology".into(),
        created_at: 12,
    };
    s.insert_department(b.id, &cardio_b).await.unwrap();
    let view = |ds: Vec<Department>| {
        ds.into_iter()
            .map(|d| (d.id, d.name, d.created_at))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        view(s.list_departments(a.id).await.unwrap()),
        vec![
            (anaes.id, "Anaesthesia".to_string(), 11),
            (cardio.id, "Cardiology".to_string(), 10)
        ],
        "listed by name"
    );
    assert_eq!(
        view(s.list_departments(b.id).await.unwrap()),
        vec![(cardio_b.id, "Cardiology".to_string(), 12)]
    );

    let heart = CareTeam {
        id: Uuid::new_v4(),
        name: "Heart failure".into(),
        department_id: Some(cardio.id),
        members: vec![u1.into(), u2.into()],
        created_at: 20,
    };
    let ward = CareTeam {
        id: Uuid::new_v4(),
        name: "Ward 4".into(),
        department_id: None,
        members: vec![],
        created_at: 21,
    };
    s.insert_team(a.id, &ward).await.unwrap();
    s.insert_team(a.id, &heart).await.unwrap();
    assert!(matches!(
        s.insert_team(
            a.id,
            &CareTeam {
                id: Uuid::new_v4(),
                members: vec![],
                ..heart.clone()
            }
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        routing_team_view(&s.get_team(a.id, heart.id).await.unwrap()),
        routing_team_view(&heart)
    );
    assert_eq!(
        routing_team_view(&s.get_team(a.id, ward.id).await.unwrap()),
        routing_team_view(&ward)
    );
    assert!(matches!(
        s.get_team(b.id, heart.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_team(a.id, Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.list_teams(a.id)
            .await
            .unwrap()
            .iter()
            .map(routing_team_view)
            .collect::<Vec<_>>(),
        vec![routing_team_view(&heart), routing_team_view(&ward)],
        "listed by name, with members"
    );
    assert!(s.list_teams(b.id).await.unwrap().is_empty());

    // Membership changes, each reported once; another organisation's team is missing.
    assert!(s.add_team_member(a.id, heart.id, u3, 30).await.unwrap());
    assert!(
        !s.add_team_member(a.id, heart.id, u3, 31).await.unwrap(),
        "already a member"
    );
    assert!(matches!(
        s.add_team_member(b.id, ward.id, u3, 32).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.remove_team_member(b.id, heart.id, u1).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.remove_team_member(a.id, heart.id, u1).await.unwrap());
    assert!(
        !s.remove_team_member(a.id, heart.id, u1).await.unwrap(),
        "not a member any more"
    );
    assert!(!s.remove_team_member(a.id, ward.id, u2).await.unwrap());
    assert_eq!(
        routing_team_view(&s.get_team(a.id, heart.id).await.unwrap()).3,
        sorted(vec![u2, u3])
    );
    assert!(
        s.get_team(a.id, ward.id).await.unwrap().members.is_empty(),
        "the other team is untouched"
    );
}

pub async fn clinical_roles_round_trip_and_updates_replace_holders<E: Engine>(s: Arc<E>) {
    let (a, ka) = org_with_key(s.as_ref(), "rt-roles-a").await;
    let (b, _) = org_with_key(s.as_ref(), "rt-roles-b").await;
    let u1 = inserted_user(s.as_ref(), a.id, &ka, "u1").await;
    let u2 = inserted_user(s.as_ref(), a.id, &ka, "u2").await;
    let u3 = inserted_user(s.as_ref(), a.id, &ka, "u3").await;
    let dept = Department {
        id: Uuid::new_v4(),
        name: "Cardiology".into(),
        created_at: 1,
    };
    s.insert_department(a.id, &dept).await.unwrap();

    let charge = routing_role("Charge nurse", vec![u3.into()], 5);
    let oncall = ClinicalRole {
        department_id: Some(dept.id),
        fallback_role_id: Some(charge.id),
        escalation: Some(EscalationPolicy {
            stat: vec![
                EscalationStep {
                    after_secs: 60,
                    action: EscalationAction::Renotify,
                },
                EscalationStep {
                    after_secs: 180,
                    action: EscalationAction::Sms,
                },
            ],
            urgent: vec![],
        }),
        ..routing_role("Cardiology on-call", vec![u2.into(), u1.into()], 6)
    };
    s.insert_role(a.id, &charge).await.unwrap();
    s.insert_role(a.id, &oncall).await.unwrap();
    assert!(
        matches!(
            s.insert_role(a.id, &routing_role("Charge nurse", vec![], 7))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "role names are unique per organisation"
    );
    let charge_b = routing_role("Charge nurse", vec![], 8);
    s.insert_role(b.id, &charge_b).await.unwrap();

    assert_eq!(
        routing_role_view(&s.get_role(a.id, oncall.id).await.unwrap()),
        routing_role_view(&oncall)
    );
    assert_eq!(
        routing_role_view(&s.get_role(a.id, charge.id).await.unwrap()),
        routing_role_view(&charge)
    );
    assert!(matches!(
        s.get_role(b.id, oncall.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.list_roles(a.id)
            .await
            .unwrap()
            .iter()
            .map(routing_role_view)
            .collect::<Vec<_>>(),
        vec![routing_role_view(&oncall), routing_role_view(&charge)],
        "listed by name"
    );
    assert_eq!(
        s.list_roles(b.id)
            .await
            .unwrap()
            .iter()
            .map(routing_role_view)
            .collect::<Vec<_>>(),
        vec![routing_role_view(&charge_b)]
    );

    // An update replaces name, department, fallback, holders and ladder; the
    // creation time stays.
    let changed = ClinicalRole {
        name: "Cardiology nights".into(),
        department_id: None,
        fallback_role_id: None,
        holders: vec![u3.into()],
        escalation: None,
        created_at: 999,
        ..oncall.clone()
    };
    s.update_role(a.id, &changed, 50).await.unwrap();
    assert_eq!(
        routing_role_view(&s.get_role(a.id, oncall.id).await.unwrap()),
        routing_role_view(&ClinicalRole {
            created_at: 6,
            ..changed.clone()
        })
    );
    assert!(matches!(
        s.update_role(
            a.id,
            &ClinicalRole {
                name: "Charge nurse".into(),
                ..changed.clone()
            },
            51
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.update_role(
            b.id,
            &ClinicalRole {
                name: "Elsewhere".into(),
                holders: vec![],
                ..changed.clone()
            },
            52
        )
        .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.update_role(a.id, &routing_role("Ghost", vec![], 1), 53)
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        routing_role_view(&s.get_role(a.id, oncall.id).await.unwrap()),
        routing_role_view(&ClinicalRole {
            created_at: 6,
            ..changed
        }),
        "refused updates change nothing"
    );
    assert_eq!(
        s.get_role(b.id, charge_b.id).await.unwrap().name,
        "Charge nurse"
    );
}

pub async fn presence_is_one_row_per_user_scoped_by_organisation<E: Engine>(s: Arc<E>) {
    let (a, ka) = org_with_key(s.as_ref(), "rt-pres-a").await;
    let (b, kb) = org_with_key(s.as_ref(), "rt-pres-b").await;
    let u1 = inserted_user(s.as_ref(), a.id, &ka, "u1").await;
    let u2 = inserted_user(s.as_ref(), a.id, &ka, "u2").await;
    let u3 = inserted_user(s.as_ref(), b.id, &kb, "u3").await;
    assert!(s.list_presence(a.id).await.unwrap().is_empty());

    let p1 = Presence {
        user_id: u1.into(),
        status: PresenceStatus::Busy,
        until: Some(500),
        updated_at: 10,
    };
    let p2 = Presence {
        user_id: u2.into(),
        status: PresenceStatus::InProcedure,
        until: None,
        updated_at: 11,
    };
    let p3 = Presence {
        user_id: u3.into(),
        status: PresenceStatus::OffDuty,
        until: Some(9),
        updated_at: 12,
    };
    s.set_presence(a.id, &p1).await.unwrap();
    s.set_presence(a.id, &p2).await.unwrap();
    s.set_presence(b.id, &p3).await.unwrap();
    let sorted = |mut v: Vec<Presence>| {
        v.sort_by_key(|p| p.user_id);
        v
    };
    assert_eq!(
        sorted(s.list_presence(a.id).await.unwrap()),
        sorted(vec![p1.clone(), p2.clone()])
    );
    assert_eq!(s.list_presence(b.id).await.unwrap(), vec![p3]);

    // Setting again replaces the user's row (an `until` back to none included).
    let p1b = Presence {
        user_id: u1.into(),
        status: PresenceStatus::Available,
        until: None,
        updated_at: 20,
    };
    s.set_presence(a.id, &p1b).await.unwrap();
    assert_eq!(
        sorted(s.list_presence(a.id).await.unwrap()),
        sorted(vec![p1b, p2])
    );
}

pub async fn reimport_replaces_only_unended_imported_shifts<E: Engine>(s: Arc<E>) {
    let (a, ka) = org_with_key(s.as_ref(), "rt-shift-a").await;
    let (b, _) = org_with_key(s.as_ref(), "rt-shift-b").await;
    let u1 = inserted_user(s.as_ref(), a.id, &ka, "u1").await;
    let u2 = inserted_user(s.as_ref(), a.id, &ka, "u2").await;
    let role = routing_role("On call", vec![], 1);
    let other = routing_role("Other", vec![], 1);
    s.insert_role(a.id, &role).await.unwrap();
    s.insert_role(a.id, &other).await.unwrap();

    let manual_old = routing_shift(role.id, u1.into(), 0, 100, "manual");
    let imported_old = routing_shift(role.id, u2.into(), 50, 150, "ical:old");
    let imported_now = Shift {
        backup_user_id: Some(u2.into()),
        ..routing_shift(role.id, u1.into(), 150, 250, "ical:now")
    };
    let manual_new = Shift {
        backup_user_id: Some(u2.into()),
        ..routing_shift(role.id, u1.into(), 300, 400, "manual")
    };
    let imported_later = routing_shift(role.id, u2.into(), 500, 600, "ical:later");
    let other_role = routing_shift(other.id, u1.into(), 500, 600, "ical:other");
    for sh in [
        &imported_later,
        &manual_new,
        &imported_now,
        &manual_old,
        &imported_old,
        &other_role,
    ] {
        s.insert_shift(a.id, sh).await.unwrap();
    }
    assert_eq!(
        s.list_shifts(a.id, role.id, 0, 1000).await.unwrap(),
        vec![
            manual_old.clone(),
            imported_old.clone(),
            imported_now.clone(),
            manual_new.clone(),
            imported_later.clone()
        ],
        "by start, every field kept"
    );
    // Overlap with [from, until): touching either end is not overlapping.
    assert_eq!(
        s.list_shifts(a.id, role.id, 100, 300).await.unwrap(),
        vec![imported_old.clone(), imported_now.clone()]
    );
    assert!(
        s.list_shifts(b.id, role.id, 0, 1000)
            .await
            .unwrap()
            .is_empty()
    );

    let fresh1 = routing_shift(role.id, u2.into(), 200, 300, "ical:fresh1");
    let fresh2 = Shift {
        backup_user_id: Some(u1.into()),
        ..routing_shift(role.id, u1.into(), 700, 800, "ical:fresh2")
    };
    let mut replaced = s
        .replace_imported(a.id, role.id, 200, &[fresh1.clone(), fresh2.clone()])
        .await
        .unwrap();
    replaced.sort_by_key(|x| x.starts_at);
    assert_eq!(
        replaced,
        vec![imported_now.clone(), imported_later.clone()],
        "imported shifts ending after `since` are replaced and returned"
    );
    assert_eq!(
        s.list_shifts(a.id, role.id, 0, 1000).await.unwrap(),
        vec![
            manual_old.clone(),
            imported_old.clone(),
            fresh1.clone(),
            manual_new.clone(),
            fresh2.clone()
        ],
        "hand-entered and ended shifts stay"
    );
    assert_eq!(
        s.list_shifts(a.id, other.id, 0, 1000).await.unwrap(),
        vec![other_role.clone()],
        "another role's import is untouched"
    );
    assert!(
        s.replace_imported(b.id, role.id, 0, &[])
            .await
            .unwrap()
            .is_empty(),
        "another organisation replaces nothing here"
    );
    assert_eq!(
        s.list_shifts(a.id, role.id, 0, 1000).await.unwrap().len(),
        5
    );

    assert!(!s.delete_shift(b.id, role.id, manual_new.id).await.unwrap());
    assert!(!s.delete_shift(a.id, other.id, manual_new.id).await.unwrap());
    assert!(s.delete_shift(a.id, role.id, manual_new.id).await.unwrap());
    assert!(!s.delete_shift(a.id, role.id, manual_new.id).await.unwrap());
    assert_eq!(
        s.list_shifts(a.id, role.id, 0, 1000).await.unwrap(),
        vec![manual_old, imported_old, fresh1, fresh2]
    );

    // Only the exact `ical:` prefix marks an import, on both engines (the
    // engine's `LIKE 'ical:%'` ignored case on SQLite and deleted this one
    // while PostgreSQL kept it).
    let look_alike = routing_shift(role.id, u1.into(), 900, 950, "ICAL:upper");
    s.insert_shift(a.id, &look_alike).await.unwrap();
    let replaced = s.replace_imported(a.id, role.id, 0, &[]).await.unwrap();
    assert!(replaced.iter().all(|x| x.id != look_alike.id));
    assert!(
        s.list_shifts(a.id, role.id, 0, 1000)
            .await
            .unwrap()
            .contains(&look_alike)
    );
}

pub async fn schedule_feeds_are_leased_once_and_take_their_key_along<E: Engine>(s: Arc<E>) {
    let (a, _) = org_with_key(s.as_ref(), "rt-feed-a").await;
    let (b, _) = org_with_key(s.as_ref(), "rt-feed-b").await;
    let (r1, r2, r3) = (
        routing_role("Role 1", vec![], 1),
        routing_role("Role 2", vec![], 1),
        routing_role("Role 3", vec![], 1),
    );
    s.insert_role(a.id, &r1).await.unwrap();
    s.insert_role(a.id, &r2).await.unwrap();
    s.insert_role(b.id, &r3).await.unwrap();

    let k1 = data_key(Some(a.id));
    let f1 = FeedRow {
        role_id: r1.id,
        org_id: a.id,
        dek_id: k1.id.clone(),
        url_enc: vec![7; 20],
        host: "cal.example".into(),
        days: 90,
        subscribed_at: 100,
        next_fetch_at: 100,
        last_fetched_at: None,
        last_result: None,
    };
    s.put_feed(&f1, &k1).await.unwrap();
    assert_eq!(s.get_feed(a.id, r1.id).await.unwrap(), f1);
    assert_eq!(s.get_data_key(&k1.id).await.unwrap(), k1);
    assert!(matches!(
        s.get_feed(b.id, r1.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_feed(a.id, r2.id).await,
        Err(StoreError::NotFound)
    ));

    // Subscribing again replaces the feed, and its URL's key goes with it.
    let k1b = data_key(Some(a.id));
    let f1b = FeedRow {
        dek_id: k1b.id.clone(),
        url_enc: vec![8; 24],
        host: "other.example".into(),
        days: 30,
        subscribed_at: 200,
        next_fetch_at: 200,
        last_fetched_at: Some(150),
        last_result: Some("ok".into()),
        ..f1.clone()
    };
    s.put_feed(&f1b, &k1b).await.unwrap();
    assert_eq!(s.get_feed(a.id, r1.id).await.unwrap(), f1b);
    assert!(matches!(
        s.get_data_key(&k1.id).await,
        Err(StoreError::NotFound)
    ));

    let k2 = data_key(Some(a.id));
    let f2 = FeedRow {
        role_id: r2.id,
        dek_id: k2.id.clone(),
        next_fetch_at: 150,
        ..f1.clone()
    };
    s.put_feed(&f2, &k2).await.unwrap();
    let k3 = data_key(Some(b.id));
    let f3 = FeedRow {
        role_id: r3.id,
        org_id: b.id,
        dek_id: k3.id.clone(),
        next_fetch_at: 300,
        ..f1.clone()
    };
    s.put_feed(&f3, &k3).await.unwrap();

    let roles = |v: Vec<FeedRow>| sorted(v.into_iter().map(|f| f.role_id).collect());
    assert!(s.claim_feeds(140, 200, 10).await.unwrap().is_empty());
    assert_eq!(s.claim_feeds(160, 220, 10).await.unwrap(), vec![f2.clone()]);
    assert!(
        s.claim_feeds(160, 220, 10).await.unwrap().is_empty(),
        "a feed is claimed once"
    );
    // r2's lease lapsed at 220: it is due again, and the earliest due comes first.
    assert_eq!(
        roles(s.claim_feeds(250, 310, 1).await.unwrap()),
        vec![r2.id]
    );
    assert_eq!(
        roles(s.claim_feeds(250, 310, 10).await.unwrap()),
        vec![r1.id]
    );
    assert!(s.claim_feeds(250, 310, 10).await.unwrap().is_empty());

    // A fetch is recorded, the lease released and the next fetch scheduled.
    s.feed_fetched(r1.id, 260, "12 shifts", 3600).await.unwrap();
    assert_eq!(
        s.get_feed(a.id, r1.id).await.unwrap(),
        FeedRow {
            last_fetched_at: Some(260),
            last_result: Some("12 shifts".into()),
            next_fetch_at: 3600,
            ..f1b.clone()
        }
    );
    assert_eq!(
        roles(s.claim_feeds(400, 500, 10).await.unwrap()),
        sorted(vec![r2.id, r3.id])
    );
    assert!(
        s.claim_feeds(500, 600, 10).await.unwrap().is_empty(),
        "a lease holds up to and including its end"
    );
    assert_eq!(
        roles(s.claim_feeds(3600, 3700, 10).await.unwrap()),
        sorted(vec![r1.id, r2.id, r3.id])
    );

    assert!(!s.delete_feed(b.id, r1.id).await.unwrap());
    assert_eq!(s.get_feed(a.id, r1.id).await.unwrap().dek_id, k1b.id);
    assert!(s.delete_feed(a.id, r1.id).await.unwrap());
    assert!(!s.delete_feed(a.id, r1.id).await.unwrap());
    assert!(matches!(
        s.get_feed(a.id, r1.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        matches!(s.get_data_key(&k1b.id).await, Err(StoreError::NotFound)),
        "the sealed URL's key is deleted with the feed"
    );
    assert_eq!(s.get_feed(a.id, r2.id).await.unwrap().role_id, r2.id);
    assert_eq!(s.get_data_key(&k2.id).await.unwrap(), k2);
}

pub async fn role_pages_find_the_newest_conversation_and_patient_threads<E: Engine>(s: Arc<E>) {
    let w = routing_ward(s.as_ref(), "rt-page-a").await;
    let v = routing_ward(s.as_ref(), "rt-page-b").await;
    let role = Uuid::new_v4();
    let team = Uuid::new_v4();
    let c1 = routing_conversation(s.as_ref(), &w, 100, Some("pt-1"), Some(team)).await;
    let c2 = routing_conversation(s.as_ref(), &w, 200, Some("pt-1"), None).await;
    let c3 = routing_conversation(s.as_ref(), &w, 150, Some("pt-2"), None).await;
    let cb = routing_conversation(s.as_ref(), &v, 50, Some("pt-1"), None).await;

    assert_eq!(
        s.role_conversation(w.org.id, w.sender, role, w.doc)
            .await
            .unwrap(),
        None
    );
    s.set_routing(c1, role, w.doc, "on_call").await.unwrap();
    s.set_routing(c2, role, w.doc, "backup").await.unwrap();
    assert_eq!(
        s.role_conversation(w.org.id, w.sender, role, w.doc)
            .await
            .unwrap(),
        Some(c2),
        "the newest one"
    );
    let conv = s.get_conversation(w.org.id, c2).await.unwrap();
    assert_eq!(
        (conv.role_id, conv.routed_user, conv.routed_via.as_deref()),
        (Some(role), Some(w.doc), Some("backup"))
    );
    // A later page of the same conversation resolved to someone else.
    s.set_routing(c2, role, w.nurse, "holder").await.unwrap();
    assert_eq!(
        s.role_conversation(w.org.id, w.sender, role, w.doc)
            .await
            .unwrap(),
        Some(c1)
    );
    assert_eq!(
        s.role_conversation(w.org.id, w.sender, role, w.nurse)
            .await
            .unwrap(),
        Some(c2)
    );
    assert_eq!(
        s.role_conversation(w.org.id, w.doc, role, w.doc)
            .await
            .unwrap(),
        None,
        "another sender's page is not reused"
    );
    assert_eq!(
        s.role_conversation(w.org.id, w.sender, Uuid::new_v4(), w.doc)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.role_conversation(v.org.id, w.sender, role, w.doc)
            .await
            .unwrap(),
        None
    );
    let untouched = s.get_conversation(w.org.id, c3).await.unwrap();
    assert_eq!(
        (
            untouched.role_id,
            untouched.routed_user,
            untouched.routed_via
        ),
        (None, None, None)
    );

    assert_eq!(
        s.conversations_by_patient(w.org.id, "pt-1").await.unwrap(),
        vec![(c1, Some(team)), (c2, None)],
        "by creation, with their care teams"
    );
    assert_eq!(
        s.conversations_by_patient(w.org.id, "pt-2").await.unwrap(),
        vec![(c3, None)]
    );
    assert_eq!(
        s.conversations_by_patient(v.org.id, "pt-1").await.unwrap(),
        vec![(cb, None)]
    );
    assert!(
        s.conversations_by_patient(w.org.id, "pt-9")
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn escalations_are_claimed_once_and_advance_by_compare_and_swap<E: Engine>(s: Arc<E>) {
    let w = routing_ward(s.as_ref(), "rt-esc-a").await;
    let v = routing_ward(s.as_ref(), "rt-esc-b").await;
    let c = w.conversation;
    let stat = RoutedRow {
        role_id: Some(Uuid::new_v4()),
        resolved_user: Some(w.doc),
        resolved_via: Some("on_call".into()),
        department_id: Some(Uuid::new_v4()),
        notified: vec![w.doc, w.nurse],
        ..routing_routed(&w, c, Priority::Stat, EscalationState::Open, Some(100), 10)
    };
    let urgent = routing_routed(
        &w,
        c,
        Priority::Urgent,
        EscalationState::Open,
        Some(200),
        20,
    );
    let routine = RoutedRow {
        role_id: Some(Uuid::new_v4()),
        notified: vec![],
        ..routing_routed(&w, c, Priority::Routine, EscalationState::None, None, 30)
    };
    for r in [&stat, &urgent, &routine] {
        routing_submit(s.as_ref(), &w, r).await;
    }
    assert_eq!(s.get_routed(w.org.id, stat.message_id).await.unwrap(), stat);
    assert_eq!(
        s.get_routed(w.org.id, routine.message_id).await.unwrap(),
        routine
    );
    assert!(matches!(
        s.get_routed(v.org.id, stat.message_id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_routed(w.org.id, Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.open_role_escalations().await.unwrap(),
        vec![stat.clone()],
        "open and addressed to a role"
    );

    // Claims: due ones only, once, until the lease lapses.
    assert!(s.claim_due(50, 110, 10).await.unwrap().is_empty());
    assert_eq!(
        s.claim_due(150, 210, 10).await.unwrap(),
        vec![RoutedRow {
            lease_until: Some(210),
            ..stat.clone()
        }]
    );
    assert!(
        s.claim_due(150, 210, 10).await.unwrap().is_empty(),
        "claimed once"
    );
    assert_eq!(
        routing_ids(&s.claim_due(210, 270, 10).await.unwrap()),
        vec![urgent.message_id],
        "a lease holds up to and including its end"
    );
    assert_eq!(
        s.claim_due(211, 300, 10).await.unwrap(),
        vec![RoutedRow {
            lease_until: Some(300),
            ..stat.clone()
        }],
        "a lapsed lease is taken over"
    );

    // Advancing is a compare-and-swap on the step (and, asked, the lease).
    let step1 = RoutedRow {
        step: 1,
        next_at: Some(400),
        notified: vec![w.doc, w.nurse, w.sender],
        escalations: 1,
        ..stat.clone()
    };
    let e1 = EscalationEventRow {
        message_id: stat.message_id,
        at: 211,
        action: EscalationAction::Backup,
        users: vec![w.sender],
        sms: false,
    };
    assert!(!s.advance(&step1, 5, None, Some(&e1)).await.unwrap());
    assert!(
        !s.advance(&step1, 0, Some(250), Some(&e1)).await.unwrap(),
        "leased by a running step until 300"
    );
    assert!(
        s.escalation_events(stat.message_id)
            .await
            .unwrap()
            .is_empty(),
        "a refused step records nothing"
    );
    assert_eq!(
        s.get_routed(w.org.id, stat.message_id)
            .await
            .unwrap()
            .lease_until,
        Some(300)
    );
    assert!(s.advance(&step1, 0, None, Some(&e1)).await.unwrap());
    assert_eq!(
        s.get_routed(w.org.id, stat.message_id).await.unwrap(),
        step1,
        "stored, lease released"
    );
    assert!(
        !s.advance(&step1, 0, None, Some(&e1)).await.unwrap(),
        "moved on meanwhile"
    );
    assert_eq!(
        s.escalation_events(stat.message_id).await.unwrap(),
        vec![e1.clone()]
    );

    let step2 = RoutedRow {
        step: 2,
        next_at: Some(500),
        escalations: 2,
        ..step1.clone()
    };
    let e2 = EscalationEventRow {
        message_id: stat.message_id,
        at: 260,
        action: EscalationAction::Sms,
        users: vec![w.doc, w.nurse],
        sms: true,
    };
    assert!(
        s.advance(&step2, 1, Some(260), Some(&e2)).await.unwrap(),
        "not leased: the guarded step applies"
    );
    assert_eq!(
        s.escalation_events(stat.message_id).await.unwrap(),
        vec![e1.clone(), e2.clone()]
    );
    assert!(
        s.escalation_events(urgent.message_id)
            .await
            .unwrap()
            .is_empty()
    );

    // SMS steps that texted someone, since a time (inclusive).
    assert_eq!(s.sms_sent_to(w.doc, 0).await.unwrap(), 1);
    assert_eq!(s.sms_sent_to(w.doc, 260).await.unwrap(), 1);
    assert_eq!(s.sms_sent_to(w.doc, 261).await.unwrap(), 0);
    assert_eq!(
        s.sms_sent_to(w.sender, 0).await.unwrap(),
        0,
        "a step without SMS is not counted"
    );

    // Two steps caught up in one instant keep their order.
    let u1 = RoutedRow {
        step: 1,
        escalations: 1,
        next_at: Some(600),
        ..urgent.clone()
    };
    let u2 = RoutedRow {
        step: 2,
        escalations: 2,
        ..u1.clone()
    };
    let ev = |action, sms| EscalationEventRow {
        message_id: urgent.message_id,
        at: 300,
        action,
        users: vec![w.nurse],
        sms,
    };
    assert!(
        s.advance(&u1, 0, None, Some(&ev(EscalationAction::Sms, true)))
            .await
            .unwrap()
    );
    assert!(
        s.advance(&u2, 1, None, Some(&ev(EscalationAction::Renotify, false)))
            .await
            .unwrap()
    );
    assert_eq!(
        s.escalation_events(urgent.message_id).await.unwrap(),
        vec![
            ev(EscalationAction::Sms, true),
            ev(EscalationAction::Renotify, false)
        ]
    );
    assert_eq!(s.sms_sent_to(w.nurse, 0).await.unwrap(), 2);

    // A lapsed lease does not stop a guarded step; running out closes the job.
    assert_eq!(
        sorted(routing_ids(&s.claim_due(600, 660, 10).await.unwrap())),
        sorted(vec![stat.message_id, urgent.message_id])
    );
    let exhausted = RoutedRow {
        step: 3,
        next_at: None,
        state: EscalationState::Exhausted,
        escalations: 3,
        ..step2.clone()
    };
    assert!(s.advance(&exhausted, 2, Some(661), None).await.unwrap());
    assert_eq!(
        s.get_routed(w.org.id, stat.message_id).await.unwrap(),
        exhausted
    );
    assert_eq!(
        s.escalation_events(stat.message_id).await.unwrap().len(),
        2,
        "no event given, none recorded"
    );
    assert!(
        !s.advance(&exhausted, 3, None, None).await.unwrap(),
        "no longer open"
    );
    assert!(
        s.open_role_escalations().await.unwrap().is_empty(),
        "an exhausted escalation is not open"
    );
    assert_eq!(
        routing_ids(&s.claim_due(10_000, 10_060, 10).await.unwrap()),
        vec![urgent.message_id]
    );
}

pub async fn acknowledging_closes_the_escalation_and_those_merged_into_it<E: Engine>(s: Arc<E>) {
    let w = routing_ward(s.as_ref(), "rt-ack-a").await;
    let v = routing_ward(s.as_ref(), "rt-ack-b").await;
    let c = w.conversation;
    let c2 = routing_conversation(s.as_ref(), &w, 2, None, None).await;
    let root = routing_routed(&w, c, Priority::Stat, EscalationState::Open, Some(100), 10);
    let urgent_open = routing_routed(
        &w,
        c2,
        Priority::Urgent,
        EscalationState::Open,
        Some(100),
        15,
    );
    let merged = RoutedRow {
        merged_into: Some(root.message_id),
        ..routing_routed(&w, c, Priority::Urgent, EscalationState::Merged, None, 20)
    };
    let exhausted = RoutedRow {
        step: 4,
        ..routing_routed(
            &w,
            c2,
            Priority::Urgent,
            EscalationState::Exhausted,
            None,
            30,
        )
    };
    let routine = routing_routed(&w, c2, Priority::Routine, EscalationState::None, None, 40);
    for r in [&root, &urgent_open, &merged, &exhausted, &routine] {
        routing_submit(s.as_ref(), &w, r).await;
    }
    let elsewhere = routing_routed(
        &v,
        v.conversation,
        Priority::Stat,
        EscalationState::Open,
        Some(100),
        12,
    );
    routing_submit(s.as_ref(), &v, &elsewhere).await;

    // Deduplication: a new message joins an open escalation never weaker than itself.
    assert_eq!(
        s.open_in_conversation(c, Priority::Stat).await.unwrap(),
        Some(root.clone())
    );
    assert_eq!(
        s.open_in_conversation(c, Priority::Urgent).await.unwrap(),
        Some(root.clone())
    );
    assert_eq!(
        s.open_in_conversation(c2, Priority::Stat).await.unwrap(),
        None,
        "a STAT does not join an urgent escalation"
    );
    assert_eq!(
        s.open_in_conversation(c2, Priority::Urgent).await.unwrap(),
        Some(urgent_open.clone())
    );
    assert_eq!(
        s.open_in_conversation(Uuid::new_v4(), Priority::Urgent)
            .await
            .unwrap(),
        None
    );

    assert_eq!(
        routing_ids(&s.routed_between(w.org.id, 10, 30).await.unwrap()),
        vec![root.message_id, urgent_open.message_id, merged.message_id],
        "by creation, in [since, until), of one organisation"
    );
    assert_eq!(
        s.routed_between(v.org.id, 0, 1000).await.unwrap(),
        vec![elsewhere.clone()]
    );

    assert!(
        s.acknowledge(root.message_id, w.doc, w.doc_device, 50)
            .await
            .unwrap()
    );
    let closed = |r: &RoutedRow| RoutedRow {
        state: EscalationState::Acknowledged,
        acked_by: Some(w.doc),
        acked_device: Some(w.doc_device),
        acked_at: Some(50),
        next_at: None,
        lease_until: None,
        ..r.clone()
    };
    assert_eq!(
        s.get_routed(w.org.id, root.message_id).await.unwrap(),
        closed(&root)
    );
    assert_eq!(
        s.get_routed(w.org.id, merged.message_id).await.unwrap(),
        closed(&merged),
        "merged escalations close with their root"
    );
    assert!(
        !s.acknowledge(root.message_id, w.nurse, w.nurse_device, 60)
            .await
            .unwrap(),
        "acknowledged once"
    );
    assert_eq!(
        s.get_routed(w.org.id, root.message_id).await.unwrap(),
        closed(&root),
        "the first acknowledgement stands"
    );
    assert_eq!(
        s.open_in_conversation(c, Priority::Urgent).await.unwrap(),
        None
    );
    assert_eq!(
        s.get_routed(w.org.id, urgent_open.message_id)
            .await
            .unwrap(),
        urgent_open,
        "another conversation's escalation is untouched"
    );

    // An exhausted escalation is still waiting; a routine record never is.
    assert!(
        s.acknowledge(exhausted.message_id, w.nurse, w.nurse_device, 70)
            .await
            .unwrap()
    );
    let back = s.get_routed(w.org.id, exhausted.message_id).await.unwrap();
    assert_eq!(
        (back.state, back.acked_by, back.acked_device, back.acked_at),
        (
            EscalationState::Acknowledged,
            Some(w.nurse),
            Some(w.nurse_device),
            Some(70)
        )
    );
    assert!(
        !s.acknowledge(routine.message_id, w.doc, w.doc_device, 80)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_routed(w.org.id, routine.message_id).await.unwrap(),
        routine
    );
    assert!(
        !s.acknowledge(Uuid::new_v4(), w.doc, w.doc_device, 80)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_routed(v.org.id, elsewhere.message_id).await.unwrap(),
        elsewhere
    );
}

pub async fn server_notices_reach_only_the_named_devices<E: Engine>(s: Arc<E>) {
    let w = routing_ward(s.as_ref(), "rt-notice").await;
    let mut notice = MessageRow::notice(MessageKind::Alert, w.conversation, 0, w.sender, 70);
    notice.priority = Priority::Stat;
    notice.alert = Some(r#"{"action":"renotify"}"#.into());
    assert_eq!(
        s.insert_notice(&notice, &[w.doc_device]).await.unwrap(),
        vec![w.doc_device]
    );
    assert_eq!(
        s.get_message(w.conversation, notice.id).await.unwrap(),
        notice
    );
    let inbox = s.inbox_after(w.doc_device, 0, 10, 70).await.unwrap();
    assert_eq!(
        inbox
            .iter()
            .map(|i| (i.seq, i.message.clone()))
            .collect::<Vec<_>>(),
        vec![(1, notice.clone())]
    );
    assert!(
        s.inbox_after(w.nurse_device, 0, 10, 70)
            .await
            .unwrap()
            .is_empty(),
        "other members' devices are not told"
    );
    assert!(
        s.inbox_after(w.sender_device, 0, 10, 70)
            .await
            .unwrap()
            .is_empty()
    );

    let second = MessageRow::notice(MessageKind::Alert, w.conversation, 0, w.sender, 80);
    assert_eq!(
        sorted(
            s.insert_notice(&second, &[w.nurse_device, w.doc_device])
                .await
                .unwrap()
        ),
        sorted(vec![w.nurse_device, w.doc_device])
    );
    let seqs = |rows: Vec<crate::messaging::InboxRow>| {
        rows.into_iter()
            .map(|i| (i.seq, i.message.id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(s.inbox_after(w.doc_device, 0, 10, 80).await.unwrap()),
        vec![(1, notice.id), (2, second.id)]
    );
    assert_eq!(
        seqs(s.inbox_after(w.nurse_device, 0, 10, 80).await.unwrap()),
        vec![(1, second.id)]
    );
    assert!(
        s.inbox_after(w.sender_device, 0, 10, 80)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn break_glass_grants_expire_and_end_once<E: Engine>(s: Arc<E>) {
    let (a, ka) = org_with_key(s.as_ref(), "rt-glass-a").await;
    let (b, kb) = org_with_key(s.as_ref(), "rt-glass-b").await;
    let doc = inserted_user(s.as_ref(), a.id, &ka, "doc").await;
    let nurse = inserted_user(s.as_ref(), a.id, &ka, "nurse").await;
    let other = inserted_user(s.as_ref(), b.id, &kb, "other").await;
    let (c1, c2, cb) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let grant = |org: OrgId, conversation, user, granted_at, expires_at| {
        let k = data_key(Some(org));
        (
            GrantRow {
                id: Uuid::new_v4(),
                org_id: org,
                conversation_id: conversation,
                user_id: user,
                dek_id: k.id.clone(),
                reason_enc: vec![5; 16],
                granted_at,
                expires_at,
                ended_at: None,
            },
            k,
        )
    };
    let (g1, k1) = grant(a.id, c1, doc, 100, 200);
    let (g2, k2) = grant(a.id, c1, doc, 150, 400);
    let (g3, k3) = grant(a.id, c2, nurse, 120, 180);
    let (gb, kgb) = grant(b.id, cb, other, 130, 170);
    for (g, k) in [(&g1, &k1), (&g2, &k2), (&g3, &k3), (&gb, &kgb)] {
        s.insert_grant(g, k).await.unwrap();
    }
    assert_eq!(s.get_data_key(&k1.id).await.unwrap(), k1);

    assert_eq!(
        s.active_grant(c1, doc, 160).await.unwrap(),
        Some(g2.clone()),
        "the newest grant"
    );
    assert_eq!(s.active_grant(c1, doc, 400).await.unwrap(), None);
    assert_eq!(s.active_grant(c1, nurse, 160).await.unwrap(), None);
    assert_eq!(
        s.active_grant(c2, nurse, 179).await.unwrap(),
        Some(g3.clone())
    );
    assert_eq!(
        s.active_grant(c2, nurse, 180).await.unwrap(),
        None,
        "over at its expiry"
    );

    assert_eq!(
        s.list_grants(a.id).await.unwrap(),
        vec![g2.clone(), g3.clone(), g1.clone()],
        "newest first, one organisation"
    );
    assert_eq!(s.list_grants(b.id).await.unwrap(), vec![gb.clone()]);

    let expired = |v: Vec<GrantRow>| sorted(v.into_iter().map(|g| g.id).collect());
    assert!(s.expired_grants(169).await.unwrap().is_empty());
    assert_eq!(
        expired(s.expired_grants(180).await.unwrap()),
        sorted(vec![g3.id, gb.id])
    );
    assert_eq!(
        expired(s.expired_grants(200).await.unwrap()),
        sorted(vec![g1.id, g3.id, gb.id])
    );

    assert!(s.end_grant(g3.id, 185).await.unwrap());
    assert!(!s.end_grant(g3.id, 190).await.unwrap(), "ended once");
    assert!(!s.end_grant(Uuid::new_v4(), 190).await.unwrap());
    assert_eq!(
        expired(s.expired_grants(200).await.unwrap()),
        sorted(vec![g1.id, gb.id])
    );
    // Ending the newest grant early leaves the older one still running.
    assert!(s.end_grant(g2.id, 170).await.unwrap());
    assert_eq!(
        s.active_grant(c1, doc, 160).await.unwrap(),
        Some(g1.clone())
    );
    assert_eq!(
        s.list_grants(a.id).await.unwrap(),
        vec![
            GrantRow {
                ended_at: Some(170),
                ..g2
            },
            GrantRow {
                ended_at: Some(185),
                ..g3
            },
            g1
        ]
    );
}

pub async fn notifications_are_listed_newest_first_per_organisation<E: Engine>(s: Arc<E>) {
    let (a, _) = org_with_key(s.as_ref(), "rt-notif-a").await;
    let (b, _) = org_with_key(s.as_ref(), "rt-notif-b").await;
    assert!(s.list_notifications(a.id).await.unwrap().is_empty());
    let n = |kind: &str, created_at| Notification {
        id: Uuid::new_v4(),
        kind: kind.into(),
        subject: Uuid::new_v4(),
        detail: format!("{kind} at {created_at}"),
        created_at,
    };
    let (n1, n2, n3) = (
        n("break_glass", 10),
        n("compliance_role", 30),
        n("break_glass", 20),
    );
    let nb = n("break_glass", 40);
    for x in [&n1, &n2, &n3] {
        s.insert_notification(a.id, x).await.unwrap();
    }
    s.insert_notification(b.id, &nb).await.unwrap();
    let view = |v: Vec<Notification>| {
        v.into_iter()
            .map(|n| (n.id, n.kind, n.subject, n.detail, n.created_at))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        view(s.list_notifications(a.id).await.unwrap()),
        view(vec![n2, n3, n1])
    );
    assert_eq!(
        view(s.list_notifications(b.id).await.unwrap()),
        view(vec![nb])
    );
}
