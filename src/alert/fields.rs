//! The `kibana.alert.*` fields of an alert, as Kibana's
//! `buildAlertFields` (`rule_types/factories/utils/build_alert.ts`) builds
//! them, and those its persistence layer adds to every alert it writes
//! (`augmentAlerts` in `rule_registry/server/utils/create_persistence_rule_type_wrapper.ts`
//! and `get_common_alert_fields.ts`; the alert's own fields win).
//!
//! Values Kibana leaves `undefined` (and so out of the JSON) are left out
//! here too: a rule without a `namespace` has no
//! `kibana.alert.rule.namespace`.

use chrono::SecondsFormat;
use serde_json::{json, Map, Value};

use super::ancestry::{self, Parent};
use super::overrides::Applied;
use super::{AlertContext, AlertRule};

/// What one alert adds to its document.
pub struct AlertFields<'a> {
    pub rule: &'a AlertRule,
    /// The name, severity and risk score shown: the rule's, or the
    /// event's overrides (`buildAlertFields`' `overrides`).
    pub shown: &'a Applied,
    pub ctx: &'a AlertContext,
    pub parents: &'a [Parent],
    pub reason: String,
    pub id: &'a str,
    /// `kibana.alert.original_time` (the first parent's time), if readable.
    pub original_time: Option<String>,
}

impl AlertFields<'_> {
    /// `buildAlertFields`: the fields every alert of the detection engine
    /// carries, keyed by their dotted names.
    pub fn build(&self) -> Map<String, Value> {
        let AlertFields {
            rule,
            ctx,
            parents,
            id,
            ..
        } = self;
        let now = timestamp(ctx);
        let p = &rule.parameters;
        let param = |k: &str| p.get(k).cloned();
        let mut f = Map::new();
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v.filter(|v| !v.is_null()) {
                f.insert(k.to_string(), v);
            }
        };
        set("@timestamp", Some(json!(now)));
        set("kibana.space_ids", Some(json!([ctx.space_id])));
        set("event.kind", Some(json!("signal")));
        set(
            "kibana.alert.original_time",
            self.original_time.clone().map(Value::from),
        );
        set("kibana.alert.rule.consumer", Some(json!("siem")));
        set(
            "kibana.alert.ancestors",
            Some(Value::Array(
                ancestry::ancestors(parents)
                    .iter()
                    .map(|a| a.to_json())
                    .collect(),
            )),
        );
        set("kibana.alert.status", Some(json!("active")));
        set("kibana.alert.workflow_status", Some(json!("open")));
        set("kibana.alert.depth", Some(json!(ancestry::depth(parents))));
        set("kibana.alert.reason", Some(json!(self.reason)));
        set(
            "kibana.alert.building_block_type",
            rule.building_block_type.clone().map(Value::from),
        );
        set("kibana.alert.severity", Some(json!(self.shown.severity)));
        set("kibana.alert.risk_score", Some(self.shown.risk_score.clone()));
        set(
            "kibana.alert.rule.parameters",
            Some(Value::Object(rule.parameters.clone())),
        );
        set("kibana.alert.rule.actions", Some(json!(rule.actions)));
        set("kibana.alert.rule.author", param("author"));
        set("kibana.alert.rule.created_at", Some(json!(rule.created_at)));
        set("kibana.alert.rule.created_by", Some(json!(rule.created_by)));
        set("kibana.alert.rule.description", param("description"));
        set("kibana.alert.rule.enabled", Some(json!(rule.enabled)));
        set(
            "kibana.alert.rule.exceptions_list",
            param("exceptions_list"),
        );
        set(
            "kibana.alert.rule.false_positives",
            param("false_positives"),
        );
        set("kibana.alert.rule.from", param("from"));
        set("kibana.alert.rule.immutable", param("immutable"));
        set("kibana.alert.rule.interval", Some(json!(rule.interval)));
        set("kibana.alert.rule.indices", Some(json!(rule.indices)));
        set("kibana.alert.rule.license", param("license"));
        set("kibana.alert.rule.max_signals", param("max_signals"));
        set("kibana.alert.rule.name", Some(json!(self.shown.name)));
        set("kibana.alert.rule.namespace", param("namespace"));
        set("kibana.alert.rule.note", param("note"));
        set("kibana.alert.rule.references", param("references"));
        set(
            "kibana.alert.rule.risk_score_mapping",
            Some(param("risk_score_mapping").unwrap_or_else(|| json!([]))),
        );
        set("kibana.alert.rule.rule_id", Some(json!(rule.rule_id)));
        set(
            "kibana.alert.rule.rule_name_override",
            param("rule_name_override"),
        );
        set(
            "kibana.alert.rule.severity_mapping",
            param("severity_mapping"),
        );
        set("kibana.alert.rule.tags", Some(json!(rule.tags)));
        set("kibana.alert.rule.threat", param("threat"));
        set(
            "kibana.alert.rule.throttle",
            rule.throttle.clone().map(Value::from),
        );
        set("kibana.alert.rule.timeline_id", param("timeline_id"));
        set("kibana.alert.rule.timeline_title", param("timeline_title"));
        set(
            "kibana.alert.rule.timestamp_override",
            param("timestamp_override"),
        );
        set("kibana.alert.rule.to", param("to"));
        set("kibana.alert.rule.type", param("type"));
        set("kibana.alert.rule.updated_at", Some(json!(rule.updated_at)));
        set("kibana.alert.rule.updated_by", Some(json!(rule.updated_by)));
        set("kibana.alert.rule.uuid", Some(json!(rule.uuid)));
        set("kibana.alert.rule.version", param("version"));
        set(
            "kibana.alert.url",
            alert_url(ctx, id, &now).map(Value::from),
        );
        set("kibana.alert.uuid", Some(json!(id)));
        set("kibana.alert.workflow_tags", Some(json!([])));
        set("kibana.alert.workflow_assignee_ids", Some(json!([])));
        // Not in Kibana's mapping, written all the same.
        set("kibana.alert.rule.risk_score", param("risk_score"));
        set("kibana.alert.rule.severity", param("severity"));
        set(
            "kibana.alert.rule.building_block_type",
            param("building_block_type"),
        );
        set("kibana.alert.intended_timestamp", Some(json!(now)));
        set("kibana.alert.rule.execution.type", Some(json!("scheduled")));
        if let Some(Value::Object(meta)) = p.get("meta") {
            flatten_into("kibana.alert.rule.meta", meta, &mut f);
        }
        f
    }
}

