//! Kibana's field maps for the security alerts index, as data.
//!
//! Kibana builds the mapping of `.internal.alerts-security.alerts-<space>-*`
//! from an index template composed of four component templates, each made
//! from a *field map* (flat `{"dotted.name": {type, array, required, ...}}`):
//!
//! | component template | field map |
//! | --- | --- |
//! | `.alerts-ecs-mappings` | `ecsFieldMap` (generated from `@elastic/ecs`) |
//! | `.alerts-security.alerts-mappings` | `securityRuleTypeFieldMap` (framework + legacy + security alert + rule fields + `signal.*` aliases) |
//! | `.alerts-legacy-alert-mappings` | `legacyAlertFieldMap` |
//! | `.alerts-framework-mappings` | `alertFieldMap` |
//!
//! in that `composed_of` order, later templates winning
//! (`x-pack/platform/plugins/shared/alerting/server/alerts_service/alerts_service.ts`,
//! `initializeContext`). The maps are embedded JSON files beside this module;
//! `README.md` there says which Kibana commits and ECS version they come from
//! and how to regenerate them. [`mapping`] turns them into the index mapping;
//! [`kibana`] says which ECS fields it keeps on an Elasticsearch cluster
//! whose Kibana version maps fewer (so that Kibana's own later put-mapping
//! is accepted).
//!
//! This module only holds and reads data: no I/O.

#[cfg(test)]
mod compat;
pub mod kibana;
pub mod mapping;

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

pub use mapping::{alerts_mappings, count_fields, Flavour, TOTAL_FIELDS_LIMIT};

/// The ECS version of the embedded `@elastic/ecs` data (Kibana main pins
/// `@elastic/ecs` 9.3.0 since kibana#254661).
pub const ECS_VERSION: &str = "9.3.0";

const ECS_JSON: &str = include_str!("ecs.json");
const ECS_NESTED_JSON: &str = include_str!("ecs_nested.json");
const FRAMEWORK_JSON: &str = include_str!("alert_framework.json");
const LEGACY_JSON: &str = include_str!("alert_legacy.json");
const SECURITY_ALERTS_JSON: &str = include_str!("security_alerts.json");
const SECURITY_RULES_JSON: &str = include_str!("security_rules.json");
const SIGNAL_ALIASES_JSON: &str = include_str!("signal_aad_mapping.json");

/// One field map: dotted field names to Kibana field definitions, in
/// Kibana's key order (which matters: [`mapping`] replays Kibana's
/// `lodash.set` calls in this order).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldMap {
    fields: Map<String, Value>,
}

/// One field of a field map: its dotted name and definition (`type`,
/// `array`, `required`, and whatever mapping parameters Kibana sets:
/// `ignore_above`, `scaling_factor`, `multi_fields`, `index`, `format`,
/// `path`, ...).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Field<'a> {
    pub name: &'a str,
    pub def: &'a Map<String, Value>,
}

impl<'a> Field<'a> {
    /// The field type (`keyword`, `long`, `object`, `alias`, ...); empty if
    /// the definition has none.
    pub fn field_type(&self) -> &'a str {
        self.def.get("type").and_then(Value::as_str).unwrap_or("")
    }

    pub fn array(&self) -> bool {
        self.def
            .get("array")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn required(&self) -> bool {
        self.def
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

impl FieldMap {
    fn from_fields(fields: Map<String, Value>) -> FieldMap {
        FieldMap { fields }
    }

    /// The field named `name` (dotted), if this map defines it.
    pub fn get(&self, name: &str) -> Option<Field<'_>> {
        let (name, def) = self.fields.get_key_value(name)?;
        Some(Field {
            name,
            def: def.as_object()?,
        })
    }

    /// The fields in Kibana's order.
    pub fn iter(&self) -> impl Iterator<Item = Field<'_>> {
        self.fields.iter().filter_map(|(name, def)| {
            Some(Field {
                name,
                def: def.as_object()?,
            })
        })
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Kibana's `{...a, ...b}`: `other`'s fields replace same-named ones
    /// (which keep their position) and the new ones are appended.
    fn spread(&mut self, other: &FieldMap) {
        for (name, def) in &other.fields {
            self.fields.insert(name.clone(), def.clone());
        }
    }
}

/// The component templates of the security alerts index template, in
/// Kibana's `composed_of` order (later ones win).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    Ecs,
    Security,
    LegacyAlert,
    Framework,
}

impl Component {
    /// In `composed_of` order.
    pub const ALL: [Component; 4] = [
        Component::Ecs,
        Component::Security,
        Component::LegacyAlert,
        Component::Framework,
    ];

