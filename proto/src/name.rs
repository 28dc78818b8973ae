//! Names of readiness records, locks, leader campaigns and event kinds.
//!
//! One grammar for all of them, `[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?`: it is a valid file
//! name on every filesystem, a valid DNS label (so container names fit), never `.` or `..`,
//! and never starts with `.` (the protocol's temporary files do).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// A validated name: see the module docs for the grammar.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// The grammar of a name, as a regular expression (for the agent's OpenAPI document).
pub const NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$";

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Name {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Name".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": NAME_PATTERN,
            "minLength": 1,
            "maxLength": MAX_NAME_LEN,
            "description": "A name: a-z, 0-9, '.', '_' and '-', starting and ending with a-z or 0-9, at most 63 bytes.",
        })
    }
}

/// Why a string is not a [`Name`].
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The string is empty.
    #[error("invalid name \"\": a name cannot be empty")]
    Empty,
    /// The string is longer than [`MAX_NAME_LEN`].
    #[error("invalid name {name:?}: {len} bytes, the limit is {MAX_NAME_LEN}")]
    TooLong {
        /// The rejected name, cut to a readable length.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The string holds a character outside `[a-z0-9._-]`.
    #[error("invalid name {name:?}: {ch:?} is not allowed (use a-z, 0-9, '.', '_' and '-')")]
    BadChar {
        /// The rejected name.
        name: String,
        /// The first offending character.
        ch: char,
    },
    /// The string starts or ends with `.`, `_` or `-`.
    #[error("invalid name {name:?}: it must start and end with a-z or 0-9")]
    BadEdge {
        /// The rejected name.
        name: String,
    },
}
crate::debug_is_display!(NameError);

impl Name {
    /// Validates `s` as a name.
    pub fn new(s: &str) -> Result<Name, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            let shown: String = s.chars().take(MAX_NAME_LEN + 3).collect();
            return Err(NameError::TooLong {
                name: shown,
                len: s.len(),
            });
        }
        if let Some(ch) = s.chars().find(|c| !is_name_char(*c)) {
            return Err(NameError::BadChar {
                name: s.to_owned(),
                ch,
            });
        }
        let edge_ok =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !edge_ok(s.chars().next()) || !edge_ok(s.chars().last()) {
            return Err(NameError::BadEdge { name: s.to_owned() });
        }
        Ok(Name(s.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Name {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Name, NameError> {
        Name::new(s)
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Name, NameError> {
        Name::new(&s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "0", "db", "db-migrated", "proxy.v2", "a_b", "x9"] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
        assert!(Name::new(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn rejects_paths_and_edges() {
        for bad in [
            "", "Bad", "a/b", "../etc", ".a", "a-", "-a", "a:b", "a b", "é", ".", "..",
        ] {
            assert!(Name::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(matches!(
            Name::new(&"a".repeat(64)),
            Err(NameError::TooLong { len: 64, .. })
        ));
    }

    #[test]
    fn error_names_the_input() {
        let e = Name::new("Bad/Name").unwrap_err().to_string();
        assert!(e.contains("Bad/Name"), "{e}");
    }

    proptest! {
        /// The pattern in the OpenAPI document accepts exactly the names `Name::new` does.
        #[test]
        fn the_published_pattern_is_the_grammar(s in "[a-z0-9._A-Z/-]{0,70}") {
            let re = regex::Regex::new(NAME_PATTERN).unwrap();
            prop_assert_eq!(re.is_match(&s), Name::new(&s).is_ok(), "{:?}", s);
        }

        #[test]
        fn valid_names_round_trip_and_are_safe_file_names(s in "[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?") {
            let n = Name::new(&s).unwrap();
            prop_assert_eq!(n.as_str(), s.as_str());
            prop_assert!(!s.contains('/') && !s.starts_with('.'));
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = Name::new(&s);
        }
    }
}
