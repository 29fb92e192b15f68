//! Threshold alerts as Kibana builds them. Kibana turns each bucket of its
//! composite aggregation into a made-up hit
//! (`transformBucketIntoHit` in `rule_types/threshold/bulk_create_threshold_signals.ts`):
//! `_index` the rule's index patterns joined by `,`, `_id` a hash of the
//! rule, the run and the group's terms, `_source` = `@timestamp` (the
//! bucket's latest event time), the group's terms as `field: value`, and
//! `threshold_result: {terms, cardinality, count, from}` (`from` = the
//! bucket's earliest event time). That hit then becomes an alert as any
//! event does (`wrapHits`): its id is the event alert id of the made-up hit,
//! `kibana.alert.original_time` its `@timestamp`, the reason Kibana's
//! common template over it (`buildReasonMessageForThresholdAlert` in
//! `rule_types/utils/reason_formatters.ts`), and `threshold_result` moves to
//! `kibana.alert.threshold_result` (`additionalAlertFields` in
//! `rule_types/factories/utils/build_alert.ts`).
//!
//! The one difference: Kibana's made-up `_id` hashes the run's start time,
//! so every run makes new ids (kibana#77256); here it hashes the end of the
//! window the bucket was counted in, so a window searched again (a retry
//! after a crash) makes the same alert and the write absorbs it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{event_alert, Alert, AlertContext, AlertRule, SourceEvent};

/// One group of events that reached the threshold in one window.
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdBucket {
    /// The group's value of each threshold field, in the rule's order
    /// (empty when the rule has no fields: one group of every event).
    pub terms: Vec<(String, Value)>,
    /// The events counted.
    pub count: u64,
    /// Epoch milliseconds of the earliest and latest counted event.
    pub min_ts: i64,
    pub max_ts: i64,
    /// The cardinality field and its distinct values among the counted
    /// events, when the rule has one.
    pub cardinality: Option<(String, u64)>,
    /// The end of the window the group was counted in.
    pub window_end: DateTime<Utc>,
}

impl ThresholdBucket {
    /// The made-up hit the alert is built from: index, id and source.
    pub fn hit(&self, rule: &AlertRule) -> SourceEvent {
        let mut source = Map::new();
        source.insert("@timestamp".into(), json!(iso(self.max_ts)));
        for (field, value) in &self.terms {
            source.insert(field.clone(), value.clone());
        }
        let mut result = Map::new();
        if let Some((field, value)) = &self.cardinality {
            result.insert(
                "cardinality".into(),
                json!([{"field": field, "value": value}]),
            );
        }
        result.insert("count".into(), json!(self.count));
        result.insert("from".into(), json!(iso(self.min_ts)));
        result.insert(
            "terms".into(),
            Value::Array(
                self.terms
                    .iter()
                    .map(|(field, value)| json!({"field": field, "value": value}))
                    .collect(),
            ),
        );
        source.insert("threshold_result".into(), Value::Object(result));
        SourceEvent {
            index: rule.indices.join(","),
            id: self.hit_id(&rule.uuid),
            source: Value::Object(source),
        }
    }

    /// The alert's id: the event alert id of the made-up hit.
    pub fn alert_id(&self, rule: &AlertRule, space_id: &str) -> String {
        let index = rule.indices.join(",");
        let id = self.hit_id(&rule.uuid);
        super::ids::event_alert_id(
            super::ids::EventRef {
                index: &index,
                id: &id,
            },
            space_id,
            &rule.uuid,
        )
    }

    /// The made-up hit's `_id`: SHA-256 of the rule uuid, the window end,
    /// the threshold fields and the group's values (Kibana:
    /// `calculateThresholdSignalUuid(ruleId, startedAt, fields, values)` in
    /// `rule_types/threshold/utils.ts`, with the run start in place of the
    /// window end).
    pub fn hit_id(&self, rule_uuid: &str) -> String {
        let mut h = Sha256::new();
        h.update(rule_uuid.as_bytes());
        h.update([0]);
        h.update(self.window_end.timestamp_millis().to_string().as_bytes());
        for (field, value) in &self.terms {
            h.update([0]);
            h.update(field.as_bytes());
            h.update([0]);
            h.update(value.to_string().as_bytes());
        }
        hex(&h.finalize())
    }
}

/// The history key of a group: SHA-256 of its fields and values in order
/// (Kibana keys its signal history by a hash of the terms,
/// `getThresholdTermsHash` in `rule_types/threshold/utils.ts`).
pub fn terms_hash(terms: &[(String, Value)]) -> String {
    let texts: Vec<String> = terms.iter().map(|(_, v)| v.to_string()).collect();
    let parts: Vec<&str> = terms
        .iter()
        .zip(&texts)
        .flat_map(|((field, _), value)| [field.as_str(), value.as_str()])
        .collect();
    super::ids::digest(&parts)
}

/// The alert of one bucket; `None` only if the made-up hit looked like an
/// alert of this rule (it never does).
pub fn threshold_alert(
    rule: &AlertRule,
    ctx: &AlertContext,
    bucket: &ThresholdBucket,
) -> Option<Alert> {
    let hit = bucket.hit(rule);
    let result = hit.source.get("threshold_result").cloned();
    let mut alert = event_alert(rule, ctx, &hit)?;
    if let (Value::Object(body), Some(result)) = (&mut alert.source, result) {
        body.insert("kibana.alert.threshold_result".into(), result);
    }
    Some(alert)
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
