//! The suppression fields of an alert, as Kibana writes them
//! (`rule_types/utils/suppression_utils.ts`, `wrap_suppressed_alerts.ts`):
//! `kibana.alert.instance.id` (the group: Kibana hashes the terms, the rule
//! and the space with `object-hash`; here SHA-256 of the same), and
//! `kibana.alert.suppression.{terms, start, end, docs_count}`. A group's
//! terms are the `group_by` fields' values in the alert (an array sorted,
//! a missing field `null`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::doc::get_path;

/// The group of an alert: each `group_by` field with its value.
pub fn terms(group_by: &[String], body: &Value) -> Vec<(String, Value)> {
    group_by
        .iter()
        .map(|field| {
            let value = match body.get(field).or_else(|| get_path(body, field)) {
                None | Some(Value::Null) => Value::Null,
                Some(Value::Array(items)) => {
                    let mut items = items.clone();
                    items.sort_by_key(|v| v.to_string());
                    Value::Array(items)
                }
                Some(v) => v.clone(),
            };
            (field.clone(), value)
        })
        .collect()
}

/// Whether a term has no value (`missing_fields_strategy` decides).
pub fn lacks_a_field(terms: &[(String, Value)]) -> bool {
    terms.iter().any(|(_, v)| v.is_null())
}

/// `kibana.alert.instance.id` of a group of a rule in a space.
pub fn instance_id(terms: &[(String, Value)], rule_uuid: &str, space_id: &str) -> String {
    super::ids::digest(&[&super::threshold::terms_hash(terms), rule_uuid, space_id])
}

/// Adds the suppression fields to an alert body.
pub fn mark(
    body: &mut Map<String, Value>,
    instance: &str,
    terms: &[(String, Value)],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    docs_count: u64,
) {
    body.insert("kibana.alert.instance.id".into(), json!(instance));
    body.insert(
        "kibana.alert.suppression.terms".into(),
        Value::Array(
            terms
                .iter()
                .map(|(field, value)| json!({"field": field, "value": value}))
                .collect(),
        ),
    );
    body.insert("kibana.alert.suppression.start".into(), json!(iso(start)));
    body.insert("kibana.alert.suppression.end".into(), json!(iso(end)));
    body.insert(
        "kibana.alert.suppression.docs_count".into(),
        json!(docs_count),
    );
}

pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_read_dotted_and_nested_fields_sort_arrays_and_mark_missing() {
        let body = json!({"host": {"name": "h"}, "user.name": "u", "tags": ["b", "a"]});
        let fields: Vec<String> = ["host.name", "user.name", "tags", "process.name"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = terms(&fields, &body);
        assert_eq!(t[0].1, json!("h"));
        assert_eq!(t[1].1, json!("u"));
        assert_eq!(t[2].1, json!(["a", "b"]));
        assert_eq!(t[3].1, Value::Null);
        assert!(lacks_a_field(&t));
        assert_ne!(
            instance_id(&t, "r", "default"),
            instance_id(&t, "r", "other"),
            "the space is part of the group"
        );
    }
}
