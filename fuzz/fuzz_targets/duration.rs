//! Fuzzes duration parsing: `parse_duration`, `parse_duration_capped` and `format_duration`.
//!
//! Properties checked on every input (bytes read as UTF-8, lossily), against a model written
//! here independently (parts summed in `u128` nanoseconds, so nothing overflows):
//! - `parse_duration` accepts exactly: the trimmed input is `0`, or one or more
//!   `<digits>[.<digits>]<unit>` parts (unit `ms`, `s`, `m` or `h`, at most 9 digits after a
//!   point), each whole number fitting a `u64`, adding up to at most `MAX_DURATION`; and it
//!   returns that sum, truncated to the nanosecond part by part.
//! - `parse_duration_capped` accepts exactly the same grammar, untrimmed, with at most 12
//!   digits before a point (`DURATION_PATTERN`), and returns the sum capped at `MAX_DURATION`.
//! - Whatever either returns is at most `MAX_DURATION`; `format_duration` of it has a unit
//!   and reads back with `parse_duration` to it rounded to the millisecond (exactly, under a
//!   millisecond).
//! - A refusal names the input.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use podsignal_proto::duration::{
    MAX_DURATION, format_duration, parse_duration, parse_duration_capped,
};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    let model = Model::of(s);
    let max_ns = MAX_DURATION.as_nanos();

    let uncapped = parse_duration(s);
    let want = model
        .as_ref()
        .filter(|m| m.fits_u64 && m.total_ns <= max_ns)
        .map(|m| m.total_ns);
    assert_eq!(
        uncapped.as_ref().ok().map(Duration::as_nanos),
        want,
        "parse_duration({s:?}) = {uncapped:?}, model {model:?}"
    );

    let capped = parse_duration_capped(s);
    let want = model
        .as_ref()
        .filter(|m| m.max_digits <= 12 && s.trim() == s)
        .map(|m| m.total_ns.min(max_ns));
    assert_eq!(
        capped.as_ref().ok().map(Duration::as_nanos),
        want,
        "parse_duration_capped({s:?}) = {capped:?}, model {model:?}"
    );
    assert_eq!(
        capped.is_ok(),
        matches_pattern(s),
        "parse_duration_capped({s:?}) disagrees with DURATION_PATTERN"
    );

    for result in [&uncapped, &capped] {
        match result {
            Ok(d) => {
                assert!(*d <= MAX_DURATION);
                let text = format_duration(*d);
                assert!(
                    text.ends_with(['s', 'm', 'h']),
                    "{d:?} -> {text:?}: no unit"
                );
                let back = parse_duration(&text);
                let want = if *d < Duration::from_millis(1) {
                    *d
                } else {
                    round_to_ms(*d)
                };
                assert_eq!(back.as_ref(), Ok(&want), "{d:?} -> {text:?}");
            }
            Err(e) => {
                assert_eq!(e.input, s);
                assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
            }
        }
    }
});

/// `d` rounded to the nearest millisecond (halves up).
fn round_to_ms(d: Duration) -> Duration {
    let ns = d.as_nanos();
    let ms = (ns + 500_000) / 1_000_000;
    Duration::from_millis(ms as u64)
}

/// What a well-formed input adds up to; `None` for a malformed one.
#[derive(Debug)]
struct Model {
    /// The sum of the parts, in nanoseconds (saturating, far above `MAX_DURATION`).
    total_ns: u128,
    /// Every part's whole number fits a `u64`.
    fits_u64: bool,
    /// The most digits before a point in one part.
    max_digits: usize,
}

impl Model {
    fn of(input: &str) -> Option<Model> {
        let s = input.trim();
        if s == "0" {
            return Some(Model {
                total_ns: 0,
                fits_u64: true,
                max_digits: 1,
            });
        }
        let mut m = Model {
            total_ns: 0,
            fits_u64: true,
            max_digits: 0,
        };
        let mut parts = 0;
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            let whole = &rest[..digits];
            rest = &rest[digits..];
            let mut fraction: &[u8] = &[];
            if let Some(after) = rest.strip_prefix(b".") {
                let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
                if n == 0 || n > 9 {
                    return None;
                }
                fraction = &after[..n];
                rest = &after[n..];
            }
            let unit_len = rest.iter().take_while(|b| !b.is_ascii_digit()).count();
            let unit_ns: u128 = match &rest[..unit_len] {
                b"ms" => 1_000_000,
                b"s" => 1_000_000_000,
                b"m" => 60_000_000_000,
                b"h" => 3_600_000_000_000,
                _ => return None,
            };
            let number = |ds: &[u8]| {
                ds.iter().fold(0u128, |v, b| {
                    v.saturating_mul(10).saturating_add(u128::from(b - b'0'))
                })
            };
            let value = number(whole);
            m.fits_u64 &= value <= u128::from(u64::MAX);
            m.max_digits = m.max_digits.max(digits);
            let fraction_ns = number(fraction) * unit_ns / 10u128.pow(fraction.len() as u32);
            m.total_ns = m
                .total_ns
                .saturating_add(value.saturating_mul(unit_ns))
                .saturating_add(fraction_ns);
            parts += 1;
            rest = &rest[unit_len..];
        }
        (parts > 0).then_some(m)
    }
}

/// `DURATION_PATTERN`, `^(0|([0-9]{1,12}(\.[0-9]{1,9})?(ms|s|m|h))+)$`, by hand.
fn matches_pattern(s: &str) -> bool {
    if s == "0" {
        return true;
    }
    let mut rest = s.as_bytes();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=12).contains(&digits) {
            return false;
        }
        rest = &rest[digits..];
        if let Some(after) = rest.strip_prefix(b".") {
            let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
            if !(1..=9).contains(&n) {
                return false;
            }
            rest = &after[n..];
        }
        // Longest unit first: `ms` before `m`.
        let unit = [&b"ms"[..], b"s", b"m", b"h"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}
