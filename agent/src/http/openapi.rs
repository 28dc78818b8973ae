//! The OpenAPI 3 document served at `/openapi.json`, built from [`OPERATIONS`]. A test
//! checks that [`OPERATIONS`] and the router's route table list exactly the same
//! (method, path) pairs, so the spec cannot drift from what is served.

use serde_json::{Value, json};

/// Where a parameter goes.
#[derive(Debug, Clone, Copy)]
enum In {
    Path,
    Query,
    Header,
}

/// One parameter: name, location, JSON type, required, description.
type Param = (&'static str, In, &'static str, bool, &'static str);

/// One operation of the API.
#[derive(Debug)]
pub struct Operation {
    /// Lower-case HTTP method.
    pub method: &'static str,
    /// Path template, `{name}` for the path parameter.
    pub path: &'static str,
    summary: &'static str,
    params: &'static [Param],
    /// Request body schema, if any.
    body: Option<&'static str>,
    /// Success status, media type and schema.
    ok: (u16, &'static str, &'static str),
    /// Error statuses it may answer with (besides 401, 403, 421, 503 that any route may).
    errors: &'static [u16],
}

const NAME: Param = (
    "name",
    In::Path,
    "string",
    true,
    "A name: lower-case letters, digits, '-', '_' and '.'.",
);
const WAIT: Param = (
    "wait",
    In::Query,
    "string",
    false,
    "Long-poll up to this long (500ms, 30s, 2m), capped by --max-wait; 408 when it runs out.",
);
const TTL: Param = (
    "ttl",
    In::Query,
    "string",
    false,
    "Lease time to live (default 30s, at most 1h).",
);
const LEASE: Param = (
    "lease",
    In::Query,
    "string",
    true,
    "The lease id from the grant.",
);
const KEY: Param = (
    "Idempotency-Key",
    In::Header,
    "string",
    false,
    "Retrying with the same key returns the same grant while its lease lives.",
);
const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

/// Every operation served.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "get",
        path: "/healthz",
        summary: "The process is alive.",
        params: &[],
        body: None,
        ok: (200, JSON, "Object"),
        errors: &[],
    },
    Operation {
        method: "get",
        path: "/readyz",
        summary: "The agent is ready: directory writable, flock self-test passed, watcher running.",
        params: &[],
        body: None,
        ok: (200, JSON, "Object"),
        errors: &[],
    },
    Operation {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics.",
        params: &[],
        body: None,
        ok: (200, "text/plain", "Text"),
        errors: &[],
    },
    Operation {
        method: "get",
        path: "/openapi.json",
        summary: "This document.",
        params: &[],
        body: None,
        ok: (200, JSON, "Object"),
        errors: &[],
    },
    Operation {
        method: "get",
        path: "/v1/status",
        summary: "Everything in the shared directory.",
        params: &[],
        body: None,
        ok: (200, JSON, "Status"),
        errors: &[],
    },
    Operation {
        method: "get",
        path: "/v1/readiness",
        summary: "List readiness records; with names and wait, long-poll until they are ready (or unready).",
        params: &[
            (
                "names",
                In::Query,
                "string",
                false,
                "Comma-separated names (required with wait).",
            ),
            ("mode", In::Query, "string", false, "all (default) or any."),
            (
                "state",
                In::Query,
                "string",
                false,
                "ready (default) or unready: what to wait for.",
            ),
            WAIT,
        ],
        body: None,
        ok: (200, JSON, "ReadinessList"),
        errors: &[400, 408],
    },
    Operation {
        method: "get",
        path: "/v1/readiness/{name}",
        summary: "One readiness record; with wait, long-poll until it is ready (or unready).",
        params: &[
            NAME,
            (
                "state",
                In::Query,
                "string",
                false,
                "ready (default) or unready.",
            ),
            WAIT,
        ],
        body: None,
        ok: (200, JSON, "Readiness"),
        errors: &[400, 408],
    },
    Operation {
        method: "put",
        path: "/v1/readiness/{name}",
        summary: "Set a sticky ready or unready record.",
        params: &[NAME],
        body: Some("SetReadiness"),
        ok: (200, JSON, "Readiness"),
        errors: &[400, 413, 415],
    },
    Operation {
        method: "post",
        path: "/v1/readiness/{name}/hold",
        summary: "Mark ready for as long as this response stays open (JSON lines: held, heartbeats).",
        params: &[NAME],
        body: Some("Reason"),
        ok: (200, NDJSON, "HoldMessage"),
        errors: &[400, 413],
    },
    Operation {
        method: "get",
        path: "/v1/locks",
        summary: "List locks.",
        params: &[],
        body: None,
        ok: (200, JSON, "LockStatusList"),
        errors: &[],
    },
    Operation {
        method: "get",
        path: "/v1/locks/{name}",
        summary: "A lock: held or not, last holder, last fencing token.",
        params: &[NAME],
        body: None,
        ok: (200, JSON, "LockStatus"),
        errors: &[400],
    },
    Operation {
        method: "post",
        path: "/v1/locks/{name}",
        summary: "Acquire a lock as a lease (try once, or wait); renew before ttl runs out.",
        params: &[NAME, WAIT, TTL, KEY],
        body: None,
        ok: (200, JSON, "Grant"),
        errors: &[400, 408, 409],
    },
    Operation {
        method: "delete",
        path: "/v1/locks/{name}",
        summary: "Release a lock lease.",
        params: &[NAME, LEASE],
        body: None,
        ok: (204, JSON, "Empty"),
        errors: &[400, 404],
    },
    Operation {
        method: "post",
        path: "/v1/locks/{name}/hold",
        summary: "Acquire a lock held for as long as this response stays open.",
        params: &[NAME, WAIT],
        body: None,
        ok: (200, NDJSON, "HoldMessage"),
        errors: &[400, 408, 409],
    },
    Operation {
        method: "post",
        path: "/v1/locks/{name}/renew",
        summary: "Renew a lock lease.",
        params: &[NAME, LEASE, TTL],
        body: None,
        ok: (200, JSON, "Grant"),
        errors: &[400, 404],
    },
    Operation {
        method: "get",
        path: "/v1/leaders",
        summary: "List leader campaigns.",
        params: &[],
        body: None,
        ok: (200, JSON, "LockStatusList"),
        errors: &[],
    },
    Operation {
        method: "get",
        path: "/v1/leaders/{name}",
        summary: "The current leader; with wait, long-poll until the leader's token differs from token.",
        params: &[
            NAME,
            WAIT,
            (
                "token",
                In::Query,
                "string",
                false,
                "The leader token you know, or none (default: the current one).",
            ),
        ],
        body: None,
        ok: (200, JSON, "LeaderView"),
        errors: &[400, 408],
    },
    Operation {
        method: "post",
        path: "/v1/leaders/{name}",
        summary: "Campaign as a lease (try once, or wait).",
        params: &[NAME, WAIT, TTL, KEY],
        body: None,
        ok: (200, JSON, "Grant"),
        errors: &[400, 408, 409],
    },
    Operation {
        method: "delete",
        path: "/v1/leaders/{name}",
        summary: "Resign a leadership lease.",
        params: &[NAME, LEASE],
        body: None,
        ok: (204, JSON, "Empty"),
        errors: &[400, 404],
    },
    Operation {
        method: "post",
        path: "/v1/leaders/{name}/hold",
        summary: "Campaign; lead for as long as this response stays open.",
        params: &[NAME, WAIT],
        body: None,
        ok: (200, NDJSON, "HoldMessage"),
        errors: &[400, 408, 409],
    },
    Operation {
        method: "post",
        path: "/v1/leaders/{name}/renew",
        summary: "Renew a leadership lease.",
        params: &[NAME, LEASE, TTL],
        body: None,
        ok: (200, JSON, "Grant"),
        errors: &[400, 404],
    },
    Operation {
        method: "get",
        path: "/v1/events",
        summary: "Events after since; with wait, long-poll while there are none.",
        params: &[
            (
                "since",
                In::Query,
                "integer",
                false,
                "After this seq (default 0: from the oldest kept).",
            ),
            (
                "limit",
                In::Query,
                "integer",
                false,
                "At most this many (default and maximum 10000).",
            ),
            (
                "strict",
                In::Query,
                "boolean",
                false,
                "410 if events after since were rotated away.",
            ),
            WAIT,
        ],
        body: None,
        ok: (200, JSON, "EventList"),
        errors: &[400, 410],
    },
    Operation {
        method: "post",
        path: "/v1/events",
        summary: "Publish an event.",
        params: &[],
        body: Some("Publish"),
        ok: (201, JSON, "Event"),
        errors: &[400, 413, 415],
    },
    Operation {
        method: "get",
        path: "/v1/events/stream",
        summary: "Server-Sent Events: one message per event, id = seq; resumes after Last-Event-ID.",
        params: &[
            (
                "since",
                In::Query,
                "integer",
                false,
                "After this seq (default: from now on).",
            ),
            (
                "kinds",
                In::Query,
                "string",
                false,
                "Only these kinds (comma-separated).",
            ),
            (
                "Last-Event-ID",
                In::Header,
                "integer",
                false,
                "Resume after this seq (takes precedence over since).",
            ),
        ],
        body: None,
        ok: (200, "text/event-stream", "Text"),
        errors: &[400],
    },
    Operation {
        method: "get",
        path: "/v1/phase",
        summary: "The pod phase; with wait and at_least, long-poll until it is reached.",
        params: &[
            WAIT,
            (
                "at_least",
                In::Query,
                "string",
                false,
                "starting, running, draining or stopping.",
            ),
        ],
        body: None,
        ok: (200, JSON, "PhaseView"),
        errors: &[400, 408],
    },
    Operation {
        method: "put",
        path: "/v1/phase",
        summary: "Set the pod phase (forward only unless force).",
        params: &[],
        body: Some("SetPhase"),
        ok: (200, JSON, "PhaseView"),
        errors: &[400, 409, 413, 415],
    },
    Operation {
        method: "get",
        path: "/v1/exits/{name}",
        summary: "The tombstone of run --name NAME (null if it has not exited); with wait, long-poll until it has (with code, that exit code).",
        params: &[
            NAME,
            WAIT,
            (
                "code",
                In::Query,
                "integer",
                false,
                "Wait for this exit code.",
            ),
        ],
        body: None,
        ok: (200, JSON, "ExitView"),
        errors: &[400, 408, 409],
    },
    Operation {
        method: "put",
        path: "/v1/exits/{name}",
        summary: "Write the tombstone of run --name NAME (run through --agent).",
        params: &[NAME],
        body: Some("Object"),
        ok: (200, JSON, "ExitView"),
        errors: &[400, 413, 415],
    },
    Operation {
        method: "delete",
        path: "/v1/exits/{name}",
        summary: "NAME starts: remove its tombstone and any stop request left from before.",
        params: &[NAME],
        body: None,
        ok: (204, JSON, "Empty"),
        errors: &[400],
    },
    Operation {
        method: "post",
        path: "/v1/stop/{name}",
        summary: "Ask the container running run --name NAME to stop.",
        params: &[NAME],
        body: Some("Reason"),
        ok: (201, JSON, "Object"),
        errors: &[400, 413, 415],
    },
    Operation {
        method: "delete",
        path: "/v1/stop/{name}",
        summary: "Take the stop request for NAME: wait for one, remove it and return it (run through --agent).",
        params: &[
            NAME,
            (
                "wait",
                In::Query,
                "string",
                true,
                "Wait up to this long (408 after).",
            ),
        ],
        body: None,
        ok: (200, JSON, "Object"),
        errors: &[400, 408],
    },
    Operation {
        method: "post",
        path: "/v1/shutdown",
        summary: "Set the phase to draining.",
        params: &[],
        body: Some("Reason"),
        ok: (200, JSON, "PhaseView"),
        errors: &[400],
    },
    Operation {
        method: "post",
        path: "/quitquitquit",
        summary: "Alias of POST /v1/shutdown (Envoy, scuttle).",
        params: &[],
        body: Some("Reason"),
        ok: (200, JSON, "PhaseView"),
        errors: &[400],
    },
];

