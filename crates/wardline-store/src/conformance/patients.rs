//! Conformance of [`PatientStore`](crate::PatientStore).

#[allow(unused_imports)]
use super::*;

use crate::patients::{
    ConsentRow, LinkRow, PatientMessageRow, PatientRow, SmsRow, StaffNoticeRow, TemplateRow,
    ThreadActivity,
};
use wardline_proto::patients::{
    ConsentAction, ConsentMethod, ConsentScope, PatientMessageDirection, SmsKind, SmsStatus,
    TemplateClass,
};

/// The tests of this module, for [`conformance_suite!`](crate::conformance_suite).
#[macro_export]
#[doc(hidden)]
macro_rules! conformance_patients_tests {
    ($open:path) => {
        $crate::conformance_suite!(@tests $open;
            patients_are_scoped_by_organisation_and_mrns_are_unique,
            consent_history_is_kept_in_order_per_patient,
            sms_opt_outs_are_recorded_once_per_number_and_organisation,
            inbound_sms_is_claimed_again_until_handled,
            inbound_patient_texts_are_stored_and_handled_atomically,
            sms_templates_are_upserted_per_key_and_language,
            patient_threads_track_reads_activity_and_writers,
            staff_notices_page_unseen_and_are_seen_per_patient,
            secure_link_attempts_lock_at_the_limit_and_passes_give_back,
            concurrent_link_attempts_never_pass_the_limit,
            secure_link_codes_are_rate_limited_and_used_once,
            links_are_revoked_per_patient_and_portal_sessions_expire,
            sms_outbox_rows_round_trip_and_are_scoped_by_organisation,
            claimed_sms_is_leased_once_and_reclaimed_after_the_lease_lapses,
            concurrent_sms_claims_never_share_a_row,
            sms_status_callbacks_only_move_forward,
        );
    };
}

/// An organisation and a data key of its own.
async fn patients_setup<E: Engine>(s: &E, slug: &str) -> (OrgId, String) {
    let (o, k) = org_with_key(s, slug).await;
    (o.id, k)
}

fn patients_patient(org: OrgId, dek: &str, phone: &str, mrn: Option<&str>, at: i64) -> PatientRow {
    PatientRow {
        id: Uuid::new_v4(),
        org_id: org,
        dek_id: dek.into(),
        name_enc: vec![1; 24],
        dob_enc: vec![2; 16],
        mrn_enc: mrn.map(|m| m.as_bytes().to_vec()),
        phone_enc: vec![4; 20],
        language_enc: vec![5; 8],
        phone_index: phone.into(),
        mrn_index: mrn.map(Into::into),
        created_by: "user:creator".into(),
        created_at: at,
    }
}

fn patients_message(
    org: OrgId,
    patient: Uuid,
    direction: PatientMessageDirection,
    author: Option<Uuid>,
    at: i64,
) -> PatientMessageRow {
    PatientMessageRow {
        id: Uuid::new_v4(),
        org_id: org,
        patient_id: patient,
        direction,
        author_user: author,
        via: "portal".into(),
        body_enc: at.to_be_bytes().to_vec(),
        client_sealed: false,
        created_at: at,
        read_at: None,
    }
}

fn patients_link(
    org: OrgId,
    patient: Uuid,
    token: &str,
    expires_at: i64,
    max_uses: i64,
) -> LinkRow {
    LinkRow {
        id: Uuid::new_v4(),
        org_id: org,
        patient_id: patient,
        token_hash: token.into(),
        created_by: "user:sender".into(),
        created_at: 100,
        expires_at,
        max_uses,
        uses: 0,
        failures: 0,
        locked_at: None,
        revoked_at: None,
        challenge_hash: None,
        code_hash: None,
        code_expires_at: None,
    }
}

fn patients_sms(
    org: OrgId,
    dek: &str,
    patient: Option<Uuid>,
    send_after: i64,
    created_at: i64,
) -> SmsRow {
    SmsRow {
        id: Uuid::new_v4(),
        org_id: org,
        patient_id: patient,
        dek_id: dek.into(),
        from_number: "+15550001111".into(),
        to_enc: vec![6; 20],
        body_enc: created_at.to_be_bytes().to_vec(),
        fragment_enc: Some(vec![7; 32]),
        phone_index: "ph-1".into(),
        kind: SmsKind::SecureNotice,
        template: Some("secure_notice".into()),
        status: SmsStatus::Queued,
        attempts: 0,
        send_after,
        lease_until: None,
        provider_id: None,
        error: None,
        created_at,
        sent_at: None,
        updated_at: created_at,
    }
}

async fn patients_link_now<E: Engine>(s: &E, token: &str) -> LinkRow {
    s.link_by_token(token).await.unwrap()
}

fn patients_sorted(mut rows: Vec<PatientRow>) -> Vec<PatientRow> {
    rows.sort_by_key(|p| p.id);
    rows
}

