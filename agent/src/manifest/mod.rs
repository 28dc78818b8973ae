//! Kubernetes manifests as generic documents, for `inject` and `lint`.
//!
//! A document is kept as a [`serde_json::Value`] in its original key order, so every field
//! podsignal does not touch, including fields newer than any Kubernetes version, comes out as
//! it went in. Comments and anchors do not survive (anchors are expanded).
//!
//! - this file: reading inputs (files, directories, stdin; multi-document YAML or JSON) and
//!   writing documents back as YAML;
//! - `workload`: where the pod templates are in a document (Pod, Deployment, ..., List).

mod emit;
mod workload;
mod yaml;

pub use workload::{Workload, workloads};

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One document of the input, with where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// `FILE#N` (N counts from 1), or `stdin#N`: how messages name the document.
    pub origin: String,
    /// The document.
    pub value: Value,
}

/// Why the input cannot be read. Every message names the file or document.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file or directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not YAML (or JSON).
    #[error("{path}: not valid YAML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, on one line.
        message: String,
    },
    /// A document is not a Kubernetes object.
    #[error("{origin}: not a Kubernetes object: {why}")]
    NotAnObject {
        /// `FILE#N`.
        origin: String,
        /// What is missing.
        why: String,
    },
}

/// Reads every document of `inputs`: files, directories (their `*.yaml`, `*.yml` and
/// `*.json` files, sorted, not recursive, like `kubectl apply -f DIR`) and `-` for stdin;
/// no input at all means stdin (the way a Helm `--post-renderer` is called).
pub fn read_inputs(inputs: &[PathBuf]) -> Result<Vec<Document>, InputError> {
    let stdin = [PathBuf::from("-")];
    let inputs = if inputs.is_empty() {
        &stdin[..]
    } else {
        inputs
    };
    let mut documents = Vec::new();
    for input in inputs {
        for file in expand(input)? {
            let (name, text) = read_text(&file)?;
            documents.extend(parse(&name, &text)?);
        }
    }
    Ok(documents)
}

/// The files an input stands for.
fn expand(input: &Path) -> Result<Vec<PathBuf>, InputError> {
    if input.as_os_str() == "-" || !input.is_dir() {
        return Ok(vec![input.to_path_buf()]);
    }
    let error = |source| InputError::Read {
        path: input.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(input).map_err(error)? {
        let path = entry.map_err(error)?.path();
        let manifest = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if manifest && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The most read from one input: manifests are kilobytes; `/dev/zero` is not one.
const MAX_INPUT: u64 = 64 << 20;

fn read_text(file: &Path) -> Result<(String, String), InputError> {
    let name = if file.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        file.display().to_string()
    };
    let error = |source| InputError::Read {
        path: name.clone(),
        source,
    };
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_INPUT + 1).read_to_end(&mut bytes))
    }
    .map_err(error)?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(InputError::Syntax {
            path: name,
            message: format!("over {} MiB: not a manifest", MAX_INPUT >> 20),
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| InputError::Syntax {
        path: name.clone(),
        message: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
    })?;
    Ok((name, text))
}

/// The documents of one file's text. Empty documents (only comments, or `---` alone) are
/// skipped; anything else must be a mapping with `apiVersion` and `kind`.
pub fn parse(name: &str, text: &str) -> Result<Vec<Document>, InputError> {
    let values = yaml::load(text).map_err(|e| InputError::Syntax {
        path: name.to_string(),
        message: one_line(&e),
    })?;
    values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(i, value)| {
            let origin = format!("{name}#{}", i + 1);
            check_object(&origin, &value)?;
            Ok(Document { origin, value })
        })
        .collect()
}

fn check_object(origin: &str, value: &Value) -> Result<(), InputError> {
    let why = match value {
        Value::Object(o) => match (o.get("apiVersion"), o.get("kind")) {
            (Some(Value::String(_)), Some(Value::String(_))) => return Ok(()),
            (_, Some(Value::String(_))) => "no apiVersion",
            _ => "no kind",
        },
        Value::Array(_) => "a sequence, not a mapping",
        _ => "a scalar, not a mapping",
    };
    Err(InputError::NotAnObject {
        origin: origin.to_string(),
        why: why.to_string(),
    })
}

/// Parser messages can span lines (a snippet of the input): keep them on one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A message about a manifest, safe to print on one line: names and keys come from the
/// input, and a newline or a terminal escape in them must not reach stderr as such.
pub fn printable(message: &str) -> String {
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The documents as one YAML stream, `---` between them.
pub fn to_yaml(documents: &[Value]) -> String {
    let mut out = String::new();
    for (i, doc) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        emit::document(doc, &mut out);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_their_key_order_and_unknown_fields() {
        let text = "kind: Pod\napiVersion: v1\nmetadata: {name: a}\nspec:\n  zNewField: {x: 1}\n  containers: []\n";
        let docs = parse("a.yaml", text).expect("parses");
        let out = to_yaml(&[docs[0].value.clone()]);
        assert_eq!(
            out,
            "kind: Pod\napiVersion: v1\nmetadata:\n  name: a\nspec:\n  zNewField:\n    x: 1\n  containers: []\n"
        );
    }

    #[test]
    fn strings_that_look_like_other_types_stay_strings() {
        let text = "apiVersion: v1\nkind: ConfigMap\ndata: {a: \"yes\", b: \"0755\", c: \"1e3\", d: \"null\", e: \"on\"}\n";
        let docs = parse("c.yaml", text).expect("parses");
        let again = parse("again", &to_yaml(&[docs[0].value.clone()])).expect("re-parses");
        assert_eq!(docs[0].value, again[0].value);
    }

    #[test]
    fn empty_documents_are_skipped_and_origins_count_the_rest() {
        let text =
            "# only a comment\n---\napiVersion: v1\nkind: A\n---\n---\napiVersion: v1\nkind: B\n";
        let docs = parse("m.yaml", text).expect("parses");
        let origins: Vec<_> = docs.iter().map(|d| d.origin.as_str()).collect();
        assert_eq!(origins, ["m.yaml#1", "m.yaml#2"]);
    }

    #[test]
    fn bad_input_is_named() {
        let e = parse("bad.yaml", "a: [1, 2\n").expect_err("unclosed");
        assert!(
            e.to_string().starts_with("bad.yaml: not valid YAML: "),
            "{e}"
        );
        assert!(!e.to_string().contains('\n'), "{e}");
        let e = parse("s.yaml", "just a string\n").expect_err("scalar");
        assert_eq!(
            e.to_string(),
            "s.yaml#1: not a Kubernetes object: a scalar, not a mapping"
        );
        let e = parse("k.yaml", "apiVersion: v1\nmetadata: {}\n").expect_err("no kind");
        assert_eq!(e.to_string(), "k.yaml#1: not a Kubernetes object: no kind");
    }
}
