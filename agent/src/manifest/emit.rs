//! [`Value`]s to YAML text, block style, written so that kubectl reads back exactly the same
//! data: a string is plain only when no YAML 1.1 reader could take it for anything else
//! (a number, a boolean, null, a timestamp, a merge key, an indicator), multi-line strings
//! are literal blocks, everything else is double-quoted.

use serde_json::Value;

/// Appends `doc` as one YAML document (no `---`).
pub fn document(doc: &Value, out: &mut String) {
    match doc {
        Value::Object(map) if !map.is_empty() => mapping(map, 0, out),
        Value::Array(items) if !items.is_empty() => sequence(items, 0, out),
        scalar => {
            inline(scalar, 0, out);
            out.push('\n');
        }
    }
}

fn mapping(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            pad(indent, out);
        }
        string(key, indent, out);
        out.push(':');
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                pad(indent + 2, out);
                mapping(m, indent + 2, out);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                pad(indent, out);
                sequence(items, indent, out);
            }
            scalar => {
                out.push(' ');
                inline(scalar, indent + 2, out);
                out.push('\n');
            }
        }
    }
}

/// A sequence whose first `- ` goes where the cursor is; the next ones at `indent`.
fn sequence(items: &[Value], indent: usize, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            pad(indent, out);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => mapping(m, indent + 2, out),
            Value::Array(inner) if !inner.is_empty() => sequence(inner, indent + 2, out),
            scalar => {
                inline(scalar, indent + 2, out);
                out.push('\n');
            }
        }
    }
}

/// A scalar or an empty collection, on the current line (a literal block continues below,
/// indented to `indent`).
fn inline(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => string(s, indent, out),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn string(s: &str, indent: usize, out: &mut String) {
    if is_plain(s) {
        out.push_str(s);
    } else if literal_safe(s) {
        literal(s, indent, out);
    } else {
        quoted(s, out);
    }
}

/// Whether `s` reads back exactly as a literal block, in every reader: several lines (the
/// first not empty), all printable, none starting with a tab (go-yaml takes it for indentation) or made only of
/// blanks, the last not ending in one.
fn literal_safe(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with('\n')
        && s.chars().all(|c| c == '\n' || printable(c))
        && s.split('\n')
            .all(|line| !line.starts_with('\t') && (line.is_empty() || !line.trim().is_empty()))
        && !s.trim_end_matches('\n').ends_with([' ', '\t'])
}

/// `|` with chomping (`-` no final newline, `+` several) and an indentation indicator when
/// the text starts with a space.
fn literal(s: &str, indent: usize, out: &mut String) {
    out.push('|');
    if s.starts_with(' ') {
        out.push('2');
    }
    let body = s.trim_end_matches('\n');
    match s.len() - body.len() {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
        out.push('\n');
        if !line.is_empty() {
            pad(indent, out);
            out.push_str(line);
        }
    }
}

fn quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if printable(c) => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('"');
}

/// YAML's printable characters (c-printable), tab excluded, BOM excluded.
fn printable(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && c != '\u{feff}'
}

/// Whether `s` can be written without quotes and read back as this very string by any YAML
/// 1.1 or 1.2 reader.
fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let last = s.chars().last().unwrap_or(first);
    if first.is_whitespace() || last.is_whitespace() || last == ':' {
        return false;
    }
    if !s.chars().all(|c| printable(c) && c != '\u{85}') {
        return false;
    }
    // Indicators that start something else; `-` only as `- `, `--flag` is plain.
    let second = s.chars().nth(1);
    let indicator = match first {
        '-' | '?' | ':' => second.is_none_or(|c| c == ' '),
        '[' | ']' | '{' | '}' | ',' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
        | '@' | '`' | '=' | '<' => true,
        _ => false,
    };
    if indicator || s.contains(": ") || s.contains(" #") {
        return false;
    }
    if super::yaml::resolves(s) {
        return false;
    }
    // Anything a number parser might still take (hex floats, timestamps, versions like
    // 1.2.3 that some readers try): quoted, to be sure.
    let numeric_start = first.is_ascii_digit()
        || (matches!(first, '+' | '-' | '.')
            && second.is_some_and(|c| c.is_ascii_digit() || c == '.'));
    let numeric_chars = s.chars().all(|c| {
        c.is_ascii_hexdigit()
            || matches!(
                c,
                '.' | '_'
                    | '+'
                    | '-'
                    | ':'
                    | 'x'
                    | 'X'
                    | 'o'
                    | 'O'
                    | 'p'
                    | 'P'
                    | 'T'
                    | 't'
                    | 'Z'
                    | 'z'
                    | ' '
            )
    });
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        ".inf" | "+.inf" | "-.inf" | ".nan"
    );
    !(special || numeric_start && numeric_chars)
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(v: &Value) -> String {
        let mut out = String::new();
        document(v, &mut out);
        out
    }

    #[test]
    fn block_style_like_kubectl_writes_it() {
        let v = json!({"a": {"b": [1, {"c": "x", "d": []}, ["z"]], "e": {}}, "f": "--name=app", "g": "10m"});
        assert_eq!(
            yaml(&v),
            "a:\n  b:\n  - 1\n  - c: x\n    d: []\n  - - z\n  e: {}\nf: --name=app\ng: 10m\n"
        );
    }

    #[test]
    fn ambiguous_strings_are_quoted_and_text_blocks_are_literal() {
        let v = json!([
            "on",
            "y",
            "0755",
            "1.2.3",
            "2001-12-14",
            "- x",
            "a: b",
            "",
            " x",
            "<<",
            "é",
            "tab\tx",
            "x\u{7}"
        ]);
        assert_eq!(
            yaml(&v),
            "- \"on\"\n- \"y\"\n- \"0755\"\n- \"1.2.3\"\n- \"2001-12-14\"\n- \"- x\"\n- \"a: b\"\n- \"\"\n- \" x\"\n- \"<<\"\n- é\n- \"tab\\tx\"\n- \"x\\x07\"\n"
        );
        let v = json!({"s": "one\n  two\n", "t": " lead\nx", "u": "a\n\n"});
        assert_eq!(
            yaml(&v),
            "s: |\n  one\n    two\nt: |2-\n   lead\n  x\nu: |+\n  a\n\n"
        );
    }
}
