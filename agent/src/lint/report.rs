//! Findings as text: plain lines, a JSON array, or SARIF 2.1.0; and the rule list.

use serde_json::{Value, json};

use super::{Finding, RULES, severity_name};
use crate::cli::Severity;
use crate::manifest::printable;

/// The project's home, for SARIF's `informationUri` and each rule's `helpUri`.
const REPOSITORY: &str = "https://github.com/podsignal/podsignal";
/// The document with one section per rule, its anchor the rule id.
const DOCS: &str = "docs/patterns.md";

/// `docs/patterns.md#RULE`.
pub fn docs_link(id: &str) -> String {
    format!("{DOCS}#{id}")
}

fn help_uri(id: &str) -> String {
    format!("{REPOSITORY}/blob/main/{}", docs_link(id))
}

/// `SEVERITY RULE FILE#N Kind/name PATH: advice (docs/patterns.md#RULE)`, one per line:
/// control characters from the input (a newline or a terminal escape in a name) are
/// escaped, so one finding stays one line and nothing reaches the terminal as a command.
pub fn plain(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            let line = format!(
                "{} {} {} {} {}: {} ({})",
                severity_name(f.rule.severity),
                f.rule.id,
                f.document,
                f.object,
                f.path,
                f.message,
                docs_link(f.rule.id)
            );
            format!("{}\n", printable(&line))
        })
        .collect()
}

/// A file path as a relative URI reference (RFC 3986): every byte but the unreserved
/// characters and `/` percent-encoded, so `a b#c.yaml` is not read as a fragment.
fn uri(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One line: how many findings of each severity, in how many documents.
pub fn summary(findings: &[Finding], documents: usize) -> String {
    let count = |s: Severity| findings.iter().filter(|f| f.rule.severity == s).count();
    let docs = if documents == 1 {
        "1 document".to_string()
    } else {
        format!("{documents} documents")
    };
    if findings.is_empty() {
        return format!("podsignal lint: no findings in {docs}");
    }
    format!(
        "podsignal lint: {} finding{} ({} error, {} warning, {} info) in {docs}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    )
}

/// A JSON array: `{rule, severity, document, object, path, message, help}` per finding.
pub fn json(findings: &[Finding]) -> String {
    let items: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule.id,
                "severity": severity_name(f.rule.severity),
                "document": f.document,
                "object": f.object,
                "path": f.path,
                "message": f.message,
                "help": docs_link(f.rule.id),
            })
        })
        .collect();
    pretty(&Value::Array(items))
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Info => "note",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

/// A SARIF 2.1.0 log with one run: every rule in the driver, one result per finding.
pub fn sarif(findings: &[Finding]) -> String {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "shortDescription": {"text": r.summary},
                "helpUri": help_uri(r.id),
                "defaultConfiguration": {"level": sarif_level(r.severity)},
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule.id,
                "ruleIndex": RULES.iter().position(|r| r.id == f.rule.id),
                "level": sarif_level(f.rule.severity),
                "message": {"text": format!("{} ({})", f.message, docs_link(f.rule.id))},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(f.file())},
                        "region": {"startLine": 1},
                    },
                    "logicalLocations": [{
                        "fullyQualifiedName": format!("{} {} {}", f.document, f.object, f.path),
                    }],
                }],
            })
        })
        .collect();
    pretty(&json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "podsignal",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": REPOSITORY,
                "rules": rules,
            }},
            "results": results,
        }],
    }))
}

/// Every rule: `ID  SEVERITY  summary`, aligned.
pub fn rules_list() -> String {
    let width = RULES.iter().map(|r| r.id.len()).max().unwrap_or(0);
    RULES
        .iter()
        .map(|r| {
            format!(
                "{:width$}  {:7}  {}\n",
                r.id,
                severity_name(r.severity),
                r.summary
            )
        })
        .collect()
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_percent_encoded_but_keep_slashes() {
        assert_eq!(
            uri("robust/sarif uri#bad.yaml"),
            "robust/sarif%20uri%23bad.yaml"
        );
        assert_eq!(uri("tests/lint/a-b_c.~1.yaml"), "tests/lint/a-b_c.~1.yaml");
        assert_eq!(uri("é%?"), "%C3%A9%25%3F");
    }
}
