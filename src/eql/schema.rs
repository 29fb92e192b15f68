//! Field types from an Elasticsearch mapping, for typed evaluation.
//!
//! A [`Schema`] answers, for a dotted field path as written in a query:
//! where its value lives in `_source` (aliases and multi-fields resolve to
//! their source path), what type Elasticsearch would give it, and what the
//! mapping changes about the values Elasticsearch indexes: `null_value`,
//! a `constant_keyword`'s value, `ignore_above`, `coerce: false`.
//! [`Schema::default`] has no mapping: every field is typed dynamically from
//! its JSON value (strings behave as keyword, numbers as long or double),
//! which is how `query` and `hunt` run without `--mapping`.
//!
//! The daemon reads each index's mapping (`source::mappings`); a field the
//! index does not map is typed dynamically too, as Elasticsearch's dynamic
//! mapping would type it.

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

/// The Elasticsearch field types EQL distinguishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// keyword, wildcard, constant_keyword, text (matched through its
    /// keyword sub-field or, lacking one, as keyword).
    Keyword,
    /// long, integer, short, byte, unsigned_long.
    Long,
    /// double, float, half_float, scaled_float.
    Double,
    Boolean,
    /// A date with its mapping formats (`||`-separated in the mapping).
    Date {
        formats: Vec<String>,
    },
    Ip,
    Version,
    /// Not in the mapping: typed from the JSON value of each event.
    Dynamic,
}

impl FieldType {
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::Keyword => "keyword",
            FieldType::Long => "long",
            FieldType::Double => "double",
            FieldType::Boolean => "boolean",
            FieldType::Date { .. } => "date",
            FieldType::Ip => "ip",
            FieldType::Version => "version",
            FieldType::Dynamic => "dynamic",
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, FieldType::Long | FieldType::Double)
    }
}

/// What the schema knows about one field.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldInfo {
    /// Where the value lives in `_source` (the alias target, the parent of a
    /// multi-field).
    pub source_path: String,
    pub ty: FieldType,
    /// The mapping's `null_value`, applied to an explicit JSON `null`.
    pub null_value: Option<Json>,
    /// Whether the mapping declares the field (false = dynamic).
    pub mapped: bool,
    /// A `constant_keyword`'s `value`: every document has it, whether or not
    /// its `_source` does.
    pub constant: Option<Json>,
    /// `ignore_above` of a keyword (for a `text` field, of the keyword
    /// sub-field exact matches go through): longer strings, counted in
    /// UTF-16 code units as Java does, are not indexed, so no query sees
    /// them.
    pub ignore_above: Option<u32>,
    /// `coerce` of a numeric field (`true` unless the mapping says `false`):
    /// without it a string, or a fraction for an integer type, is malformed
    /// rather than converted.
    pub coerce: bool,
    /// The mapping's type name as written (`keyword`, `constant_keyword`,
    /// `text`, `long`, ...; empty when not mapped), as `_field_caps` would
    /// report it: what the query DSL can ask of the field.
    pub es_type: Box<str>,
    /// Whether queries can search it (`index: false` says no).
    pub searchable: bool,
}

impl FieldInfo {
    /// A field the mapping does not declare, at `path`.
    pub fn dynamic(path: &str) -> FieldInfo {
        FieldInfo {
            source_path: path.to_string(),
            ty: FieldType::Dynamic,
            null_value: None,
            mapped: false,
            constant: None,
            ignore_above: None,
            coerce: true,
            es_type: "".into(),
            searchable: false,
        }
    }
}

/// Why a mapping could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid mapping json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid mapping: expected an object with `properties`, found {0}")]
    Shape(String),
    #[error("alias `{field}` has no `path`")]
    AliasWithoutPath { field: String },
}

/// Field types of one index (or the union of several) from its mapping.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schema {
    fields: HashMap<String, FieldInfo>,
    aliases: HashMap<String, String>,
    /// Object paths mapped as `nested`: plain queries cannot see inside.
    nested: HashSet<String>,
}

impl Schema {
    /// Reads a mapping (`{"properties": ...}`, optionally wrapped in
    /// `{"mappings": ...}`). An index without fields has an empty
    /// `mappings` object, which is an empty schema.
    pub fn from_mapping(mapping: &Json) -> Result<Schema, SchemaError> {
        let mut root = mapping;
        let wrapped = root.get("mappings").is_some();
        if let Some(m) = root.get("mappings") {
            root = m;
        }
        let mut schema = Schema::default();
        match root.get("properties") {
            Some(props) => {
                let props = props
                    .as_object()
                    .ok_or_else(|| SchemaError::Shape(short(root)))?;
                schema.walk(props, "")?;
            }
            None if wrapped && root.is_object() => {}
            None => return Err(SchemaError::Shape(short(root))),
        }
        Ok(schema)
    }

