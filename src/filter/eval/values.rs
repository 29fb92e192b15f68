//! Reading a field's values out of `_source` as Elasticsearch indexes them:
//! a dotted name reaches into objects and flat dotted keys alike, arrays
//! (of values or of objects) are flattened, `null` is no value.

use serde_json::{Map, Value};

/// The non-null scalar values at a dotted path (objects are not values).
pub fn scalars<'a>(doc: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    collect(doc, path, &mut |v| collect_scalars(v, &mut out));
    out
}

/// Whether the path holds an explicit `null` (alone or in an array), for
/// `null_value`.
pub fn has_null(doc: &Value, path: &str) -> bool {
    let mut found = false;
    collect(doc, path, &mut |v| match v {
        Value::Null => found = true,
        Value::Array(items) => found |= items.iter().any(Value::is_null),
        _ => {}
    });
    found
}

/// The objects at a dotted path (arrays of objects flattened): the
/// documents a `nested` query looks into.
pub fn objects<'a>(doc: &'a Value, path: &str) -> Vec<&'a Map<String, Value>> {
    let mut out = Vec::new();
    collect(doc, path, &mut |v| collect_objects(v, &mut out));
    out
}

/// A document holding only `obj` at `path` (`a.b` -> `{"a":{"b":obj}}`): a
/// nested object seen on its own, with its fields under their full names.
pub fn rooted(path: &str, obj: &Map<String, Value>) -> Value {
    path.rsplit('.')
        .fold(Value::Object(obj.clone()), |inner, key| {
            let mut m = Map::new();
            m.insert(key.to_string(), inner);
            Value::Object(m)
        })
}

/// Every scalar leaf of the document with its dotted path.
pub fn leaves(doc: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    walk_leaves(doc, String::new(), &mut out);
    out
}

fn walk_leaves<'a>(v: &'a Value, prefix: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk_leaves(child, p, out);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|i| walk_leaves(i, prefix.clone(), out)),
        Value::Null => {}
        scalar => out.push((prefix, scalar)),
    }
}

/// Calls `f` with every value found at `path`: objects are entered both as
/// nested objects and through flat dotted keys (`{"a.b": 1}`).
fn collect<'a>(v: &'a Value, path: &str, f: &mut dyn FnMut(&'a Value)) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect(i, path, f)),
        Value::Object(map) => {
            if let Some(leaf) = map.get(path) {
                f(leaf);
            }
            for (i, _) in path.match_indices('.') {
                if let Some(child) = map.get(&path[..i]) {
                    collect(child, &path[i + 1..], f);
                }
            }
        }
        _ => {}
    }
}

fn collect_scalars<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Null | Value::Object(_) => {}
        Value::Array(items) => items.iter().for_each(|i| collect_scalars(i, out)),
        scalar => out.push(scalar),
    }
}

fn collect_objects<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match v {
        Value::Object(m) => out.push(m),
        Value::Array(items) => items.iter().for_each(|i| collect_objects(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_arrays_and_dotted_keys() {
        let doc = json!({"a": {"b": [1, null, [2]]}, "a.b": 3, "c": [{"d": "x"}, {"d": "y"}]});
        let got: Vec<_> = scalars(&doc, "a.b").into_iter().cloned().collect();
        assert_eq!(got, vec![json!(3), json!(1), json!(2)]);
        assert_eq!(scalars(&doc, "c.d").len(), 2);
        assert!(has_null(&doc, "a.b"));
        assert_eq!(objects(&doc, "c").len(), 2);
        let r = rooted("c.e", objects(&doc, "c")[0]);
        assert_eq!(r, json!({"c": {"e": {"d": "x"}}}));
        assert_eq!(leaves(&doc).len(), 5);
    }
}
