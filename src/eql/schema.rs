//! Field types from an Elasticsearch mapping, for typed evaluation.
//!
//! A [`Schema`] answers, for a dotted field path as written in a query:
//! where its value lives in `_source` (aliases and multi-fields resolve to
//! their source path), what type Elasticsearch would give it, and its
//! `null_value`. [`Schema::default`] has no mapping: every field is typed
//! dynamically from its JSON value (strings behave as keyword, numbers as
//! long or double), which is how detectd runs in production.

use std::collections::HashMap;

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
#[derive(Clone, Debug, Default)]
pub struct Schema {
    fields: HashMap<String, FieldInfo>,
    aliases: HashMap<String, String>,
}

impl Schema {
    /// Reads a mapping (`{"properties": ...}`, optionally wrapped in
    /// `{"mappings": ...}`).
    pub fn from_mapping(mapping: &Json) -> Result<Schema, SchemaError> {
        let mut root = mapping;
        if let Some(m) = root.get("mappings") {
            root = m;
        }
        let props = root
            .get("properties")
            .and_then(Json::as_object)
            .ok_or_else(|| SchemaError::Shape(short(root)))?;
        let mut schema = Schema::default();
        schema.walk(props, "")?;
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
            let field_type = parse_type(ty, def);
            let null_value = def.get("null_value").filter(|v| !v.is_null()).cloned();
            if let Some(multi) = def.get("fields").and_then(Json::as_object) {
                for (sub_name, sub_def) in multi {
                    let sub_ty = sub_def
                        .get("type")
                        .and_then(Json::as_str)
                        .unwrap_or("keyword");
                    self.fields.insert(
                        format!("{path}.{sub_name}"),
                        FieldInfo {
                            source_path: path.clone(),
                            ty: parse_type(sub_ty, sub_def),
                            null_value: sub_def.get("null_value").filter(|v| !v.is_null()).cloned(),
                            mapped: true,
                            constant: None,
                        },
                    );
                }
            }
            let constant = if ty == "constant_keyword" {
                def.get("value").filter(|v| !v.is_null()).cloned()
            } else {
                None
            };
            self.fields.insert(
                path.clone(),
                FieldInfo {
                    source_path: path,
                    ty: field_type,
                    null_value,
                    mapped: true,
                    constant,
                },
            );
        }
        Ok(())
    }

    /// Resolves a field as written in a query: aliases to their target,
    /// unmapped fields to a dynamic field at the same path.
    pub fn resolve(&self, name: &str) -> FieldInfo {
        let target = self.aliases.get(name).map(String::as_str).unwrap_or(name);
        match self.fields.get(target) {
            Some(info) => info.clone(),
            None => FieldInfo {
                source_path: target.to_string(),
                ty: FieldType::Dynamic,
                null_value: None,
                mapped: false,
                constant: None,
            },
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
    fn rejects_bad_mappings() {
        assert!(Schema::from_mapping_text("[1]").is_err());
        assert!(Schema::from_mapping_text("{").is_err());
        assert!(Schema::from_mapping_text(r#"{"properties":{"a":{"type":"alias"}}}"#).is_err());
    }
}
