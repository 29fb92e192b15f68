//! The index mapping Kibana's composed template gives a security alerts
//! backing index, built from the embedded field maps.
//!
//! Each component template's mapping is Kibana's `mappingFromFieldMap`
//! (`x-pack/platform/plugins/shared/alerting/common/alert_schema/field_maps/mapping_from_field_map.ts`):
//! every field is written with `lodash.set` at its dotted path with
//! `.properties.` between the parts, in field-map order, `required`,
//! `array` and `multi_fields` dropped, `multi_fields` turned into `fields:
//! {name: {type}}`, every other key kept as is, and `@timestamp` given
//! `ignore_malformed: false`. The component mappings are then merged as
//! Elasticsearch merges a composable template's `composed_of` list (objects
//! merged property by property, a later field definition replacing an
//! earlier one), and the index template's own `dynamic: false` is on top.
//!
//! For OpenSearch the types it lacks are substituted ([`Flavour`]). `_meta`
//! and settings are the caller's.

use serde_json::{json, Map, Value};

use super::{Component, FieldMap};

/// `index.mapping.total_fields.limit` of the alerts index: Kibana's
/// `TOTAL_FIELDS_LIMIT` (`alerts_service.ts`). Kibana 9.4.3 and later make
/// it configurable (`xpack.alerting.alertsService.totalFieldsLimit`, default
/// 2800, kibana#274024), and a larger limit Kibana finds on an index it keeps.
pub const TOTAL_FIELDS_LIMIT: usize = 2500;

/// Which server the mapping is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Elasticsearch `major.minor` (7.17 or later): Kibana's mapping as is
    /// (every type it uses exists since 7.14), with the ECS fields that the
    /// Kibana version of that cluster maps alike
    /// ([`super::kibana::ecs_for_cluster`]).
    Elasticsearch { major: u32, minor: u32 },
    /// OpenSearch `major.minor`: types it lacks at that version are
    /// substituted, see [`opensearch_type`].
    OpenSearch { major: u32, minor: u32 },
}

/// The `mappings` object of a new security alerts backing index:
/// `{"dynamic": false, "properties": {...}}`.
pub fn alerts_mappings(flavour: Flavour) -> Value {
    let mut properties = Map::new();
    for component in Component::ALL {
        let mapping = match (component, flavour) {
            (Component::Ecs, Flavour::Elasticsearch { major, minor }) => {
                mapping_from_field_map(&super::kibana::ecs_for_cluster(major, minor))
            }
            _ => mapping_from_field_map(component.field_map()),
        };
        merge_properties(&mut properties, mapping);
    }
    if let Flavour::OpenSearch { major, minor } = flavour {
        substitute_properties(&mut properties, (major, minor));
    }
    json!({"dynamic": false, "properties": properties})
}

/// The `properties` Kibana's `mappingFromFieldMap` makes of one field map.
///
/// Fields of type `unmapped` are left out: Kibana's framework map declares
/// two (`kibana.alert.scheduled_action.throttling`, `kibana.alert.state`)
/// that are kept in documents but never mapped, and Elasticsearch has no
/// such type.
pub fn mapping_from_field_map(map: &FieldMap) -> Map<String, Value> {
    let mut properties = Map::new();
    for field in map.iter() {
        if field.field_type() == "unmapped" {
            continue;
        }
        let mut mapped = Map::new();
        for (key, value) in field.def {
            if !matches!(key.as_str(), "required" | "array" | "multi_fields") {
                mapped.insert(key.clone(), value.clone());
            }
        }
        if let Some(multi) = field.def.get("multi_fields").and_then(Value::as_array) {
            let mut fields = Map::new();
            for m in multi {
                if let (Some(name), Some(ty)) = (m["name"].as_str(), m.get("type")) {
                    fields.insert(name.to_string(), json!({"type": ty}));
                }
            }
            mapped.insert("fields".into(), Value::Object(fields));
        }
        lodash_set(
            &mut properties,
            &property_path(field.name),
            Value::Object(mapped),
        );
        if field.name == "@timestamp" {
            // Kibana's `set(properties, '@timestamp.ignore_malformed', false)`
            lodash_set(
                &mut properties,
                &["@timestamp", "ignore_malformed"],
                json!(false),
            );
        }
    }
    properties
}

/// `name.split('.').join('.properties.')`, as path parts.
fn property_path(name: &str) -> Vec<&str> {
    let mut path = Vec::new();
    for (i, part) in name.split('.').enumerate() {
        if i > 0 {
            path.push("properties");
        }
        path.push(part);
    }
    path
}

/// lodash's `set(properties, path, value)` for this input: an existing
/// object on the way is reused (a leaf definition too, which then gains
/// `properties`), anything else is replaced by a new object, and the last
/// part is overwritten.
fn lodash_set(properties: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = properties;
    for part in parents {
        let slot = node
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        node = slot.as_object_mut().expect("made an object above");
    }
    node.insert(last.to_string(), value);
}

