//! YAML text to [`Value`]s: the events of `granit-parser` (the parser serde-saphyr uses)
//! folded into documents, with scalars read the way kubectl reads them, anchors and
//! aliases (expanded, with a bound so an alias bomb cannot eat the memory), merge keys (`<<`),
//! and duplicate keys refused. Our own loader rather than serde-saphyr's deserializer, whose
//! error snippets and text-encoding tables would cost the binary about a megabyte.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};

/// At most this much memory is built from one document, aliases expanded: [`VALUE_COST`]
/// per value plus the bytes of its text. A manifest is kilobytes; an alias bomb (a billion
/// laughs, or an anchored megabyte repeated) stops here.
const MAX_WEIGHT: usize = 128 << 20;

/// About what a value costs in memory, beyond its text.
const VALUE_COST: usize = 64;

/// Every document of `text` (empty ones included, as `Null`); `Err` is one line.
pub fn load(text: &str) -> Result<Vec<Value>, String> {
    let mut loader = Loader::default();
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| e.to_string())?;
        let at = |m: String| format!("{m} at line {}", span.start.line());
        loader.event(event).map_err(at)?;
    }
    Ok(loader.documents)
}

/// A collection being built.
enum Open {
    Sequence {
        items: Vec<Value>,
        anchor: usize,
    },
    Mapping {
        map: Map<String, Value>,
        key: Option<String>,
        anchor: usize,
        /// Keys that came from a merge (`<<`): an explicit key may replace them.
        merged: Vec<String>,
    },
}

#[derive(Default)]
struct Loader {
    documents: Vec<Value>,
    stack: Vec<Open>,
    anchors: HashMap<usize, Value>,
    /// What the current document has cost so far ([`MAX_WEIGHT`]).
    weight: usize,
    in_document: bool,
}

impl Loader {
    fn event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::DocumentStart(..) => {
                // Anchors and the budget are per document.
                self.in_document = true;
                self.anchors.clear();
                self.weight = 0;
            }
            Event::DocumentEnd => {
                if self.in_document && self.documents.len() < self.started() {
                    self.documents.push(Value::Null);
                }
                self.in_document = false;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(&text, style, tag.as_deref())?;
                self.finish(value, anchor)?;
            }
            Event::SequenceStart(_, anchor, _) => self.stack.push(Open::Sequence {
                items: Vec::new(),
                anchor,
            }),
            Event::MappingStart(_, anchor, _) => self.stack.push(Open::Mapping {
                map: Map::new(),
                key: None,
                anchor,
                merged: Vec::new(),
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Open::Sequence { items, anchor }) => (Value::Array(items), anchor),
                    Some(Open::Mapping { map, anchor, .. }) => (Value::Object(map), anchor),
                    None => return Err("unbalanced collection".into()),
                };
                self.finish(value, anchor)?;
            }
            Event::Alias(id) => {
                // Charged before it is copied: a bomb stops before the memory is spent.
                let cost = weight(
                    self.anchors
                        .get(&id)
                        .ok_or("an alias to an unknown anchor")?,
                );
                self.charge(cost)?;
                let value = self.anchors.get(&id).cloned().unwrap_or_default();
                self.finish(value, 0)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn charge(&mut self, cost: usize) -> Result<(), String> {
        self.weight = self.weight.saturating_add(cost);
        if self.weight > MAX_WEIGHT {
            return Err(format!(
                "a document over {} MiB once its aliases are expanded (an alias bomb?)",
                MAX_WEIGHT >> 20
            ));
        }
        Ok(())
    }

    /// How many documents have started (the one open now included).
    fn started(&self) -> usize {
        self.documents.len() + usize::from(self.in_document && self.stack.is_empty())
    }

    /// A complete value: into its parent, or a document of its own.
    fn finish(&mut self, value: Value, anchor: usize) -> Result<(), String> {
        self.charge(match &value {
            Value::String(s) => VALUE_COST + s.len(),
            _ => VALUE_COST,
        })?;
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.documents.push(value);
                self.in_document = false;
            }
            Some(Open::Sequence { items, .. }) => items.push(value),
            Some(Open::Mapping {
                map, key, merged, ..
            }) => match key.take() {
                None => *key = Some(key_text(value)?),
                Some(k) if k == "<<" => merge(map, merged, value)?,
                Some(k) => {
                    if map.contains_key(&k) {
                        match merged.iter().position(|m| *m == k) {
                            Some(i) => drop(merged.swap_remove(i)),
                            None => return Err(format!("duplicate key {k:?}")),
                        }
                    }
                    map.insert(k, value);
                }
            },
        }
        Ok(())
    }
}