pub async fn patients_are_scoped_by_organisation_and_mrns_are_unique<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let (b, kb) = patients_setup(&*s, "beta").await;
    let p1 = patients_patient(a, &ka, "ph-1", Some("mrn-1"), 100);
    let p2 = patients_patient(a, &ka, "ph-1", None, 101);
    let p3 = patients_patient(a, &ka, "ph-2", None, 102);
    for p in [&p1, &p2, &p3] {
        s.insert_patient(p).await.unwrap();
    }
    assert_eq!(s.get_patient(a, p1.id).await.unwrap(), p1);
    assert_eq!(
        s.get_patient(a, p2.id).await.unwrap(),
        p2,
        "no MRN stays NULL"
    );
    assert!(matches!(
        s.get_patient(b, p1.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_patient(a, Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));
    // An MRN is unique within its organisation only.
    assert!(matches!(
        s.insert_patient(&patients_patient(a, &ka, "ph-3", Some("mrn-1"), 103))
            .await,
        Err(StoreError::Conflict("patient mrn"))
    ));
    let q = patients_patient(b, &kb, "ph-1", Some("mrn-1"), 100);
    s.insert_patient(&q).await.unwrap();

    assert_eq!(
        patients_sorted(s.list_patients(a).await.unwrap()),
        patients_sorted(vec![p1.clone(), p2.clone(), p3.clone()])
    );
    assert_eq!(s.list_patients(b).await.unwrap(), vec![q.clone()]);
    assert!(
        s.list_patients(Uuid::new_v4().into())
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        patients_sorted(s.patients_by_phone(a, "ph-1").await.unwrap()),
        patients_sorted(vec![p1, p2])
    );
    assert_eq!(s.patients_by_phone(a, "ph-2").await.unwrap(), vec![p3]);
    assert_eq!(s.patients_by_phone(b, "ph-1").await.unwrap(), vec![q]);
    assert!(s.patients_by_phone(a, "ph-9").await.unwrap().is_empty());
}

pub async fn consent_history_is_kept_in_order_per_patient<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let (b, _) = patients_setup(&*s, "beta").await;
    let p = patients_patient(a, &ka, "ph-1", None, 1);
    let other = patients_patient(a, &ka, "ph-2", None, 1);
    s.insert_patient(&p).await.unwrap();
    s.insert_patient(&other).await.unwrap();
    let consent = |scope, action, method, actor: &str, at| ConsentRow {
        id: Uuid::new_v4(),
        org_id: a,
        patient_id: p.id,
        scope,
        action,
        method,
        actor_kind: actor.into(),
        actor_id: format!("{actor}-{at}"),
        at,
    };
    // Several decisions within one second keep the order they were made in.
    let history = vec![
        consent(
            Some(ConsentScope::Reminders),
            ConsentAction::Granted,
            ConsentMethod::Verbal,
            "user",
            50,
        ),
        consent(
            None,
            ConsentAction::OptedOut,
            ConsentMethod::SmsKeyword,
            "patient",
            50,
        ),
        consent(
            Some(ConsentScope::SecureMessages),
            ConsentAction::Revoked,
            ConsentMethod::Written,
            "user",
            50,
        ),
        consent(
            None,
            ConsentAction::OptedIn,
            ConsentMethod::Electronic,
            "patient",
            60,
        ),
    ];
    for c in &history {
        s.insert_consent(c).await.unwrap();
    }
    assert_eq!(s.consents(a, p.id).await.unwrap(), history);
    assert!(s.consents(b, p.id).await.unwrap().is_empty());
    assert!(s.consents(a, other.id).await.unwrap().is_empty());
}

pub async fn sms_opt_outs_are_recorded_once_per_number_and_organisation<E: Engine>(s: Arc<E>) {
    let (a, _) = patients_setup(&*s, "alpha").await;
    let (b, _) = patients_setup(&*s, "beta").await;
    assert!(!s.is_opted_out(a, "ph-1").await.unwrap());
    assert!(s.opt_out(a, "ph-1", 10).await.unwrap());
    assert!(
        !s.opt_out(a, "ph-1", 20).await.unwrap(),
        "a second STOP is not a new opt-out"
    );
    assert!(s.is_opted_out(a, "ph-1").await.unwrap());
    assert!(!s.is_opted_out(a, "ph-2").await.unwrap());
    assert!(!s.is_opted_out(b, "ph-1").await.unwrap());
    assert!(s.opt_out(b, "ph-1", 30).await.unwrap());

    assert!(s.opt_in(a, "ph-1").await.unwrap());
    assert!(
        !s.opt_in(a, "ph-1").await.unwrap(),
        "a START without a STOP lifts nothing"
    );
    assert!(!s.opt_in(a, "ph-2").await.unwrap());
    assert!(!s.is_opted_out(a, "ph-1").await.unwrap());
    assert!(
        s.is_opted_out(b, "ph-1").await.unwrap(),
        "another organisation's opt-out stands"
    );
    assert!(s.opt_out(a, "ph-1", 40).await.unwrap());
    assert!(s.is_opted_out(a, "ph-1").await.unwrap());
}

