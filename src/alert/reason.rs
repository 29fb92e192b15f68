//! The `kibana.alert.reason` sentence, shaped like Kibana's reason formatter
//! (`reference/kibana-eql-rules.md` §3.2):
//! `<category> event with process X, parent process Y, file Z, source A:P,
//! destination B:Q, by U on H created <severity> alert <rule name>.`

use serde_json::Value;

use super::doc::get_path;

/// Builds the reason for an alert on `source` (an event, or the intersected
/// document of a sequence).
pub fn reason(source: &Value, severity: &str, rule_name: &str) -> String {
    let text = |path: &str| field_text(source, path);
    let mut out = String::new();
    if let Some(category) = text("event.category") {
        out.push_str(&category);
        out.push(' ');
    }
    out.push_str("event");

    let mut parts = Vec::new();
    if let Some(p) = text("process.name") {
        parts.push(format!("process {p}"));
    }
    if let Some(p) = text("process.parent.name") {
        parts.push(format!("parent process {p}"));
    }
    if let Some(f) = text("file.name") {
        parts.push(format!("file {f}"));
    }
    for side in ["source", "destination"] {
        if let Some(ip) = text(&format!("{side}.ip")) {
            match text(&format!("{side}.port")) {
                Some(port) => parts.push(format!("{side} {ip}:{port}")),
                None => parts.push(format!("{side} {ip}")),
            }
        }
    }
    if !parts.is_empty() {
        out.push_str(" with ");
        out.push_str(&parts.join(", "));
    }
    if let Some(user) = text("user.name") {
        // Kibana's template ends each "with" part with a comma before "by"
        out.push_str(if parts.is_empty() { " by " } else { ", by " });
        out.push_str(&user);
    }
    if let Some(host) = text("host.name") {
        out.push_str(" on ");
        out.push_str(&host);
    }
    out.push_str(&format!(" created {severity} alert {rule_name}."));
    out
}

/// A field as text: arrays joined with ", ", `-` and empty values treated as
/// missing (as Kibana does).
fn field_text(source: &Value, path: &str) -> Option<String> {
    let values: Vec<String> = match get_path(source, path)? {
        Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other).into_iter().collect(),
    };
    let values: Vec<String> = values
        .into_iter()
        .filter(|v| !v.is_empty() && v != "-")
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_reason() {
        let doc = json!({
            "event": {"category": ["network"]},
            "process": {"name": "powershell.exe", "parent": {"name": "cmd.exe"}},
            "source": {"ip": "10.0.0.9", "port": 50000},
            "destination": {"ip": "10.0.0.5", "port": 135},
            "user": {"name": "bob"},
            "host": {"name": "ws-1"}
        });
        assert_eq!(
            reason(
                &doc,
                "medium",
                "Outbound Scheduled Task Activity via PowerShell"
            ),
            "network event with process powershell.exe, parent process cmd.exe, \
             source 10.0.0.9:50000, destination 10.0.0.5:135, by bob on ws-1 \
             created medium alert Outbound Scheduled Task Activity via PowerShell."
        );
    }

    #[test]
    fn sparse_reason_matches_kibanas_example() {
        // Kibana's own test: "event with source 127.0.0.1 created high alert rule-name."
        let doc = json!({"source.ip": "127.0.0.1", "user": {"name": "-"}});
        assert_eq!(
            reason(&doc, "high", "rule-name"),
            "event with source 127.0.0.1 created high alert rule-name."
        );
        assert_eq!(reason(&json!({}), "low", "r"), "event created low alert r.");
    }
}
