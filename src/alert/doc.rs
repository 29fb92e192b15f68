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

/// The intersection of sequence documents, as Kibana builds a shell alert
/// from its building blocks (`objectArrayIntersection` /
/// `objectPairIntersection` in Kibana's
/// `rule_types/eql/build_alert_group_from_sequence.ts`): a key survives
/// when present in both; objects recurse (and vanish when nothing is left);
/// equal scalars stay; arrays (or an array and a scalar) keep their common
/// scalar elements once each, possibly none (`[]` stays); anything else
/// (an object beside a scalar, two different scalars) goes.
pub fn intersect(docs: &[&Value]) -> Value {
    match docs.split_first() {
        None => Value::Object(Map::new()),
        Some((first, rest)) => rest
            .iter()
            .try_fold((*first).clone(), |acc, d| match (&acc, d) {
                (Value::Object(a), Value::Object(b)) => pair(a, b).map(Value::Object),
                _ => None,
            })
            .unwrap_or_else(|| Value::Object(Map::new())),
    }
}

fn pair(a: &Map<String, Value>, b: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (key, va) in a {
        let Some(vb) = b.get(key) else { continue };
        let kept = match (va, vb) {
            (Value::Object(x), Value::Object(y)) => pair(x, y).map(Value::Object),
            (x, y) if same_value(x, y) => Some(x.clone()),
            (Value::Array(x), Value::Array(y)) => Some(array_intersection(x, y)),
            (Value::Array(x), y) => Some(array_intersection(x, std::slice::from_ref(y))),
            (x, Value::Array(y)) => Some(array_intersection(std::slice::from_ref(x), y)),
            _ => None,
        };
        if let Some(v) = kept {
            out.insert(key.clone(), v);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// JavaScript's `===` on values parsed from JSON: scalars by value, objects
/// and arrays never (they are different objects).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => a == b,
        _ => false,
    }
}

/// lodash `intersection`: the distinct elements of `a`, in order, that are
/// in `b` (objects and arrays are never equal).
fn array_intersection(a: &[Value], b: &[Value]) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for x in a {
        if b.iter().any(|y| same_value(x, y)) && !out.iter().any(|o| same_value(o, x)) {
            out.push(x.clone());
        }
    }
    Value::Array(out)
}

/// lodash `get(doc, path)`: the key `path` itself when the object has it,
/// else the dotted path through nested objects (an array on the way, or a
/// dotted key deeper down, ends it).
pub fn lodash_get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let obj = doc.as_object()?;
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    let mut cur = doc;
    for part in path.split('.') {
        cur = cur.as_object()?.get(part)?;
    }
    Some(cur)
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

    /// The cases of Kibana's `build_alert_group_from_sequence.test.ts`
    /// (`objectPairIntersection`), read as a spec.
    #[test]
    fn intersection_follows_kibanas_object_pair_intersection() {
        let i = |a: Value, b: Value| intersect(&[&a, &b]);
        // nothing in common: nothing
        assert_eq!(i(json!({"a": "x"}), json!({"b": "x"})), json!({}));
        assert_eq!(i(json!({"a": "x"}), json!({"a": "y"})), json!({}));
        // equal scalars, null included; 1 and 1.0 are one number
        assert_eq!(
            i(
                json!({"a": 1, "b": null, "c": true}),
                json!({"a": 1.0, "b": null, "c": true})
            ),
            json!({"a": 1, "b": null, "c": true})
        );
        // nested objects recurse, and vanish when empty
        assert_eq!(
            i(
                json!({"a": {"b": {"c": 1}, "d": 2}}),
                json!({"a": {"b": {"c": 2}, "d": 2}})
            ),
            json!({"a": {"d": 2}})
        );
        // arrays: common distinct elements, `[]` kept
        assert_eq!(
            i(json!({"a": [1, 1, 2, 3]}), json!({"a": [3, 1]})),
            json!({"a": [1, 3]})
        );
        assert_eq!(
            i(json!({"a": ["x"]}), json!({"a": ["y"]})),
            json!({"a": []})
        );
        // an array beside a scalar
        assert_eq!(
            i(json!({"a": ["x", "y"]}), json!({"a": "y"})),
            json!({"a": ["y"]})
        );
        assert_eq!(
            i(json!({"a": "y"}), json!({"a": ["x", "y"]})),
            json!({"a": ["y"]})
        );
        // objects inside arrays are never equal
        assert_eq!(
            i(json!({"a": [{"id": 1}]}), json!({"a": [{"id": 1}]})),
            json!({"a": []})
        );
        // an object beside a scalar goes
        assert_eq!(i(json!({"a": {"b": 1}}), json!({"a": 1})), json!({}));
        // three documents
        let c = json!({"host": {"id": "h1"}, "k": "v"});
        assert_eq!(
            intersect(&[
                &json!({"host": {"id": "h1", "x": 1}, "k": "v"}),
                &json!({"host": {"id": "h1"}, "k": "v"}),
                &c
            ]),
            json!({"host": {"id": "h1"}, "k": "v"})
        );
    }

    #[test]
    fn lodash_get_reads_a_key_then_a_path() {
        let doc = json!({"a.b": 1, "a": {"b": 2, "c": [{"d": 3}]}, "x": {"y.z": 4}});
        assert_eq!(
            lodash_get(&doc, "a.b"),
            Some(&json!(1)),
            "the key itself first"
        );
        assert_eq!(
            lodash_get(&doc, "a"),
            Some(&json!({"b": 2, "c": [{"d": 3}]}))
        );
        assert_eq!(lodash_get(&doc, "a.c.d"), None, "arrays end the path");
        assert_eq!(
            lodash_get(&doc, "x.y.z"),
            None,
            "dotted keys deeper down are not split"
        );
    }
}
