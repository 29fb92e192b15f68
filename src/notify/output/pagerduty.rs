//! PagerDuty Events API v2: a `trigger` event whose `dedup_key` is the
//! idempotency key, so PagerDuty folds a repeat into the same incident.

use serde_json::{json, Value};

use crate::config::cluster::Secret;

/// PagerDuty's `payload.summary` limit.
const SUMMARY_MAX: usize = 1024;

/// Elastic's severities on PagerDuty's four.
fn severity(s: Option<&str>) -> &'static str {
    match s {
        Some("critical") => "critical",
        Some("high") => "error",
        Some("medium") => "warning",
        _ => "info",
    }
}

pub fn body(message: &Value, key: &str, routing_key: &Secret, title: &str, text: &str) -> Value {
    let alert = &message["alert"];
    let summary: String = title.chars().take(SUMMARY_MAX).collect();
    let source = alert["host"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| "detectd".to_string());
    let mut body = json!({
        "routing_key": routing_key.expose(),
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": summary,
            "source": source,
            "severity": severity(alert["severity"].as_str()),
            "component": message["rule"]["name"],
            "group": message["rule"]["id"],
            "class": message["rule"]["type"],
            "custom_details": {
                "text": text,
                "reason": alert["reason"],
                "risk_score": alert["risk_score"],
                "user": alert["user"],
                "count": message["count"],
                "alerts": message["alerts"],
            },
        },
        "client": "detectd",
    });
    if let Some(ts) = alert["timestamp"].as_str() {
        body["payload"]["timestamp"] = json!(ts);
    }
    if let Some(url) = message["kibana_url"].as_str() {
        body["links"] = json!([{"href": url, "text": "Open in Kibana"}]);
        body["client_url"] = json!(url);
    }
    body
}