/// Merges a later component's `properties` into the accumulated ones, as
/// Elasticsearch merges the mappings of a composable template: two object
/// mappers (with `properties`, or of type `object` / `nested`) merge their
/// parameters (later wins) and properties recursively; otherwise the later
/// definition replaces the earlier one.
pub fn merge_properties(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (name, later) in from {
        match (into.get_mut(&name), later) {
            (Some(Value::Object(earlier)), Value::Object(mut later))
                if is_object_mapper(earlier) && is_object_mapper(&later) =>
            {
                let later_props = match later.remove("properties") {
                    Some(Value::Object(p)) => p,
                    _ => Map::new(),
                };
                for (key, value) in later {
                    earlier.insert(key, value);
                }
                if !later_props.is_empty() {
                    let slot = earlier
                        .entry("properties")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(props) = slot {
                        merge_properties(props, later_props);
                    }
                }
            }
            (_, later) => {
                into.insert(name, later);
            }
        }
    }
}

fn is_object_mapper(def: &Map<String, Value>) -> bool {
    match def.get("type").and_then(Value::as_str) {
        None => true,
        Some(ty) => matches!(ty, "object" | "nested"),
    }
}

/// What OpenSearch `version` maps a type to, when it lacks it: `None` keeps
/// the type. Introduced in OpenSearch (docs.opensearch.org, "supported field
/// types"): `flat_object` 2.7, `unsigned_long` 2.8, `match_only_text` 2.12,
/// `wildcard` 2.15, `version` 3.2; `constant_keyword` exists from 2.14 but
/// requires a `value`, which an alerts index of many sources cannot give.
///
/// | Elasticsearch | OpenSearch | older OpenSearch |
/// | --- | --- | --- |
/// | `flattened` (parameters dropped: `flat_object` takes none of them) | `flat_object` from 2.7 | `object` with `enabled: false` (kept in `_source`, not searchable) |
/// | `match_only_text` | itself from 2.12 | `text` |
/// | `wildcard` | itself from 2.15 | `keyword` |
/// | `version` | itself from 3.2 | `keyword` |
/// | `unsigned_long` | itself from 2.8 | `long` |
/// | `constant_keyword` | `keyword` | `keyword` |
pub fn opensearch_type(ty: &str, version: (u32, u32)) -> Option<Value> {
    let at_least = |major: u32, minor: u32| version >= (major, minor);
    match ty {
        "flattened" if at_least(2, 7) => Some(json!({"type": "flat_object"})),
        "flattened" => Some(json!({"type": "object", "enabled": false})),
        "match_only_text" if !at_least(2, 12) => Some(json!({"type": "text"})),
        "wildcard" if !at_least(2, 15) => Some(json!({"type": "keyword"})),
        "version" if !at_least(3, 2) => Some(json!({"type": "keyword"})),
        "unsigned_long" if !at_least(2, 8) => Some(json!({"type": "long"})),
        "constant_keyword" => Some(json!({"type": "keyword"})),
        _ => None,
    }
}

fn substitute_properties(properties: &mut Map<String, Value>, version: (u32, u32)) {
    for def in properties.values_mut() {
        let Value::Object(def) = def else { continue };
        substitute_field(def, version);
        if let Some(Value::Object(props)) = def.get_mut("properties") {
            substitute_properties(props, version);
        }
        if let Some(Value::Object(multi)) = def.get_mut("fields") {
            for sub in multi.values_mut() {
                if let Value::Object(sub) = sub {
                    substitute_field(sub, version);
                }
            }
        }
    }
}

fn substitute_field(def: &mut Map<String, Value>, version: (u32, u32)) {
    let Some(ty) = def.get("type").and_then(Value::as_str) else {
        return;
    };
    let Some(Value::Object(replacement)) = opensearch_type(ty, version) else {
        return;
    };
    if ty == "flattened" {
        // `ignore_above` and the other flattened parameters mean nothing
        // to the replacement.
        def.clear();
    }
    def.extend(replacement);
}

/// How many fields a mapping has as `index.mapping.total_fields.limit`
/// counts them: every object, nested, leaf and alias mapper below the root
/// and every multi-field (a `flattened` / `flat_object` field is one).
pub fn count_fields(mappings: &Value) -> usize {
    fn count(properties: &Map<String, Value>) -> usize {
        properties
            .values()
            .map(|def| {
                1 + def
                    .get("fields")
                    .and_then(Value::as_object)
                    .map_or(0, Map::len)
                    + def
                        .get("properties")
                        .and_then(Value::as_object)
                        .map_or(0, count)
            })
            .sum()
    }
    mappings
        .get("properties")
        .and_then(Value::as_object)
        .map_or(0, count)
}

