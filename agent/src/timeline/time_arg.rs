//! `--since`/`--until` values: a time, or a distance from either end of the log (resolved once
//! the log is read).

use std::time::Duration;

/// A point in time for `--since`/`--until` (and the agent's `since`/`until` parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// A time: Unix milliseconds.
    At(u64),
    /// `+DUR`: this long after the first event.
    AfterStart(Duration),
    /// `DUR`: this long before the last event (`5m`: the last five minutes).
    BeforeEnd(Duration),
}

impl TimeArg {
    /// Parses `2025-11-24T16:00:00Z` (RFC 3339 in UTC, optional fraction), Unix ms (13 digits
    /// or more), `+DUR` or `DUR`.
    pub fn parse(s: &str) -> Result<TimeArg, String> {
        let s = s.trim();
        if let Some(d) = s.strip_prefix('+') {
            return podsignal_proto::parse_duration(d)
                .map(TimeArg::AfterStart)
                .map_err(|e| e.to_string());
        }
        if s.len() >= 13 && s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse()
                .map(TimeArg::At)
                .map_err(|_| format!("{s:?} is too large for Unix milliseconds"));
        }
        if s.contains('T') {
            return rfc3339_ms(s).map(TimeArg::At).ok_or_else(|| {
                format!(
                    "{s:?} is not a UTC time like 2025-11-24T16:00:00Z or 2025-11-24T16:00:00.250Z"
                )
            });
        }
        podsignal_proto::parse_duration(s)
            .map(TimeArg::BeforeEnd)
            .map_err(|e| {
                format!("{e} (a time is 2025-11-24T16:00:00Z, Unix milliseconds, +DUR after the first event or DUR before the last)")
            })
    }

    /// The time it names, for a log from `first_ms` to `last_ms`.
    pub fn resolve(self, first_ms: u64, last_ms: u64) -> u64 {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match self {
            TimeArg::At(t) => t,
            TimeArg::AfterStart(d) => first_ms.saturating_add(ms(d)),
            TimeArg::BeforeEnd(d) => last_ms.saturating_sub(ms(d)),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` to Unix ms; `None` for anything else (other offsets too:
/// the pictures are in UTC).
fn rfc3339_ms(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix('z'))?;
    let (date, time) = s.split_once(['T', 't'])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<u32>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<u32>().ok());
    let (h, mi, sec) = (t.next()??, t.next()??, t.next()??);
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&day)
        || h > 23
        || mi > 59
        || sec > 60
        || frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let ms_frac: u64 = format!("{frac:0<3}")[..3].parse().ok()?;
    let days = days_from_civil(i64::from(y), mo, day);
    let secs = u64::try_from(days).ok()? * 86_400 + u64::from(h * 3600 + mi * 60 + sec);
    Some(secs * 1000 + ms_frac)
}

/// A civil date to days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_resolves() {
        let at = |s| TimeArg::parse(s).unwrap().resolve(1_000_000, 2_000_000);
        assert_eq!(at("2025-11-24T16:00:00.250Z"), 1_764_000_000_250);
        assert_eq!(at("2025-11-24T16:00:00Z"), 1_764_000_000_000);
        assert_eq!(at("1764000000250"), 1_764_000_000_250);
        assert_eq!(at("+30s"), 1_030_000);
        assert_eq!(at("5m"), 2_000_000 - 300_000);
        assert_eq!(at("1h"), 0, "before the epoch is the epoch");
        assert_eq!(
            super::super::scale::utc(at("2000-02-29T23:59:59.5Z")),
            "2000-02-29 23:59:59.500Z"
        );
    }

    #[test]
    fn bad_times_are_refused_with_the_forms_named() {
        for bad in [
            "2025-13-01T00:00:00Z",
            "2025-11-24T16:00:00+01:00",
            "yesterday",
            "+-3s",
            "",
        ] {
            let e = TimeArg::parse(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(TimeArg::parse("soon").unwrap_err().contains("+DUR"));
    }
}
