//! Alert documents exactly as Kibana's detection engine writes them
//! (`reference/kibana-eql-rules.md` §3–4, `reference/kibana-alerts-as-data.md`
//! §3–5): one alert per matched event; for a sequence one building-block
//! alert per event and a shell alert built from their intersection. Ids are
//! deterministic (see [`ids`]), source values that do not fit ECS are
//! removed (see [`doc::clean_source`]), the reason follows Kibana's template
//! (see [`reason`]).
//!
//! This module only builds documents; it does not search, write or dedup.

pub mod ancestry;
pub mod doc;
pub mod fieldmap;
pub mod fields;
pub mod ids;
pub mod new_terms;
pub mod overrides;
pub mod reason;
pub mod strip;
pub mod suppression;
pub mod threat;
pub mod threshold;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use ancestry::Parent;
use fields::{add_persistence_fields, AlertFields};
use overrides::{Applied, Overrides};
use reason::ReasonSource;

use crate::cluster::{Distribution, ServerInfo};
use ids::EventRef;

/// The Kibana version detectd's documents follow, stamped as `kibana.version`
/// where no Kibana can be inferred (OpenSearch has none).
pub const MODELLED_KIBANA_VERSION: &str = "9.6.0";

/// `kibana.version` of the alerts: the configured one, else the version a
/// Kibana beside this cluster has (Kibana must run the same version as
/// Elasticsearch), else [`MODELLED_KIBANA_VERSION`].
pub fn kibana_version(configured: Option<&str>, server: &ServerInfo) -> String {
    match (configured, server.distribution) {
        (Some(v), _) => v.to_string(),
        (None, Distribution::Elasticsearch) => server.version.to_string(),
        (None, Distribution::OpenSearch) => MODELLED_KIBANA_VERSION.to_string(),
    }
}

/// What an alert needs to know about its rule.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRule {
    /// `kibana.alert.rule.uuid`, hashed into every alert id: the Kibana
    /// rule's saved-object id where one is known, else the `rule_id`.
    pub uuid: String,
    pub rule_id: String,
    pub name: String,
    pub severity: String,
    pub risk_score: i64,
    pub building_block_type: Option<String>,
    /// The index patterns the rule searched.
    pub indices: Vec<String>,
    /// `kibana.alert.rule.parameters`: the rule's parameters in Kibana's
    /// snake_case, with Kibana's defaults (`commonParamsCamelToSnake` and
    /// `typeSpecificCamelToSnake`); the rule-copy fields come from here.
    pub parameters: Map<String, Value>,
    /// The Kibana rule's revision (0 for a rule Kibana never saw).
    pub revision: u64,
    pub enabled: bool,
    pub tags: Vec<String>,
    /// The schedule as written (`5m`).
    pub interval: String,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    /// Kibana rule actions (from a Kibana export); detectd does not run them.
    pub actions: Vec<Value>,
    pub throttle: Option<String>,
    /// `siem.eqlRule`, ...
    pub rule_type_id: &'static str,
    /// The rule type's name (`kibana.alert.rule.category`).
    pub category: &'static str,
    /// Severity, risk score and name from the event, for event alerts.
    pub overrides: Overrides,
}

impl AlertRule {
    /// The rule's own name, severity and risk score.
    fn own(&self) -> Applied {
        Applied {
            name: self.name.clone(),
            severity: self.severity.clone(),
            risk_score: json!(self.risk_score),
        }
    }
}

/// Per-run facts stamped on every alert.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertContext {
    pub now: DateTime<Utc>,
    pub space_id: String,
    pub execution_uuid: String,
    /// `kibana.version`.
    pub kibana_version: String,
    /// Kibana's public URL, for `kibana.alert.url`.
    pub public_base_url: Option<String>,
}

/// One source event as fetched: where it lives and its full `_source`.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceEvent {
    pub index: String,
    pub id: String,
    pub source: Value,
}

impl SourceEvent {
    /// The id of this event's alert (see [`event_alert`]).
    pub fn alert_id(&self, space_id: &str, rule_uuid: &str) -> String {
        ids::event_alert_id(self.event_ref(), space_id, rule_uuid)
    }

    fn event_ref(&self) -> EventRef<'_> {
        EventRef {
            index: &self.index,
            id: &self.id,
        }
    }
}

/// An alert ready to index: its deterministic `_id` and its body.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub id: String,
    pub source: Value,
}

/// The alert for one event of an event query (`wrapHits` /
/// `transformHitToAlert`); `None` when the event is an alert of this very
/// rule (or descends from one).
pub fn event_alert(rule: &AlertRule, ctx: &AlertContext, event: &SourceEvent) -> Option<Alert> {
    let id = ids::event_alert_id(event.event_ref(), &ctx.space_id, &rule.uuid);
    event_alert_with_id(rule, ctx, event, id)
}

/// The alert for one event under an id its rule type chose (new_terms
/// hashes the tuple in); otherwise as [`event_alert`].
pub(crate) fn event_alert_with_id(
    rule: &AlertRule,
    ctx: &AlertContext,
    event: &SourceEvent,
    id: String,
) -> Option<Alert> {
    let parents = [Parent::of_event(event)];
    if ancestry::made_by(&parents, &rule.uuid) {
        return None;
    }
    let shown = rule
        .overrides
        .apply(&event.source, &rule.name, &rule.severity, rule.risk_score);
    let mut body = hit_alert_body(rule, &shown, ctx, event, &parents, &id);
    add_persistence_fields(rule, ctx, &mut body);
    Some(Alert {
        id,
        source: Value::Object(body),
    })
}