    /// The component template's name in the cluster
    /// (`resource_installer_utils.ts`, `getComponentTemplateName`).
    pub fn template_name(self) -> &'static str {
        match self {
            Component::Ecs => ".alerts-ecs-mappings",
            Component::Security => ".alerts-security.alerts-mappings",
            Component::LegacyAlert => ".alerts-legacy-alert-mappings",
            Component::Framework => ".alerts-framework-mappings",
        }
    }

    pub fn field_map(self) -> &'static FieldMap {
        match self {
            Component::Ecs => ecs(),
            Component::Security => security(),
            Component::LegacyAlert => legacy_alert(),
            Component::Framework => framework(),
        }
    }
}

/// Kibana's `ecsFieldMap`: ECS without `constant_keyword`, `nested` and
/// `flattened` fields, their sub-fields, and a few experimental fields.
pub fn ecs() -> &'static FieldMap {
    static MAP: OnceLock<FieldMap> = OnceLock::new();
    MAP.get_or_init(|| parse_fields(ECS_JSON, "ecs.json"))
}

/// Kibana's `ecsNestedFieldNames`: the ECS fields of type `nested` (left out
/// of [`ecs`], but their values must still be objects).
pub fn ecs_nested() -> &'static HashSet<String> {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let file = parse_file(ECS_NESTED_JSON, "ecs_nested.json");
        file.get("fields")
            .and_then(Value::as_array)
            .expect("ecs_nested.json: `fields` is an array")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}

/// Kibana's `alertFieldMap` (`.alerts-framework-mappings`).
pub fn framework() -> &'static FieldMap {
    static MAP: OnceLock<FieldMap> = OnceLock::new();
    MAP.get_or_init(|| parse_fields(FRAMEWORK_JSON, "alert_framework.json"))
}

/// Kibana's `legacyAlertFieldMap` (`.alerts-legacy-alert-mappings`).
pub fn legacy_alert() -> &'static FieldMap {
    static MAP: OnceLock<FieldMap> = OnceLock::new();
    MAP.get_or_init(|| parse_fields(LEGACY_JSON, "alert_legacy.json"))
}

/// The security solution's `alertsFieldMap` (latest version) alone.
pub fn security_alerts() -> &'static FieldMap {
    static MAP: OnceLock<FieldMap> = OnceLock::new();
    MAP.get_or_init(|| parse_fields(SECURITY_ALERTS_JSON, "security_alerts.json"))
}

/// The security solution's `rulesFieldMap` alone.
pub fn security_rules() -> &'static FieldMap {
    static MAP: OnceLock<FieldMap> = OnceLock::new();
    MAP.get_or_init(|| parse_fields(SECURITY_RULES_JSON, "security_rules.json"))
}

/// The `signal.*` field aliases: alias name to the `kibana.alert.*` path.
pub fn signal_aliases() -> &'static Map<String, Value> {
    static MAP: OnceLock<Map<String, Value>> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut file = parse_file(SIGNAL_ALIASES_JSON, "signal_aad_mapping.json");
        match file.remove("aliases") {
            Some(Value::Object(aliases)) => aliases,
            _ => panic!("signal_aad_mapping.json: `aliases` is an object"),
        }
    })
}

/// `securityRuleTypeFieldMap`, the field map of
/// `.alerts-security.alerts-mappings`: `{...technicalRuleFieldMap,
/// ...alertsFieldMap, ...rulesFieldMap, ...aliasesFieldMap}` where the
/// technical map is the framework and legacy maps and each alias is
/// `{type: alias, required: false, path}`
/// (`x-pack/solutions/security/plugins/security_solution/server/lib/detection_engine/rule_types/create_security_rule_type_wrapper.ts`,
/// `x-pack/platform/plugins/shared/rule_registry/common/assets/field_maps/technical_rule_field_map.ts`).
pub fn security() -> &'static FieldMap {
    static MAP: OnceLock<FieldMap> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map = FieldMap::from_fields(Map::new());
        map.spread(framework());
        map.spread(legacy_alert());
        map.spread(security_alerts());
        map.spread(security_rules());
        let aliases = signal_aliases()
            .iter()
            .map(|(name, path)| {
                (
                    name.clone(),
                    json!({"type": "alias", "required": false, "path": path}),
                )
            })
            .collect();
        map.spread(&FieldMap::from_fields(aliases));
        map
    })
}

/// The definition a field has in the composed index template: the one of
/// the last component template (in `composed_of` order) that defines it,
/// with that component.
pub fn lookup(name: &str) -> Option<(Component, Field<'static>)> {
    Component::ALL
        .iter()
        .rev()
        .find_map(|c| c.field_map().get(name).map(|f| (*c, f)))
}

fn parse_file(text: &str, file: &str) -> Map<String, Value> {
    // Embedded at build time and checked by the tests below: a failure here
    // is a broken build, not bad input.
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => panic!("{file}: expected a JSON object"),
        Err(e) => panic!("{file}: {e}"),
    }
}

