//! The indices' field types: what a filter's leaves mean depends on them,
//! both when a front end chooses query types and when the evaluator decides
//! what a document's value is.
//!
//! [`FieldTypes`] is read from a `_field_caps` response (what the source
//! asks the cluster) or from an index mapping (more detail: date formats,
//! `ignore_above`, `null_value`, aliases). Object and `nested` fields are
//! kept so nested paths are known; they are not leaves.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What is known of one field over the searched indices.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldInfo {
    /// Mapped types (more than one when the indices disagree).
    pub types: BTreeSet<String>,
    /// Searchable in every index that maps it.
    pub searchable: bool,
    /// Where the value lives in `_source`: the field itself, the parent of a
    /// multi-field (`message.keyword` reads `message`), an alias's target.
    pub source_path: String,
    /// The mapping's date `format` (`||`-separated), when known.
    pub format: Option<String>,
    pub ignore_above: Option<usize>,
    /// Indexed in place of an explicit JSON `null`.
    pub null_value: Option<Value>,
    pub scaling_factor: Option<f64>,
    /// A `constant_keyword`'s value: every document has it, whether or not
    /// its `_source` does.
    pub constant: Option<Value>,
    /// A non-default `analyzer`, `search_analyzer` or `normalizer`, which
    /// the evaluator does not model.
    pub custom_analysis: Option<String>,
}

impl FieldInfo {
    fn new(name: &str, types: BTreeSet<String>) -> FieldInfo {
        FieldInfo {
            types,
            searchable: true,
            source_path: name.to_string(),
            format: None,
            ignore_above: None,
            null_value: None,
            scaling_factor: None,
            constant: None,
            custom_analysis: None,
        }
    }

    /// An object or `nested` field: a container, not a leaf.
    pub fn is_container(&self) -> bool {
        self.types.iter().all(|t| t == "object" || t == "nested")
    }
}

/// Kibana's field type (`castEsToKbnFieldTypeName`), which decides how KQL
/// translates a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KibanaType {
    String,
    Number,
    Date,
    Ip,
    Boolean,
    Other,
    /// The indices map the field to different Kibana types.
    Conflict,
}

fn kibana_type_of(es: &str) -> KibanaType {
    match es {
        "text" | "keyword" | "match_only_text" | "wildcard" | "constant_keyword" | "version"
        | "string" | "_id" | "_index" | "_type" => KibanaType::String,
        "long" | "integer" | "short" | "byte" | "double" | "float" | "half_float"
        | "scaled_float" | "unsigned_long" | "token_count" => KibanaType::Number,
        "date" | "date_nanos" => KibanaType::Date,
        "ip" => KibanaType::Ip,
        "boolean" => KibanaType::Boolean,
        _ => KibanaType::Other,
    }
}

/// Field name -> what the indices map it to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldTypes {
    fields: BTreeMap<String, FieldInfo>,
}

impl FieldTypes {
    /// Reads a `_field_caps` response body (`unmapped` entries left out).
    /// A field whose parent is a leaf is a multi-field of it and reads the
    /// parent's `_source` value, as Kibana infers from the same response.
    pub fn from_field_caps(body: &Value) -> FieldTypes {
        let mut out = FieldTypes::default();
        let Some(fields) = body.get("fields").and_then(Value::as_object) else {
            return out;
        };
        for (name, by_type) in fields {
            let Some(by_type) = by_type.as_object() else {
                continue;
            };
            let mut info = FieldInfo::new(name, BTreeSet::new());
            for (ty, caps) in by_type {
                if ty == "unmapped" {
                    continue;
                }
                info.types.insert(ty.clone());
                if caps.get("searchable").and_then(Value::as_bool) == Some(false) {
                    info.searchable = false;
                }
            }
            if !info.types.is_empty() {
                out.fields.insert(name.clone(), info);
            }
        }
        let names: Vec<String> = out.fields.keys().cloned().collect();
        for name in names {
            let parent_leaf = ancestors(&name)
                .find_map(|p| out.fields.get(p).filter(|i| !i.is_container()))
                .map(|i| i.source_path.clone());
            if let (Some(src), Some(info)) = (parent_leaf, out.fields.get_mut(&name)) {
                info.source_path = src;
            }
        }
        out
    }

