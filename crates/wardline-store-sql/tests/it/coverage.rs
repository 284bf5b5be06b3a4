//! The conformance suite must exercise every store method: this test reads
//! the traits of `wardline-store` and the suite's source and fails on a
//! method the suite never calls, unless it is listed in [`NOT_YET_COVERED`].
//! The list only shrinks: a listed method the suite now calls fails too, so
//! the list always says exactly what is left.

use std::collections::BTreeSet;
use std::path::Path;

/// Store methods reached only end to end (through the server's tests) so
/// far: none since the suite was completed; a new method starts here only
/// with a reason.
const NOT_YET_COVERED: &[&str] = &[
    // The analytics aggregates and the history they read: checked figure by
    // figure on both engines, and the two compared, through the server
    // (`wardline-server/tests/it/reports.rs`), where real activity makes
    // the rows; a suite of their own here would re-create that activity.
    "messages_per_day",
    "response_times",
    "escalations_per_day",
    "active_per_day",
    "texting_per_day",
    "import_history",
];

fn store_src(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../wardline-store/src")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (trait, method) for every method of every `pub trait` in `src`.
fn trait_methods(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in src.lines() {
        if let Some(rest) = line.strip_prefix("pub trait ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            current = Some(name);
            continue;
        }
        if line == "}" {
            current = None;
            continue;
        }
        let Some(t) = &current else { continue };
        let l = line.trim_start();
        let l = l.strip_prefix("async ").unwrap_or(l);
        if line.starts_with("    ")
            && !line.starts_with("     ")
            && let Some(rest) = l.strip_prefix("fn ")
        {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((t.clone(), name));
        }
    }
    out
}

#[test]
fn the_conformance_suite_calls_every_store_method() {
    let mut methods = Vec::new();
    for f in [
        "lib.rs",
        "audit.rs",
        "lifecycle.rs",
        "messaging.rs",
        "patients.rs",
        "reports.rs",
        "routing.rs",
    ] {
        methods.extend(trait_methods(&store_src(f)));
    }
    assert!(
        methods.len() > 150,
        "the traits were read: {}",
        methods.len()
    );
    let suite: String = [
        "mod.rs",
        "audit.rs",
        "lifecycle.rs",
        "messaging.rs",
        "patients.rs",
        "routing.rs",
    ]
    .iter()
    .map(|f| store_src(&format!("conformance/{f}")))
    .collect();
    let listed: BTreeSet<&str> = NOT_YET_COVERED.iter().copied().collect();
    let mut missing = Vec::new();
    let mut covered_but_listed = Vec::new();
    for (t, m) in &methods {
        // `backend` is a property of the engine, not behaviour to conform to.
        let called = m == "backend"
            || suite.contains(&format!(".{m}("))
            || suite.contains(&format!("::{m}("));
        match (called, listed.contains(m.as_str())) {
            (false, false) => missing.push(format!("{t}::{m}")),
            (true, true) => covered_but_listed.push(m.clone()),
            _ => {}
        }
    }
    assert!(
        missing.is_empty(),
        "store methods the conformance suite never calls:\n  {}",
        missing.join("\n  ")
    );
    assert!(
        covered_but_listed.is_empty(),
        "now covered, remove from NOT_YET_COVERED: {covered_but_listed:?}"
    );
}