/// A mapping key: scalars only, as the text kubectl turns them into (sigs.k8s.io/yaml reads
/// an unquoted `on:` as the boolean true, then writes the key "true").
fn key_text(value: Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Null => Ok("null".into()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(match n.as_f64() {
            Some(f) if !(n.is_i64() || n.is_u64()) => f.to_string(),
            _ => n.to_string(),
        }),
        _ => Err("a mapping or sequence as a key".into()),
    }
}

/// `<<: *base` (or a list of them): keys not already present are added.
fn merge(
    map: &mut Map<String, Value>,
    merged: &mut Vec<String>,
    value: Value,
) -> Result<(), String> {
    let sources = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    for source in sources {
        let Value::Object(source) = source else {
            return Err("a merge key (<<) takes a mapping or a list of mappings".into());
        };
        for (k, v) in source {
            if !map.contains_key(&k) {
                merged.push(k.clone());
                map.insert(k, v);
            }
        }
    }
    Ok(())
}

/// What an alias of `value` costs: its values and the bytes of its text.
fn weight(value: &Value) -> usize {
    match value {
        Value::Array(a) => a
            .iter()
            .fold(VALUE_COST, |w, v| w.saturating_add(weight(v))),
        Value::Object(o) => o.iter().fold(VALUE_COST, |w, (k, v)| {
            w.saturating_add(k.len()).saturating_add(weight(v))
        }),
        Value::String(s) => VALUE_COST + s.len(),
        _ => VALUE_COST,
    }
}

/// A scalar: plain ones resolved as kubectl resolves them ([`resolve`]); quoted and block
/// scalars are always strings, as is anything tagged `!!str`.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if tag.is_some_and(|t| t.suffix_in_namespace("tag:yaml.org,2002:").as_deref() == Some("binary"))
    {
        return Err("a !!binary value (not supported: write it as a string)".into());
    }
    let core = tag.and_then(|t| t.is_yaml_core_schema().then(|| t.suffix().to_string()));
    match core.as_deref() {
        Some("str") => return Ok(Value::String(text.into())),
        Some(kind @ ("int" | "float" | "bool" | "null")) => {
            return resolve(text)
                .filter(|v| match kind {
                    "int" => v.is_i64() || v.is_u64(),
                    "float" => v.is_number(),
                    "bool" => v.is_boolean(),
                    _ => v.is_null(),
                })
                .ok_or_else(|| format!("{text:?} is not a !!{kind}"));
        }
        _ => {}
    }
    if style != ScalarStyle::Plain || tag.is_some() {
        return Ok(Value::String(text.into()));
    }
    Ok(resolve(text).unwrap_or_else(|| Value::String(text.into())))
}

/// Whether a plain scalar `text` would be read as something other than a string.
pub fn resolves(text: &str) -> bool {
    resolve(text).is_some()
}

