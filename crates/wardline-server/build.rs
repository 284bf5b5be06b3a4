//! Where the web app's built files are (`web/dist`), for rust-embed
//! (`routes/web_app.rs`), as a canonical path: given one with `..` in it
//! while the folder did not exist yet, rust-embed's debug mode refused
//! every file found there later (its path-escape check compares against
//! the uncanonicalised path), so a test binary compiled before `cargo xtask
//! web` kept answering "built without its web app".

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    // `web/` is in the repository, so it exists; `dist/` may not yet.
    let web = manifest
        .join("../../web")
        .canonicalize()
        .expect("the repository's web/ folder");
    let dist = web.join("dist");
    println!("cargo:rustc-env=WARDLINE_WEB_DIST={}", dist.display());
    println!("cargo:rerun-if-changed=build.rs");
    // A release build embeds the files: build again when they change (a
    // new build of the app always changes index.html, which names the
    // bundles by their hash). Debug builds read them at run time.
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!(
            "cargo:rerun-if-changed={}",
            dist.join("index.html").display()
        );
    }
}
