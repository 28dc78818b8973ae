//! Durations as people write them on a command line: `500ms`, `30s`, `1.5s`, `2m`, `1h`,
//! `1m30s`.
//!
//! The same spelling is used by the CLI (`--timeout 30s`) and the HTTP API (`?wait=30s`), and
//! [`format_duration`] writes every duration a message shows in it, always with a unit.

use std::time::Duration;

/// Why a string is not a duration.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {why} (examples: 500ms, 1.5s, 30s, 2m, 1h, 1m30s)")]
pub struct DurationError {
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}
crate::debug_is_display!(DurationError);

/// The longest duration accepted: ten years. Longer ones are surely typos, and a deadline
/// computed from one (`now + d`) would overflow the clock.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The most digits after a decimal point: nanoseconds, the clock's resolution.
const MAX_FRACTION_DIGITS: usize = 9;

/// The grammar [`parse_duration_capped`] accepts, as a regular expression (for the agent's
/// OpenAPI document): parts of at most 12 digits, with at most 9 more after a point.
pub const DURATION_PATTERN: &str = r"^(0|([0-9]{1,12}(\.[0-9]{1,9})?(ms|s|m|h))+)$";

/// Parses a duration: one or more `<number><unit>` parts, unit one of `ms`, `s`, `m`, `h`,
/// the number an integer or a decimal fraction (`1.5s`, `0.25s`; digits on both sides of
/// the point, at most 9 after it, anything finer than a nanosecond dropped). A bare `0` is
/// accepted; any other number needs a unit. At most [`MAX_DURATION`].
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
    if s.starts_with('-') {
        return Err(err("a duration cannot be negative"));
    }
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("nan") || lower.starts_with("inf") {
        return Err(err("not a number"));
    }
    let max_ns = MAX_DURATION.as_nanos();
    let mut total_ns: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let (whole, after) = split_digits(rest);
        if whole.is_empty() {
            return Err(err(if after.starts_with('.') {
                "a point needs a digit before it (0.5s, not .5s)"
            } else {
                "expected a number"
            }));
        }
        if cap && whole.len() > 12 {
            return Err(err("at most 12 digits a part"));
        }
        let whole: u64 = whole.parse().map_err(|_| err("number too large"))?;
        let (fraction, after) = match after.strip_prefix('.').map(split_digits) {
            Some(("", _)) => return Err(err("a point needs a digit after it (1.0s, not 1.s)")),
            Some(split) => split,
            None => ("", after),
        };
        if fraction.len() > MAX_FRACTION_DIGITS {
            return Err(err("at most 9 digits after the point"));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let unit_ns: u128 = match &after[..unit_len] {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(err("missing unit (ms, s, m or h)")),
            "," | ",s" | ",m" | ",h" | ",ms" => return Err(err("the decimal point is '.'")),
            _ => return Err(err("unknown unit (units: ms, s, m, h)")),
        };
        // Exact in u128: at most 20 digits times 3.6e12 ns, and 9 digits over 10^9.
        let fraction_ns = if fraction.is_empty() {
            0
        } else {
            let digits: u128 = fraction.parse().unwrap_or(0);
            digits * unit_ns / 10u128.pow(fraction.len() as u32)
        };
        let part = u128::from(whole) * unit_ns + fraction_ns;
        total_ns = total_ns.saturating_add(part);
        if total_ns > max_ns && !cap {
            return Err(err("longer than ten years (87600h)"));
        }
        rest = &after[unit_len..];
    }
    let total_ns = total_ns.min(max_ns);
    Ok(Duration::new(
        (total_ns / 1_000_000_000) as u64,
        (total_ns % 1_000_000_000) as u32,
    ))
}

/// The leading ASCII digits of `s`, and the rest.
fn split_digits(s: &str) -> (&str, &str) {
    s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()))
}

/// Formats a duration for a message, in the spelling [`parse_duration`] reads, always with a
/// unit: `0s`, `250ms`, `30s`, `30.002s`, `1m30s`, `2h`, `1h0.5s`. It is rounded to the
/// millisecond, so a measured `30.0018s` reads `30.002s` and `302.0067ms` reads `302ms`;
/// only a duration under a millisecond is shown finer (`0.25ms`), never as `0s`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d < Duration::from_millis(1) {
        return format!("0{}ms", fraction(d.subsec_nanos(), 6));
    }
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 >= 500_000);
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, rest_ms) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        (ms % 1000) as u32,
    );
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || rest_ms > 0 {
        out.push_str(&format!("{s}{}s", fraction(rest_ms, 3)));
    }
    out
}

