//! What a case's run alerted, as matches of event lines, and how that
//! differs from what the case expects.

use std::collections::BTreeMap;

use serde_json::Value;

use super::spec::Expect;

/// The matches in a set of alert documents: each event alert is its event's
/// line, each sequence (or sample) its building blocks' lines in order;
/// shells add nothing. Sorted, so two runs compare equal.
pub fn matches(alerts: &BTreeMap<String, Value>) -> Vec<Vec<u64>> {
    let mut singles: Vec<Vec<u64>> = Vec::new();
    let mut groups: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for alert in alerts.values() {
        // An alert's own event is the last of its ancestors (an event that
        // is itself an alert brings its ancestors first).
        let Some(line) = alert
            .get("kibana.alert.ancestors")
            .and_then(Value::as_array)
            .and_then(|a| a.last())
            .and_then(|a| a.get("id"))
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<u64>().ok())
        else {
            continue;
        };
        let group = alert.get("kibana.alert.group.id").and_then(Value::as_str);
        let index = alert
            .get("kibana.alert.group.index")
            .and_then(Value::as_u64);
        match (group, index) {
            (Some(g), Some(i)) => groups.entry(g).or_default().push((i, line)),
            // a shell: its blocks say it all
            (Some(_), None) => {}
            (None, _) => singles.push(vec![line]),
        }
    }
    let mut out = singles;
    for (_, mut blocks) in groups {
        blocks.sort();
        out.push(blocks.into_iter().map(|(_, l)| l).collect());
    }
    out.sort();
    out
}

/// One way a run differs from the expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// An expected match that was not alerted.
    Missing(Vec<u64>),
    /// A match alerted but not expected.
    Unexpected(Vec<u64>),
    /// `alert_count` differs.
    Count { expected: usize, got: usize },
    /// A line in `not_alerting` is in an alert.
    Alerted { line: u64, in_match: Vec<u64> },
}

/// Every difference between `got` and `expect`, in a stable order.
pub fn differences(expect: &Expect, got: &[Vec<u64>]) -> Vec<Difference> {
    let mut out = Vec::new();
    if let Some(want) = &expect.alerts {
        let mut want = want.clone();
        want.sort();
        let mut left: Vec<&Vec<u64>> = got.iter().collect();
        for w in &want {
            match left.iter().position(|g| *g == w) {
                Some(i) => {
                    left.remove(i);
                }
                None => out.push(Difference::Missing(w.clone())),
            }
        }
        out.extend(left.into_iter().map(|g| Difference::Unexpected(g.clone())));
    }
    if let Some(expected) = expect.alert_count {
        if expected != got.len() {
            out.push(Difference::Count {
                expected,
                got: got.len(),
            });
        }
    }
    for &line in &expect.not_alerting {
        for m in got.iter().filter(|m| m.contains(&line)) {
            out.push(Difference::Alerted {
                line,
                in_match: m.clone(),
            });
        }
    }
    out
}

/// `line 3` or `lines 1, 2`.
pub fn lines(m: &[u64]) -> String {
    let list: Vec<String> = m.iter().map(u64::to_string).collect();
    match list.len() {
        1 => format!("line {}", list[0]),
        _ => format!("lines {}", list.join(", ")),
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing(m) => write!(f, "- not alerted, expected: {}", lines(m)),
            Difference::Unexpected(m) => write!(f, "+ alerted, not expected: {}", lines(m)),
            Difference::Count { expected, got } => {
                write!(f, "! expected {expected} alerts, got {got}")
            }
            Difference::Alerted { line, in_match } => write!(
                f,
                "! line {line} must not alert, but is in the alert of {}",
                lines(in_match)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anc(line: u64) -> Value {
        json!([{"id": "x", "index": "other", "type": "event", "depth": 0},
               {"id": line.to_string(), "index": "inline", "type": "event", "depth": 0}])
    }

    #[test]
    fn matches_from_event_alerts_and_sequences() {
        let mut alerts = BTreeMap::new();
        alerts.insert("e".to_string(), json!({"kibana.alert.ancestors": anc(7)}));
        alerts.insert(
            "shell".to_string(),
            json!({"kibana.alert.ancestors": anc(99), "kibana.alert.group.id": "g"}),
        );
        for (id, i, line) in [("b2", 1, 2), ("b1", 0, 5)] {
            alerts.insert(
                id.to_string(),
                json!({"kibana.alert.ancestors": anc(line), "kibana.alert.group.id": "g",
                       "kibana.alert.group.index": i}),
            );
        }
        assert_eq!(matches(&alerts), vec![vec![5, 2], vec![7]]);
    }

    #[test]
    fn differences_say_what_is_missing_extra_and_forbidden() {
        let expect = Expect {
            alerts: Some(vec![vec![3, 4], vec![1, 2], vec![1, 2]]),
            alert_count: Some(3),
            not_alerting: vec![5, 9],
        };
        let got = vec![vec![1, 2], vec![5, 6]];
        let d: Vec<String> = differences(&expect, &got)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            d,
            [
                "- not alerted, expected: lines 1, 2",
                "- not alerted, expected: lines 3, 4",
                "+ alerted, not expected: lines 5, 6",
                "! expected 3 alerts, got 2",
                "! line 5 must not alert, but is in the alert of lines 5, 6",
            ]
        );
        let exact = Expect {
            alerts: Some(vec![vec![5, 6], vec![1, 2]]),
            ..Expect::default()
        };
        assert!(differences(&exact, &got).is_empty());
        assert_eq!(lines(&[4]), "line 4");
    }
}
