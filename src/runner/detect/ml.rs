//! The machine-learning detector: the anomaly records of the rule's jobs
//! in the window with a score of at least `anomaly_threshold`, highest
//! first, at most `max_signals` (Kibana's `rule_types/ml/ml.ts` and
//! `find_ml_signals.ts`; the search itself is `source::elasticsearch::anomalies`).
//! A job that is missing or not started is a warning of the run, as in
//! Kibana; the records are read anyway.
//!
//! Each record alerts as an event (its index and id: the id is stable, so
//! overlapping windows find the same alert), its source made to fit ECS
//! (`transformAnomalyFieldsToEcs` in `rule_types/ml/bulk_create_ml_signals.ts`):
//! every influencer's field name becomes a field holding the influencer's
//! values, the partition's `by_field_name` one holding `[by_field_value]`,
//! and `@timestamp` the record's `timestamp` as an ISO date.

use serde_json::{json, Map, Value};

use super::super::record::ExecutionRecord;
use super::super::run::RunError;
use super::{Candidate, Made};
use crate::alert::SourceEvent;
use crate::rule::MlRule;
use crate::schedule::window::Window;
use crate::source::{AnomalyRequest, EventSource, Exact};

pub(in crate::runner) struct MlDetector<'r> {
    rule: &'r MlRule,
    max_signals: u32,
}

impl<'r> MlDetector<'r> {
    pub(super) fn new(rule: &'r MlRule, max_signals: u32) -> Self {
        MlDetector { rule, max_signals }
    }

    /// The search for `window` with the rule's filters and exceptions.
    pub(in crate::runner) fn anomaly_request(
        &self,
        window: Window,
        constraints: Option<&Exact>,
    ) -> Result<AnomalyRequest, RunError> {
        let constraint = match constraints {
            None => None,
            Some(exact) => {
                let filter = exact.lower(None).map_err(|e| {
                    RunError::Source(crate::source::SourceError::Query(format!(
                        "the rule's filters and exceptions cannot be translated: {e}"
                    )))
                })?;
                (!matches!(filter, crate::filter::Filter::MatchAll))
                    .then(|| crate::filter::to_dsl(&filter))
            }
        };
        Ok(AnomalyRequest {
            job_ids: self.rule.job_ids.clone(),
            threshold: self.rule.anomaly_threshold,
            earliest_ms: window.start.timestamp_millis(),
            latest_ms: window.end.timestamp_millis(),
            size: usize::try_from(self.max_signals).unwrap_or(usize::MAX),
            constraint,
        })
    }

    pub(super) async fn matches<S: EventSource>(
        &self,
        source: &S,
        window: Window,
        constraints: Option<&Exact>,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        let request = self.anomaly_request(window, constraints)?;
        let found = source.anomalies(&request).await?;
        if !found.job_warnings.is_empty() {
            record.warnings.push(format!(
                "ML jobs are not started:\n{}",
                found.job_warnings.join("\n")
            ));
        }
        record.events_fetched += found.records.len() as u64;
        if found.total > found.records.len() as u64 {
            record.warnings.push(format!(
                "{} anomaly records matched; the {} with the highest score were read (max_signals)",
                found.total,
                found.records.len()
            ));
        }
        let mut out: Vec<Candidate> = found
            .records
            .into_iter()
            .enumerate()
            .map(|(position, doc)| {
                let source = to_ecs(doc.source);
                let ts = source
                    .get("@timestamp")
                    .and_then(Value::as_str)
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .map_or(window.end.timestamp_millis(), |t| t.timestamp_millis());
                Candidate {
                    order: (ts, position),
                    events: Vec::new(),
                    made: Some(Box::new(Made {
                        event: SourceEvent {
                            index: doc.index,
                            id: doc.id,
                            source,
                        },
                        mark: None,
                    })),
                    ..Candidate::EMPTY
                }
            })
            .collect();
        out.sort_by_key(|c| c.order);
        Ok(out)
    }
}

/// Kibana's `transformAnomalyFieldsToEcs` (see the module docs): the
/// dotted top-level keys of those names are dropped, then each is set as a
/// nested path.
pub(in crate::runner) fn to_ecs(record: Value) -> Value {
    let Value::Object(mut doc) = record else {
        return record;
    };
    let mut errant: Vec<(String, Value)> = doc
        .get("influencers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|i| {
                    let name = i.get("influencer_field_name")?.as_str()?.to_string();
                    let values = i
                        .get("influencer_field_values")
                        .cloned()
                        .unwrap_or(Value::Null);
                    Some((name, values))
                })
                .collect()
        })
        .unwrap_or_default();
    let by_name = doc.get("by_field_name").and_then(Value::as_str);
    let by_value = doc.get("by_field_value");
    if let (Some(name), Some(value)) = (by_name, by_value) {
        if !name.is_empty() && !value.is_null() && value != "" {
            errant.push((name.to_string(), json!([value])));
        }
    }
    for (name, _) in &errant {
        doc.remove(name);
    }
    for (name, value) in errant {
        set_path(&mut doc, &name, value);
    }
    if let Some(ts) = doc.get("timestamp").and_then(Value::as_i64) {
        if let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ts) {
            doc.insert(
                "@timestamp".into(),
                json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            );
        }
    }
    Value::Object(doc)
}

/// lodash `set`: creates objects along the path (replacing a non-object).
fn set_path(doc: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let slot = doc
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                set_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn influencers_and_the_partition_become_ecs_fields() {
        let record = json!({
            "job_id": "j", "result_type": "record", "record_score": 91.5,
            "timestamp": 1_700_000_000_000i64,
            "by_field_name": "process.name", "by_field_value": "x.exe",
            "influencers": [
                {"influencer_field_name": "host.name", "influencer_field_values": ["h1", "h2"]},
                {"influencer_field_name": "user.name", "influencer_field_values": ["u"]}
            ],
            "host.name": ["stale"]
        });
        let ecs = to_ecs(record);
        assert_eq!(ecs["host"]["name"], json!(["h1", "h2"]));
        assert_eq!(ecs["user"]["name"], json!(["u"]));
        assert_eq!(ecs["process"]["name"], json!(["x.exe"]));
        assert!(ecs.get("host.name").is_none(), "the dotted key is replaced");
        assert_eq!(ecs["@timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(ecs["record_score"], 91.5);
    }
}