pub async fn inbound_sms_is_claimed_again_until_handled<E: Engine>(s: Arc<E>) {
    let (a, _) = patients_setup(&*s, "alpha").await;
    let (b, _) = patients_setup(&*s, "beta").await;
    assert!(s.claim_inbound(a, "SM1", 10).await.unwrap());
    assert!(
        s.claim_inbound(a, "SM1", 11).await.unwrap(),
        "seen but not handled: the retry acts again"
    );
    s.inbound_handled(a, "SM1", 12).await.unwrap();
    assert!(
        !s.claim_inbound(a, "SM1", 13).await.unwrap(),
        "a handled SMS is a duplicate"
    );
    assert!(!s.claim_inbound(a, "SM1", 14).await.unwrap());
    assert!(
        s.claim_inbound(b, "SM1", 15).await.unwrap(),
        "provider ids are per organisation"
    );
    assert!(s.claim_inbound(a, "SM2", 16).await.unwrap());
    s.inbound_handled(b, "SM1", 17).await.unwrap();
    assert!(!s.claim_inbound(b, "SM1", 18).await.unwrap());
    assert!(
        s.claim_inbound(a, "SM2", 19).await.unwrap(),
        "handling one id leaves others open"
    );
}

pub async fn inbound_patient_texts_are_stored_and_handled_atomically<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let p1 = patients_patient(a, &ka, "ph-1", None, 1);
    let p2 = patients_patient(a, &ka, "ph-1", None, 2);
    s.insert_patient(&p1).await.unwrap();
    s.insert_patient(&p2).await.unwrap();
    let from = PatientMessageDirection::FromPatient;
    let mut m1 = patients_message(a, p1.id, from, None, 11);
    m1.via = "sms".into();
    let mut m2 = patients_message(a, p2.id, from, None, 11);
    m2.via = "sms".into();

    assert!(s.claim_inbound(a, "SM2", 10).await.unwrap());
    s.insert_inbound_messages(a, "SM2", &[m1.clone(), m2.clone()], 11)
        .await
        .unwrap();
    assert!(
        !s.claim_inbound(a, "SM2", 12).await.unwrap(),
        "stored texts mark the SMS handled"
    );
    assert_eq!(
        s.patient_messages(a, p1.id).await.unwrap(),
        vec![m1.clone()]
    );
    assert_eq!(s.patient_messages(a, p2.id).await.unwrap(), vec![m2]);

    // A failure half-way stores nothing and leaves the SMS unhandled.
    assert!(s.claim_inbound(a, "SM3", 20).await.unwrap());
    let m3 = patients_message(a, p1.id, from, None, 21);
    assert!(
        s.insert_inbound_messages(a, "SM3", &[m3, m1.clone()], 21)
            .await
            .is_err()
    );
    assert_eq!(s.patient_messages(a, p1.id).await.unwrap(), vec![m1]);
    assert!(s.claim_inbound(a, "SM3", 22).await.unwrap());
}

pub async fn sms_templates_are_upserted_per_key_and_language<E: Engine>(s: Arc<E>) {
    let (a, _) = patients_setup(&*s, "alpha").await;
    let (b, _) = patients_setup(&*s, "beta").await;
    let template = |org, key: &str, language: &str, class| TemplateRow {
        org_id: org,
        key: key.into(),
        language: language.into(),
        body: format!("{key} in {language}: {{date}}"),
        class,
        updated_by: "user:1".into(),
        updated_at: 10,
    };
    let sorted = |mut v: Vec<TemplateRow>| {
        v.sort_by(|x, y| (&x.key, &x.language).cmp(&(&y.key, &y.language)));
        v
    };
    assert!(s.templates(a).await.unwrap().is_empty());
    let t1 = template(a, "reminder", "en", TemplateClass::NoPhi);
    let t2 = template(a, "reminder", "es", TemplateClass::NoPhi);
    let t3 = template(a, "follow_up", "en", TemplateClass::Phi);
    for t in [&t1, &t2, &t3] {
        s.put_template(t).await.unwrap();
    }
    assert_eq!(
        sorted(s.templates(a).await.unwrap()),
        sorted(vec![t1.clone(), t2.clone(), t3.clone()])
    );

    let t1b = TemplateRow {
        body: "Changed {time}".into(),
        class: TemplateClass::Phi,
        updated_by: "user:2".into(),
        updated_at: 20,
        ..t1.clone()
    };
    s.put_template(&t1b).await.unwrap();
    assert_eq!(
        sorted(s.templates(a).await.unwrap()),
        sorted(vec![t1b, t2, t3]),
        "a second put replaces the text of its key and language"
    );
    assert!(s.templates(b).await.unwrap().is_empty());
    let tb = template(b, "reminder", "en", TemplateClass::NoPhi);
    s.put_template(&tb).await.unwrap();
    assert_eq!(s.templates(b).await.unwrap(), vec![tb]);
    assert_eq!(s.templates(a).await.unwrap().len(), 3);
}

