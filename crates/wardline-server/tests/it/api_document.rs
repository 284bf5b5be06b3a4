//! The API document as served must be `web/openapi.json`, the copy the web
//! app's TypeScript types are generated from (`npm run gen`, part of its
//! build): so the app is never built against an API the server no longer
//! serves, and a change to a route, a wire type, a status or a handler's doc
//! comment shows in review as a diff of that file. (The reshaping of issue
//! 20 was held to the document: a handler's doc comment once slipped onto a
//! struct and took the route's summary with it.) On a difference the served
//! document is written to `target/openapi.served.json`; if the change is
//! intended, copy it over `web/openapi.json`.

use crate::common::{Backend, TestServer};

#[tokio::test]
async fn the_served_api_document_is_the_web_apps() {
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let served: serde_json::Value = t
        .http()
        .get(format!("{}/api/openapi.json", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("web/openapi.json")).unwrap())
            .expect("web/openapi.json is JSON");
    if served != kept {
        let out = root.join("target/openapi.served.json");
        let mut text = serde_json::to_string_pretty(&served).unwrap();
        text.push('\n');
        std::fs::write(&out, text).unwrap();
        panic!(
            "the served API document is not web/openapi.json; the served one is in {}. \
             If the change is intended: cp target/openapi.served.json web/openapi.json",
            out.display()
        );
    }
}

/// Every parameter the document says is in the path is in the path's
/// template, and the others are named where they are: a query struct
/// derived with utoipa's `IntoParams` defaults to `in: path` unless told
/// `parameter_in = Query`, and five were (the web app's generated client
/// then could not send `GET /api/v1/sync?after=`).
#[tokio::test]
async fn parameters_are_documented_where_they_are_sent() {
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let doc = t.openapi().await;
    let mut wrong = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let templated = path.contains(&format!("{{{name}}}"));
                if (p["in"] == "path") != templated {
                    wrong.push(format!("{method} {path}: {name} is in {}", p["in"]));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Every operation has its own `operationId` (OpenAPI 3.1 §4.8.10: unique
/// in the document). utoipa takes it from the handler's name, and two
/// modules had a `get_policy`: the web app's generated types then gave the
/// organisation policy's route the lifecycle policy's answer.
#[tokio::test]
async fn operation_ids_are_unique() {
    let t = TestServer::start(Backend::Sqlite).await.unwrap();
    let doc = t.openapi().await;
    let mut seen = std::collections::HashMap::new();
    let mut twice = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let Some(id) = op["operationId"].as_str() else {
                continue;
            };
            if let Some(first) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                twice.push(format!("{id}: {first} and {method} {path}"));
            }
        }
    }
    assert!(twice.is_empty(), "{twice:#?}");
}
