//! The OpenAPI 3.0 document served at `/openapi.json`: `docs/openapi.json`, compacted by the
//! build script and embedded. That file is generated from the route table (`generate`, a
//! test): every route carries its [`Doc`](super::Doc) (query type, body type, answer type,
//! errors), and the schemas are derived from those Rust types (`schemars`), the same types
//! the handlers extract and answer with. The test fails when the committed document differs
//! from what the routes generate (`UPDATE_GOLDEN=1 cargo test -p podsignal-agent --bin
//! podsignal openapi` rewrites it), so the document cannot list a route that is not served,
//! nor describe a shape the handler does not use. Generating it in a test rather than at run
//! time keeps `schemars` out of the binary. CI checks it with `openapi-spec-validator` and
//! fuzzes the API with schemathesis against it (`tests/api/run.sh`).

#[cfg(test)]
mod generate;

/// The document, compact JSON.
pub const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::generate;

    fn committed_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
    }

    #[test]
    fn openapi_document_is_the_one_the_routes_generate() {
        let generated = generate::document();
        let path = committed_path();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let mut text = serde_json::to_string_pretty(generated).expect("serialize");
            text.push('\n');
            std::fs::write(&path, text).expect("write docs/openapi.json");
        }
        let committed: Value = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("{}: {e}: UPDATE_GOLDEN=1 writes it", path.display()));
        assert!(
            &committed == generated,
            "docs/openapi.json is out of date with the routes: rerun with UPDATE_GOLDEN=1 \
             cargo test -p podsignal-agent --bin podsignal openapi"
        );
    }

    #[test]
    fn the_served_document_is_the_generated_one_byte_for_byte() {
        // As serde_json writes the generated value: the same keys in the same order.
        let generated = serde_json::to_string(generate::document()).expect("serialize");
        assert!(
            super::DOCUMENT == generated,
            "the embedded document differs from the generated one: rerun with UPDATE_GOLDEN=1 \
             cargo test -p podsignal-agent --bin podsignal openapi, then build again"
        );
    }
}