pub async fn patient_threads_track_reads_activity_and_writers<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let (b, kb) = patients_setup(&*s, "beta").await;
    let p1 = patients_patient(a, &ka, "ph-1", None, 1);
    let p2 = patients_patient(a, &ka, "ph-2", None, 1);
    let p3 = patients_patient(a, &ka, "ph-3", None, 1);
    let pb = patients_patient(b, &kb, "ph-1", None, 1);
    for p in [&p1, &p2, &p3, &pb] {
        s.insert_patient(p).await.unwrap();
    }
    let (w1, w2, w3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (to, from) = (
        PatientMessageDirection::ToPatient,
        PatientMessageDirection::FromPatient,
    );
    let mut m1 = patients_message(a, p1.id, to, Some(w1), 100);
    m1.client_sealed = true;
    m1.via = "app".into();
    let m2 = patients_message(a, p1.id, from, None, 110);
    let m3 = patients_message(a, p1.id, to, Some(w2), 120);
    let mut m4 = patients_message(a, p1.id, from, None, 130);
    m4.read_at = Some(131);
    let m5 = patients_message(a, p1.id, to, Some(w3), 135);
    let m6 = patients_message(a, p1.id, from, None, 140);
    let m7 = patients_message(a, p1.id, to, Some(w1), 150);
    let m8 = patients_message(a, p1.id, to, None, 150); // automated: no writer
    let n1 = patients_message(a, p2.id, from, None, 200);
    let nb = patients_message(b, pb.id, from, None, 999);
    let mut thread = vec![m1, m2, m3, m4, m5, m6, m7, m8];
    for m in thread.iter().chain([&n1, &nb]) {
        s.insert_patient_message(m).await.unwrap();
    }
    assert_eq!(s.patient_messages(a, p1.id).await.unwrap(), thread);
    assert_eq!(
        s.patient_messages(a, p2.id).await.unwrap(),
        vec![n1.clone()]
    );
    assert!(s.patient_messages(b, p1.id).await.unwrap().is_empty());
    assert!(s.patient_messages(a, p3.id).await.unwrap().is_empty());

    let activity = |patient_id, last_message_at, unread| ThreadActivity {
        patient_id,
        last_message_at,
        unread,
    };
    assert_eq!(
        s.thread_activity(a).await.unwrap(),
        vec![activity(p2.id, 200, 1), activity(p1.id, 150, 2)]
    );
    assert_eq!(
        s.thread_activity(b).await.unwrap(),
        vec![activity(pb.id, 999, 1)]
    );

    assert_eq!(
        s.patient_writers(a, p1.id, 10).await.unwrap(),
        vec![w1, w3, w2],
        "most recent writer first, each once"
    );
    assert_eq!(s.patient_writers(a, p1.id, 2).await.unwrap(), vec![w1, w3]);
    assert!(s.patient_writers(a, p2.id, 10).await.unwrap().is_empty());
    assert!(s.patient_writers(b, p1.id, 10).await.unwrap().is_empty());

    // Another organisation's call reads nothing.
    s.mark_patient_messages_read(b, p1.id, from, 400)
        .await
        .unwrap();
    assert_eq!(s.patient_messages(a, p1.id).await.unwrap(), thread);
    // Only unread messages of the direction; an earlier read time stands.
    s.mark_patient_messages_read(a, p1.id, from, 500)
        .await
        .unwrap();
    for m in thread.iter_mut() {
        if m.direction == from && m.read_at.is_none() {
            m.read_at = Some(500);
        }
    }
    assert_eq!(thread[3].read_at, Some(131));
    assert_eq!(s.patient_messages(a, p1.id).await.unwrap(), thread);
    assert_eq!(
        s.thread_activity(a).await.unwrap(),
        vec![activity(p2.id, 200, 1), activity(p1.id, 150, 0)]
    );
    s.mark_patient_messages_read(a, p1.id, to, 600)
        .await
        .unwrap();
    for m in thread.iter_mut() {
        if m.direction == to {
            m.read_at = Some(600);
        }
    }
    assert_eq!(s.patient_messages(a, p1.id).await.unwrap(), thread);
    assert_eq!(
        s.patient_messages(a, p2.id).await.unwrap(),
        vec![n1],
        "another patient's thread is untouched"
    );
}

pub async fn staff_notices_page_unseen_and_are_seen_per_patient<E: Engine>(s: Arc<E>) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    let (p, q) = (Uuid::new_v4(), Uuid::new_v4());
    let notice = |org_id, user_id, patient_id, created_at| StaffNoticeRow {
        id: Uuid::new_v4(),
        org_id,
        user_id,
        kind: "patient_reply".into(),
        patient_id,
        created_at,
        seen_at: None,
    };
    let n1 = notice(a.into(), u1.into(), p, 10);
    let n2 = notice(a.into(), u1.into(), q, 20);
    let n3 = notice(a.into(), u1.into(), p, 30);
    let n4 = notice(a.into(), u2.into(), p, 15);
    let n5 = notice(b.into(), u1.into(), p, 25);
    let n6 = StaffNoticeRow {
        seen_at: Some(41),
        ..notice(a.into(), u1.into(), p, 40)
    };
    s.insert_staff_notices(&[]).await.unwrap();
    // Inserted out of time order: listing is by time.
    s.insert_staff_notices(&[
        n3.clone(),
        n1.clone(),
        n2.clone(),
        n4.clone(),
        n5.clone(),
        n6,
    ])
    .await
    .unwrap();
    assert_eq!(
        s.unseen_staff_notices(a.into(), u1.into(), 0, 10)
            .await
            .unwrap(),
        vec![n1.clone(), n2.clone(), n3.clone()]
    );
    assert_eq!(
        s.unseen_staff_notices(a.into(), u1.into(), 0, 2)
            .await
            .unwrap(),
        vec![n1.clone(), n2.clone()]
    );
    assert_eq!(
        s.unseen_staff_notices(a.into(), u1.into(), 20, 2)
            .await
            .unwrap(),
        vec![n3.clone()],
        "after is exclusive"
    );
    assert!(
        s.unseen_staff_notices(a.into(), u1.into(), 30, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.unseen_staff_notices(a.into(), u2.into(), 0, 10)
            .await
            .unwrap(),
        vec![n4.clone()]
    );
    assert_eq!(
        s.unseen_staff_notices(b.into(), u1.into(), 0, 10)
            .await
            .unwrap(),
        vec![n5.clone()]
    );

    s.staff_notices_seen(a.into(), u1.into(), p, 50)
        .await
        .unwrap();
    assert_eq!(
        s.unseen_staff_notices(a.into(), u1.into(), 0, 10)
            .await
            .unwrap(),
        vec![n2.clone()]
    );
    assert_eq!(
        s.unseen_staff_notices(a.into(), u2.into(), 0, 10)
            .await
            .unwrap(),
        vec![n4],
        "another user's notices stay unseen"
    );
    assert_eq!(
        s.unseen_staff_notices(b.into(), u1.into(), 0, 10)
            .await
            .unwrap(),
        vec![n5],
        "another organisation's notices stay unseen"
    );
    s.staff_notices_seen(b.into(), u1.into(), q, 60)
        .await
        .unwrap();
    assert_eq!(
        s.unseen_staff_notices(a.into(), u1.into(), 0, 10)
            .await
            .unwrap(),
        vec![n2]
    );
}

