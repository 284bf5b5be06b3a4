//! Tidy checks over the workspace's source, so the layering written in
//! ARCHITECTURE.md ("Dependency rules") cannot drift silently: crates depend
//! only on layers below them, only the storage engine names `sqlx`, and every
//! source file opens with a module doc comment saying what lives there.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Wardline crates each crate may depend on (normal dependencies; tests
/// may reach further through dev-dependencies).
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("wardline-proto", &[][..]),
        ("wardline-crypto", &["wardline-proto"][..]),
        ("wardline-store", &["wardline-proto"][..]),
        (
            "wardline-store-sql",
            &["wardline-proto", "wardline-store"][..],
        ),
        (
            "wardline-client",
            &["wardline-proto", "wardline-crypto"][..],
        ),
        // The browser's binding of the client core: the client and wire
        // types, nothing of the server.
        (
            "wardline-client-wasm",
            &["wardline-proto", "wardline-client"][..],
        ),
        // The domain: store traits only, never an engine (tests aside) and
        // never HTTP.
        (
            "wardline-core",
            &["wardline-proto", "wardline-crypto", "wardline-store"][..],
        ),
        (
            "wardline-server",
            &[
                "wardline-proto",
                "wardline-crypto",
                "wardline-store",
                "wardline-store-sql",
                "wardline-core",
            ][..],
        ),
        (
            "wardline",
            &[
                "wardline-proto",
                "wardline-crypto",
                "wardline-store",
                "wardline-store-sql",
                "wardline-core",
                "wardline-server",
                "wardline-client",
            ][..],
        ),
    ])
}

/// The `[dependencies]` table's crate names of a Cargo.toml.
fn normal_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in manifest.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l == "[dependencies]";
            continue;
        }
        if inside && !l.is_empty() && !l.starts_with('#') {
            let name = l.split(['=', '.', ' ']).next().unwrap_or_default();
            out.insert(name.to_owned());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n == "node_modules" || n == "target")
            {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn crates_depend_only_on_layers_below_them() {
    let root = workspace();
    let mut problems = Vec::new();
    for (krate, may) in allowed() {
        let manifest = std::fs::read_to_string(root.join("crates").join(krate).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{krate}: {e}"));
        for dep in normal_dependencies(&manifest) {
            if dep.starts_with("wardline") && !may.contains(&dep.as_str()) {
                problems.push(format!("{krate} depends on {dep}"));
            }
        }
        if krate != "wardline-store-sql"
            && normal_dependencies(&manifest).contains("sqlx")
            && !(krate == "wardline-store"
                && manifest.contains("sqlx = { workspace = true, optional = true }"))
        {
            problems.push(format!(
                "{krate} depends on sqlx (only the storage engine may)"
            ));
        }
    }
    // Every crate of the workspace is in the table: a new crate gets a place.
    for e in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !allowed().contains_key(name.as_str()) {
            problems.push(format!(
                "{name} has no place in the layering (tidy.rs, ARCHITECTURE.md)"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn only_the_storage_engine_names_sqlx() {
    let root = workspace();
    let mut files = Vec::new();
    for krate in allowed().keys() {
        rust_files(&root.join("crates").join(krate).join("src"), &mut files);
    }
    rust_files(&root.join("bench/src"), &mut files);
    let engine = root.join("crates/wardline-store-sql");
    let trait_crate_lib = root.join("crates/wardline-store/src/lib.rs");
    let mut offenders = Vec::new();
    for f in &files {
        if f.starts_with(&engine) {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if !line.contains("sqlx") {
                continue;
            }
            // The trait crate converts the engine's errors behind its `sqlx`
            // feature (the only mention allowed outside the engine).
            if *f == trait_crate_lib {
                continue;
            }
            offenders.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
        }
    }
    assert!(
        offenders.is_empty(),
        "sqlx outside the storage engine:\n  {}",
        offenders.join("\n  ")
    );
    let lib = std::fs::read_to_string(&trait_crate_lib).unwrap();
    let gated = lib
        .split("#[cfg(feature = \"sqlx\")]")
        .nth(1)
        .unwrap_or_default();
    assert_eq!(
        lib.matches("sqlx::").count(),
        gated
            .split("\n}\n")
            .next()
            .unwrap_or_default()
            .matches("sqlx::")
            .count(),
        "wardline-store names sqlx outside its feature-gated conversion"
    );
}

#[test]
fn every_source_file_opens_with_a_module_doc_comment() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["crates", "bench/src", "xtask/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 100, "the sources were found: {}", files.len());
    let undocumented: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("#!["))
                .unwrap_or_default();
            !first.starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        undocumented.is_empty(),
        "files without a module doc comment (`//! what lives here`):\n  {}",
        undocumented.join("\n  ")
    );
}

/// `crate::<module>` imports between a crate's top-level modules (a file of a
/// folder counts for its folder, so a domain's files may use each other;
/// comments and `#[cfg(test)] mod tests` are left out).
fn import_graph(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("crates").join(krate).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let node = rel
            .with_extension("")
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if matches!(node.as_str(), "lib" | "main") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let deps = graph.entry(node.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != node {
                deps.insert(name);
            }
        }
    }
    graph
}

/// Modules on some import circle: those that reach themselves.
fn modules_in_circles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = graph
            .get(from)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        while let Some(m) = todo.pop() {
            if seen.insert(m.to_owned()) {
                todo.extend(graph.get(m).into_iter().flatten().map(String::as_str));
            }
        }
        seen
    };
    graph
        .keys()
        .filter(|m| reaches(m).contains(*m))
        .cloned()
        .collect()
}

/// Dependencies run one way inside every crate too: no top-level module
/// reaches itself through `crate::` imports. (The domains used to import each
/// other's policy rules and services in a circle; the rules now live in
/// `wardline_core::policy`, below every service.)
#[test]
fn no_import_circles_between_the_modules_of_a_crate() {
    let core = import_graph("wardline-core");
    assert!(core.len() > 15, "the modules were read: {}", core.len());
    assert!(
        core["messaging"].contains("policy") && core["routing"].contains("messaging"),
        "the graph sees imports: {core:?}"
    );
    let mut circles = Vec::new();
    for krate in allowed().keys() {
        let graph = import_graph(krate);
        for m in modules_in_circles(&graph) {
            circles.push(format!("{krate}: {m} -> {:?}", graph[&m]));
        }
    }
    assert!(
        circles.is_empty(),
        "modules in an import circle:\n  {}",
        circles.join("\n  ")
    );
}

/// The domain crate knows nothing of HTTP: entry points sit above it.
#[test]
fn the_domain_crate_has_no_http() {
    let manifest =
        std::fs::read_to_string(workspace().join("crates/wardline-core/Cargo.toml")).unwrap();
    let deps = normal_dependencies(&manifest);
    for http in [
        "axum",
        "axum-server",
        "tower",
        "tower-http",
        "utoipa-axum",
        "hyper",
    ] {
        assert!(!deps.contains(http), "wardline-core depends on {http}");
    }
}