    /// Reads an index mapping (`{"properties": ...}`, optionally wrapped in
    /// `{"mappings": ...}` or keyed by index name as `GET _mapping` answers;
    /// several indices are merged).
    pub fn from_mapping(mapping: &Value) -> FieldTypes {
        let mut out = FieldTypes::default();
        let mut roots = Vec::new();
        if mapping.get("properties").is_some() {
            roots.push(mapping);
        } else if let Some(m) = mapping.get("mappings") {
            roots.push(m);
        } else if let Some(obj) = mapping.as_object() {
            roots.extend(obj.values().filter_map(|v| v.get("mappings")));
        }
        for root in roots {
            let mut one = FieldTypes::default();
            let mut aliases = Vec::new();
            if let Some(props) = root.get("properties").and_then(Value::as_object) {
                one.walk(props, "", &mut aliases);
            }
            for (alias, target) in aliases {
                if let Some(info) = one.fields.get(&target).cloned() {
                    one.fields.insert(alias, info);
                }
            }
            out.merge(&one);
        }
        out
    }

    fn walk(
        &mut self,
        props: &serde_json::Map<String, Value>,
        prefix: &str,
        aliases: &mut Vec<(String, String)>,
    ) {
        for (name, def) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            let ty = def.get("type").and_then(Value::as_str).unwrap_or("object");
            if ty == "alias" {
                if let Some(target) = def.get("path").and_then(Value::as_str) {
                    aliases.push((path, target.to_string()));
                }
                continue;
            }
            self.fields
                .insert(path.clone(), leaf_info(&path, ty, def, &path));
            if let Some(sub) = def.get("properties").and_then(Value::as_object) {
                self.walk(sub, &path, aliases);
            }
            if let Some(multi) = def.get("fields").and_then(Value::as_object) {
                for (sub_name, sub_def) in multi {
                    let sub_ty = sub_def
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("keyword");
                    let sub_path = format!("{path}.{sub_name}");
                    let info = leaf_info(&sub_path, sub_ty, sub_def, &path);
                    self.fields.insert(sub_path, info);
                }
            }
        }
    }

    /// Adds another index's fields: types are united, details of the first
    /// declaration kept.
    pub fn merge(&mut self, other: &FieldTypes) {
        for (name, info) in &other.fields {
            match self.fields.get_mut(name) {
                Some(mine) => {
                    mine.types.extend(info.types.iter().cloned());
                    mine.searchable &= info.searchable;
                }
                None => {
                    self.fields.insert(name.clone(), info.clone());
                }
            }
        }
    }

    /// A field mapped with exactly these types (tests, fixtures).
    pub fn with(mut self, field: &str, types: &[&str]) -> FieldTypes {
        let info = FieldInfo::new(field, types.iter().map(|t| t.to_string()).collect());
        self.fields.insert(field.to_string(), info);
        self
    }

    /// A multi-field of `parent` (reads the parent's `_source` value).
    pub fn with_multi(mut self, field: &str, parent: &str, types: &[&str]) -> FieldTypes {
        let mut info = FieldInfo::new(field, types.iter().map(|t| t.to_string()).collect());
        info.source_path = parent.to_string();
        self.fields.insert(field.to_string(), info);
        self
    }

    pub fn get(&self, field: &str) -> Option<&FieldInfo> {
        self.fields.get(field)
    }

    pub fn is_mapped(&self, field: &str) -> bool {
        self.fields.contains_key(field)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Leaf field names (objects and nested containers left out), sorted.
    pub fn leaf_names(&self) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(|(_, i)| !i.is_container())
            .map(|(n, _)| n.as_str())
    }

    /// The one type every index maps the field with, if they agree.
    pub fn single_type(&self, field: &str) -> Option<&str> {
        let info = self.fields.get(field)?;
        (info.types.len() == 1)
            .then(|| info.types.iter().next().map(String::as_str))
            .flatten()
    }

    /// The innermost `nested` object the field lives under, if any.
    pub fn nested_path<'a>(&self, field: &'a str) -> Option<&'a str> {
        ancestors(field).find(|p| {
            self.fields
                .get(*p)
                .is_some_and(|i| i.types.contains("nested"))
        })
    }

    /// Kibana's type for the field: one Kibana type, or a conflict.
    pub fn kibana_type(&self, field: &str) -> Option<KibanaType> {
        let info = self.fields.get(field)?;
        let kinds: BTreeSet<_> = info.types.iter().map(|t| kibana_type_of(t) as u8).collect();
        let first = info.types.iter().next().map(|t| kibana_type_of(t))?;
        Some(if kinds.len() > 1 {
            KibanaType::Conflict
        } else {
            first
        })
    }
}

