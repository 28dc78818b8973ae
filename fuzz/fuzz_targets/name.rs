//! Fuzzes name parsing (`Name::new` and its `FromStr`, `TryFrom<String>` and serde forms) and
//! the file names the layout builds from names.
//!
//! Properties checked on every input (bytes read as UTF-8, lossily):
//! - `Name::new` accepts exactly the grammar `[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?`, decided
//!   here by an independent byte-level matcher, and a refusal's variant says why (empty, too
//!   long, the first bad character, a bad first or last character).
//! - An accepted name round-trips: `Display` and `as_str` give the input back; `FromStr`,
//!   `TryFrom<String>` and JSON (de)serialization agree with `Name::new`; it is a safe file
//!   name (no `/`, not `.` or `..`, no leading `.`).
//! - Layout: a file name that `name_of_json_file`, `liveness_owner` or `temp_file_target`
//!   reads is the one the matching builder writes; a temporary file is never taken for a
//!   record; for an accepted name, every file name built from it is read back as its own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podsignal_proto::layout;
use podsignal_proto::name::{MAX_NAME_LEN, Name, NameError};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    check_name(s);
    check_layout(s);
});

fn is_edge(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_inner(b: u8) -> bool {
    is_edge(b) || matches!(b, b'.' | b'_' | b'-')
}

/// The grammar, written independently of `Name::new`.
fn in_grammar(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=MAX_NAME_LEN).contains(&b.len())
        && is_edge(b[0])
        && is_edge(b[b.len() - 1])
        && b.iter().all(|&c| is_inner(c))
}

fn check_name(s: &str) {
    let parsed = Name::new(s);
    assert_eq!(
        parsed.is_ok(),
        in_grammar(s),
        "Name::new({s:?}) = {parsed:?}"
    );
    assert_eq!(s.parse::<Name>(), parsed, "FromStr disagrees on {s:?}");
    assert_eq!(
        Name::try_from(s.to_owned()),
        parsed,
        "TryFrom<String> disagrees on {s:?}"
    );
    let json = serde_json::Value::String(s.to_owned());
    let from_json = serde_json::from_value::<Name>(json.clone());
    assert_eq!(
        from_json.is_ok(),
        parsed.is_ok(),
        "JSON disagrees on {s:?}: {from_json:?}"
    );
    match parsed {
        Ok(n) => {
            assert_eq!(n.as_str(), s);
            assert_eq!(n.to_string(), s);
            assert_eq!(AsRef::<str>::as_ref(&n), s);
            assert_eq!(String::from(n.clone()), s);
            assert_eq!(from_json.ok().as_ref(), Some(&n));
            assert_eq!(serde_json::to_value(&n).ok(), Some(json));
            assert!(!s.contains('/') && !s.starts_with('.') && s != "." && s != "..");
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(shown.starts_with("invalid name"), "{shown}");
            check_refusal(s, &e);
        }
    }
}

/// The variant says why `s` was refused, and names `s`.
fn check_refusal(s: &str, e: &NameError) {
    let first_bad = s.chars().find(|c| !c.is_ascii() || !is_inner(*c as u8));
    match e {
        NameError::Empty => assert!(s.is_empty()),
        NameError::TooLong { name, len } => {
            assert_eq!(*len, s.len());
            assert!(*len > MAX_NAME_LEN);
            assert_eq!(*name, s.chars().take(MAX_NAME_LEN + 3).collect::<String>());
        }
        NameError::BadChar { name, ch } => {
            assert!(!s.is_empty() && s.len() <= MAX_NAME_LEN);
            assert_eq!(name, s);
            assert_eq!(
                Some(*ch),
                first_bad,
                "BadChar names the first bad character"
            );
        }
        NameError::BadEdge { name } => {
            assert!(!s.is_empty() && s.len() <= MAX_NAME_LEN);
            assert_eq!(name, s);
            assert_eq!(first_bad, None, "BadEdge with a bad character inside");
        }
    }
}

const ID: &str = "0123456789abcdef";

fn check_layout(s: &str) {
    if let Some(n) = layout::name_of_json_file(s) {
        assert_eq!(layout::readiness_file(&n), s);
        assert_eq!(layout::exit_file(&n), s);
        assert_eq!(layout::stop_file(&n), s);
        assert!(!s.ends_with(".holder.json"));
    }
    if let Some(n) = layout::liveness_owner(s) {
        let id = layout::liveness_id_of(s, &n);
        assert!(id.is_some(), "{s:?}: owner {n}, but no id of it");
        assert_eq!(layout::liveness_file(&n, id.unwrap_or_default()), s);
    }
    if let Some(target) = layout::temp_file_target(s) {
        assert!(layout::is_temp_file(s));
        assert!(s.starts_with(&format!(".{target}.")), "{s:?} -> {target:?}");
    }
    if layout::is_temp_file(s) {
        assert_eq!(
            layout::name_of_json_file(s),
            None,
            "a temp file read as a record"
        );
        assert_eq!(layout::liveness_owner(s), None);
    }
    // Every file name built from a name is read back as that name's.
    if let Ok(n) = Name::new(s) {
        let json = layout::readiness_file(&n);
        let expect = (!s.ends_with(".holder")).then(|| n.clone());
        assert_eq!(layout::name_of_json_file(&json), expect);
        assert_eq!(layout::name_of_json_file(&layout::holder_file(&n)), None);
        let live = layout::liveness_file(&n, ID);
        assert_eq!(layout::liveness_owner(&live).as_ref(), Some(&n));
        assert_eq!(layout::liveness_id_of(&live, &n), Some(ID));
        let temp = layout::temp_file(&json, 42, u64::MAX);
        assert!(layout::is_temp_file(&temp));
        assert_eq!(layout::temp_file_target(&temp), Some(json.as_str()));
        assert_eq!(layout::name_of_json_file(&temp), None);
        for other in [layout::lock_file(&n), layout::fence_file(&n)] {
            assert_eq!(layout::name_of_json_file(&other), None);
            assert_eq!(layout::liveness_owner(&other), None);
        }
    }
}