#[cfg(test)]
mod tests {
    use super::super::{ecs, framework, legacy_alert, security};
    use super::*;

    /// An Elasticsearch whose Kibana maps every ECS field of ours.
    const ES: Flavour = Flavour::Elasticsearch { major: 9, minor: 4 };

    fn at<'a>(mapping: &'a Value, dotted: &str) -> &'a Value {
        let mut node = &mapping["properties"];
        let parts: Vec<&str> = dotted.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            node = &node[*part];
            if i + 1 < parts.len() {
                node = &node["properties"];
            }
        }
        node
    }

    // Expectations from Kibana's mapping_from_field_map.test.ts for
    // `mappingFromFieldMap(alertFieldMap)`.
    #[test]
    fn framework_mapping_matches_kibanas_test() {
        let m = json!({"properties": mapping_from_field_map(framework())});
        assert_eq!(
            at(&m, "@timestamp"),
            &json!({"type": "date", "ignore_malformed": false})
        );
        assert_eq!(
            at(&m, "kibana.alert.reason"),
            &json!({"type": "keyword", "fields": {"text": {"type": "match_only_text"}}})
        );
        assert_eq!(
            at(&m, "kibana.alert.rule.parameters"),
            &json!({"type": "flattened", "ignore_above": 4096})
        );
        assert_eq!(
            at(&m, "kibana.alert.url"),
            &json!({"type": "keyword", "index": false, "ignore_above": 2048})
        );
        assert_eq!(
            at(&m, "kibana.alert.time_range"),
            &json!({"type": "date_range", "format": "epoch_millis||strict_date_optional_time"})
        );
        assert_eq!(at(&m, "kibana.alert.duration.us"), &json!({"type": "long"}));
        assert_eq!(at(&m, "kibana.version"), &json!({"type": "version"}));
        // `unmapped` fields are not mapped
        assert!(at(&m, "kibana.alert.state").is_null());
        assert!(at(&m, "kibana.alert.scheduled_action.throttling").is_null());
        assert_eq!(
            at(&m, "kibana.alert.scheduled_action.group"),
            &json!({"type": "keyword"})
        );
    }

    #[test]
    fn legacy_mapping_matches_kibanas_test() {
        let m = json!({"properties": mapping_from_field_map(legacy_alert())});
        assert_eq!(at(&m, "kibana.alert.risk_score"), &json!({"type": "float"}));
        assert_eq!(
            at(&m, "kibana.alert.suppression.terms.field"),
            &json!({"type": "keyword"})
        );
        assert_eq!(
            at(&m, "ecs.version"),
            &json!({"type": "keyword", "ignore_above": 1024})
        );
    }

    #[test]
    fn object_fields_keep_their_children() {
        // `kibana.alert.ancestors` (type object) comes before its children
        // in the field map, so lodash.set adds them under it.
        let m = json!({"properties": mapping_from_field_map(security())});
        let ancestors = at(&m, "kibana.alert.ancestors");
        assert_eq!(ancestors["type"], "object");
        assert_eq!(ancestors["properties"]["depth"], json!({"type": "long"}));
        assert_eq!(ancestors["properties"]["rule"], json!({"type": "keyword"}));
        let enrichments = at(&m, "threat.enrichments");
        assert_eq!(enrichments["type"], "nested");
        assert_eq!(
            enrichments["properties"]["indicator"]["properties"]["first_seen"],
            json!({"type": "date"})
        );
        assert_eq!(
            at(&m, "signal.rule.id"),
            &json!({"type": "alias", "path": "kibana.alert.rule.uuid"})
        );
    }

    #[test]
    fn composed_mapping_has_every_component_and_later_ones_win() {
        let m = alerts_mappings(ES);
        assert_eq!(m["dynamic"], json!(false));
        // ECS
        assert_eq!(at(&m, "process.pid"), &json!({"type": "long"}));
        assert_eq!(
            at(&m, "host.name"),
            &json!({"type": "keyword", "ignore_above": 1024})
        );
        assert_eq!(at(&m, "host")["properties"]["ip"], json!({"type": "ip"}));
        // security over ECS: Kibana's map has no ignore_above here
        assert_eq!(
            at(&m, "host.asset.criticality"),
            &json!({"type": "keyword"})
        );
        // framework (last) over security: reason gets its multi-field back
        assert_eq!(
            at(&m, "kibana.alert.reason")["fields"]["text"]["type"],
            "match_only_text"
        );
        // framework over ECS
        assert_eq!(at(&m, "event.original")["ignore_above"], 32766);
        assert_eq!(at(&m, "data_stream.dataset"), &json!({"type": "keyword"}));
        // security-only fields
        assert_eq!(
            at(&m, "kibana.alert.group.index"),
            &json!({"type": "integer"})
        );
        assert_eq!(at(&m, "kibana.alert.rule.parameters")["type"], "flattened");
    }

    #[test]
    fn no_field_map_name_has_a_numeric_part() {
        // lodash.set would make an array of the parent there; Kibana keeps
        // such ECS fields out (its experimental list), and we rely on it.
        for component in Component::ALL {
            for field in component.field_map().iter() {
                assert!(
                    !field
                        .name
                        .split('.')
                        .any(|p| p.bytes().all(|b| b.is_ascii_digit())),
                    "{}",
                    field.name
                );
            }
        }
    }

    #[test]
    fn composed_mapping_stays_under_the_total_fields_limit() {
        for flavour in [
            ES,
            Flavour::OpenSearch { major: 2, minor: 0 },
            Flavour::OpenSearch { major: 3, minor: 3 },
        ] {
            let n = count_fields(&alerts_mappings(flavour));
            eprintln!("{flavour:?}: {n} fields");
            assert!(
                n <= TOTAL_FIELDS_LIMIT,
                "{flavour:?}: {n} fields, limit {TOTAL_FIELDS_LIMIT}"
            );
        }
    }

    #[test]
    fn field_count_counts_objects_leaves_multi_fields_and_aliases() {
        let m = json!({"properties": {
            "a": {"properties": {"b": {"type": "keyword", "fields": {"t": {"type": "text"}}}}},
            "c": {"type": "alias", "path": "a.b"},
            "d": {"type": "flattened"}
        }});
        assert_eq!(count_fields(&m), 5);
        // and the ECS map alone: one per field, one per multi-field, one per
        // object on the way
        let ecs_only = json!({"properties": mapping_from_field_map(ecs())});
        assert!(count_fields(&ecs_only) > ecs().len());
    }

    #[test]
    fn opensearch_substitutions_follow_the_version() {
        let new = alerts_mappings(Flavour::OpenSearch { major: 3, minor: 3 });
        assert_eq!(
            at(&new, "kibana.alert.rule.parameters"),
            &json!({"type": "flat_object"})
        );
        assert_eq!(at(&new, "kibana.version"), &json!({"type": "version"}));
        assert_eq!(at(&new, "process.command_line")["type"], "wildcard");
        let old = alerts_mappings(Flavour::OpenSearch { major: 2, minor: 5 });
        assert_eq!(
            at(&old, "kibana.alert.rule.parameters"),
            &json!({"type": "object", "enabled": false})
        );
        assert_eq!(at(&old, "kibana.version"), &json!({"type": "keyword"}));
        let cmd = at(&old, "process.command_line");
        assert_eq!(cmd["type"], "keyword");
        assert_eq!(cmd["fields"]["text"], json!({"type": "text"}));
        assert_eq!(
            at(&old, "kibana.alert.reason")["fields"]["text"]["type"],
            "text"
        );
        // nothing Elasticsearch-only is left
        let mut types = Vec::new();
        collect_types(&old["properties"], &mut types);
        for gone in ["flattened", "match_only_text", "wildcard", "version"] {
            assert!(
                !types.contains(&gone.to_string()),
                "{gone} left in the OpenSearch 2.5 mapping"
            );
        }
        assert!(types.contains(&"date_range".to_string()));
    }

    fn collect_types(properties: &Value, out: &mut Vec<String>) {
        for def in properties.as_object().into_iter().flat_map(Map::values) {
            if let Some(ty) = def["type"].as_str() {
                out.push(ty.to_string());
            }
            for sub in def["fields"].as_object().into_iter().flat_map(Map::values) {
                out.extend(sub["type"].as_str().map(str::to_string));
            }
            collect_types(&def["properties"], out);
        }
    }

    #[test]
    fn merge_replaces_leaves_and_merges_objects() {
        let mut into = json!({
            "a": {"type": "keyword", "ignore_above": 1024},
            "o": {"properties": {"x": {"type": "long"}}},
            "n": {"type": "nested", "properties": {"x": {"type": "long"}}}
        })
        .as_object()
        .unwrap()
        .clone();
        let from = json!({
            "a": {"type": "keyword"},
            "o": {"type": "object", "properties": {"y": {"type": "ip"}}},
            "n": {"type": "nested", "properties": {"x": {"type": "keyword"}}}
        })
        .as_object()
        .unwrap()
        .clone();
        merge_properties(&mut into, from);
        assert_eq!(
            Value::Object(into),
            json!({
                "a": {"type": "keyword"},
                "o": {"type": "object", "properties": {"x": {"type": "long"}, "y": {"type": "ip"}}},
                "n": {"type": "nested", "properties": {"x": {"type": "keyword"}}}
            })
        );
    }
}
