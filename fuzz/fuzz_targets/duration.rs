//! Fuzzes duration parsing: `parse_duration`, `parse_duration_capped` and `format_duration`.
//!
//! Properties checked on every input (bytes read as UTF-8, lossily), against a model written
//! here independently (parts summed in `u128` milliseconds, so nothing overflows):
//! - `parse_duration` accepts exactly: the trimmed input is `0`, or one or more
//!   `<digits><unit>` parts (unit `ms`, `s`, `m` or `h`), each number fitting a `u64`, adding
//!   up to at most `MAX_DURATION`; and it returns that sum.
//! - `parse_duration_capped` accepts exactly the same grammar, untrimmed, with at most 12
//!   digits a part (`DURATION_PATTERN`), and returns the sum capped at `MAX_DURATION`.
//! - Whatever either returns is at most `MAX_DURATION`, a whole number of milliseconds, and
//!   `format_duration` of it is one part that `parse_duration` reads back to the same value.
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
    let max_ms = MAX_DURATION.as_millis();

    let uncapped = parse_duration(s);
    let want = model
        .as_ref()
        .filter(|m| m.fits_u64 && m.total_ms <= max_ms)
        .map(|m| m.total_ms);
    assert_eq!(
        uncapped.as_ref().ok().map(Duration::as_millis),
        want,
        "parse_duration({s:?}) = {uncapped:?}, model {model:?}"
    );

    let capped = parse_duration_capped(s);
    let want = model
        .as_ref()
        .filter(|m| m.max_digits <= 12 && s.trim() == s)
        .map(|m| m.total_ms.min(max_ms));
    assert_eq!(
        capped.as_ref().ok().map(Duration::as_millis),
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
                assert_eq!(d.subsec_nanos() % 1_000_000, 0, "{d:?}: not whole ms");
                let text = format_duration(*d);
                assert_eq!(parse_duration(&text).as_ref(), Ok(d), "{d:?} -> {text:?}");
                let one_part = text == "0" || Model::of(&text).is_some_and(|m| m.parts == 1);
                assert!(one_part, "{d:?} -> {text:?}");
            }
            Err(e) => {
                assert_eq!(e.input, s);
                assert!(e.to_string().contains(&format!("{s:?}")), "{e}");
            }
        }
    }
});

/// What a well-formed input adds up to; `None` for a malformed one.
#[derive(Debug)]
struct Model {
    /// The sum of the parts, in milliseconds (saturating, far above `MAX_DURATION`).
    total_ms: u128,
    /// Every part's number fits a `u64`.
    fits_u64: bool,
    /// The most digits in one part.
    max_digits: usize,
    /// How many parts.
    parts: usize,
}

impl Model {
    fn of(input: &str) -> Option<Model> {
        let s = input.trim();
        if s == "0" {
            return Some(Model {
                total_ms: 0,
                fits_u64: true,
                max_digits: 1,
                parts: 1,
            });
        }
        let mut m = Model {
            total_ms: 0,
            fits_u64: true,
            max_digits: 0,
            parts: 0,
        };
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            let unit_len = rest[digits..]
                .iter()
                .take_while(|b| !b.is_ascii_digit())
                .count();
            let factor: u128 = match &rest[digits..digits + unit_len] {
                b"ms" => 1,
                b"s" => 1_000,
                b"m" => 60_000,
                b"h" => 3_600_000,
                _ => return None,
            };
            if digits == 0 {
                return None;
            }
            let value = rest[..digits].iter().fold(0u128, |v, b| {
                v.saturating_mul(10).saturating_add(u128::from(b - b'0'))
            });
            m.fits_u64 &= value <= u128::from(u64::MAX);
            m.max_digits = m.max_digits.max(digits);
            m.total_ms = m.total_ms.saturating_add(value.saturating_mul(factor));
            m.parts += 1;
            rest = &rest[digits + unit_len..];
        }
        (m.parts > 0).then_some(m)
    }
}

/// `DURATION_PATTERN`, `^(0|([0-9]{1,12}(ms|s|m|h))+)$`, by hand.
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