pub async fn secure_link_attempts_lock_at_the_limit_and_passes_give_back<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let (b, kb) = patients_setup(&*s, "beta").await;
    let p = patients_patient(a, &ka, "ph-1", None, 1);
    let pb = patients_patient(b, &kb, "ph-1", None, 1);
    s.insert_patient(&p).await.unwrap();
    s.insert_patient(&pb).await.unwrap();
    let l = patients_link(a, p.id, "tok-1", 1000, 2);
    s.insert_link(&l).await.unwrap();
    assert_eq!(s.link_by_token("tok-1").await.unwrap(), l);
    assert!(matches!(
        s.insert_link(&patients_link(a, p.id, "tok-1", 1000, 2))
            .await,
        Err(StoreError::Conflict("link token"))
    ));
    assert!(matches!(
        s.link_by_token("tok-none").await,
        Err(StoreError::NotFound)
    ));
    // The token names its link whatever the organisation.
    let lb = patients_link(b, pb.id, "tok-b", 2000, 1);
    s.insert_link(&lb).await.unwrap();
    assert_eq!(s.link_by_token("tok-b").await.unwrap(), lb);

    // A passed attempt does not count.
    assert_eq!(s.link_attempt(l.id, 3, 200).await.unwrap(), Some(1));
    s.link_attempt_passed(l.id, 3).await.unwrap();
    assert_eq!(patients_link_now(&*s, "tok-1").await.failures, 0);

    assert_eq!(s.link_attempt(l.id, 3, 201).await.unwrap(), Some(1));
    assert_eq!(s.link_attempt(l.id, 3, 202).await.unwrap(), Some(2));
    assert_eq!(patients_link_now(&*s, "tok-1").await.locked_at, None);
    assert_eq!(s.link_attempt(l.id, 3, 203).await.unwrap(), Some(3));
    let now = patients_link_now(&*s, "tok-1").await;
    assert_eq!((now.failures, now.locked_at), (3, Some(203)));
    assert_eq!(
        s.link_attempt(l.id, 3, 204).await.unwrap(),
        None,
        "a locked link takes no attempt"
    );
    assert_eq!(
        s.link_attempt(l.id, 10, 204).await.unwrap(),
        None,
        "nor under a higher limit"
    );
    let now = patients_link_now(&*s, "tok-1").await;
    assert_eq!((now.failures, now.locked_at), (3, Some(203)));

    // The attempt that locked it passed: the lock it caused is lifted.
    s.link_attempt_passed(l.id, 3).await.unwrap();
    let now = patients_link_now(&*s, "tok-1").await;
    assert_eq!((now.failures, now.locked_at), (2, None));
    assert_eq!(s.link_attempt(l.id, 3, 205).await.unwrap(), Some(3));
    assert_eq!(patients_link_now(&*s, "tok-1").await.locked_at, Some(205));
    assert_eq!(s.link_attempt(Uuid::new_v4(), 3, 206).await.unwrap(), None);
    // Other links are untouched.
    assert_eq!(s.link_by_token("tok-b").await.unwrap(), lb);
}

pub async fn concurrent_link_attempts_never_pass_the_limit<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let p = patients_patient(a, &ka, "ph-1", None, 1);
    s.insert_patient(&p).await.unwrap();
    let l = patients_link(a, p.id, "tok-c", 1000, 1);
    s.insert_link(&l).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.link_attempt(l.id, 3, 300 + i).await.unwrap()
        }));
    }
    let mut taken = Vec::new();
    for t in tasks {
        if let Some(n) = t.await.unwrap() {
            taken.push(n);
        }
    }
    taken.sort();
    assert_eq!(taken, vec![1, 2, 3], "exactly the limit is evaluated");
    let now = patients_link_now(&*s, "tok-c").await;
    assert_eq!(now.failures, 3);
    assert!(now.locked_at.is_some());
}