fn parse_fields(text: &str, file: &str) -> FieldMap {
    match parse_file(text, file).remove("fields") {
        Some(Value::Object(fields)) => FieldMap::from_fields(fields),
        _ => panic!("{file}: `fields` is an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_map_parses_and_every_field_has_a_type() {
        for component in Component::ALL {
            let map = component.field_map();
            assert!(!map.is_empty(), "{component:?}");
            for field in map.iter() {
                assert!(
                    !field.field_type().is_empty(),
                    "{component:?}: {} has no type",
                    field.name
                );
            }
        }
        assert_eq!(map_len(ecs()), 1626);
        assert_eq!(ecs_nested().len(), 24);
        assert_eq!(framework().len(), 58);
        assert_eq!(legacy_alert().len(), 29);
        assert_eq!(security_alerts().len(), 73);
        assert_eq!(security_rules().len(), 19);
        assert_eq!(signal_aliases().len(), 76);
    }

    fn map_len(map: &FieldMap) -> usize {
        map.iter().count()
    }

    #[test]
    fn ecs_data_says_its_version() {
        let file = parse_file(ECS_JSON, "ecs.json");
        assert_eq!(file["_source"]["ecs_version"], ECS_VERSION);
    }

    #[test]
    fn ecs_map_leaves_out_what_kibana_leaves_out() {
        // constant_keyword, nested and flattened fields and their children
        assert!(ecs().get("data_stream.dataset").is_none());
        assert!(ecs().get("threat.enrichments").is_none());
        assert!(ecs().get("threat.enrichments.indicator.ip").is_none());
        assert!(ecs_nested().contains("threat.enrichments"));
        // the experimental list
        assert!(ecs().get("faas.trigger.type").is_none());
        // kept fields carry Kibana's properties only
        let pid = ecs().get("process.pid").unwrap();
        assert_eq!(pid.field_type(), "long");
        assert_eq!(pid.def.len(), 3, "{:?}", pid.def);
        let cmd = ecs().get("process.command_line").unwrap();
        assert_eq!(cmd.field_type(), "wildcard");
        assert_eq!(cmd.def["multi_fields"][0]["type"], "match_only_text");
        assert!(ecs()
            .get("host.name")
            .unwrap()
            .def
            .contains_key("ignore_above"));
        assert!(ecs().get("@timestamp").unwrap().required());
    }

    #[test]
    fn security_map_composes_like_kibana() {
        let security = security();
        // framework fields come first, in their order...
        assert_eq!(
            security.iter().next().unwrap().name,
            "kibana.alert.action_group"
        );
        // ...and a field the security alert map redefines keeps its place
        // but takes the later definition (no multi-field on reason here).
        let reason = security.get("kibana.alert.reason").unwrap();
        assert!(!reason.def.contains_key("multi_fields"));
        let position = |name: &str| security.iter().position(|f| f.name == name).unwrap();
        assert!(position("kibana.alert.reason") < position("kibana.alert.ancestors"));
        // aliases last, pointing at kibana.alert.*
        let last = security.iter().last().unwrap();
        assert_eq!(last.name, "signal.threshold_result.count");
        assert_eq!(last.field_type(), "alias");
        assert_eq!(last.def["path"], "kibana.alert.threshold_result.count");
        assert_eq!(
            security.len(),
            58 + 29 + 73 + 19 + 76
                - duplicates(&[
                    framework(),
                    legacy_alert(),
                    security_alerts(),
                    security_rules()
                ])
        );
    }

    fn duplicates(maps: &[&FieldMap]) -> usize {
        let mut seen = HashSet::new();
        let mut dups = 0;
        for map in maps {
            for f in map.iter() {
                if !seen.insert(f.name) {
                    dups += 1;
                }
            }
        }
        dups
    }

    #[test]
    fn every_alias_points_at_a_field_of_the_composed_mapping() {
        for (alias, path) in signal_aliases() {
            let path = path.as_str().unwrap();
            let (_, target) = lookup(path).unwrap_or_else(|| panic!("{alias} -> {path}"));
            assert_ne!(target.field_type(), "alias", "{alias} -> {path}");
            assert_ne!(target.field_type(), "unmapped", "{alias} -> {path}");
        }
    }

    #[test]
    fn lookup_takes_the_last_component_that_defines_a_field() {
        // The framework template (last) redefines event.original.
        let (component, field) = lookup("event.original").unwrap();
        assert_eq!(component, Component::Framework);
        assert_eq!(field.def["ignore_above"], 32766);
        // Only the security template has the sequence fields.
        let (component, field) = lookup("kibana.alert.group.index").unwrap();
        assert_eq!(component, Component::Security);
        assert_eq!(field.field_type(), "integer");
        // ECS alone.
        assert_eq!(lookup("process.pid").unwrap().0, Component::Ecs);
        assert!(lookup("no.such.field").is_none());
    }
}
