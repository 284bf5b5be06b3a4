//! The API document as served, pinned by its SHA-256: a change to a route,
//! a wire type, a status or a handler's doc comment changes the document, and
//! this test says so. The reshaping of issue 20 was held to this (a handler's
//! doc comment once slipped onto a struct and took the route's summary with
//! it). An intended change updates `fixtures/openapi.sha256`; the served
//! document is written to `target/openapi.served.json` to compare with the
//! previous one.

use sha2::{Digest, Sha256};

use crate::common::{Backend, TestServer};

const PINNED: &str = include_str!("../fixtures/openapi.sha256");

#[tokio::test]
async fn the_served_api_document_is_the_pinned_one() {
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let body = t
        .http()
        .get(format!("{}/api/openapi.json", t.url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let served = hex::encode(Sha256::digest(&body));
    if served != PINNED.trim() {
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/openapi.served.json");
        std::fs::write(&out, &body).unwrap();
        panic!(
            "the served API document changed (SHA-256 {served}, pinned {}); it is in {}. \
             If the change is intended, put the new hash in tests/fixtures/openapi.sha256.",
            PINNED.trim(),
            out.display()
        );
    }
}
