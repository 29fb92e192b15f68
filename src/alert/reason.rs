//! The `kibana.alert.reason` sentence, exactly as Kibana's reason template
//! writes it (`buildReasonMessageUtil` in Kibana's
//! `x-pack/solutions/security/plugins/security_solution/server/lib/detection_engine/rule_types/utils/reason_formatters.ts`):
//!
//! `[<category> ]event[ with][ process P,][ parent process PP,][ file F,][ source IP][:PORT,][ destination IP][:PORT,][ by USER][ on HOST] created <severity> alert <rule name>.`
//!
//! "with" appears when any of process, parent process, file, source or
//! destination is present; process, parent process and file end with a
//! comma; an address ends with one only after a port (a port without an
//! address still prints `:PORT,`). A value counts as absent when it is
//! missing, empty, or a single `-`; several values are joined with `, `.
//!
//! Where the values come from differs between an event and a sequence
//! shell, as in Kibana: an event's alert reads its fields as the `fields`
//! API returns them (every value at the path, through arrays of objects,
//! numbers included — Kibana's EQL search asks for `fields: *`), a shell
//! reads its intersected document as lodash `get` does (one path, and only
//! strings and arrays print: Kibana's template takes a number as absent).

use serde_json::Value;

use super::doc::lodash_get;

/// How the reason reads a field from its document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasonSource {
    /// The `fields` API view of an event (`mergedDoc.fields`).
    Fields,
    /// A plain object read with lodash `get` (the shell's intersection).
    Object,
}

/// Builds the reason for an alert on `doc`.
pub fn reason(doc: &Value, source: ReasonSource, severity: &str, rule_name: &str) -> String {
    let value = |path: &str| match source {
        ReasonSource::Fields => fields_text(doc, path),
        ReasonSource::Object => object_text(doc, path),
    };
    let category = value("event.category");
    let process = value("process.name");
    let parent = value("process.parent.name");
    let file = value("file.name");
    let source_ip = value("source.ip");
    let source_port = value("source.port");
    let destination_ip = value("destination.ip");
    let destination_port = value("destination.port");
    let user = value("user.name");
    let host = value("host.name");
    let of_interest = [
        &process,
        &parent,
        &file,
        &source_ip,
        &source_port,
        &destination_ip,
        &destination_port,
    ]
    .iter()
    .any(|v| v.is_some());

    let mut out = String::new();
    if let Some(c) = &category {
        out.push_str(c);
        out.push(' ');
    }
    out.push_str("event");
    if of_interest {
        out.push_str(" with");
    }
    for (label, v) in [
        ("process", &process),
        ("parent process", &parent),
        ("file", &file),
    ] {
        if let Some(v) = v {
            out.push_str(&format!(" {label} {v},"));
        }
    }
    for (label, address, port) in [
        ("source", &source_ip, &source_port),
        ("destination", &destination_ip, &destination_port),
    ] {
        if let Some(a) = address {
            out.push_str(&format!(" {label} {a}"));
        }
        if let Some(p) = port {
            out.push_str(&format!(":{p},"));
        }
    }
    if let Some(u) = &user {
        out.push_str(&format!(" by {u}"));
    }
    if let Some(h) = &host {
        out.push_str(&format!(" on {h}"));
    }
    out.push_str(&format!(" created {severity} alert {rule_name}."));
    out
}

/// `getFieldTemplateValue` over the `fields` view: every leaf value at the
/// path; none, or exactly one `-`, is absent.
fn fields_text(doc: &Value, path: &str) -> Option<String> {
    let mut values = Vec::new();
    collect_leaves(doc, path, &mut values);
    join_values(&values)
}

/// `getFieldTemplateValue` over a lodash `get`: a string as it is, an array
/// joined; anything else (a number, a boolean, an object) has no `length`
/// in JavaScript and so counts as absent.
fn object_text(doc: &Value, path: &str) -> Option<String> {
    match lodash_get(doc, path)? {
        Value::String(s) if s.is_empty() || s == "-" => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let refs: Vec<&Value> = items.iter().collect();
            join_values(&refs)
        }
        _ => None,
    }
}

