//! Generating the OpenAPI document from the route table (a test: the binary serves the
//! committed result, see the parent module). Every route carries its [`Doc`] (query type,
//! body type, answer type, errors), and the schemas are derived from those Rust types
//! (`schemars`), the same types the handlers extract and answer with.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::http::{Answer, Doc, SchemaFn, routes, schema};

const JSON: &str = "application/json";

/// Statuses every route may answer (errors of the guards, the limits, the directory).
const COMMON_ERRORS: [u16; 6] = [400, 401, 403, 409, 421, 503];

fn status_text(code: u16) -> &'static str {
    match code {
        304 => "Not modified: the status is still the one If-None-Match names.",
        400 => "A bad name, parameter, body or Host.",
        401 => "Missing or wrong bearer token.",
        403 => "A browser request (Origin header).",
        404 => "No such lease or hold.",
        408 => "The wait ran out; pending says what is missing.",
        409 => {
            "Held by someone else (lock_busy), the phase would move back, a request with the same Idempotency-Key is in progress (conflict), or a file in the shared directory is hostile or broken (bad_file)."
        }
        410 => "The events asked for were rotated away (events_rotated).",
        413 => "The body is over --max-body, or the record it would write over 64 KiB.",
        415 => "The body is not application/json.",
        421 => "Host is not loopback.",
        503 => {
            "Shutting down, --max-waiters or --max-streams reached, the directory failed its self-test, or the shared directory cannot be written (storage)."
        }
        _ => "Error.",
    }
}

/// The document, built once.
pub(super) fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// `schema` made by `g`, with `g`'s transforms applied (the OpenAPI 3.0 rewrites; a schema
/// used in place, not through a reference, does not get them otherwise).
fn transformed(g: &mut SchemaGenerator, schema: SchemaFn) -> Value {
    let mut s = schema(g);
    for t in g.transforms_mut() {
        t.transform(&mut s);
    }
    s.to_value()
}

/// OpenAPI 3.0 schemas, with integer ranges spelled out.
fn settings() -> SchemaSettings {
    SchemaSettings::openapi3().with_transform(RecursiveTransform(integer_bounds))
}

/// Gives an integer with a `format` (`uint32`, `int64`, ...) the `minimum` and `maximum` of
/// its Rust type: a client (or schemathesis) reading only the schema would otherwise send a
/// `version` of 2^40 that the server must refuse.
fn integer_bounds(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let (min, max) = match object.get("format").and_then(Value::as_str) {
        Some("uint8") => (json!(0), json!(u8::MAX)),
        Some("uint16") => (json!(0), json!(u16::MAX)),
        Some("uint32") => (json!(0), json!(u32::MAX)),
        Some("uint64" | "uint") => (json!(0), json!(u64::MAX)),
        Some("int8") => (json!(i8::MIN), json!(i8::MAX)),
        Some("int16") => (json!(i16::MIN), json!(i16::MAX)),
        Some("int32") => (json!(i32::MIN), json!(i32::MAX)),
        Some("int64" | "int") => (json!(i64::MIN), json!(i64::MAX)),
        _ => return,
    };
    object.entry("minimum").or_insert(min);
    object.entry("maximum").or_insert(max);
}

fn build() -> Value {
    let mut generator = SchemaGenerator::new(settings());
    let error = transformed(&mut generator, schema::<podsignal_proto::api::ErrorBody>);
    let mut paths = Map::new();
    for (method, path, doc) in routes().table {
        let op = operation(&mut generator, method, path, &doc, &error);
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = op;
    }
    let schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "podsignal agent",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Coordinate the containers of a Pod over HTTP: readiness, locks with fencing tokens, leader election, lifecycle events and the pod phase. See docs/http-api.md."
        },
        "paths": paths,
        "components": { "schemas": schemas },
    })
}