/// `a.b.c` -> `a.b`, `a` (closest first).
fn ancestors(field: &str) -> impl Iterator<Item = &str> {
    field.rmatch_indices('.').map(move |(i, _)| &field[..i])
}

fn leaf_info(name: &str, ty: &str, def: &Value, source: &str) -> FieldInfo {
    let mut info = FieldInfo::new(name, BTreeSet::from([ty.to_string()]));
    info.source_path = source.to_string();
    info.format = def
        .get("format")
        .and_then(Value::as_str)
        .map(str::to_string);
    info.ignore_above = def
        .get("ignore_above")
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    info.null_value = def.get("null_value").filter(|v| !v.is_null()).cloned();
    info.scaling_factor = def.get("scaling_factor").and_then(Value::as_f64);
    if ty == "constant_keyword" {
        info.constant = def.get("value").filter(|v| !v.is_null()).cloned();
    }
    info.custom_analysis = ["analyzer", "search_analyzer", "normalizer"]
        .iter()
        .find_map(|k| {
            def.get(*k)
                .and_then(Value::as_str)
                .filter(|a| *a != "standard" && !(*k != "normalizer" && *a == "default"))
                .map(|a| format!("{k} `{a}`"))
        });
    if def.get("index").and_then(Value::as_bool) == Some(false) {
        info.searchable = false;
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_caps_with_multi_fields_and_nested() {
        let body = json!({"fields":{
            "message":{"text":{"type":"text","searchable":true}},
            "message.keyword":{"keyword":{"type":"keyword","searchable":true}},
            "n":{"nested":{"type":"nested","searchable":false}},
            "n.a":{"keyword":{"type":"keyword","searchable":true}},
            "x":{"keyword":{"type":"keyword"},"long":{"type":"long"},"unmapped":{"type":"unmapped"}},
            "d":{"date":{"type":"date"},"date_nanos":{"type":"date_nanos"}}}});
        let t = FieldTypes::from_field_caps(&body);
        assert_eq!(t.get("message.keyword").unwrap().source_path, "message");
        assert_eq!(t.get("n.a").unwrap().source_path, "n.a");
        assert_eq!(t.nested_path("n.a"), Some("n"));
        assert_eq!(t.nested_path("message"), None);
        assert_eq!(t.kibana_type("x"), Some(KibanaType::Conflict));
        assert_eq!(t.kibana_type("d"), Some(KibanaType::Date));
        assert_eq!(t.single_type("message"), Some("text"));
        assert_eq!(
            t.leaf_names().collect::<Vec<_>>(),
            vec!["d", "message", "message.keyword", "n.a", "x"]
        );
    }

    #[test]
    fn mapping_with_aliases_formats_and_multi_fields() {
        let m = json!({"idx":{"mappings":{"properties":{
            "@timestamp":{"type":"date","format":"epoch_second"},
            "host":{"properties":{"name":{"type":"keyword","ignore_above":10,"null_value":"none"}}},
            "hn":{"type":"alias","path":"host.name"},
            "msg":{"type":"text","fields":{"raw":{"type":"keyword"}}}}}}});
        let t = FieldTypes::from_mapping(&m);
        assert_eq!(
            t.get("@timestamp").unwrap().format.as_deref(),
            Some("epoch_second")
        );
        let hn = t.get("hn").unwrap();
        assert_eq!(hn.source_path, "host.name");
        assert_eq!(hn.ignore_above, Some(10));
        assert_eq!(hn.null_value, Some(json!("none")));
        assert_eq!(t.get("msg.raw").unwrap().source_path, "msg");
        assert!(t.get("host").unwrap().is_container());
    }
}
