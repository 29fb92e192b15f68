//! `--mapping` of `detectd query` and `detectd hunt`: which Elasticsearch
//! mapping each events file is evaluated with.
//!
//! `--mapping FILE` applies to every events file; `--mapping NAME=FILE` to
//! the events file whose `_index` (its file name) is NAME. Both repeat; for
//! one events file its own mappings come first, then the ones for every
//! file, and where two declare a field the first wins. An argument that
//! names an existing file is a FILE even if it contains `=`.
//!
//! A mapping file holds one of: the answer of `GET <index>/_mapping`
//! (`{"<index>": {"mappings": {...}}, ...}`), a `{"mappings": {...}}`
//! object, or a bare `{"properties": {...}}`. With several indices in one
//! file, `NAME=FILE` takes index NAME when the file has it, and otherwise
//! (and `--mapping FILE` always) all of them, merged. Lines starting with
//! `#` are comments, as in Elasticsearch's own QA mapping files.
//!
//! Besides each file's EQL [`Schema`], the same mappings give its field
//! types for the query rules' KQL ([`InputSchemas::mappings`], what the
//! NDJSON source of `hunt` hands to a rule run), merged the same way.
//!
//! What this does not do: read mappings from a cluster (that is
//! `source::mappings`), or compile queries (`eql::compile::PlanSet`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::eql::schema::Schema;
use crate::filter::FieldTypes;
use crate::source::Mappings;

/// One `--mapping` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingArg {
    /// The events file it is for (`NAME=`), or `None` for every file.
    pub name: Option<String>,
    pub path: PathBuf,
}

impl MappingArg {
    /// Reads `FILE` or `NAME=FILE`. An argument that is an existing file is
    /// a FILE, so a path with `=` in it still works.
    pub fn parse(arg: &str) -> MappingArg {
        if !Path::new(arg).is_file() {
            if let Some((name, path)) = arg.split_once('=') {
                if !name.is_empty() && !path.is_empty() {
                    return MappingArg {
                        name: Some(name.to_string()),
                        path: PathBuf::from(path),
                    };
                }
            }
        }
        MappingArg {
            name: None,
            path: PathBuf::from(arg),
        }
    }
}

/// Why the `--mapping` arguments cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingFileError {
    // The I/O error is part of the message, not a `source`: callers print
    // error chains, and it would be said twice.
    #[error("cannot read mapping file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: invalid mapping: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "--mapping {name}={path}: no events file is named `{name}` (expected one of: {known})"
    )]
    UnknownName {
        name: String,
        path: String,
        known: String,
    },
}

/// The schema of each events file (in the order of `inputs`, by `_index`
/// name) and the schema of anything else (the mappings for every file).
#[derive(Clone, Debug, Default)]
pub struct InputSchemas {
    pub per_input: Vec<(String, Arc<Schema>)>,
    pub fallback: Schema,
    /// Each input's mapping as JSON (`{"properties": ...}`, merged like
    /// the schemas), for its field types; in the order of `per_input`.
    properties: Vec<Value>,
}

impl InputSchemas {
    /// Schemas by input name, known without their mapping JSON (the
    /// cluster's, for EQL evaluation): [`InputSchemas::mappings`] gives no
    /// field types for them.
    pub fn of_schemas(per_input: Vec<(String, Arc<Schema>)>) -> InputSchemas {
        let properties = per_input.iter().map(|_| empty_mapping()).collect();
        InputSchemas {
            per_input,
            fallback: Schema::default(),
            properties,
        }
    }

    /// Whether any mapping was given.
    pub fn is_empty(&self) -> bool {
        !self.fallback.has_mapping() && self.per_input.iter().all(|(_, s)| !s.has_mapping())
    }

