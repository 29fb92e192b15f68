//! Where an alert comes from: its parents and ancestors, as Kibana records
//! them (`buildParent` / `buildAncestors` in Kibana's
//! `rule_types/factories/utils/build_alert.ts`).
//!
//! A parent is an event, or an alert (when a rule reads an alerts index):
//! an alert is a document with a `kibana.alert.uuid` key (or a legacy
//! `signal` object), and brings its own ancestors along. A rule never
//! alerts on its own alerts: a match any of whose ancestors this rule made
//! is dropped, as Kibana drops it.

use serde_json::{json, Value};

use super::doc::lodash_get;
use super::SourceEvent;

/// One entry of `kibana.alert.ancestors`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ancestor {
    pub id: String,
    pub index: String,
    /// `event` or `signal`.
    pub kind: &'static str,
    pub depth: u64,
    /// The rule uuid that made it (alerts only).
    pub rule: Option<String>,
}

impl Ancestor {
    pub fn to_json(&self) -> Value {
        let mut v =
            json!({"id": self.id, "type": self.kind, "index": self.index, "depth": self.depth});
        if let Some(rule) = &self.rule {
            v["rule"] = json!(rule);
        }
        v
    }

    /// An ancestor read back from an alert's `kibana.alert.ancestors`.
    fn from_json(v: &Value) -> Option<Ancestor> {
        Some(Ancestor {
            id: v.get("id")?.as_str()?.to_string(),
            index: v
                .get("index")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            kind: match v.get("type").and_then(Value::as_str) {
                Some("signal") => "signal",
                _ => "event",
            },
            depth: v.get("depth").and_then(Value::as_u64).unwrap_or(0),
            rule: v.get("rule").and_then(Value::as_str).map(str::to_string),
        })
    }
}

/// A document an alert is built on: itself as a parent, and the ancestors
/// it already had (an alert's) followed by itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Parent {
    pub parent: Ancestor,
    pub ancestors: Vec<Ancestor>,
}

impl Parent {
    /// The parent entry of a fetched document.
    pub fn of_event(event: &SourceEvent) -> Parent {
        Parent::of(&event.id, &event.index, &event.source)
    }

    /// The parent entry of `source` stored as `index`/`id`.
    pub fn of(id: &str, index: &str, source: &Value) -> Parent {
        let is_alert = source
            .get("kibana.alert.uuid")
            .is_some_and(|v| !v.is_null())
            || source.get("signal").is_some_and(|v| !v.is_null());
        let parent = if is_alert {
            Ancestor {
                id: id.to_string(),
                index: index.to_string(),
                kind: "signal",
                depth: lodash_get(source, "kibana.alert.depth")
                    .and_then(Value::as_u64)
                    .unwrap_or(1),
                rule: lodash_get(source, "kibana.alert.rule.uuid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            }
        } else {
            Ancestor {
                id: id.to_string(),
                index: index.to_string(),
                kind: "event",
                depth: 0,
                rule: None,
            }
        };
        let mut ancestors: Vec<Ancestor> = if is_alert {
            lodash_get(source, "kibana.alert.ancestors")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Ancestor::from_json).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        ancestors.push(parent.clone());
        Parent { parent, ancestors }
    }
}

/// `kibana.alert.ancestors` of an alert on `parents`: each parent's
/// ancestors, parent after parent (for a sequence shell, whose parents are
/// its building blocks: `[ev0, bb0, ev1, bb1, …]`).
pub fn ancestors(parents: &[Parent]) -> Vec<Ancestor> {
    parents.iter().flat_map(|p| p.ancestors.clone()).collect()
}

/// `kibana.alert.depth`: one more than the deepest parent.
pub fn depth(parents: &[Parent]) -> u64 {
    parents.iter().map(|p| p.parent.depth).max().unwrap_or(0) + 1
}

/// Whether this rule made any of the ancestors (a rule reading its own
/// alerts): such matches are not alerted.
pub fn made_by(parents: &[Parent], rule_uuid: &str) -> bool {
    parents
        .iter()
        .flat_map(|p| &p.ancestors)
        .any(|a| a.rule.as_deref() == Some(rule_uuid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_alerts_as_parents() {
        let event = Parent::of("e1", "logs-1", &json!({"host": {"name": "a"}}));
        assert_eq!(event.parent.kind, "event");
        assert_eq!(event.ancestors.len(), 1);
        assert_eq!(
            event.parent.to_json(),
            json!({"id": "e1", "type": "event", "index": "logs-1", "depth": 0})
        );
        let alert = Parent::of(
            "a1",
            ".internal.alerts-security.alerts-default-000001",
            &json!({
                "kibana.alert.uuid": "a1",
                "kibana.alert.depth": 1,
                "kibana.alert.rule.uuid": "other-rule",
                "kibana.alert.ancestors": [{"id": "e1", "type": "event", "index": "logs-1", "depth": 0}]
            }),
        );
        assert_eq!(alert.parent.kind, "signal");
        assert_eq!(alert.parent.rule.as_deref(), Some("other-rule"));
        assert_eq!(alert.ancestors.len(), 2, "its own ancestors, then itself");
        assert_eq!(depth(std::slice::from_ref(&alert)), 2);
        assert_eq!(depth(std::slice::from_ref(&event)), 1);
        assert!(made_by(std::slice::from_ref(&alert), "other-rule"));
        assert!(!made_by(&[alert, event], "this-rule"));
    }
}