/// `.` and the `digits` decimal digits of `value`, trailing zeros dropped; empty for 0.
fn fraction(value: u32, digits: usize) -> String {
    if value == 0 {
        return String::new();
    }
    let text = format!(".{value:0digits$}");
    text.trim_end_matches('0').to_owned()
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
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("87600h").unwrap(), MAX_DURATION);
    }

    #[test]
    fn parses_fractions() {
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("0.25s").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0.5h").unwrap(), Duration::from_secs(1800));
        assert_eq!(
            parse_duration("1.5ms").unwrap(),
            Duration::from_micros(1500)
        );
        assert_eq!(
            parse_duration("1m0.5s").unwrap(),
            Duration::from_millis(60_500)
        );
        assert_eq!(
            parse_duration("0.000000001s").unwrap(),
            Duration::from_nanos(1)
        );
        assert_eq!(
            parse_duration_capped("1.5s").unwrap(),
            Duration::from_millis(1500)
        );
        // 0.1h is exactly 360 s, not 359.999...: the arithmetic is on integers.
        assert_eq!(parse_duration("0.1h").unwrap(), Duration::from_secs(360));
    }

    #[test]
    fn rejects_missing_units_and_garbage() {
        for bad in [
            "",
            "5",
            "1.5",
            "s",
            ".5s",
            "1.s",
            "1..5s",
            "1.5.5s",
            "-1s",
            "-0.5s",
            "NaN",
            "nans",
            "inf",
            "1d",
            "1e3s",
            "1,5s",
            "10 s",
            "0.0000000001s",
            "99999999999999999999h",
            "18446744073709551615s",
            "87601h",
            "87600.5h",
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

    #[test]
    fn refusals_say_what_is_wrong() {
        let why = |s: &str| parse_duration(s).unwrap_err().why;
        assert_eq!(why("-1s"), "a duration cannot be negative");
        assert_eq!(why("NaN"), "not a number");
        assert_eq!(why("1d"), "unknown unit (units: ms, s, m, h)");
        assert_eq!(why("1,5s"), "the decimal point is '.'");
        assert_eq!(why("5"), "missing unit (ms, s, m or h)");
        assert_eq!(
            why(".5s"),
            "a point needs a digit before it (0.5s, not .5s)"
        );
        assert_eq!(why("1.s"), "a point needs a digit after it (1.0s, not 1.s)");
        assert_eq!(why("87601h"), "longer than ten years (87600h)");
        assert_eq!(why("99999999999999999999h"), "number too large");
        assert_eq!(
            parse_duration("-1s").unwrap_err().to_string(),
            "invalid duration \"-1s\": a duration cannot be negative \
             (examples: 500ms, 1.5s, 30s, 2m, 1h, 1m30s)"
        );
    }

    #[test]
    fn every_formatted_duration_has_a_unit() {
        let f = |ms: u64| format_duration(Duration::from_millis(ms));
        assert_eq!(f(0), "0s");
        assert_eq!(f(250), "250ms");
        assert_eq!(f(1000), "1s");
        assert_eq!(f(1500), "1.5s");
        assert_eq!(f(30_002), "30.002s");
        assert_eq!(f(90_000), "1m30s");
        assert_eq!(f(120_000), "2m");
        assert_eq!(f(3_600_000), "1h");
        assert_eq!(f(5_400_000), "1h30m");
        assert_eq!(f(3_600_500), "1h0.5s");
        assert_eq!(format_duration(Duration::from_micros(250)), "0.25ms");
        assert_eq!(format_duration(Duration::from_nanos(1)), "0.000001ms");
        assert_eq!(format_duration(Duration::from_micros(1500)), "2ms");
        assert_eq!(format_duration(Duration::from_nanos(302_006_686)), "302ms");
        assert_eq!(format_duration(Duration::from_micros(999_600)), "1s");
        // A measured wait reads as a person would write it, not as Rust's Debug.
        assert_eq!(
            format_duration(Duration::from_micros(30_001_834)),
            "30.002s"
        );
        assert_eq!(format_duration(Duration::from_micros(59_999_600)), "1m");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in 0u64..100_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
            prop_assert_eq!(parse_duration_capped(&format_duration(d)).unwrap(), d);
        }

        #[test]
        fn formatting_rounds_to_the_millisecond(ns in 0u64..100_000_000_000_000) {
            let d = Duration::from_nanos(ns);
            let back = parse_duration(&format_duration(d)).unwrap();
            if d < Duration::from_millis(1) {
                prop_assert_eq!(back, d);
            } else {
                prop_assert_eq!(back.as_nanos(), (d.as_nanos() + 500_000) / 1_000_000 * 1_000_000);
            }
        }

        #[test]
        fn arbitrary_input_never_panics(s in ".*") {
            let _ = parse_duration(&s);
            let _ = parse_duration_capped(&s);
        }

        /// The pattern in the OpenAPI document accepts exactly what the capped parser does.
        #[test]
        fn the_published_pattern_is_the_grammar(
            s in r"(0|-?[0-9]{0,14}(\.[0-9]{0,11})?(ms|s|m|h|d|x|)){0,3}"
        ) {
            let re = regex::Regex::new(DURATION_PATTERN).unwrap();
            prop_assert_eq!(re.is_match(&s), parse_duration_capped(&s).is_ok(), "{:?}", s);
        }
    }
}