fn status_text(code: u16) -> &'static str {
    match code {
        400 => "Bad request: bad name, bad JSON, bad parameter.",
        401 => "Missing or wrong bearer token.",
        403 => "A browser request (Origin header).",
        404 => "No such lease or hold.",
        408 => "The wait ran out; pending says what is missing.",
        409 => {
            "Held by someone else, the phase would move back, a request with the same Idempotency-Key is in progress (conflict), or a file in the shared directory is hostile or broken (bad_file)."
        }
        410 => "Events rotated away.",
        413 => "Body over --max-body, or the record it would write over 64 KiB.",
        415 => "Body is not application/json.",
        421 => "Host is not loopback.",
        503 => {
            "Shutting down, --max-waiters / --max-streams reached, or the shared directory cannot be written (storage)."
        }
        _ => "Error.",
    }
}

fn operation(op: &Operation) -> Value {
    let params: Vec<Value> = op
        .params
        .iter()
        .map(|(name, at, ty, required, description)| {
            let at = match at {
                In::Path => "path",
                In::Query => "query",
                In::Header => "header",
            };
            json!({ "name": name, "in": at, "required": required, "description": description, "schema": { "type": ty } })
        })
        .collect();
    let (code, media, schema) = op.ok;
    let mut responses = serde_json::Map::new();
    let ok = if code == 204 {
        json!({ "description": "Done." })
    } else {
        json!({ "description": "Success.", "content": { media: { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
    };
    responses.insert(code.to_string(), ok);
    for e in op.errors.iter().chain(&[401, 403, 421, 503]) {
        responses.insert(
            e.to_string(),
            json!({ "description": status_text(*e), "content": { JSON: { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
    }
    let mut o = json!({
        "summary": op.summary,
        "operationId": format!("{}{}", op.method, op.path.replace(['/', '{', '}', '.'], "_")),
        "parameters": params,
        "responses": responses,
    });
    if let Some(body) = op.body {
        o["requestBody"] = json!({ "required": false, "content": { JSON: { "schema": { "$ref": format!("#/components/schemas/{body}") } } } });
    }
    o
}

fn object(props: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": props, "required": required })
}

fn schemas() -> Value {
    let name = json!({ "type": "string" });
    let any = json!({ "type": "object" });
    let array = |item: &str| json!({ "type": "array", "items": { "$ref": format!("#/components/schemas/{item}") } });
    json!({
        "Object": any,
        "Empty": any,
        "Text": { "type": "string" },
        "Error": object(json!({ "error": { "type": "string" }, "message": { "type": "string" }, "name": name, "pending": { "type": "array", "items": { "type": "string" } }, "after_ms": { "type": "integer" }, "holder": { "type": "string" } }), &["error", "message"]),
        "Readiness": object(json!({ "name": name, "ready": { "type": "boolean" }, "why": { "type": "string" }, "holder_alive": { "type": "boolean" }, "record": any }), &["name", "ready", "why"]),
        "ReadinessList": array("Readiness"),
        "SetReadiness": object(json!({ "ready": { "type": "boolean" }, "reason": { "type": "string" }, "hold": { "type": "string" } }), &["ready"]),
        "Reason": object(json!({ "reason": { "type": "string" } }), &[]),
        "Grant": object(json!({ "name": name, "token": { "type": "integer" }, "lease": { "type": "string" }, "ttl_ms": { "type": "integer" }, "heartbeat_ms": { "type": "integer" }, "hold": { "type": "string" } }), &["name"]),
        "HoldMessage": object(json!({ "type": { "type": "string", "enum": ["held", "heartbeat", "released"] }, "name": name, "token": { "type": "integer" }, "reason": { "type": "string" } }), &["type"]),
        "LockStatus": object(json!({ "name": name, "held": { "type": "boolean" }, "holder": any, "last_token": { "type": "integer" }, "problem": { "type": "string" } }), &["name", "held", "last_token"]),
        "LockStatusList": array("LockStatus"),
        "ExitView": object(json!({ "name": name, "tombstone": any }), &["name"]),
        "LeaderView": object(json!({ "name": name, "held": { "type": "boolean" }, "holder": any, "last_token": { "type": "integer" }, "problem": { "type": "string" }, "leader": any }), &["name", "held", "last_token"]),
        "Event": object(json!({ "seq": { "type": "integer" }, "time_ms": { "type": "integer" }, "kind": name, "source": { "type": "string" }, "data": {} }), &["seq", "time_ms", "kind", "source"]),
        "EventList": array("Event"),
        "Publish": object(json!({ "kind": name, "data": {} }), &["kind"]),
        "PhaseView": object(json!({ "phase": { "type": "string" }, "record": any }), &["phase"]),
        "PhaseRecord": object(json!({ "phase": { "type": "string" }, "reason": { "type": "string" }, "writer": any, "updated_ms": { "type": "integer" } }), &["phase"]),
        "SetPhase": object(json!({ "phase": { "type": "string", "enum": ["starting", "running", "draining", "stopping"] }, "reason": { "type": "string" }, "force": { "type": "boolean" } }), &["phase"]),
        "Status": object(json!({ "dir": { "type": "string" }, "phase": any, "readiness": array("Readiness"), "locks": array("LockStatus"), "leaders": array("LockStatus"), "events": any, "problems": { "type": "array", "items": { "type": "string" } } }), &["dir"]),
    })
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for op in OPERATIONS {
        let entry = paths.entry(op.path).or_insert_with(|| json!({}));
        entry[op.method] = operation(op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "podsignal agent",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Coordinate the containers of a Pod over HTTP: readiness, locks with fencing tokens, leader election, lifecycle events and the pod phase. See docs/http-api.md."
        },
        "components": {
            "schemas": schemas(),
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "security": [ {}, { "bearer": [] } ],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn spec_lists_exactly_the_routes_served() {
        let served: BTreeSet<(String, String)> = super::super::routes()
            .table
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let documented: BTreeSet<(String, String)> = OPERATIONS
            .iter()
            .map(|o| (o.method.to_owned(), o.path.to_owned()))
            .collect();
        assert_eq!(
            served.len(),
            super::super::routes().table.len(),
            "a route is registered twice"
        );
        assert_eq!(
            documented.len(),
            OPERATIONS.len(),
            "an operation is documented twice"
        );
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "served but not in the spec: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "in the spec but not served: {unserved:?}"
        );
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(schemas.contains_key(&name), "dangling $ref to {name}");
        }
    }
}
