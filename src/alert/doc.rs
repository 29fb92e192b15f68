//! JSON document helpers for alerts: dotted-path lookup that treats
//! `{"a": {"b": 1}}` and `{"a.b": 1}` alike, cleaning a source event the way
//! Kibana does (through [`super::strip`]), and the recursive intersection used
//! for sequence shell alerts.

use serde_json::{Map, Value};

use super::strip;

/// The value at a dotted `path`, through nested objects and dotted keys at
/// any level (`{"process": {"parent.name": "x"}}` has `process.parent.name`).
pub fn get_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let obj = doc.as_object()?;
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    // try every split point: "a.b.c" -> "a" + "b.c", "a.b" + "c"
    let mut search = 0;
    while let Some(pos) = path[search..].find('.') {
        let split = search + pos;
        if let Some(child) = obj.get(&path[..split]) {
            if let Some(v) = get_path(child, &path[split + 1..]) {
                return Some(v);
            }
        }
        search = split + 1;
    }
    None
}

/// Cleans an event `_source` for use as an alert body exactly as Kibana
/// does before it merges the alert fields (`transform_hit_to_alert.ts`):
/// [`strip::strip_non_ecs`] (top-level `kibana.*`, `signal.*`,
/// `threshold_result` and every value that does not fit ECS removed,
/// `event.*` / `data_stream.*` copied to `kibana.alert.original_event.*` /
/// `kibana.alert.original_data_stream.*`), then the event's own
/// `event.kind` removed ([`strip::remove_event_kind`]; the alert sets
/// `event.kind: signal`).
pub fn clean_source(source: &Value) -> Map<String, Value> {
    let mut doc = strip::strip_non_ecs(source).doc;
    strip::remove_event_kind(&mut doc);
    doc
}

/// The recursive intersection of documents: a key survives only if present
/// in all with equal (or, for objects and arrays, non-empty intersected)
/// values; arrays keep the elements common to all.
pub fn intersect(docs: &[&Value]) -> Value {
    match docs.split_first() {
        None => Value::Object(Map::new()),
        Some((first, rest)) => rest
            .iter()
            .try_fold((*first).clone(), |acc, d| intersect_two(&acc, d))
            .unwrap_or_else(|| Value::Object(Map::new())),
    }
}

fn intersect_two(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out = Map::new();
            for (k, va) in x {
                if let Some(vb) = y.get(k) {
                    if let Some(v) = intersect_two(va, vb) {
                        out.insert(k.clone(), v);
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        (Value::Array(x), Value::Array(y)) => {
            let common: Vec<Value> = x.iter().filter(|v| y.contains(v)).cloned().collect();
            (!common.is_empty()).then_some(Value::Array(common))
        }
        (x, y) if x == y => Some(x.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn get_path_handles_nested_and_dotted_keys() {
        let doc = json!({"a": {"b.c": 1, "d": {"e": 2}}, "x.y": 3});
        assert_eq!(get_path(&doc, "a.b.c"), Some(&json!(1)));
        assert_eq!(get_path(&doc, "a.d.e"), Some(&json!(2)));
        assert_eq!(get_path(&doc, "x.y"), Some(&json!(3)));
        assert_eq!(get_path(&doc, "a.zz"), None);
        assert_eq!(get_path(&json!(5), "a"), None);
    }

    #[test]
    fn clean_source_copies_event_fields_and_drops_kibana() {
        let src = json!({
            "@timestamp": "2024-01-01T00:00:00Z",
            "event": {"category": "network", "kind": "event", "module": "endpoint"},
            "event.action": "connect",
            "data_stream": {"dataset": "endpoint.events.network"},
            "kibana": {"alert": {"uuid": "x"}},
            "kibana.alert.rule.name": "loop",
            "signal": {"x": 1},
            "threshold_result": {},
            "host": {"id": "h1"}
        });
        let out = clean_source(&src);
        assert!(!out.contains_key("kibana"));
        assert!(!out.contains_key("kibana.alert.rule.name"));
        assert!(!out.contains_key("signal") && !out.contains_key("threshold_result"));
        assert_eq!(
            out["event"],
            json!({"category": "network", "module": "endpoint"})
        );
        assert_eq!(out["kibana.alert.original_event.kind"], json!("event"));
        assert_eq!(
            out["kibana.alert.original_event.category"],
            json!("network")
        );
        assert_eq!(out["kibana.alert.original_event.action"], json!("connect"));
        assert_eq!(
            out["kibana.alert.original_data_stream.dataset"],
            json!("endpoint.events.network")
        );
        assert_eq!(out["host"], json!({"id": "h1"}));
    }

    // Issue 10: an event with ECS-incompatible values still becomes an
    // alert body, without those values.
    #[test]
    fn clean_source_removes_what_does_not_fit_ecs() {
        let src = json!({
            "@timestamp": "2024-01-01T00:00:00Z",
            "host": "ws-1",
            "process": {"pid": "12a", "name": "cmd.exe"},
            "event": {"kind": "event", "category": ["process"]}
        });
        let out = clean_source(&src);
        assert_eq!(
            Value::Object(out),
            json!({
                "@timestamp": "2024-01-01T00:00:00Z",
                "process": {"name": "cmd.exe"},
                "event": {"category": ["process"]},
                "kibana.alert.original_event.kind": "event",
                "kibana.alert.original_event.category": ["process"]
            })
        );
    }

    #[test]
    fn intersection_keeps_common_values_only() {
        let a = json!({"host": {"id": "h1", "name": "a"}, "tags": ["x", "y"], "n": 1});
        let b = json!({"host": {"id": "h1", "name": "b"}, "tags": ["y", "z"], "n": 2});
        assert_eq!(
            intersect(&[&a, &b]),
            json!({"host": {"id": "h1"}, "tags": ["y"]})
        );
        assert_eq!(intersect(&[]), json!({}));
    }
}