pub async fn secure_link_codes_are_rate_limited_and_used_once<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let p = patients_patient(a, &ka, "ph-1", None, 1);
    s.insert_patient(&p).await.unwrap();
    let l = patients_link(a, p.id, "tok-2", 10_000, 2);
    s.insert_link(&l).await.unwrap();
    let code = |l: &LinkRow| {
        (
            l.challenge_hash.clone(),
            l.code_hash.clone(),
            l.code_expires_at,
        )
    };
    let some = |ch: &str, c: &str, at| (Some(ch.to_string()), Some(c.to_string()), Some(at));

    assert!(!s.link_use(l.id).await.unwrap(), "no pending code");
    assert!(
        s.link_set_code(l.id, "ch-1", "c-1", 300, 250)
            .await
            .unwrap()
    );
    assert_eq!(
        code(&patients_link_now(&*s, "tok-2").await),
        some("ch-1", "c-1", 300)
    );
    assert!(
        !s.link_set_code(l.id, "ch-2", "c-2", 400, 299)
            .await
            .unwrap(),
        "a code sent recently blocks a new one"
    );
    assert_eq!(
        code(&patients_link_now(&*s, "tok-2").await),
        some("ch-1", "c-1", 300)
    );
    assert!(
        s.link_set_code(l.id, "ch-3", "c-3", 500, 300)
            .await
            .unwrap()
    );
    assert_eq!(
        code(&patients_link_now(&*s, "tok-2").await),
        some("ch-3", "c-3", 500)
    );

    assert!(s.link_use(l.id).await.unwrap());
    let now = patients_link_now(&*s, "tok-2").await;
    assert_eq!((now.uses, code(&now)), (1, (None, None, None)));
    assert!(!s.link_use(l.id).await.unwrap(), "a code is used once");
    assert_eq!(patients_link_now(&*s, "tok-2").await.uses, 1);

    assert!(s.link_set_code(l.id, "ch-4", "c-4", 600, 0).await.unwrap());
    assert!(s.link_use(l.id).await.unwrap());
    assert_eq!(patients_link_now(&*s, "tok-2").await.uses, 2);
    assert!(s.link_set_code(l.id, "ch-5", "c-5", 700, 0).await.unwrap());
    assert!(!s.link_use(l.id).await.unwrap(), "no use left");
    assert_eq!(patients_link_now(&*s, "tok-2").await.uses, 2);
    assert!(
        !s.link_set_code(Uuid::new_v4(), "ch", "c", 1, 0)
            .await
            .unwrap()
    );

    // A locked link spends no code.
    let l3 = patients_link(a, p.id, "tok-3", 10_000, 5);
    s.insert_link(&l3).await.unwrap();
    assert!(s.link_set_code(l3.id, "ch-6", "c-6", 800, 0).await.unwrap());
    assert_eq!(s.link_attempt(l3.id, 1, 10).await.unwrap(), Some(1));
    assert!(!s.link_use(l3.id).await.unwrap());
    let now = patients_link_now(&*s, "tok-3").await;
    assert_eq!((now.uses, code(&now)), (0, some("ch-6", "c-6", 800)));
    s.link_attempt_passed(l3.id, 1).await.unwrap();
    assert!(s.link_use(l3.id).await.unwrap());
    assert_eq!(patients_link_now(&*s, "tok-3").await.uses, 1);
}

