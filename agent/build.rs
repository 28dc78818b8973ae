//! Compacts `docs/openapi.json` (the OpenAPI document, pretty-printed for review and
//! generated from the route table by a test: see `src/http/openapi.rs`) into
//! `$OUT_DIR/openapi.json`, which the agent embeds and serves at `/openapi.json`.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let source = manifest.join("../docs/openapi.json");
    println!("cargo::rerun-if-changed={}", source.display());
    let text = std::fs::read_to_string(&source).unwrap_or_else(|e| {
        // Missing, the agent still builds (serving `{}`), so that the test that writes it
        // can run: `UPDATE_GOLDEN=1 cargo test -p podsignal-agent --bin podsignal openapi`.
        println!("cargo::warning=cannot read {}: {e}", source.display());
        "{}".to_owned()
    });
    // serde_json with `preserve_order`: the keys keep the document's order.
    let document: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", source.display()));
    let out =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("openapi.json");
    std::fs::write(&out, document.to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
