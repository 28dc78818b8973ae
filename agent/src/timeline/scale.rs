//! The shared time axis: times to positions (pixels or columns), with long quiet stretches
//! collapsed into axis breaks, and the time formats every renderer uses.

use super::model::Timeline;

/// A quiet stretch is collapsed when it is at least this long...
const MIN_BREAK_MS: u64 = 30_000;
/// ...and longer than this share of the time still drawn (1/3).
const BREAK_SHARE: u64 = 3;
/// The most breaks on one axis (the rest stay drawn to scale).
const MAX_BREAKS: usize = 8;

/// A collapsed stretch of time without anything happening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Break {
    /// Its start (Unix ms).
    pub from_ms: u64,
    /// Its end (Unix ms).
    pub to_ms: u64,
    /// How long nothing happened: the break and the bit drawn on either side of it.
    pub quiet_ms: u64,
}

/// Maps times to positions in `[0, width]`: linear pieces separated by breaks of fixed width.
#[derive(Debug, Clone)]
pub struct Scale {
    /// The breaks, in time order.
    pub breaks: Vec<Break>,
    /// Where each break is drawn: its start position (its width is `break_width`).
    pieces: Vec<Piece>,
    /// The width of one break.
    pub break_width: f64,
}

#[derive(Debug, Clone, Copy)]
struct Piece {
    from_ms: u64,
    to_ms: u64,
    x0: f64,
    x1: f64,
}

impl Scale {
    /// The axis of `t` over `width` units, a break taking `break_width` of them.
    pub fn new(t: &Timeline, width: f64, break_width: f64) -> Scale {
        let breaks = quiet_stretches(t);
        let total = t.to_ms.saturating_sub(t.from_ms);
        let quiet: u64 = breaks.iter().map(|b| b.to_ms - b.from_ms).sum();
        let drawn = total.saturating_sub(quiet).max(1) as f64;
        let room = (width - break_width * breaks.len() as f64).max(1.0);
        let mut pieces = Vec::new();
        let mut at = t.from_ms;
        let mut x = 0.0;
        let end = Break {
            from_ms: t.to_ms,
            to_ms: t.to_ms,
            quiet_ms: 0,
        };
        for b in breaks.iter().chain(std::iter::once(&end)) {
            let w = (b.from_ms - at) as f64 / drawn * room;
            pieces.push(Piece {
                from_ms: at,
                to_ms: b.from_ms,
                x0: x,
                x1: x + w,
            });
            x += w + break_width;
            at = b.to_ms;
        }
        Scale {
            breaks,
            pieces,
            break_width,
        }
    }

    /// The position of time `ms` (clamped to the axis).
    pub fn x(&self, ms: u64) -> f64 {
        let mut last = 0.0;
        for (i, p) in self.pieces.iter().enumerate() {
            if ms <= p.to_ms {
                if ms < p.from_ms {
                    // Inside the break before this piece: its middle.
                    return if i == 0 {
                        p.x0
                    } else {
                        p.x0 - self.break_width / 2.0
                    };
                }
                let span = (p.to_ms - p.from_ms).max(1) as f64;
                return p.x0 + (ms - p.from_ms) as f64 / span * (p.x1 - p.x0);
            }
            last = p.x1;
        }
        last
    }

    /// The position where break `i` is drawn (its left edge).
    pub fn break_x(&self, i: usize) -> f64 {
        self.pieces.get(i).map_or(0.0, |p| p.x1)
    }

    /// Tick times: round offsets from the start, about `want` per axis, none inside a break.
    pub fn ticks(&self, from_ms: u64, want: usize) -> Vec<u64> {
        let drawn: u64 = self.pieces.iter().map(|p| p.to_ms - p.from_ms).sum();
        let step = nice_step(drawn / want.max(1) as u64);
        let mut out = Vec::new();
        for p in &self.pieces {
            let first = (p.from_ms - from_ms).div_ceil(step) * step;
            let mut off = first;
            while from_ms + off <= p.to_ms && out.len() < 4 * want {
                out.push(from_ms + off);
                off += step;
            }
        }
        out
    }
}