pub async fn links_are_revoked_per_patient_and_portal_sessions_expire<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let (b, _) = patients_setup(&*s, "beta").await;
    let p = patients_patient(a, &ka, "ph-1", None, 1);
    let q = patients_patient(a, &ka, "ph-2", None, 1);
    s.insert_patient(&p).await.unwrap();
    s.insert_patient(&q).await.unwrap();
    let l1 = patients_link(a, p.id, "tok-p1", 1000, 1);
    let l2 = patients_link(a, p.id, "tok-p2", 1000, 1);
    let expired = patients_link(a, p.id, "tok-px", 400, 1);
    let lq = patients_link(a, q.id, "tok-q", 1000, 1);
    for l in [&l1, &l2, &expired, &lq] {
        s.insert_link(l).await.unwrap();
    }
    assert_eq!(s.revoke_links(b, p.id, 500).await.unwrap(), 0);
    assert_eq!(patients_link_now(&*s, "tok-p1").await.revoked_at, None);
    assert_eq!(s.revoke_links(a, p.id, 500).await.unwrap(), 2);
    assert_eq!(patients_link_now(&*s, "tok-p1").await.revoked_at, Some(500));
    assert_eq!(patients_link_now(&*s, "tok-p2").await.revoked_at, Some(500));
    assert_eq!(
        patients_link_now(&*s, "tok-px").await.revoked_at,
        None,
        "an expired link is not open"
    );
    assert_eq!(patients_link_now(&*s, "tok-q").await.revoked_at, None);
    assert_eq!(
        s.revoke_links(a, p.id, 600).await.unwrap(),
        0,
        "revoked links stay revoked when they were"
    );
    assert_eq!(patients_link_now(&*s, "tok-p1").await.revoked_at, Some(500));

    s.insert_portal_session("ps-1", lq.id, 100, 200)
        .await
        .unwrap();
    s.insert_portal_session("ps-2", l1.id, 100, 300)
        .await
        .unwrap();
    assert_eq!(s.portal_session("ps-1", 150).await.unwrap(), lq.id);
    assert_eq!(s.portal_session("ps-1", 199).await.unwrap(), lq.id);
    assert!(matches!(
        s.portal_session("ps-1", 200).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.portal_session("ps-2", 250).await.unwrap(), l1.id);
    assert!(matches!(
        s.portal_session("ps-none", 0).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.insert_portal_session("ps-1", l2.id, 100, 900).await,
        Err(StoreError::Conflict("portal session"))
    ));
    assert!(matches!(
        s.portal_session("ps-1", 500).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn sms_outbox_rows_round_trip_and_are_scoped_by_organisation<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let (b, kb) = patients_setup(&*s, "beta").await;
    let (p, other) = (Uuid::new_v4(), Uuid::new_v4());
    let r1 = patients_sms(a, &ka, Some(p), 10, 10);
    let r2 = SmsRow {
        patient_id: None,
        fragment_enc: None,
        template: None,
        kind: SmsKind::KeywordReply,
        ..patients_sms(a, &ka, None, 5, 5)
    };
    let r3 = SmsRow {
        kind: SmsKind::Reminder,
        ..patients_sms(a, &ka, Some(p), 30, 30)
    };
    let r4 = SmsRow {
        kind: SmsKind::VerificationCode,
        ..patients_sms(a, &ka, Some(p), 20, 20)
    };
    let rb = patients_sms(b, &kb, Some(p), 40, 40);
    for r in [&r1, &r2, &r3, &r4, &rb] {
        s.enqueue_sms(r).await.unwrap();
    }
    assert_eq!(s.get_sms(a, r1.id).await.unwrap(), r1);
    assert_eq!(s.get_sms(a, r2.id).await.unwrap(), r2, "NULLs stay NULL");
    assert_eq!(s.get_sms(b, rb.id).await.unwrap(), rb);
    assert!(matches!(
        s.get_sms(b, r1.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_sms(a, Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));

    assert_eq!(
        s.sms_for_patient(a, p, 10).await.unwrap(),
        vec![r3.clone(), r4.clone(), r1],
        "newest first"
    );
    assert_eq!(s.sms_for_patient(a, p, 2).await.unwrap(), vec![r3, r4]);
    assert_eq!(s.sms_for_patient(b, p, 10).await.unwrap(), vec![rb]);
    assert!(s.sms_for_patient(a, other, 10).await.unwrap().is_empty());
}

pub async fn claimed_sms_is_leased_once_and_reclaimed_after_the_lease_lapses<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let p = Uuid::new_v4();
    // Enqueued out of due order: claims go by due time.
    let late = patients_sms(a, &ka, Some(p), 200, 1);
    let early = patients_sms(a, &ka, Some(p), 100, 2);
    let mid = patients_sms(a, &ka, Some(p), 150, 3);
    let future = patients_sms(a, &ka, None, 10_000, 4);
    // Queued out of order: `mid` is stored before `early`.
    for r in [&late, &mid, &early, &future] {
        s.enqueue_sms(r).await.unwrap();
    }
    let leased = |r: &SmsRow, now: i64, attempts| SmsRow {
        status: SmsStatus::Sending,
        lease_until: Some(now + 60),
        attempts,
        updated_at: now,
        ..r.clone()
    };
    // In order, oldest first: a patient's texts go out as they were queued
    // (`UPDATE … RETURNING` alone gave them back newest first on both engines).
    assert_eq!(
        s.claim_due_sms(300, 60, 2).await.unwrap(),
        vec![leased(&early, 300, 1), leased(&mid, 300, 1)],
        "the oldest due rows, up to the limit, oldest first"
    );
    assert_eq!(
        s.get_sms(a, early.id).await.unwrap(),
        leased(&early, 300, 1)
    );
    assert_eq!(
        s.claim_due_sms(300, 60, 10).await.unwrap(),
        vec![leased(&late, 300, 1)],
        "a leased row is not claimed again"
    );
    assert!(s.claim_due_sms(330, 60, 10).await.unwrap().is_empty());

    s.sms_sent(early.id, "prov-1", 310).await.unwrap();
    let sent = SmsRow {
        status: SmsStatus::Sent,
        provider_id: Some("prov-1".into()),
        sent_at: Some(310),
        lease_until: None,
        fragment_enc: None,
        updated_at: 310,
        ..leased(&early, 300, 1)
    };
    assert_eq!(s.get_sms(a, early.id).await.unwrap(), sent);
    s.sms_retry(mid.id, 500, "gateway timeout", 320)
        .await
        .unwrap();
    let retried = SmsRow {
        status: SmsStatus::Queued,
        send_after: 500,
        error: Some("gateway timeout".into()),
        lease_until: None,
        updated_at: 320,
        ..leased(&mid, 300, 1)
    };
    assert_eq!(s.get_sms(a, mid.id).await.unwrap(), retried);

    // A crashed sender's lease lapses and the row goes out from elsewhere.
    assert_eq!(
        s.claim_due_sms(361, 60, 10).await.unwrap(),
        vec![leased(&late, 361, 2)]
    );
    s.sms_finished(late.id, SmsStatus::Cancelled, "opted out", 400)
        .await
        .unwrap();
    let cancelled = s.get_sms(a, late.id).await.unwrap();
    assert_eq!(
        (
            cancelled.status,
            cancelled.error.as_deref(),
            cancelled.fragment_enc,
            cancelled.lease_until
        ),
        (SmsStatus::Cancelled, Some("opted out"), None, None)
    );
    assert_eq!(
        s.claim_due_sms(500, 60, 10).await.unwrap(),
        vec![leased(&retried, 500, 2)]
    );
    s.sms_finished(mid.id, SmsStatus::Failed, "gave up", 510)
        .await
        .unwrap();
    let failed = SmsRow {
        status: SmsStatus::Failed,
        error: Some("gave up".into()),
        lease_until: None,
        fragment_enc: None,
        updated_at: 510,
        ..leased(&retried, 500, 2)
    };
    assert_eq!(s.get_sms(a, mid.id).await.unwrap(), failed);
    assert_eq!(
        s.claim_due_sms(20_000, 60, 10).await.unwrap(),
        vec![leased(&future, 20_000, 1)],
        "sent and finished rows are never claimed"
    );

    assert!(matches!(
        s.sms_sent(future.id, "prov-1", 20_001).await,
        Err(StoreError::Conflict(_))
    ));
    let missing = Uuid::new_v4();
    assert!(matches!(
        s.sms_sent(missing, "prov-x", 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.sms_retry(missing, 1, "e", 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.sms_finished(missing, SmsStatus::Failed, "e", 1).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn concurrent_sms_claims_never_share_a_row<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let mut all = Vec::new();
    for i in 0..24 {
        let r = patients_sms(a, &ka, None, i, i);
        s.enqueue_sms(&r).await.unwrap();
        all.push(r.id);
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_due_sms(100, 60, 3).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                assert!(got.len() <= 3);
                mine.extend(got.into_iter().map(|r| r.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    // A racer may stop early on a row another took; sweep what is left.
    loop {
        let got = s.claim_due_sms(100, 60, 3).await.unwrap();
        if got.is_empty() {
            break;
        }
        claimed.extend(got.into_iter().map(|r| r.id));
    }
    claimed.sort();
    all.sort();
    assert_eq!(claimed, all, "every row claimed exactly once");
}

pub async fn sms_status_callbacks_only_move_forward<E: Engine>(s: Arc<E>) {
    let (a, ka) = patients_setup(&*s, "alpha").await;
    let (b, _) = patients_setup(&*s, "beta").await;
    let r1 = patients_sms(a, &ka, None, 0, 1);
    let r2 = patients_sms(a, &ka, None, 0, 2);
    s.enqueue_sms(&r1).await.unwrap();
    s.enqueue_sms(&r2).await.unwrap();
    assert_eq!(s.claim_due_sms(10, 60, 10).await.unwrap().len(), 2);
    s.sms_sent(r1.id, "prov-1", 20).await.unwrap();
    s.sms_sent(r2.id, "prov-2", 20).await.unwrap();

    let got = s
        .sms_status_by_provider(a, "prov-1", SmsStatus::Delivered, None, 30)
        .await
        .unwrap();
    assert_eq!(
        (got.id, got.status, got.error.as_deref(), got.updated_at),
        (r1.id, SmsStatus::Delivered, None, 30)
    );
    assert_eq!(s.get_sms(a, r1.id).await.unwrap(), got);
    // Out of a terminal state nothing moves it; the row comes back as it is.
    let again = s
        .sms_status_by_provider(a, "prov-1", SmsStatus::Undelivered, Some("30003"), 40)
        .await
        .unwrap();
    assert_eq!(again, got);
    let back = s
        .sms_status_by_provider(a, "prov-1", SmsStatus::Sent, None, 50)
        .await
        .unwrap();
    assert_eq!(back, got);
    assert_eq!(s.get_sms(a, r1.id).await.unwrap(), got);

    let before = s.get_sms(a, r2.id).await.unwrap();
    assert_eq!(before.status, SmsStatus::Sent);
    assert_eq!(
        s.sms_status_by_provider(a, "prov-2", SmsStatus::Sending, None, 60)
            .await
            .unwrap(),
        before,
        "never backwards"
    );
    let undelivered = s
        .sms_status_by_provider(a, "prov-2", SmsStatus::Undelivered, Some("30006"), 70)
        .await
        .unwrap();
    assert_eq!(
        undelivered,
        SmsRow {
            status: SmsStatus::Undelivered,
            error: Some("30006".into()),
            updated_at: 70,
            ..before
        }
    );
    assert_eq!(
        s.sms_status_by_provider(a, "prov-2", SmsStatus::Delivered, None, 80)
            .await
            .unwrap(),
        undelivered
    );

    assert!(matches!(
        s.sms_status_by_provider(b, "prov-1", SmsStatus::Delivered, None, 90)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.sms_status_by_provider(a, "prov-none", SmsStatus::Delivered, None, 90)
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get_sms(a, r1.id).await.unwrap(), got);
}