    /// The mappings of the inputs that have one, by name, as a source hands
    /// them to a rule run (the others are typed from their JSON).
    pub fn mappings(&self) -> Mappings {
        let mut by_index = HashMap::new();
        let mut types = HashMap::new();
        for ((name, schema), properties) in self.per_input.iter().zip(&self.properties) {
            if schema.has_mapping() {
                by_index.insert(name.clone(), schema.clone());
                types.insert(name.clone(), Arc::new(FieldTypes::from_mapping(properties)));
            }
        }
        Mappings::from_parts(by_index, types)
    }
}

/// Loads the mapping files of `args` for events files named `inputs` (their
/// `_index`). Every file is read and checked, every `NAME` must be one of
/// `inputs`.
pub fn load(args: &[MappingArg], inputs: &[String]) -> Result<InputSchemas, MappingFileError> {
    let mut general = Schema::default();
    let mut general_json = empty_mapping();
    let mut named: Vec<(&str, Schema, Value)> = Vec::new();
    // Names first: a typo is reported before any file is read.
    for arg in args {
        if let Some(name) = arg.name.as_ref().filter(|n| !inputs.contains(n)) {
            return Err(MappingFileError::UnknownName {
                name: name.clone(),
                path: arg.path.display().to_string(),
                known: inputs
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    for arg in args {
        let file = MappingFile::read(&arg.path)?;
        match &arg.name {
            None => {
                let (schema, json) = file.merged();
                general.merge(&schema);
                merge_json(&mut general_json, &json);
            }
            Some(name) => {
                let (schema, json) = file.for_index(name);
                named.push((name, schema, json));
            }
        }
    }
    let mut per_input = Vec::with_capacity(inputs.len());
    let mut properties = Vec::with_capacity(inputs.len());
    for input in inputs {
        let mut schema = Schema::default();
        let mut json = empty_mapping();
        for (_, s, j) in named.iter().filter(|(n, _, _)| n == input) {
            schema.merge(s);
            merge_json(&mut json, j);
        }
        schema.merge(&general);
        merge_json(&mut json, &general_json);
        per_input.push((input.clone(), Arc::new(schema)));
        properties.push(json);
    }
    Ok(InputSchemas {
        per_input,
        fallback: general,
        properties,
    })
}

/// `{"properties": {}}`.
fn empty_mapping() -> Value {
    let mut m = Map::new();
    m.insert("properties".into(), Value::Object(Map::new()));
    Value::Object(m)
}

/// Adds the fields of mapping `other` (`{"properties": ...}`) to `into`:
/// where both declare a field, the first declaration wins, as
/// [`Schema::merge`] has it; objects declared by both get the fields of
/// each.
fn merge_json(into: &mut Value, other: &Value) {
    let (Some(mine), Some(theirs)) = (
        into.get_mut("properties").and_then(Value::as_object_mut),
        other.get("properties").and_then(Value::as_object),
    ) else {
        return;
    };
    for (name, def) in theirs {
        match mine.get_mut(name) {
            None => {
                mine.insert(name.clone(), def.clone());
            }
            Some(existing) => {
                let both_objects = existing.get("properties").is_some_and(Value::is_object)
                    && def.get("properties").is_some_and(Value::is_object);
                if both_objects {
                    merge_json(existing, def);
                }
            }
        }
    }
}

/// A mapping as `{"properties": ...}` (unwrapped from `{"mappings": ...}`).
fn properties_of(mapping: &Value) -> Value {
    let root = mapping.get("mappings").unwrap_or(mapping);
    let mut m = Map::new();
    m.insert(
        "properties".into(),
        root.get("properties")
            .cloned()
            .unwrap_or_else(|| Value::Object(Map::new())),
    );
    Value::Object(m)
}

/// The mappings in one file: anonymous, or by index name; each as a
/// schema and as its JSON (`{"properties": ...}`).
#[derive(Debug)]
struct MappingFile {
    indices: Vec<(Option<String>, Schema, Value)>,
}

impl MappingFile {
    fn read(path: &Path) -> Result<MappingFile, MappingFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| MappingFileError::Read {
            path: shown.clone(),
            error,
        })?;
        MappingFile::parse(&text).map_err(|reason| MappingFileError::Invalid {
            path: shown,
            reason,
        })
    }

    fn parse(text: &str) -> Result<MappingFile, String> {
        // Comment lines become empty lines, so JSON errors keep their line.
        let cleaned: String = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with('#') {
                    ""
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let json: Value = serde_json::from_str(&cleaned).map_err(|e| e.to_string())?;
        let schema = |v: &Value| Schema::from_mapping(v).map_err(|e| e.to_string());
        let Some(object) = json.as_object() else {
            return Err(format!("expected a JSON object, found {}", kind(&json)));
        };
        if object.contains_key("properties") || object.contains_key("mappings") {
            return Ok(MappingFile {
                indices: vec![(None, schema(&json)?, properties_of(&json))],
            });
        }
        // `GET <index>/_mapping`: one `{"mappings": ...}` per index.
        let mut indices = Vec::new();
        for (index, body) in object {
            if body.get("mappings").is_none() {
                return Err(format!(
                    "expected `properties`, `mappings`, or the answer of GET <index>/_mapping \
                     ({{\"<index>\": {{\"mappings\": ...}}}}), found key `{index}` holding {}",
                    kind(body)
                ));
            }
            indices.push((
                Some(index.clone()),
                schema(body).map_err(|e| format!("index `{index}`: {e}"))?,
                properties_of(body),
            ));
        }
        if indices.is_empty() {
            return Err("expected a mapping, found an empty object".to_string());
        }
        Ok(MappingFile { indices })
    }

    /// Every index's mapping merged (the first declaration of a field wins).
    fn merged(&self) -> (Schema, Value) {
        let mut out = Schema::default();
        let mut json = empty_mapping();
        for (_, s, j) in &self.indices {
            out.merge(s);
            merge_json(&mut json, j);
        }
        (out, json)
    }

    /// Index `name`'s mapping if the file has it, else all of them merged.
    fn for_index(&self, name: &str) -> (Schema, Value) {
        match self
            .indices
            .iter()
            .find(|(n, _, _)| n.as_deref() == Some(name))
        {
            Some((_, s, j)) => (s.clone(), j.clone()),
            None => self.merged(),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::schema::FieldType;
    use serde_json::json;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn arguments_are_name_equals_file_unless_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let odd = write(dir.path(), "a=b.json", "{}");
        assert_eq!(
            MappingArg::parse(&odd.display().to_string()),
            MappingArg {
                name: None,
                path: odd.clone()
            }
        );
        assert_eq!(
            MappingArg::parse("logs=m.json"),
            MappingArg {
                name: Some("logs".into()),
                path: "m.json".into()
            }
        );
        assert_eq!(MappingArg::parse("m.json").name, None);
        assert_eq!(MappingArg::parse("=m.json").name, None);
    }

    #[test]
    fn reads_the_three_shapes() {
        let bare = MappingFile::parse(r#"{"properties": {"a": {"type": "ip"}}}"#).unwrap();
        assert_eq!(bare.merged().0.resolve("a").ty, FieldType::Ip);
        let wrapped = MappingFile::parse(
            "# comment\n{\"mappings\": {\"properties\": {\"a\": {\"type\": \"long\"}}}}",
        )
        .unwrap();
        assert_eq!(wrapped.merged().0.resolve("a").ty, FieldType::Long);
        let api = MappingFile::parse(
            r#"{"logs-1": {"mappings": {"properties": {"a": {"type": "ip"}}}},
                "logs-2": {"mappings": {"properties": {"a": {"type": "keyword"}, "b": {"type": "long"}}}}}"#,
        )
        .unwrap();
        assert_eq!(
            api.for_index("logs-2").0.resolve("a").ty,
            FieldType::Keyword
        );
        assert_eq!(
            api.for_index("logs-1").0.resolve("b").ty,
            FieldType::Dynamic
        );
        // another name: all of them, the first declaration winning
        assert_eq!(api.for_index("other").0.resolve("a").ty, FieldType::Ip);
        assert_eq!(api.for_index("other").0.resolve("b").ty, FieldType::Long);
    }

    #[test]
    fn malformed_files_say_what_is_wrong_and_where() {
        for (text, want) in [
            ("{\n  \"properties\": {\n", "EOF while parsing"),
            ("# c\n[1]", "expected a JSON object, found an array"),
            ("{}", "found an empty object"),
            (r#"{"logs": 5}"#, "found key `logs` holding a number"),
            (
                r#"{"logs": {"mappings": {"properties": 5}}}"#,
                "index `logs`: invalid mapping",
            ),
            (
                r#"{"properties": {"x": {"type": "alias"}}}"#,
                "alias `x` has no `path`",
            ),
        ] {
            let err = MappingFile::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        // the line of a JSON error counts the comment lines
        let err = MappingFile::parse("# one\n# two\n{\"properties\": {]}").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "bad.json", "{");
        let err = load(&[MappingArg::parse(&bad.display().to_string())], &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: invalid mapping: ", bad.display())),
            "{err}"
        );
        let err = load(&[MappingArg::parse("/no/such/mapping.json")], &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read mapping file /no/such/mapping.json: "),
            "{err}"
        );
    }

    #[test]
    fn named_mappings_go_to_their_file_and_win_over_the_general_ones() {
        let dir = tempfile::tempdir().unwrap();
        let general = write(
            dir.path(),
            "g.json",
            r#"{"properties": {"a": {"type": "long"}, "b": {"type": "long"}}}"#,
        );
        let special = write(
            dir.path(),
            "s.json",
            r#"{"properties": {"a": {"type": "ip"}}}"#,
        );
        let args = [
            MappingArg::parse(&general.display().to_string()),
            MappingArg::parse(&format!("two.ndjson={}", special.display())),
        ];
        let inputs = ["one.ndjson".to_string(), "two.ndjson".to_string()];
        let s = load(&args, &inputs).unwrap();
        assert_eq!(s.per_input[0].1.resolve("a").ty, FieldType::Long);
        assert_eq!(s.per_input[1].1.resolve("a").ty, FieldType::Ip);
        assert_eq!(s.per_input[1].1.resolve("b").ty, FieldType::Long);
        assert_eq!(s.fallback.resolve("a").ty, FieldType::Long);
        assert!(!s.is_empty());
        let err = load(
            &[MappingArg::parse(&format!("three={}", special.display()))],
            &inputs,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(
                "no events file is named `three` (expected one of: `one.ndjson`, `two.ndjson`)"
            ),
            "{err}"
        );
        assert!(load(&[], &inputs).unwrap().is_empty());
        assert!(load(&[], &inputs).unwrap().mappings().is_empty());
        // the field types follow the same choice of mappings
        let m = s.mappings();
        assert_eq!(m.get("two.ndjson").unwrap().resolve("a").ty, FieldType::Ip);
        let types = m
            .filtered(|i| i == "two.ndjson")
            .field_types()
            .expect("types");
        assert_eq!(types.single_type("a"), Some("ip"));
        assert_eq!(types.single_type("b"), Some("long"));
        let types = m.filtered(|i| i == "one.ndjson").field_types().unwrap();
        assert_eq!(types.single_type("a"), Some("long"));
    }

    #[test]
    fn merged_json_keeps_the_first_declaration_and_unites_objects() {
        let mut a = json!({"properties": {"x": {"type": "ip"},
            "o": {"properties": {"p": {"type": "long"}}}}});
        merge_json(
            &mut a,
            &json!({"properties": {"x": {"type": "keyword"}, "y": {"type": "long"},
                "o": {"properties": {"p": {"type": "keyword"}, "q": {"type": "ip"}}}}}),
        );
        assert_eq!(
            a,
            json!({"properties": {"x": {"type": "ip"}, "y": {"type": "long"},
                "o": {"properties": {"p": {"type": "long"}, "q": {"type": "ip"}}}}})
        );
    }
}
