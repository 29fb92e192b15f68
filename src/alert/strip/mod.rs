//! Removes from an event's `_source` every value that does not fit ECS, as
//! Kibana does before an event becomes an alert: a port of
//! `traverseAndMutateDoc`
//! (`x-pack/solutions/security/plugins/security_solution/server/lib/detection_engine/rule_types/factories/utils/traverse_and_mutate_doc.ts`)
//! and of the `event.kind` removal that follows it in
//! `transform_hit_to_alert.ts`.
//!
//! What Kibana removes, walking the document once:
//! - top-level keys whose first dotted part is `kibana`, `signal` or
//!   `threshold_result`;
//! - a value whose dotted path runs through an ECS leaf
//!   (`{"agent.name.x": 1}` where `agent.name` is a keyword);
//! - a non-object value (or an array element) where ECS has a `nested`
//!   field;
//! - a value that does not fit its ECS type: long, float / scaled_float,
//!   ip, date, boolean ([`values`]); an object where ECS has a leaf, a leaf
//!   where ECS has an object (`"host": "ws-1"`). `geo_point` is not checked.
//!
//! Array elements are judged one by one; an array or object left empty
//! is dropped (and not listed as removed). Fields ECS does not know are
//! kept. "ECS" here is Kibana's alerts ECS field map ([`fieldmap::ecs`]),
//! which leaves out `nested`, `flattened` and `constant_keyword` fields:
//! values under those are not checked.
//!
//! Each kept top-level `event.*` / `data_stream.*` value is also copied,
//! flattened, to `kibana.alert.original_event.*` /
//! `kibana.alert.original_data_stream.*` (arrays as they are).
//!
//! Where Kibana's JavaScript differs from what it means, this port follows
//! the JavaScript (see [`is_prototype_key`]), with one exception: a
//! top-level key named like an `Object.prototype` member would also be
//! copied under a key made of a function's source text; that is not done.

mod js_date;
pub mod values;

use serde_json::{Map, Value};

use super::fieldmap;

/// The result of [`strip_non_ecs`].
#[derive(Clone, Debug, PartialEq)]
pub struct Stripped {
    /// The document as Kibana indexes it (before the alert fields).
    pub doc: Map<String, Value>,
    /// What was removed, in Kibana's order: a dotted path and the value
    /// (one entry per removed array element).
    pub removed: Vec<Removed>,
}

/// One removed value.
#[derive(Clone, Debug, PartialEq)]
pub struct Removed {
    pub path: String,
    pub value: Value,
}

impl Stripped {
    /// The dotted paths removed (an array's path once per removed element).
    pub fn removed_paths(&self) -> Vec<&str> {
        self.removed.iter().map(|r| r.path.as_str()).collect()
    }
}