/// The stretches without anything starting, ending or happening, long enough to collapse.
fn quiet_stretches(t: &Timeline) -> Vec<Break> {
    let mut times: Vec<u64> = vec![t.from_ms, t.to_ms];
    for lane in &t.lanes {
        for run in &lane.runs {
            for s in &run.spans {
                times.push(s.from_ms);
                times.push(s.to_ms);
            }
            times.extend(run.points.iter().map(|p| p.time_ms));
        }
    }
    times.extend(t.markers.iter().map(|m| m.time_ms));
    for x in &t.tenures {
        times.push(x.from_ms);
        times.push(x.to_ms);
    }
    times.sort_unstable();
    times.dedup();
    let gaps: Vec<Break> = times
        .windows(2)
        .map(|w| Break {
            from_ms: w[0],
            to_ms: w[1],
            quiet_ms: w[1] - w[0],
        })
        .filter(|b| b.to_ms - b.from_ms >= MIN_BREAK_MS)
        .collect();
    // Longest first: each is collapsed while it is a large share of what is left.
    let gaps = super::model::sorted_by(gaps, |b| u64::MAX - (b.to_ms - b.from_ms));
    let mut left = t.to_ms.saturating_sub(t.from_ms);
    let mut breaks = Vec::new();
    for g in gaps {
        let len = g.to_ms - g.from_ms;
        // (Never the whole axis: something must stay drawn to scale.)
        if breaks.len() >= MAX_BREAKS || len >= left || len * BREAK_SHARE < left - len {
            break;
        }
        left -= len;
        // Keep a little of each side drawn, so what ends or starts there is visible.
        let margin = (len / 50).min(2_000);
        breaks.push(Break {
            from_ms: g.from_ms + margin,
            to_ms: g.to_ms - margin,
            quiet_ms: len,
        });
    }
    super::model::sorted_by(breaks, |b| b.from_ms)
}

/// The smallest of 1, 2, 5 × 10^k ms (and minutes, hours) at least `ms`.
fn nice_step(ms: u64) -> u64 {
    const STEPS: [u64; 21] = [
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000,
        120_000, 300_000, 600_000, 1_800_000, 3_600_000,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| *s >= ms)
        .unwrap_or_else(|| ms.div_ceil(3_600_000) * 3_600_000)
}

/// An offset from the start, short: `+850ms`, `+12.5s`, `+3m20s`, `+2h05m`.
pub fn offset(ms: u64) -> String {
    format!("+{}", duration(ms))
}

/// A duration, short: `850ms`, `12.5s`, `3m20s`, `2h05m`, `3d04h`.
pub fn duration(ms: u64) -> String {
    match ms {
        0 => "0s".to_owned(),
        1..1_000 => format!("{ms}ms"),
        1_000..60_000 if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        // Integer arithmetic: no float formatting code in the binary for this.
        1_000..10_000 => format!("{}.{:02}s", ms / 1000, ms % 1000 / 10),
        10_000..60_000 => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        3_600_000..86_400_000 => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
        _ => format!("{}d{:02}h", ms / 86_400_000, ms / 3_600_000 % 24),
    }
}

/// A time in UTC, to the millisecond: `2025-11-24 16:00:00.250Z`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_read_like_calendars() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(utc(1_764_000_000_250), "2025-11-24 16:00:00.250Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00.000Z");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(12_000), "12s");
        assert_eq!(duration(1_250), "1.25s");
        assert_eq!(duration(200_000), "3m20s");
        assert_eq!(duration(7_500_000), "2h05m");
        assert_eq!(duration(u64::MAX), "213503982334d14h");
    }

    #[test]
    fn long_quiet_stretches_become_breaks_and_short_ones_do_not() {
        let t = |from_ms, to_ms| Timeline {
            from_ms,
            to_ms,
            lanes: vec![],
            markers: vec![],
            tenures: vec![],
            notes: vec![],
        };
        // Nothing but the ends: one long stretch is all there is, and stays to scale.
        let s = Scale::new(&t(0, 3_600_000), 100.0, 10.0);
        assert!(s.breaks.is_empty());
        assert_eq!(s.x(1_800_000), 50.0);
        let mut tl = t(0, 10_000_000);
        tl.markers = vec![
            super::super::model::Marker {
                time_ms: 5_000,
                kind: super::super::model::MarkerKind::Phase,
                label: "a".into(),
                detail: "a".into(),
            },
            super::super::model::Marker {
                time_ms: 9_990_000,
                kind: super::super::model::MarkerKind::Phase,
                label: "b".into(),
                detail: "b".into(),
            },
        ];
        let s = Scale::new(&tl, 100.0, 10.0);
        assert_eq!(s.breaks.len(), 1, "{:?}", s.breaks);
        // Both ends of the quiet stretch stay apart and in order, the break between them.
        assert!(s.x(5_000) < s.break_x(0));
        assert!(s.x(9_990_000) >= s.break_x(0) + 10.0);
        assert!(s.x(10_000_000) <= 100.0 + 1e-9);
    }
}
