//! Which time windows a rule run must search, given the rule's timing, its
//! checkpoint and the current time.
//!
//! A window is `[end - width, end]` with `width = to - from` (e.g. 9 minutes
//! for `from = now-9m`), so consecutive on-time runs overlap by
//! `width - interval` like Kibana's. Unlike Kibana, after downtime every
//! interval since the checkpoint gets its own window (oldest first), up to a
//! catch-up horizon; time older than the horizon is reported as a gap with
//! its exact range instead of being silently skipped.

use chrono::{DateTime, Duration, Utc};

/// A rule's timing, validated: all durations positive, `width >= interval`
/// is not required (a window narrower than the interval leaves holes, which
/// [`plan_windows`] reports as gaps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    /// `to - from`: how far each window reaches back from its end.
    pub width: Duration,
    /// How far back catch-up may go after downtime.
    pub horizon: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// Every time there is: a range run over it (`hunt`, `test`) sees every
    /// event that has a time at all.
    pub const ALL: Window = Window {
        start: DateTime::<Utc>::MIN_UTC,
        end: DateTime::<Utc>::MAX_UTC,
    };
}

/// Time that no window covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Gap {
    pub fn duration(&self) -> Duration {
        self.end - self.start
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowPlan {
    /// Oldest first; the last one ends at `now`.
    pub windows: Vec<Window>,
    pub gap: Option<Gap>,
}

/// Plans the windows of a run at `now`. `checkpoint` is the end of the last
/// window whose alerts were acknowledged (`None` on a rule's first run).
pub fn plan_windows(
    timing: Timing,
    checkpoint: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> WindowPlan {
    let single = |end: DateTime<Utc>| Window {
        start: end - timing.width,
        end,
    };
    let Some(checkpoint) = checkpoint else {
        return WindowPlan {
            windows: vec![single(now)],
            gap: None,
        };
    };
    if checkpoint >= now {
        // clock went back or a run is repeated: search the normal window again;
        // deterministic ids turn any re-detection into duplicates
        return WindowPlan {
            windows: vec![single(now)],
            gap: None,
        };
    }

    let interval = timing.interval.max(Duration::milliseconds(1));
    // Covered so far: everything up to the checkpoint. The first new window
    // must reach back to it; older time beyond the horizon becomes a gap.
    let earliest = now - timing.horizon;
    let (mut covered, gap) = if checkpoint < earliest {
        (
            earliest,
            Some(Gap {
                start: checkpoint,
                end: earliest,
            }),
        )
    } else {
        (checkpoint, None)
    };

    let mut windows = Vec::new();
    let mut gap = gap;
    while covered < now {
        let end = (covered + interval).min(now);
        let w = single(end);
        if w.start > covered {
            // the window is narrower than the step: record the hole
            let hole = Gap {
                start: covered,
                end: w.start,
            };
            gap = Some(match gap {
                Some(g) => Gap {
                    start: g.start.min(hole.start),
                    end: g.end.max(hole.end),
                },
                None => hole,
            });
        }
        windows.push(w);
        covered = end;
    }
    WindowPlan { windows, gap }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + Duration::minutes(min)
    }

    fn timing() -> Timing {
        Timing {
            interval: Duration::minutes(5),
            width: Duration::minutes(9),
            horizon: Duration::hours(1),
        }
    }

    #[test]
    fn first_run_searches_one_window_of_the_rule_width() {
        let p = plan_windows(timing(), None, t(100));
        assert_eq!(
            p.windows,
            vec![Window {
                start: t(91),
                end: t(100)
            }]
        );
        assert_eq!(p.gap, None);
    }

    #[test]
    fn on_time_run_overlaps_the_previous_one() {
        let p = plan_windows(timing(), Some(t(95)), t(100));
        assert_eq!(
            p.windows,
            vec![Window {
                start: t(91),
                end: t(100)
            }]
        );
    }

    #[test]
    fn downtime_is_caught_up_interval_by_interval_oldest_first() {
        // 30 minutes down: six windows, contiguous, the last ending now
        let p = plan_windows(timing(), Some(t(70)), t(100));
        let ends: Vec<_> = p.windows.iter().map(|w| w.end).collect();
        assert_eq!(ends, vec![t(75), t(80), t(85), t(90), t(95), t(100)]);
        assert!(p
            .windows
            .iter()
            .all(|w| w.end - w.start == Duration::minutes(9)));
        assert!(
            p.windows[0].start <= t(70),
            "first window reaches the checkpoint"
        );
        assert_eq!(p.gap, None);
    }

    #[test]
    fn beyond_the_horizon_is_a_gap_with_its_range() {
        let p = plan_windows(timing(), Some(t(0)), t(100));
        assert_eq!(
            p.gap,
            Some(Gap {
                start: t(0),
                end: t(40)
            })
        );
        assert_eq!(p.windows.first().unwrap().end, t(45));
        assert_eq!(p.windows.last().unwrap().end, t(100));
        assert_eq!(p.windows.len(), 12);
    }

    #[test]
    fn late_run_with_a_partial_interval_still_ends_now() {
        let p = plan_windows(timing(), Some(t(95)), t(102));
        let ends: Vec<_> = p.windows.iter().map(|w| w.end).collect();
        assert_eq!(ends, vec![t(100), t(102)]);
    }

    #[test]
    fn window_narrower_than_interval_reports_holes() {
        let narrow = Timing {
            width: Duration::minutes(2),
            ..timing()
        };
        let p = plan_windows(narrow, Some(t(90)), t(100));
        assert_eq!(p.windows.len(), 2);
        assert_eq!(
            p.gap,
            Some(Gap {
                start: t(90),
                end: t(98)
            })
        );
    }

    #[test]
    fn checkpoint_in_the_future_searches_the_normal_window() {
        let p = plan_windows(timing(), Some(t(200)), t(100));
        assert_eq!(
            p.windows,
            vec![Window {
                start: t(91),
                end: t(100)
            }]
        );
    }
}