    /// Reads mapping text as the Elasticsearch QA loader does: lines starting
    /// with `#` are dropped and the `[runtime_random_keyword_type]`
    /// placeholder becomes `keyword`.
    pub fn from_mapping_text(text: &str) -> Result<Schema, SchemaError> {
        let cleaned: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("[runtime_random_keyword_type]", "keyword");
        let json: Json = serde_json::from_str(&cleaned)?;
        Schema::from_mapping(&json)
    }

    fn walk(
        &mut self,
        props: &serde_json::Map<String, Json>,
        prefix: &str,
    ) -> Result<(), SchemaError> {
        for (name, def) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(sub) = def.get("properties").and_then(Json::as_object) {
                if def.get("type").and_then(Json::as_str) == Some("nested") {
                    self.nested.insert(path.clone());
                }
                self.walk(sub, &path)?;
                continue;
            }
            let ty = def.get("type").and_then(Json::as_str).unwrap_or("object");
            if ty == "alias" {
                let target = def.get("path").and_then(Json::as_str).ok_or_else(|| {
                    SchemaError::AliasWithoutPath {
                        field: path.clone(),
                    }
                })?;
                self.aliases.insert(path, target.to_string());
                continue;
            }
            let mut info = field_info(&path, ty, def);
            if let Some(multi) = def.get("fields").and_then(Json::as_object) {
                let mut exact: Option<Option<u32>> = None;
                for (sub_name, sub_def) in multi {
                    let sub_ty = sub_def
                        .get("type")
                        .and_then(Json::as_str)
                        .unwrap_or("keyword");
                    let sub = field_info(&path, sub_ty, sub_def);
                    if exact.is_none() && KEYWORD_TYPES.contains(&sub_ty) {
                        exact = Some(sub.ignore_above);
                    }
                    self.fields.insert(format!("{path}.{sub_name}"), sub);
                }
                // Elasticsearch's EQL compares a `text` field through its
                // keyword sub-field (`TextEsField.getExactInfo`), so what
                // that sub-field does not index cannot match either.
                if TEXT_TYPES.contains(&ty) {
                    if let Some(limit) = exact {
                        info.ignore_above = limit;
                    }
                }
            }
            self.fields.insert(path, info);
        }
        Ok(())
    }

    /// Resolves a field as written in a query: aliases to their target,
    /// unmapped fields to a dynamic field at the same path.
    pub fn resolve(&self, name: &str) -> FieldInfo {
        let target = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        match self.fields.get(target) {
            Some(info) => info.clone(),
            None => FieldInfo::dynamic(target),
        }
    }

    /// Adds another index's mapping (a search over several indices); where
    /// both declare a field, the first declaration wins.
    pub fn merge(&mut self, other: &Schema) {
        for (k, v) in &other.fields {
            self.fields.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &other.aliases {
            self.aliases.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self.nested.extend(other.nested.iter().cloned());
    }

    /// Whether the mapping declares the object at `path` as `nested`.
    pub fn is_nested(&self, path: &str) -> bool {
        self.nested.contains(path)
    }

    /// Whether the mapping knows the name (as a field or an alias).
    pub fn is_mapped(&self, name: &str) -> bool {
        self.aliases.contains_key(name) || self.fields.contains_key(name)
    }

    /// Whether any mapping was loaded.
    pub fn has_mapping(&self) -> bool {
        !self.fields.is_empty() || !self.aliases.is_empty()
    }
}

/// Types whose values are exact strings with an `ignore_above`.
const KEYWORD_TYPES: &[&str] = &["keyword", "wildcard", "flattened"];
/// Analysed string types, matched exactly only through a keyword sub-field.
const TEXT_TYPES: &[&str] = &["text", "match_only_text"];

/// What a mapping entry of type `ty` says about its field at `path`.
fn field_info(path: &str, ty: &str, def: &Json) -> FieldInfo {
    let null_value = def.get("null_value").filter(|v| !v.is_null()).cloned();
    let constant = if ty == "constant_keyword" {
        def.get("value").filter(|v| !v.is_null()).cloned()
    } else {
        None
    };
    let ignore_above = if KEYWORD_TYPES.contains(&ty) {
        def.get("ignore_above").and_then(mapping_u32)
    } else {
        None
    };
    FieldInfo {
        source_path: path.to_string(),
        ty: parse_type(ty, def),
        null_value,
        mapped: true,
        constant,
        ignore_above,
        // Mappings hold parameters as JSON values or, as Elasticsearch
        // echoes some back, as strings.
        coerce: !is_false(def.get("coerce")),
        es_type: ty.into(),
        searchable: !is_false(def.get("index")),
    }
}

fn is_false(v: Option<&Json>) -> bool {
    matches!(v, Some(Json::Bool(false))) || v.and_then(Json::as_str) == Some("false")
}

/// A non-negative integer parameter, as a number or a numeric string.
fn mapping_u32(v: &Json) -> Option<u32> {
    match v {
        Json::Number(n) => n.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        Json::String(s) => s
            .trim()
            .parse::<u64>()
            .ok()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        _ => None,
    }
}

fn parse_type(ty: &str, def: &Json) -> FieldType {
    match ty {
        "long" | "integer" | "short" | "byte" | "unsigned_long" => FieldType::Long,
        "double" | "float" | "half_float" | "scaled_float" => FieldType::Double,
        "boolean" => FieldType::Boolean,
        "date" | "date_nanos" => FieldType::Date {
            formats: def
                .get("format")
                .and_then(Json::as_str)
                .map(|f| f.split("||").map(str::to_string).collect())
                .unwrap_or_default(),
        },
        "ip" => FieldType::Ip,
        "version" => FieldType::Version,
        // keyword, wildcard, constant_keyword, text, match_only_text, ...:
        // compared as exact strings.
        _ => FieldType::Keyword,
    }
}

fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPPING: &str = r#"
# a comment the loader drops
{
  "properties": {
    "event_type": { "type": "[runtime_random_keyword_type]" },
    "event": { "properties": {
      "category": { "type": "alias", "path": "event_type" }
    } },
    "pid": { "type": "long" },
    "ratio": { "type": "scaled_float", "scaling_factor": 10 },
    "file_name": { "type": "text", "fields": { "keyword": { "type": "keyword" } } },
    "src": { "type": "ip" },
    "v": { "type": "version" },
    "d": { "type": "date", "format": "dd-MM-yyyy||epoch_millis" },
    "opt": { "type": "keyword", "null_value": "NULL" },
    "ds": { "type": "constant_keyword", "value": "endpoint" }
  }
}"#;

    #[test]
    fn reads_types_aliases_and_multi_fields() {
        let s = Schema::from_mapping_text(MAPPING).unwrap();
        assert_eq!(s.resolve("pid").ty, FieldType::Long);
        assert_eq!(s.resolve("ratio").ty, FieldType::Double);
        let cat = s.resolve("event.category");
        assert_eq!(cat.source_path, "event_type");
        assert_eq!(cat.ty, FieldType::Keyword);
        let kw = s.resolve("file_name.keyword");
        assert_eq!(kw.source_path, "file_name");
        assert_eq!(kw.ty, FieldType::Keyword);
        assert_eq!(s.resolve("src").ty, FieldType::Ip);
        assert_eq!(s.resolve("v").ty, FieldType::Version);
        assert_eq!(
            s.resolve("d").ty,
            FieldType::Date {
                formats: vec!["dd-MM-yyyy".into(), "epoch_millis".into()]
            }
        );
        assert_eq!(s.resolve("opt").null_value, Some(Json::from("NULL")));
        assert_eq!(s.resolve("ds").constant, Some(Json::from("endpoint")));
        assert_eq!(s.resolve("ds").ty, FieldType::Keyword);
        let unknown = s.resolve("nope.x");
        assert_eq!(unknown.ty, FieldType::Dynamic);
        assert!(!unknown.mapped);
    }

    #[test]
    fn default_schema_is_dynamic() {
        let s = Schema::default();
        assert!(!s.has_mapping());
        assert_eq!(s.resolve("process.name").ty, FieldType::Dynamic);
    }

    #[test]
    fn reads_ignore_above_coerce_and_the_exact_sub_field_of_text() {
        let s = Schema::from_mapping(&serde_json::json!({"mappings": {"properties": {
            "k": {"type": "keyword", "ignore_above": 256},
            "w": {"type": "wildcard", "ignore_above": "12"},
            "t": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 64}}},
            "plain": {"type": "text"},
            "n": {"type": "long", "coerce": false},
            "m": {"type": "double"}
        }}}))
        .unwrap();
        assert_eq!(s.resolve("k").ignore_above, Some(256));
        assert_eq!(s.resolve("w").ignore_above, Some(12));
        assert_eq!(s.resolve("t").ignore_above, Some(64));
        assert_eq!(s.resolve("t.keyword").ignore_above, Some(64));
        assert_eq!(s.resolve("plain").ignore_above, None);
        assert!(!s.resolve("n").coerce);
        assert!(s.resolve("m").coerce);
        assert!(s.resolve("unmapped").coerce);
    }

    #[test]
    fn an_index_without_fields_is_an_empty_schema() {
        let s = Schema::from_mapping(&serde_json::json!({"mappings": {}})).unwrap();
        assert!(!s.has_mapping());
        let s =
            Schema::from_mapping(&serde_json::json!({"mappings": {"dynamic": "strict"}})).unwrap();
        assert!(!s.has_mapping());
        assert!(Schema::from_mapping(&serde_json::json!({})).is_err());
        assert!(Schema::from_mapping(&serde_json::json!({"mappings": []})).is_err());
        assert!(Schema::from_mapping(&serde_json::json!({"properties": []})).is_err());
    }

    #[test]
    fn rejects_bad_mappings() {
        assert!(Schema::from_mapping_text("[1]").is_err());
        assert!(Schema::from_mapping_text("{").is_err());
        assert!(Schema::from_mapping_text(r#"{"properties":{"a":{"type":"alias"}}}"#).is_err());
    }
}