/// The fields the persistence layer adds to every alert written, under
/// those the alert already has (`...commonRuleFields, ...alert._source`).
pub fn add_persistence_fields(rule: &AlertRule, ctx: &AlertContext, body: &mut Map<String, Value>) {
    let now = timestamp(ctx);
    let common = [
        ("kibana.alert.rule.execution.timestamp", json!(now)),
        ("kibana.alert.start", json!(now)),
        ("kibana.alert.last_detected", json!(now)),
        ("kibana.alert.intended_timestamp", json!(now)),
        ("kibana.version", json!(ctx.kibana_version)),
        (
            "kibana.alert.rule.parameters",
            Value::Object(rule.parameters.clone()),
        ),
        ("kibana.alert.rule.category", json!(rule.category)),
        ("kibana.alert.rule.consumer", json!("siem")),
        (
            "kibana.alert.rule.execution.uuid",
            json!(ctx.execution_uuid),
        ),
        ("kibana.alert.rule.name", json!(rule.name)),
        ("kibana.alert.rule.producer", json!("siem")),
        ("kibana.alert.rule.revision", json!(rule.revision)),
        ("kibana.alert.rule.rule_type_id", json!(rule.rule_type_id)),
        ("kibana.alert.rule.uuid", json!(rule.uuid)),
        ("kibana.space_ids", json!([ctx.space_id])),
        ("kibana.alert.rule.tags", json!(rule.tags)),
        ("@timestamp", json!(now)),
    ];
    for (k, v) in common {
        body.entry(k.to_string()).or_insert(v);
    }
}

/// `new Date().toISOString()` at the run's clock.
fn timestamp(ctx: &AlertContext) -> String {
    ctx.now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `kibana.alert.url` (`getAlertDetailsUrl`,
/// `common/utils/alert_detail_path.ts`): only with Kibana's public URL
/// configured; the space appears in the path unless it is `default`
/// (`addSpaceIdToPath`).
pub fn alert_url(ctx: &AlertContext, id: &str, timestamp: &str) -> Option<String> {
    let base = ctx.public_base_url.as_deref()?;
    let space = if ctx.space_id.is_empty() || ctx.space_id == "default" {
        String::new()
    } else {
        format!("/s/{}", ctx.space_id)
    };
    Some(format!(
        "{base}{space}/app/security/alerts/redirect/{id}?index=.alerts-security.alerts-{}&timestamp={timestamp}",
        ctx.space_id
    ))
}

/// `flattenWithPrefix`: nested objects become dotted keys, other values
/// (arrays included) stay as they are.
fn flatten_into(prefix: &str, map: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (k, v) in map {
        let key = format!("{prefix}.{k}");
        match v {
            Value::Object(inner) => flatten_into(&key, inner, out),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx(space: &str, base: Option<&str>) -> AlertContext {
        AlertContext {
            now: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap(),
            space_id: space.into(),
            execution_uuid: "exec-1".into(),
            kibana_version: "8.15.3".into(),
            public_base_url: base.map(str::to_string),
        }
    }

    #[test]
    fn alert_urls_name_the_space_unless_default() {
        let ts = "2024-05-01T10:00:00.000Z";
        assert_eq!(alert_url(&ctx("default", None), "abc", ts), None);
        assert_eq!(
            alert_url(&ctx("default", Some("https://kibana.example.com")), "abc", ts).unwrap(),
            "https://kibana.example.com/app/security/alerts/redirect/abc?index=.alerts-security.alerts-default&timestamp=2024-05-01T10:00:00.000Z"
        );
        assert_eq!(
            alert_url(&ctx("team-a", Some("https://k")), "abc", ts).unwrap(),
            "https://k/s/team-a/app/security/alerts/redirect/abc?index=.alerts-security.alerts-team-a&timestamp=2024-05-01T10:00:00.000Z"
        );
    }

    #[test]
    fn meta_is_flattened_with_its_prefix() {
        let mut out = Map::new();
        flatten_into(
            "kibana.alert.rule.meta",
            json!({"from": "1m", "kibana_siem_app_url": "x", "nested": {"a": [1, 2]}})
                .as_object()
                .unwrap(),
            &mut out,
        );
        assert_eq!(
            Value::Object(out),
            json!({"kibana.alert.rule.meta.from": "1m",
                   "kibana.alert.rule.meta.kibana_siem_app_url": "x",
                   "kibana.alert.rule.meta.nested.a": [1, 2]})
        );
    }
}