fn join_values(values: &[&Value]) -> Option<String> {
    match values {
        [] => None,
        [Value::String(s)] if s == "-" => None,
        _ => Some(
            values
                .iter()
                .map(|v| js_string(v))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// Every leaf value at `path` as the `fields` API finds it: through nested
/// objects, dotted keys and arrays of objects, arrays flattened.
fn collect_leaves<'a>(doc: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    match doc {
        Value::Array(items) => {
            for item in items {
                collect_leaves(item, path, out);
            }
        }
        Value::Object(map) => {
            if path.is_empty() {
                return;
            }
            if let Some(v) = map.get(path) {
                push_leaves(v, out);
            }
            let mut search = 0;
            while let Some(pos) = path[search..].find('.') {
                let split = search + pos;
                if let Some(child) = map.get(&path[..split]) {
                    collect_leaves(child, &path[split + 1..], out);
                }
                search = split + 1;
            }
        }
        _ => {}
    }
}

fn push_leaves<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| push_leaves(i, out)),
        Value::Object(_) | Value::Null => {}
        leaf => out.push(leaf),
    }
}

/// A value as JavaScript's `String()` / `Array.prototype.join` write it.
fn js_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            // 135.0 prints as 135 in JavaScript
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::Array(items) => items.iter().map(js_string).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The document of Kibana's `reason_formatter.test.ts` (`mergedDoc.fields`).
    fn kibana_fields() -> Value {
        json!({
            "destination.ip": ["9.99.99.9"],
            "destination.port": ["6789"],
            "event.category": ["test"],
            "file.name": ["sample"],
            "host.name": ["host"],
            "process.name": ["doingThings.exe"],
            "process.parent.name": ["didThings.exe"],
            "source.ip": ["1.11.11.1"],
            "source.port": ["1234"],
            "user.name": ["test-user"],
            "@timestamp": "2021-08-11T02:28:59.101Z"
        })
    }

    fn with(changes: Value) -> Value {
        let mut doc = kibana_fields();
        for (k, v) in changes.as_object().unwrap() {
            doc[k] = v.clone();
        }
        doc
    }

    fn kibana_reason(doc: &Value) -> String {
        reason(doc, ReasonSource::Fields, "medium", "my-rule")
    }

    /// Kibana's snapshots (`reason_formatter.test.ts`), one per case.
    #[test]
    fn kibanas_snapshots() {
        let full = "test event with process doingThings.exe, parent process didThings.exe, file sample, source 1.11.11.1:1234, destination 9.99.99.9:6789, by test-user on host created medium alert my-rule.";
        assert_eq!(kibana_reason(&kibana_fields()), full);
        // the same from `_source` with plain string values
        let source: Value = kibana_fields()
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.get(0).cloned().unwrap_or(v.clone())))
            .collect::<serde_json::Map<_, _>>()
            .into();
        assert_eq!(
            reason(&source, ReasonSource::Object, "medium", "my-rule"),
            full
        );
        assert_eq!(
            kibana_reason(&with(json!({"event.category": ["item one", "item two"]}))),
            "item one, item two event with process doingThings.exe, parent process didThings.exe, file sample, source 1.11.11.1:1234, destination 9.99.99.9:6789, by test-user on host created medium alert my-rule."
        );
        assert_eq!(
            kibana_reason(&with(json!({"host.name": ["-"]}))),
            "test event with process doingThings.exe, parent process didThings.exe, file sample, source 1.11.11.1:1234, destination 9.99.99.9:6789, by test-user created medium alert my-rule."
        );
        assert_eq!(
            kibana_reason(&with(json!({"user.name": ["-"]}))),
            "test event with process doingThings.exe, parent process didThings.exe, file sample, source 1.11.11.1:1234, destination 9.99.99.9:6789, on host created medium alert my-rule."
        );
        assert_eq!(
            kibana_reason(&with(json!({"destination.port": ["-"]}))),
            "test event with process doingThings.exe, parent process didThings.exe, file sample, source 1.11.11.1:1234, destination 9.99.99.9 by test-user on host created medium alert my-rule."
        );
        assert_eq!(
            kibana_reason(&with(json!({"destination.ip": ["-"], "destination.port": ["-"]}))),
            "test event with process doingThings.exe, parent process didThings.exe, file sample, source 1.11.11.1:1234, by test-user on host created medium alert my-rule."
        );
        assert_eq!(
            kibana_reason(&with(json!({"source.port": ["-"]}))),
            "test event with process doingThings.exe, parent process didThings.exe, file sample, source 1.11.11.1 destination 9.99.99.9:6789, by test-user on host created medium alert my-rule."
        );
        assert_eq!(
            kibana_reason(&with(json!({"source.ip": ["-"], "source.port": ["-"]}))),
            "test event with process doingThings.exe, parent process didThings.exe, file sample, destination 9.99.99.9:6789, by test-user on host created medium alert my-rule."
        );
        assert_eq!(
            kibana_reason(&with(json!({"process.name": ["-"], "process.parent.name": ["-"]}))),
            "test event with file sample, source 1.11.11.1:1234, destination 9.99.99.9:6789, by test-user on host created medium alert my-rule."
        );
        assert_eq!(
            kibana_reason(
                &json!({"event.category": ["test"], "user.name": ["test-user"],
                "@timestamp": "2021-08-11T02:28:59.101Z"})
            ),
            "test event by test-user created medium alert my-rule."
        );
        // threshold cases (grouped keys in `_source`)
        let grouped = |keys: Value| {
            let mut doc = json!({"@timestamp": "2022-08-16T11:01:09.848Z", "threshold_result": {}});
            for (k, v) in keys.as_object().unwrap() {
                doc[k] = v.clone();
            }
            reason(&doc, ReasonSource::Object, "medium", "my-rule")
        };
        assert_eq!(
            grouped(json!({"user.name": "Some User Name"})),
            "event by Some User Name created medium alert my-rule."
        );
        assert_eq!(
            grouped(json!({"host.name": "Some Host Name"})),
            "event on Some Host Name created medium alert my-rule."
        );
        assert_eq!(
            grouped(json!({"host.name": "Some Host Name", "user.name": "Some User Name"})),
            "event by Some User Name on Some Host Name created medium alert my-rule."
        );
        // Kibana's older test: "event with source 127.0.0.1 created high alert rule-name."
        assert_eq!(
            reason(
                &json!({"source.ip": "127.0.0.1", "user": {"name": "-"}}),
                ReasonSource::Fields,
                "high",
                "rule-name"
            ),
            "event with source 127.0.0.1 created high alert rule-name."
        );
    }

    #[test]
    fn the_founding_rules_network_event() {
        // a real ECS event: nested objects, numeric ports (the fields API
        // returns them as numbers, and they print)
        let doc = json!({
            "event": {"category": ["network"]},
            "process": {"name": "powershell.exe"},
            "source": {"ip": "10.0.0.9", "port": 50000},
            "destination": {"ip": "10.0.0.5", "port": 135},
            "user": {"name": "bob"},
            "host": {"name": "ws-1"}
        });
        assert_eq!(
            reason(&doc, ReasonSource::Fields, "medium", "Outbound Scheduled Task Activity via PowerShell"),
            "network event with process powershell.exe, source 10.0.0.9:50000, destination 10.0.0.5:135, by bob on ws-1 created medium alert Outbound Scheduled Task Activity via PowerShell."
        );
        // a shell's intersection read with lodash get: a number is absent
        let shell = json!({"host": {"name": "ws-1"}, "destination": {"port": 135}});
        assert_eq!(
            reason(&shell, ReasonSource::Object, "medium", "r"),
            "event on ws-1 created medium alert r."
        );
        // no source, a port only: ":PORT," still prints
        assert_eq!(
            reason(
                &json!({"destination": {"port": 53}}),
                ReasonSource::Fields,
                "low",
                "r"
            ),
            "event with:53, created low alert r."
        );
        assert_eq!(
            reason(&json!({}), ReasonSource::Fields, "low", "r"),
            "event created low alert r."
        );
    }

    #[test]
    fn values_print_as_javascript_prints_them() {
        assert_eq!(js_string(&json!(135.0)), "135");
        assert_eq!(js_string(&json!(1.5)), "1.5");
        assert_eq!(js_string(&json!([1, [2, 3], null])), "1,2,3,");
        assert_eq!(js_string(&json!({"a": 1})), "[object Object]");
        // arrays of objects reach their leaves in the fields view
        let doc = json!({"process": [{"name": "a.exe"}, {"name": "b.exe"}]});
        assert_eq!(
            fields_text(&doc, "process.name").as_deref(),
            Some("a.exe, b.exe")
        );
        assert_eq!(object_text(&doc, "process.name"), None);
        assert_eq!(
            fields_text(&json!({"host": {"name": []}}), "host.name"),
            None
        );
        assert_eq!(
            fields_text(&json!({"host": {"name": ["-", "x"]}}), "host.name").as_deref(),
            Some("-, x"),
            "only a lone `-` is absent"
        );
    }
}
