//! What a run tells: Kibana's warning texts and the structured log line.

use chrono::TimeDelta;

use crate::schedule::window::Gap;

/// Kibana's warning when `max_signals` cut a run short
/// (`reference/kibana-eql-rules.md` §4.3).
pub const MAX_SIGNALS_WARNING: &str =
    "This rule reached the maximum alert limit for the rule execution. Some alerts were not created.";

/// Kibana's gap text (§5.3), with the range that was not searched.
pub(super) fn gap_warning(gap: &Gap, horizon: TimeDelta) -> String {
    let ms = gap.duration().num_milliseconds();
    format!(
        "{} ({ms}ms) were not queried between this rule execution and the last execution, \
         so signals may have been missed: {} to {} is beyond the catch-up horizon of {}",
        humanize(ms),
        gap.start
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        gap.end.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        humanize(horizon.num_milliseconds()),
    )
}

/// "2 hours", "30 minutes", "45 seconds": the largest whole unit.
fn humanize(ms: i64) -> String {
    let units = [
        (86_400_000, "day"),
        (3_600_000, "hour"),
        (60_000, "minute"),
        (1_000, "second"),
    ];
    for (size, name) in units {
        if ms >= size {
            let n = ms / size;
            return format!("{n} {name}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("{ms} milliseconds")
}

/// The run's warnings from a window's fetch warnings. Like Kibana, index
/// patterns that match nothing are a warning only when none of the rule's
/// patterns matches anything (prebuilt rules list patterns for several
/// integrations; most installations have only some of them).
pub(super) fn source_warnings(patterns: &[String], warnings: &[String]) -> Vec<String> {
    let missing = |p: &String| warnings.iter().any(|w| w.contains(&format!("`{p}`")));
    let about_patterns = |w: &String| patterns.iter().any(|p| w.contains(&format!("`{p}`")));
    let mut out: Vec<String> = warnings
        .iter()
        .filter(|w| !about_patterns(w))
        .cloned()
        .collect();
    if !patterns.is_empty() && patterns.iter().all(missing) {
        out.push(format!(
            "This rule is attempting to query data from Elasticsearch indices listed in the \
             \"Index patterns\" section of the rule definition, however no index matching: \
             {patterns:?} was found. This warning will continue to appear until a matching \
             index is created or this rule is disabled."
        ));
    } else {
        for w in warnings.iter().filter(|w| about_patterns(w)) {
            tracing::debug!(warning = %w, "index pattern without indices");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanize_takes_the_largest_whole_unit() {
        assert_eq!(humanize(7_200_000), "2 hours");
        assert_eq!(humanize(60_000), "1 minute");
        assert_eq!(humanize(90_000), "1 minute");
        assert_eq!(humanize(2 * 86_400_000), "2 days");
        assert_eq!(humanize(999), "999 milliseconds");
    }

    #[test]
    fn missing_patterns_warn_only_when_none_matches() {
        let patterns = vec!["a-*".to_string(), "b-*".to_string()];
        let one = vec!["index pattern `a-*` matches no index".to_string()];
        assert!(source_warnings(&patterns, &one).is_empty());
        let both = vec![
            "index pattern `a-*` matches no index".to_string(),
            "index pattern `b-*` matches no index".to_string(),
            "something else".to_string(),
        ];
        let out = source_warnings(&patterns, &both);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], "something else");
        assert!(out[1].contains(r#"no index matching: ["a-*", "b-*"] was found"#));
    }
}