/// A plain scalar as kubectl reads it (sigs.k8s.io/yaml, YAML 1.1 rules): `yes`/`on`/`y`
/// are booleans, `0755` is octal, `1_000` is a thousand. Reading them as kubectl does, and
/// writing them back unambiguously, keeps what a manifest means to the API server.
fn resolve(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Some(Value::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Some(Value::Bool(false));
        }
        _ => {}
    }
    // Only what starts like a number is tried as one (`_1` stays a string).
    if !text.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.')) {
        return None;
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, body) = match plain.as_bytes().first() {
        Some(b'-') => (true, &plain[1..]),
        Some(b'+') => (false, &plain[1..]),
        _ => (false, &plain[..]),
    };
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    let prefixed = |p: char| {
        body.strip_prefix('0')
            .and_then(|b| b.strip_prefix([p, p.to_ascii_uppercase()]))
    };
    let magnitude = if let Some(hex) = prefixed('x').filter(|d| digits(d, 16)) {
        Some(i128::from_str_radix(hex, 16).ok())
    } else if let Some(bin) = prefixed('b').filter(|d| digits(d, 2)) {
        Some(i128::from_str_radix(bin, 2).ok())
    } else if let Some(oct) = prefixed('o').filter(|d| digits(d, 8)) {
        Some(i128::from_str_radix(oct, 8).ok())
    } else if body.len() > 1 && body.starts_with('0') && digits(body, 8) {
        Some(i128::from_str_radix(&body[1..], 8).ok())
    } else if digits(body, 10) && !(body.len() > 1 && body.starts_with('0')) {
        Some(body.parse::<i128>().ok())
    } else {
        None
    };
    if let Some(m) = magnitude {
        let n = m.map(|m| if negative { -m } else { m });
        let int = n.and_then(|n| {
            i64::try_from(n)
                .map(Number::from)
                .or_else(|_| u64::try_from(n).map(Number::from))
                .ok()
        });
        // Past 64 bits kubectl's reader falls back to a float, and so do we.
        return int
            .or_else(|| plain.parse::<f64>().ok().and_then(Number::from_f64))
            .map(Value::Number);
    }
    let float_shaped = body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if float_shaped {
        return plain
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_schema_scalars() {
        let docs = load("a: [null, ~, true, False, 42, -7, 0x1f, 0o17, 1.5, 2e3, '1', \"true\", !!str 3, yes, on, No, 0755, 1_000, .5, 12345678901234567890, 09, 1.2.3, e5, '0755']\nb:\n").expect("loads");
        assert_eq!(
            docs,
            [
                json!({"a": [null, null, true, false, 42, -7, 31, 15, 1.5, 2000.0, "1", "true", "3", true, true, false, 493, 1000, 0.5, 12345678901234567890u64, 9.0, "1.2.3", "e5", "0755"], "b": null})
            ]
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys_are_expanded() {
        let docs =
            load("base: &b {x: 1, on: 2}\nuse: *b\nmerged:\n  <<: *b\n  on: 3\n").expect("loads");
        assert_eq!(
            docs,
            [
                json!({"base": {"x": 1, "true": 2}, "use": {"x": 1, "true": 2}, "merged": {"x": 1, "true": 3}})
            ]
        );
    }

    #[test]
    fn documents_including_empty_ones() {
        let docs = load("---\na: 1\n---\n# nothing\n---\n- x\n").expect("loads");
        assert_eq!(docs, [json!({"a": 1}), Value::Null, json!(["x"])]);
        assert_eq!(load("").expect("empty"), Vec::<Value>::new());
    }

    #[test]
    fn refusals_are_one_line_with_the_line_number() {
        let e = load("a: 1\na: 2\n").expect_err("duplicate");
        assert_eq!(e, "duplicate key \"a\" at line 2");
        assert!(load("a: [1, 2\n").is_err());
        assert!(load("a: *nope\n").is_err());
        assert!(
            load("a: !!binary aGVsbG8=\n")
                .expect_err("binary")
                .contains("!!binary")
        );
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
        match load(bomb) {
            Err(e) => assert!(e.contains("alias bomb"), "{e}"),
            Ok(_) => panic!("an alias bomb of 10^8 values was expanded"),
        }
        // Few values, but each a megabyte: the budget counts bytes too.
        let big = format!(
            "a: &a {}\nb: [{}]\n",
            "x".repeat(1 << 20),
            vec!["*a"; 100].join(", ")
        );
        match load(&big) {
            Err(e) => assert!(e.contains("alias bomb"), "{e}"),
            Ok(_) => panic!("100 MiB of aliased text was expanded"),
        }
    }
}

#[cfg(test)]
mod roundtrip {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn scalar_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(
                prop::sample::select(vec![" ", "\t", "\n", "a", "#", ":", "-", "|"]),
                0..10
            )
            .prop_map(|parts| parts.concat()),
            "[ -~]{0,12}",
            "[0-9_.xobeE+-]{1,8}",
            prop::sample::select(vec![
                "y",
                "n",
                "on",
                "off",
                "yes",
                "No",
                "~",
                "null",
                "0755",
                "0x1F",
                "0b101",
                "1_000",
                "1:20",
                ".inf",
                "-.nan",
                "<<",
                "- a",
                "a: b",
                "#",
                "'q'",
                "\"d\"",
                "@",
                "`",
                "%TAG",
                " lead",
                "trail ",
                "multi\nline",
                "tab\tx",
                "\u{7}",
                "é",
                "",
            ])
            .prop_map(String::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// What inject writes reads back as the same data: a string never turns into a
        /// number or a boolean on the way (the writer quotes what kubectl would resolve).
        #[test]
        fn written_strings_read_back_as_strings(s in scalar_text(), n in any::<i64>(), b in any::<bool>()) {
            let doc = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"s": s, "n": n, "b": b, "list": [s, n]}});
            let text = crate::manifest::to_yaml(std::slice::from_ref(&doc));
            let back = super::load(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            prop_assert_eq!(&back, &vec![doc], "{}", text);
            // A YAML 1.2 reader written by others agrees on every byte we write.
            let theirs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .map_err(|e| TestCaseError::fail(format!("serde-saphyr: {e}: {text}")))?;
            prop_assert_eq!(theirs, back, "{}", text);
        }
    }

    #[test]
    fn keys_are_written_and_read_as_names() {
        let doc: Value = json!({"on": 1, "y": 2, "0755": 3, "true": 4});
        let text = crate::manifest::to_yaml(std::slice::from_ref(&doc));
        assert_eq!(super::load(&text).expect("loads"), vec![doc]);
    }
}
