//! JSON request bodies as the API's extractor decodes them: the first byte
//! picks the request type, the rest is the body. Decoding may fail, never panic,
//! and what decodes must encode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wardline_proto::{audit, auth, directory, messaging, patients, routing};

fn check<T: DeserializeOwned + Serialize>(body: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(body) {
        serde_json::to_vec(&v).expect("a decoded request encodes again");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 22 {
        0 => check::<auth::LoginRequest>(body),
        1 => check::<directory::CreateUserRequest>(body),
        2 => check::<directory::OrgPolicy>(body),
        3 => check::<messaging::RegisterDeviceRequest>(body),
        4 => check::<messaging::SubmitMessageRequest>(body),
        5 => check::<messaging::CreateConversationRequest>(body),
        6 => check::<messaging::ReadRequest>(body),
        7 => check::<patients::CreatePatientRequest>(body),
        8 => check::<patients::RecordConsentRequest>(body),
        9 => check::<patients::SendTemplateRequest>(body),
        10 => check::<patients::SendSecureMessageRequest>(body),
        11 => check::<patients::PutTemplateRequest>(body),
        12 => check::<audit::AuditQuery>(body),
        13 => check::<messaging::AckRequest>(body),
        14 => check::<messaging::MessagingPreferences>(body),
        15 => check::<routing::CreateRoleRequest>(body),
        16 => check::<routing::CreateShiftRequest>(body),
        17 => check::<routing::ImportScheduleRequest>(body),
        18 => check::<routing::OpenPatientRequest>(body),
        19 => check::<routing::SetPresenceRequest>(body),
        20 => check::<routing::RoutingPolicy>(body),
        _ => check::<directory::UpdateUserRequest>(body),
    }
});