/// The alerts of one sequence (`buildAlertGroupFromSequence`): the shell
/// first, then one building block per event in stage order. `None` entries
/// are missing-event placeholders (`![...]` stages); they get no building
/// block and stay out of the shell. Empty when a sequence event is an alert
/// of this very rule.
pub fn sequence_alerts(
    rule: &AlertRule,
    ctx: &AlertContext,
    events: &[Option<&SourceEvent>],
) -> Vec<Alert> {
    let present: Vec<&SourceEvent> = events.iter().flatten().copied().collect();
    if present.is_empty() {
        return Vec::new();
    }
    let parents: Vec<Parent> = present.iter().map(|e| Parent::of_event(e)).collect();
    if ancestry::made_by(&parents, &rule.uuid) {
        return Vec::new();
    }
    let ids = group_ids(&parents, rule);
    let (shell_id, block_ids) = (&ids[0], &ids[1..]);

    // The building blocks as single-event alerts (without overrides).
    let own = rule.own();
    let blocks: Vec<Map<String, Value>> = present
        .iter()
        .zip(&parents)
        .zip(block_ids)
        .map(|((event, parent), id)| {
            hit_alert_body(rule, &own, ctx, event, std::slice::from_ref(parent), id)
        })
        .collect();

    // The shell: what all blocks share, then its own fields, with the
    // blocks as its parents (`buildAlertRoot`).
    let block_docs: Vec<Value> = blocks.iter().cloned().map(Value::Object).collect();
    let merged = match doc::intersect(&block_docs.iter().collect::<Vec<_>>()) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let reason = reason::reason(
        &Value::Object(merged.clone()),
        ReasonSource::Object,
        &own.severity,
        &own.name,
    );
    let block_parents: Vec<Parent> = blocks
        .iter()
        .zip(block_ids)
        .map(|(b, id)| Parent::of(id, "", &Value::Object(b.clone())))
        .collect();
    // The first block's `@timestamp` (its creation time): Kibana reads the
    // shell's original time from its first parent, a building block.
    let original_time = blocks
        .first()
        .and_then(|b| b.get("@timestamp"))
        .and_then(original_time);
    let shell_fields = AlertFields {
        rule,
        shown: &own,
        ctx,
        parents: &block_parents,
        reason,
        id: shell_id,
        original_time,
    }
    .build();
    let mut shell = merged;
    shell.extend(shell_fields);
    shell.insert("kibana.alert.group.id".into(), json!(shell_id));
    add_persistence_fields(rule, ctx, &mut shell);

    let mut out = Vec::with_capacity(blocks.len() + 1);
    out.push(Alert {
        id: shell_id.clone(),
        source: Value::Object(shell),
    });
    for (i, (mut block, id)) in blocks.into_iter().zip(block_ids).enumerate() {
        block.insert("kibana.alert.building_block_type".into(), json!("default"));
        block.insert("kibana.alert.group.id".into(), json!(shell_id));
        block.insert("kibana.alert.group.index".into(), json!(i));
        add_persistence_fields(rule, ctx, &mut block);
        out.push(Alert {
            id: id.clone(),
            source: Value::Object(block),
        });
    }
    out
}

/// The ids of a sequence's alerts without building them: the shell's,
/// then the building blocks' in order.
pub fn sequence_ids(rule: &AlertRule, events: &[&SourceEvent]) -> Vec<String> {
    let parents: Vec<Parent> = events.iter().map(|e| Parent::of_event(e)).collect();
    group_ids(&parents, rule)
}

fn group_ids(parents: &[Parent], rule: &AlertRule) -> Vec<String> {
    let blocks: Vec<Vec<EventRef<'_>>> = parents
        .iter()
        .map(|p| {
            p.ancestors
                .iter()
                .map(|a| EventRef {
                    index: &a.index,
                    id: &a.id,
                })
                .collect()
        })
        .collect();
    let block_ids = ids::building_block_ids(&blocks, &rule.uuid);
    let shell = ids::shell_alert_id(&blocks, &block_ids, &rule.uuid);
    let mut out = Vec::with_capacity(block_ids.len() + 1);
    out.push(shell);
    out.extend(block_ids);
    out
}

/// `transformHitToAlert`: the source made to fit ECS, with the alert's
/// fields over it; `shown` is the name, severity and risk score the alert
/// carries (overridden or the rule's own).
fn hit_alert_body(
    rule: &AlertRule,
    shown: &Applied,
    ctx: &AlertContext,
    event: &SourceEvent,
    parents: &[Parent],
    id: &str,
) -> Map<String, Value> {
    let reason = reason::reason(
        &event.source,
        ReasonSource::Fields,
        &shown.severity,
        &shown.name,
    );
    let fields = AlertFields {
        rule,
        shown,
        ctx,
        parents,
        reason,
        id,
        original_time: doc::get_path(&event.source, "@timestamp").and_then(original_time),
    }
    .build();
    let mut body = doc::clean_source(&event.source);
    body.extend(fields);
    body
}

/// `kibana.alert.original_time`: the event time as an ISO string with
/// milliseconds (`getValidDateFromDoc`, then `toISOString()`), whatever
/// the source wrote (ISO with an offset, epoch milliseconds as a number or
/// a string); nothing when it is not a date.
fn original_time(value: &Value) -> Option<String> {
    let ms = match value {
        Value::Array(items) => return items.first().and_then(original_time),
        Value::String(s) => crate::eql::value::parse_date_literal(s)?,
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?,
        _ => return None,
    };
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests;
