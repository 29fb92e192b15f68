//! Kibana's exception list export (`POST /api/exception_lists/_export`,
//! `export_exception_list_and_items.ts`): NDJSON, one exception list
//! object then its items, and a last line with the export's counts. The
//! multi-list export (lists, then all items) and a rules export carrying its
//! rules' lists read the same way: rules, connectors and summaries are
//! skipped.

use std::path::Path;

use serde_json::Value;

use super::error::{LoadError, LoadErrorKind};
use super::json::{self, Object};
use super::model::{ListKey, NamespaceType, Origin};
use super::Parsed;

pub(super) fn parse(text: &str, file: &Path) -> Parsed {
    let mut out = Parsed::default();
    // Files saved by some Windows editors start with a byte order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = Origin {
            file: file.to_path_buf(),
            line: i + 1,
        };
        let err = |kind| LoadError {
            file: file.to_path_buf(),
            line: Some(i + 1),
            kind,
        };
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(err(LoadErrorKind::Json(e.to_string())));
                continue;
            }
        };
        match json::object(&value, origin) {
            Ok(Object::List(l)) => out.lists.push(l),
            Ok(Object::Item(it)) => out.items.push(it),
            Ok(Object::Skip) => {}
            Err(e) => {
                out.errors.push(err(LoadErrorKind::Invalid(e.to_string())));
                if let Some(key) = loose_key(&value) {
                    out.broken.push(key);
                }
            }
        }
    }
    out
}

/// The list an object that failed to load belongs to, if it says.
pub(super) fn loose_key(v: &Value) -> Option<ListKey> {
    let list_id = v.get("list_id")?.as_str()?.to_string();
    let namespace_type = match v.get("namespace_type") {
        None | Some(Value::Null) => NamespaceType::Single,
        Some(ns) => NamespaceType::parse(ns.as_str()?)?,
    };
    Some(ListKey {
        list_id,
        namespace_type,
    })
}