fn operation(g: &mut SchemaGenerator, method: &str, path: &str, doc: &Doc, error: &Value) -> Value {
    let mut params = Vec::new();
    if path.contains("{name}") {
        params.push(json!({
            "name": "name",
            "in": "path",
            "required": true,
            "schema": transformed(g, schema::<podsignal_proto::Name>),
        }));
    }
    if let Some(query) = doc.query {
        params.extend(query_params(g, query));
    }
    let mut responses = Map::new();
    let (code, ok) = match doc.ok {
        Answer::Json(code, schema) => (
            code,
            json!({ "description": "Success.", "content": { JSON: { "schema": transformed(g, schema) } } }),
        ),
        Answer::NoContent => (204, json!({ "description": "Done." })),
        Answer::Stream(media, what) => (
            200,
            json!({ "description": what, "content": { media: { "schema": { "type": "string" } } } }),
        ),
        Answer::Text => (
            200,
            json!({ "description": "Success.", "content": { "text/plain": { "schema": { "type": "string" } } } }),
        ),
        Answer::File(media) => (
            200,
            json!({ "description": "The file.", "content": { media: { "schema": { "type": "string" } } } }),
        ),
    };
    let mut ok = ok;
    if !doc.links.is_empty() {
        let links: Map<String, Value> = doc
            .links
            .iter()
            .map(|(to_method, suffix, field)| {
                let to = operation_id(to_method, &format!("{path}{suffix}"));
                let link = json!({
                    "operationId": to,
                    "parameters": {
                        "name": "$request.path.name",
                        *field: format!("$response.body#/{field}"),
                    },
                });
                (to, link)
            })
            .collect();
        ok["links"] = Value::Object(links);
    }
    responses.insert(code.to_string(), ok);
    for e in doc.errors.iter().chain(&COMMON_ERRORS) {
        let answer = match e {
            // A 304 has no body.
            304 => json!({ "description": status_text(*e) }),
            _ => {
                json!({ "description": status_text(*e), "content": { JSON: { "schema": error } } })
            }
        };
        responses.insert(e.to_string(), answer);
    }
    let mut op = json!({
        "summary": doc.summary,
        "operationId": operation_id(method, path),
        "parameters": params,
        "responses": responses,
    });
    if let Some((body, required)) = doc.body {
        op["requestBody"] = json!({
            "required": required,
            "content": { JSON: { "schema": transformed(g, body) } },
        });
    }
    op
}

/// The operation's id: `get_v1_locks__name_` for `GET /v1/locks/{name}`.
fn operation_id(method: &str, path: &str) -> String {
    format!("{method}{}", path.replace(['/', '{', '}', '.'], "_"))
}

/// The query string type's fields, each a parameter (its doc comment the description).
fn query_params(g: &mut SchemaGenerator, query: SchemaFn) -> Vec<Value> {
    // The query type's own schema, inlined: its properties are the parameters.
    let mut inline = SchemaGenerator::new(settings().with(|s| {
        s.inline_subschemas = true;
    }));
    let schema = transformed(&mut inline, query);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    let _ = g; // parameters are inlined: nothing goes to the shared components
    props
        .iter()
        .map(|(name, prop)| {
            let mut prop = prop.clone();
            let description = prop
                .as_object_mut()
                .and_then(|o| o.remove("description"))
                .unwrap_or(Value::Null);
            // A query parameter is absent or has a value; `null` means nothing here.
            if let Some(o) = prop.as_object_mut() {
                o.remove("nullable");
            }
            let mut p = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": prop,
            });
            if !description.is_null() {
                p["description"] = description;
            }
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_lists_exactly_the_routes_served() {
        let doc = document();
        let mut in_spec: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(|m| (m.clone(), p.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut served: Vec<(String, String)> = routes()
            .table
            .iter()
            .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        in_spec.sort();
        served.sort();
        assert_eq!(in_spec, served);
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        for (i, _) in text.match_indices("#/components/schemas/") {
            let rest = &text[i + "#/components/schemas/".len()..];
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "dangling reference to {name}");
        }
    }

    #[test]
    fn parameters_carry_their_patterns() {
        let doc = document();
        let params = doc["paths"]["/v1/readiness"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let wait = params.iter().find(|p| p["name"] == "wait").unwrap();
        assert_eq!(
            wait["schema"]["pattern"],
            podsignal_proto::duration::DURATION_PATTERN
        );
        assert!(wait["description"].as_str().unwrap().contains("Long-poll"));
        let name = &doc["paths"]["/v1/readiness/{name}"]["get"]["parameters"][0];
        assert_eq!(name["in"], "path");
    }

    #[test]
    fn integers_carry_the_range_of_their_type() {
        let schemas = &document()["components"]["schemas"];
        let version = &schemas["TombstoneRecord"]["properties"]["version"];
        assert_eq!(version["maximum"], u32::MAX, "{version}");
        assert_eq!(version["minimum"], 0, "{version}");
        let exit_code = &schemas["TombstoneRecord"]["properties"]["exit_code"];
        assert_eq!(exit_code["maximum"], 255, "{exit_code}");
    }

    #[test]
    fn every_link_names_an_operation() {
        let doc = document();
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|ops| ops.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().unwrap())
            .collect();
        let grant = &doc["paths"]["/v1/locks/{name}"]["post"]["responses"]["200"]["links"];
        assert!(grant.as_object().is_some_and(|l| l.len() == 2), "{grant}");
        for ops in doc["paths"].as_object().unwrap().values() {
            for op in ops.as_object().unwrap().values() {
                for response in op["responses"].as_object().unwrap().values() {
                    for link in response["links"]
                        .as_object()
                        .into_iter()
                        .flat_map(|l| l.values())
                    {
                        let to = link["operationId"].as_str().unwrap();
                        assert!(ids.contains(&to), "a link to {to}, not an operation");
                    }
                }
            }
        }
    }
}
