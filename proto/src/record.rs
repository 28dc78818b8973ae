//! The envelope every JSON record shares: a format version, a size cap, the writer's
//! identity, and decoding that turns garbage into an error, never a panic.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The record format this crate writes. Readers refuse records with a higher version.
pub const FORMAT_VERSION: u32 = 1;

/// The largest record a reader accepts, in bytes. A larger file is refused unread, so a
/// neighbour cannot make every waiter read gigabytes.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Who wrote a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Identity {
    /// The writer's process id, in its own PID namespace.
    pub pid: u32,
    /// The writer's hostname (in a Pod: the pod name, the same for every container).
    pub hostname: String,
    /// The writer's container or component name (`PODSIGNAL_NAME`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A random id of the writing process, different on every start: tells restarts apart.
    /// Checked when read (every record and body holding an identity): 16 lowercase hex digits.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[0-9a-f]{16}$")))]
    #[serde(deserialize_with = "incarnation_field")]
    pub incarnation: String,
}

impl Identity {
    /// How events and `status` name the writer: its source, else `pid@hostname`.
    pub fn label(&self) -> String {
        match &self.source {
            Some(s) => s.clone(),
            None => format!("{}@{}", self.pid, self.hostname),
        }
    }

    /// How messages name the writer in full: `app (pid 42 on pod-1)`, or `pid 42 on pod-1`
    /// when it has no source.
    pub fn describe(&self) -> String {
        match &self.source {
            Some(s) => format!("{s} (pid {} on {})", self.pid, self.hostname),
            None => format!("pid {} on {}", self.pid, self.hostname),
        }
    }
}

fn incarnation_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if is_incarnation(&s) {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format_args!(
            "incarnation {s:?} is not 16 lowercase hex digits"
        )))
    }
}

/// True when `s` is a well-formed incarnation id: 16 lowercase hex digits.
pub fn is_incarnation(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why a record's bytes could not be decoded.
#[derive(thiserror::Error)]
pub enum RecordError {
    /// The record is larger than [`MAX_RECORD_BYTES`].
    #[error("record is {size} bytes, over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge {
        /// Its size.
        size: u64,
    },
    /// The bytes are not the expected JSON. (Not a `#[source]`: the message says it already,
    /// and a chain printed `outer: source` would say it twice.)
    #[error("malformed record: {0}")]
    Malformed(serde_json::Error),
    /// The record was written by a newer podsignal.
    #[error(
        "record format version {found} is newer than this podsignal understands ({FORMAT_VERSION})"
    )]
    NewerVersion {
        /// The version found.
        found: u32,
    },
    /// A field has a value the protocol does not allow.
    #[error("malformed record: {0}")]
    Invalid(String),
}
crate::debug_is_display!(RecordError);

impl From<serde_json::Error> for RecordError {
    fn from(e: serde_json::Error) -> RecordError {
        RecordError::Malformed(e)
    }
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

/// Decodes a record after checking its size and format version.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    let size = bytes.len() as u64;
    if size > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge { size });
    }
    let v: VersionOnly = serde_json::from_slice(bytes)?;
    if v.version > FORMAT_VERSION {
        return Err(RecordError::NewerVersion { found: v.version });
    }
    Ok(serde_json::from_slice(bytes)?)
}

/// Encodes a record as one line of JSON with a trailing newline (so `cat` shows it well).
/// A record over [`MAX_RECORD_BYTES`] is refused here, before it could replace a good one
/// that every reader accepts.
pub fn encode<T: Serialize>(record: &T) -> Result<Vec<u8>, RecordError> {
    // Serializing these plain structs cannot fail: no maps with non-string keys, no I/O.
    let mut out = serde_json::to_vec(record).unwrap_or_default();
    out.push(b'\n');
    let size = out.len() as u64;
    if size > MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge { size });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct R {
        version: u32,
        x: u8,
    }

    #[test]
    fn decode_checks_size_version_and_shape() {
        assert_eq!(
            decode::<R>(br#"{"version":1,"x":3}"#).unwrap(),
            R { version: 1, x: 3 }
        );
        assert!(matches!(
            decode::<R>(br#"{"version":9,"x":3}"#),
            Err(RecordError::NewerVersion { found: 9 })
        ));
        assert!(matches!(
            decode::<R>(b"{\"version\":1,"),
            Err(RecordError::Malformed(_))
        ));
        assert!(matches!(
            decode::<R>(b"\xff\x00garbage"),
            Err(RecordError::Malformed(_))
        ));
        let big = vec![b' '; MAX_RECORD_BYTES as usize + 1];
        assert!(matches!(
            decode::<R>(&big),
            Err(RecordError::TooLarge { .. })
        ));
    }

    /// The parse error is said once, however the error is printed: alone, as a chain, or as
    /// `Debug` (what `main` returning `Box<dyn Error>` prints).
    #[test]
    fn a_malformed_record_says_why_once() {
        let err = decode::<R>(b"garbage").unwrap_err();
        let want = "malformed record: expected value at line 1 column 1";
        assert_eq!(err.to_string(), want);
        assert_eq!(format!("{err:?}"), want);
        assert!(std::error::Error::source(&err).is_none());
    }

    #[test]
    fn encode_refuses_what_decode_would_refuse() {
        #[derive(Serialize)]
        struct Big {
            version: u32,
            reason: String,
        }
        let fits = Big {
            version: 1,
            reason: "x".repeat(MAX_RECORD_BYTES as usize - 40),
        };
        assert!(decode::<serde_json::Value>(&encode(&fits).unwrap()).is_ok());
        let over = Big {
            version: 1,
            reason: "x".repeat(MAX_RECORD_BYTES as usize),
        };
        let err = encode(&over).unwrap_err();
        assert!(err.to_string().contains("65536"), "{err}");
    }

    #[test]
    fn incarnations_are_16_hex() {
        assert!(is_incarnation("0123456789abcdef"));
        assert!(!is_incarnation("0123456789ABCDEF"));
        assert!(!is_incarnation("../../etc/passwd"));
    }

    #[test]
    fn an_identity_with_a_malformed_incarnation_is_not_read() {
        let good = r#"{"pid":1,"hostname":"h","incarnation":"0123456789abcdef"}"#;
        assert!(serde_json::from_str::<Identity>(good).is_ok());
        for bad in [
            "",
            "0123456789ABCDEF",
            "0123456789abcdef0",
            "../../etc/passwd",
        ] {
            let json = format!(r#"{{"pid":1,"hostname":"h","incarnation":{bad:?}}}"#);
            let err = serde_json::from_str::<Identity>(&json).unwrap_err();
            assert!(err.to_string().contains("16 lowercase hex"), "{bad}: {err}");
        }
    }
}