/// Kibana's `traverseAndMutateDoc` on a copy of `source`. A `source` that
/// is not a JSON object gives an empty document.
pub fn strip_non_ecs(source: &Value) -> Stripped {
    let mut doc = match source {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let mut walk = Walk::default();
    walk.object(&mut doc, &[], true);
    for (key, value) in walk.to_add {
        doc.insert(key, value);
    }
    Stripped {
        doc,
        removed: walk.removed,
    }
}

/// Removes the source's `event.kind` as Kibana does before it merges the
/// alert fields (which carry `event.kind: signal` as a dotted key):
/// `robustSet({key: 'event.kind', valueToSet: undefined})` when
/// `robustGet` finds a value. A nested `event.kind` is removed (an `event`
/// object left empty stays, as `{}`); a dotted `"event.kind"` key is
/// removed only when there is no `event` object, otherwise it stays for
/// the alert's own `event.kind` to overwrite.
pub fn remove_event_kind(doc: &mut Map<String, Value>) {
    let dotted = doc.get("event.kind").is_some_and(|v| !v.is_null());
    let nested = match doc.get("event") {
        Some(Value::Object(event)) => event.get("kind").is_some_and(|v| !v.is_null()),
        _ => false,
    };
    if !dotted && !nested {
        return;
    }
    match doc.get_mut("event") {
        Some(Value::Object(event)) => {
            event.shift_remove("kind");
        }
        _ => {
            doc.shift_remove("event.kind");
        }
    }
}

/// Top-level keys Kibana drops (`bannedFields`, compared with the key's
/// first dotted part; `kibana.alert.threshold_result` is in Kibana's list
/// too but can never equal a first part).
const BANNED_TOP_LEVEL: [&str; 3] = ["kibana", "signal", "threshold_result"];

#[derive(Default)]
struct Walk {
    removed: Vec<Removed>,
    to_add: Vec<(String, Value)>,
}

impl Walk {
    /// `internalTraverseAndMutateDoc` on one object at `path`.
    fn object(&mut self, doc: &mut Map<String, Value>, path: &[&str], top_level: bool) {
        let keys: Vec<String> = doc.keys().cloned().collect();
        for key in keys {
            let mut full: Vec<&str> = path.to_vec();
            full.push(&key);
            let full_path = full.join(".");
            let mut deleted = false;
            if top_level {
                let first = key.split('.').next().unwrap_or(&key);
                if BANNED_TOP_LEVEL.contains(&first) {
                    let value = doc.shift_remove(&key).unwrap_or(Value::Null);
                    self.removed.push(Removed {
                        path: full_path.clone(),
                        value,
                    });
                    deleted = true;
                }
            }
            if !deleted {
                deleted = self.value(doc, &key, &full, &full_path);
            }
            if !deleted && top_level {
                let top = full_path.split('.').next().unwrap_or("");
                let root = match top {
                    "event" => Some("kibana.alert.original_event"),
                    "data_stream" => Some("kibana.alert.original_data_stream"),
                    _ => None,
                };
                if let (Some(root), Some(value)) = (root, doc.get(&key)) {
                    let dest = format!("{root}{}", &full_path[top.len()..]);
                    flatten_with_prefix(&dest, value, &mut self.to_add);
                }
            }
        }
    }

    /// The value checks for `doc[key]`; true when it was deleted.
    fn value(
        &mut self,
        doc: &mut Map<String, Value>,
        key: &str,
        full: &[&str],
        full_path: &str,
    ) -> bool {
        let Some(value) = doc.get_mut(key) else {
            return false;
        };
        if let Value::Array(items) = value {
            self.array(items, full, full_path);
            if items.is_empty() {
                doc.shift_remove(key);
                return true;
            }
            return false;
        }
        if !is_ecs_compliant(value, full_path) {
            let value = doc.shift_remove(key).unwrap_or(Value::Null);
            self.removed.push(Removed {
                path: full_path.to_string(),
                value,
            });
            return true;
        }
        if let Value::Object(inner) = value {
            self.object(inner, full, false);
            if inner.is_empty() {
                doc.shift_remove(key);
                return true;
            }
        }
        false
    }

    /// `traverseArray`: nested arrays first, then each element judged at
    /// the array's own path.
    fn array(&mut self, items: &mut Vec<Value>, path: &[&str], path_string: &str) {
        for item in items.iter_mut() {
            if let Value::Array(inner) = item {
                self.array(inner, path, path_string);
            }
        }
        let old = std::mem::take(items);
        for mut item in old {
            let keep = match &mut item {
                Value::Array(inner) => !inner.is_empty(),
                other if !is_ecs_compliant(other, path_string) => {
                    self.removed.push(Removed {
                        path: path_string.to_string(),
                        value: other.clone(),
                    });
                    false
                }
                Value::Object(inner) => {
                    self.object(inner, path, false);
                    !inner.is_empty()
                }
                _ => true,
            };
            if keep {
                items.push(item);
            }
        }
    }
}

/// `flattenWithPrefix`: objects flattened to dotted keys below `prefix`,
/// anything else (arrays included) kept whole.
fn flatten_with_prefix(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_with_prefix(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// A single-part key JavaScript finds on every object through
/// `Object.prototype`. Kibana looks paths up with `ecsFieldMap[path]`, so
/// for these names the lookup finds something and the key counts as an
/// ECS object field (its value must then be an object).
pub fn is_prototype_key(path: &str) -> bool {
    matches!(
        path,
        "constructor"
            | "toString"
            | "toLocaleString"
            | "valueOf"
            | "hasOwnProperty"
            | "isPrototypeOf"
            | "propertyIsEnumerable"
            | "__proto__"
            | "__defineGetter__"
            | "__defineSetter__"
            | "__lookupGetter__"
            | "__lookupSetter__"
    )
}

/// Every proper dotted prefix of a field of the ECS map (Kibana's
/// `ecsObjectFields`): the object fields ECS implies.
fn ecs_object_fields() -> &'static std::collections::HashSet<String> {
    static SET: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let mut set = std::collections::HashSet::new();
        for field in fieldmap::ecs().iter() {
            let mut end = 0;
            while let Some(pos) = field.name[end..].find('.') {
                end += pos;
                set.insert(field.name[..end].to_string());
                end += 1;
            }
        }
        set
    })
}

/// `getIsEcsField`.
fn is_ecs_field(path: &str) -> bool {
    fieldmap::ecs().get(path).is_some()
        || ecs_object_fields().contains(path)
        || is_prototype_key(path)
}

/// `getIsEcsFieldObject`: ECS type object / flattened / geo_point, or an
/// implied object.
fn is_ecs_field_object(path: &str) -> bool {
    let typed_object = fieldmap::ecs()
        .get(path)
        .is_some_and(|f| matches!(f.field_type(), "object" | "flattened" | "geo_point"));
    typed_object || ecs_object_fields().contains(path) || is_prototype_key(path)
}

/// `validateDottedPathInEcsMappings`: no proper prefix of the path may be
/// an ECS leaf.
fn dotted_path_is_valid(path: &str) -> bool {
    let mut end = 0;
    while let Some(pos) = path[end..].find('.') {
        end += pos;
        let prefix = &path[..end];
        if is_ecs_field(prefix) && !is_ecs_field_object(prefix) {
            return false;
        }
        end += 1;
    }
    true
}

/// `computeIsEcsCompliant`.
fn is_ecs_compliant(value: &Value, path: &str) -> bool {
    if path.contains('.') && !dotted_path_is_valid(path) {
        return false;
    }
    if fieldmap::ecs_nested().contains(path) {
        return match value {
            Value::Array(items) => items.iter().all(Value::is_object),
            other => other.is_object(),
        };
    }
    if !is_ecs_field(path) {
        return true;
    }
    match fieldmap::ecs().get(path).map(|f| f.field_type()) {
        Some("geo_point") => true,
        Some("long") => values::is_valid_long(value),
        Some("float" | "scaled_float") => values::is_valid_numeric(value),
        Some("ip") => values::is_valid_ip(value),
        Some("date") => values::is_valid_date(value),
        Some("boolean") => values::is_valid_boolean(value),
        _ => is_ecs_field_object(path) == value.is_object(),
    }
}

#[cfg(test)]
mod tests;
