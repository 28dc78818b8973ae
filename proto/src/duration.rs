//! Durations as people write them on a command line: `500ms`, `30s`, `2m`, `1h`, `1m30s`.
//!
//! The same spelling is used by the CLI (`--timeout 30s`) and the HTTP API (`?wait=30s`).

use std::time::Duration;

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {why} (examples: 500ms, 30s, 2m, 1h, 1m30s)")]
pub struct DurationError {
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// The longest duration accepted: ten years. Longer ones are surely typos, and a deadline
/// computed from one (`now + d`) would overflow the clock.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The grammar [`parse_duration_capped`] accepts, as a regular expression (for the agent's
/// OpenAPI document): parts of at most 12 digits.
pub const DURATION_PATTERN: &str = "^(0|([0-9]{1,12}(ms|s|m|h))+)$";

/// Parses a duration: one or more `<integer><unit>` parts, unit one of `ms`, `s`, `m`, `h`.
/// A bare `0` is accepted; any other number needs a unit. At most [`MAX_DURATION`].
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    parse(input, false)
}

/// [`parse_duration`] for a value that is capped anyway (an HTTP `wait=` or `ttl=`): a
/// duration longer than [`MAX_DURATION`] is [`MAX_DURATION`], not an error. Accepts exactly
/// [`DURATION_PATTERN`] (no surrounding whitespace, unlike a command-line value).
pub fn parse_duration_capped(input: &str) -> Result<Duration, DurationError> {
    parse(input, true)
}

fn parse(input: &str, cap: bool) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        input: input.to_owned(),
        why,
    };
    // A command line may carry stray spaces; an HTTP parameter has a published pattern.
    let s = if cap { input } else { input.trim() };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("empty"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err("expected a number"));
        }
        if cap && digits > 12 {
            return Err(err("at most 12 digits a part"));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let secs = |factor: u64| {
            value
                .checked_mul(factor)
                .map(Duration::from_secs)
                .or(cap.then_some(MAX_DURATION))
                .ok_or_else(|| err("too large"))
        };
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => secs(60)?,
            "h" => secs(3600)?,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    match total > MAX_DURATION {
        true if cap => Ok(MAX_DURATION),
        true => Err(err("longer than ten years (87600h)")),
        false => Ok(total),
    }
}

/// Formats a duration in the spelling [`parse_duration`] reads, choosing the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0".to_owned()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_capped_value_is_exactly_the_pattern() {
        // Found by `cargo fuzz`: the agent took `wait=%2030s` though the pattern refuses it.
        assert_eq!(
            parse_duration_capped("30s").unwrap(),
            Duration::from_secs(30)
        );
        for bad in [" 30s", "30s\n", "+1s"] {
            assert!(parse_duration_capped(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_duration(" 30s ").unwrap(), Duration::from_secs(30));
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("87600h").unwrap(), MAX_DURATION);
    }

    #[test]
    fn rejects_missing_units_and_garbage() {
        for bad in [
            "",
            "5",
            "s",
            "1.5s",
            "-1s",
            "1d",
            "10 s",
            "99999999999999999999h",
            "18446744073709551615s",
            "87601h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_duration_capped("87601h").unwrap(), MAX_DURATION);
        assert_eq!(
            parse_duration_capped("999999999999h").unwrap(),
            MAX_DURATION
        );
        assert!(parse_duration_capped("").is_err());
        assert!(
            parse_duration_capped("1234567890123s").is_err(),
            "13 digits"
        );
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in 0u64..100_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = parse_duration(&s);
            let _ = parse_duration_capped(&s);
        }

        /// The pattern in the OpenAPI document accepts exactly what the capped parser does.
        #[test]
        fn the_published_pattern_is_the_grammar(s in "(0|[0-9]{0,14}(ms|s|m|h|d|x|)){0,3}") {
            let re = regex::Regex::new(DURATION_PATTERN).unwrap();
            prop_assert_eq!(re.is_match(&s), parse_duration_capped(&s).is_ok(), "{:?}", s);
        }
    }
}
