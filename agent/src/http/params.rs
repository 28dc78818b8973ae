//! Query parameter types: parsed where they are extracted (a bad value is a 400 naming the
//! parameter), and described by the same types in the OpenAPI document (`JsonSchema`).

use std::borrow::Cow;
use std::time::Duration;

use podsignal_proto::Name;
use podsignal_proto::duration::{DURATION_PATTERN, parse_duration_capped};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

/// A duration parameter (`wait=30s`, `ttl=500ms`): `0`, or parts like `500ms`, `1.5s`, `30s`,
/// `2m`, `1h`. A value longer than ten years counts as ten years (every duration here is capped
/// lower anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        parse_duration_capped(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: 0, or parts like 500ms, 1.5s, 30s, 2m, 1h (1m30s).",
        })
    }
}

/// A comma-separated list of names (`names=db,proxy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names(pub Vec<Name>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Names, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        s.split(',')
            .map(|p| Name::new(p).map_err(serde::de::Error::custom))
            .collect::<Result<Vec<_>, _>>()
            .map(Names)
    }
}

impl JsonSchema for Names {
    fn schema_name() -> Cow<'static, str> {
        "Names".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let name = podsignal_proto::name::NAME_PATTERN
            .trim_start_matches('^')
            .trim_end_matches('$');
        json_schema!({
            "type": "string",
            "pattern": format!("^{name}(,{name})*$"),
            "description": "Comma-separated names.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_as_their_patterns_say() {
        let dur = |s: &str| serde_json::from_value::<Dur>(serde_json::json!(s));
        assert_eq!(dur("1m30s").unwrap(), Dur(Duration::from_secs(90)));
        assert!(dur("").is_err() && dur("5").is_err());
        let names = |s: &str| serde_json::from_value::<Names>(serde_json::json!(s));
        assert_eq!(names("a,b").unwrap().0.len(), 2);
        assert!(names("").is_err() && names("a,,b").is_err() && names("A").is_err());
        // The published pattern accepts exactly what the parser does.
        let schema = Names::json_schema(&mut SchemaGenerator::default());
        let re =
            regex::Regex::new(schema.get("pattern").and_then(|p| p.as_str()).unwrap()).unwrap();
        for s in [
            "a",
            "a,b.c",
            "",
            "a,",
            ",a",
            "a,B",
            "a-,b",
            "x".repeat(64).as_str(),
        ] {
            assert_eq!(re.is_match(s), names(s).is_ok(), "{s:?}");
        }
    }
}
