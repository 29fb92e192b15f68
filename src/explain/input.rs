//! The events `detectd explain --event FILE` checks: one JSON object, a
//! JSON array of objects, or NDJSON. An object with a `_source` object (a
//! search hit, as Discover or `_search` show it) is read as that hit, with
//! its own `_index` and `_id`; any other object is the event itself, named
//! like `detectd query` names events (`_index` the file name, `_id` its
//! line, or its position in an array).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::eql::search::Document;

/// One event to explain, and how to name it (`file:line`).
#[derive(Clone, Debug, PartialEq)]
pub struct EventInput {
    pub label: String,
    pub doc: Document,
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{at}: invalid JSON: {error}")]
    Json {
        at: String,
        error: serde_json::Error,
    },
    #[error(
        "{at}: expected a JSON object (an event, or a search hit with `_source`), found {found}"
    )]
    NotAnObject { at: String, found: String },
    #[error("{path}: expected at least one event, found none")]
    Empty { path: PathBuf },
}

/// Reads the events of `path`: one JSON object, a JSON array of objects,
/// or NDJSON. Each event's `_index` is the file name and `_id` its line
/// (or position in the array), unless it is a search hit that has its own.
pub fn read_events(path: &Path) -> Result<Vec<EventInput>, EventsError> {
    let text = std::fs::read_to_string(path).map_err(|error| EventsError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let shown = path.display().to_string();
    let mut values: Vec<(String, String, Json)> = Vec::new();
    match serde_json::from_str::<Json>(&text) {
        Ok(Json::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                values.push((format!("{shown}[{i}]"), (i + 1).to_string(), item));
            }
        }
        Ok(single) => values.push((shown.clone(), "1".to_string(), single)),
        Err(_) => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let at = format!("{shown}:{}", i + 1);
                let v = serde_json::from_str::<Json>(line).map_err(|error| EventsError::Json {
                    at: at.clone(),
                    error,
                })?;
                values.push((at, (i + 1).to_string(), v));
            }
        }
    }
    if values.is_empty() {
        return Err(EventsError::Empty {
            path: path.to_path_buf(),
        });
    }
    values
        .into_iter()
        .map(|(label, id, v)| event_input(label, &name, id, v))
        .collect()
}

fn event_input(label: String, file: &str, id: String, v: Json) -> Result<EventInput, EventsError> {
    let Json::Object(mut map) = v else {
        let found = crate::cluster::snippet(v.to_string().as_bytes());
        return Err(EventsError::NotAnObject { at: label, found });
    };
    // A search hit: its own index and id, its `_source` the event.
    if let Some(Json::Object(source)) = map.get("_source") {
        let source = Json::Object(source.clone());
        let text = |k: &str| map.get(k).and_then(Json::as_str).map(str::to_string);
        let doc = Document {
            index: text("_index").unwrap_or_else(|| file.to_string()),
            id: text("_id").unwrap_or(id),
            source,
        };
        return Ok(EventInput { label, doc });
    }
    map.remove("_index");
    map.remove("_id");
    Ok(EventInput {
        label,
        doc: Document {
            index: file.to_string(),
            id,
            source: Json::Object(map),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<EventInput>, EventsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ev.json");
        std::fs::write(&path, text).unwrap();
        read_events(&path)
    }

    #[test]
    fn objects_arrays_ndjson_and_search_hits() {
        let one = read(r#"{"a": 1}"#).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].doc.index.as_str(), one[0].doc.id.as_str()),
            ("ev.json", "1")
        );
        let array = read(r#"[{"a": 1}, {"a": 2}]"#).unwrap();
        assert_eq!(array.len(), 2);
        assert!(
            array[1].label.ends_with("ev.json[1]"),
            "{:?}",
            array[1].label
        );
        assert_eq!(array[1].doc.id, "2");
        let lines = read("{\"a\": 1}\n\n{\"a\": 2}\n").unwrap();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[1].label.ends_with("ev.json:3"),
            "{:?}",
            lines[1].label
        );
        let hit = read(r#"{"_index": "logs-x", "_id": "q1", "_source": {"a": 3}}"#).unwrap();
        assert_eq!(
            (hit[0].doc.index.as_str(), hit[0].doc.id.as_str()),
            ("logs-x", "q1")
        );
        assert_eq!(hit[0].doc.source, serde_json::json!({"a": 3}));
        assert!(matches!(read("").unwrap_err(), EventsError::Empty { .. }));
        assert!(matches!(
            read("[1]").unwrap_err(),
            EventsError::NotAnObject { .. }
        ));
        assert!(matches!(
            read("{\"a\": 1}\n{oops\n").unwrap_err(),
            EventsError::Json { .. }
        ));
    }
}
