//! detection-rules' exceptions TOML (`detection_rules/exception.py`,
//! `TOMLExceptionContents`): a `[metadata]` table (list name, rule ids and
//! names, dates; not needed here) and `[[exceptions]]`, each a
//! `[exceptions.container]` (the list) and its `[[exceptions.items]]` with
//! `[[exceptions.items.entries]]`. Items default to their container's
//! `list_id` and `namespace_type`.
//!
//! Values are read as JSON (TOML dates become their RFC 3339 text) and
//! checked like an export's objects; errors point at the line of the item
//! or entry they are in.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::error::{LoadError, LoadErrorKind};
use super::json;
use super::model::Origin;
use super::Parsed;
use crate::rule::raw::toml_to_json;

/// The same file with only the spans of its tables, for line numbers.
#[derive(Deserialize)]
struct Skeleton {
    exceptions: Option<Vec<Spanned<SkelException>>>,
}

#[derive(Deserialize)]
struct SkelException {
    container: Option<Spanned<toml::Value>>,
    items: Option<Vec<Spanned<SkelItem>>>,
}

#[derive(Deserialize)]
struct SkelItem {
    entries: Option<Vec<Spanned<SkelEntry>>>,
}

#[derive(Deserialize)]
struct SkelEntry {
    entries: Option<Vec<Spanned<toml::Value>>>,
}

pub(super) fn parse(text: &str, file: &Path) -> Parsed {
    let mut out = Parsed::default();
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let err = |line: usize, kind| LoadError {
        file: file.to_path_buf(),
        line: Some(line),
        kind,
    };
    let doc: toml::Table = match toml::from_str(text) {
        Ok(d) => d,
        Err(e) => {
            let line = e.span().map_or(1, |s| line_of(s.start));
            out.errors.push(err(
                line,
                LoadErrorKind::Toml(e.message().trim().replace('\n', ": ")),
            ));
            return out;
        }
    };
    let skeleton: Option<Skeleton> = toml::from_str(text).ok();
    let spans = |i: usize| skeleton.as_ref()?.exceptions.as_ref()?.get(i);
    let Some(exceptions) = doc.get("exceptions") else {
        out.errors.push(err(
            1,
            LoadErrorKind::Invalid("expected `[[exceptions]]` tables, found none".into()),
        ));
        return out;
    };
    let Some(exceptions) = exceptions.as_array() else {
        out.errors.push(err(
            1,
            LoadErrorKind::Invalid(format!(
                "expected `exceptions` to be an array of tables, found {}",
                exceptions.type_str()
            )),
        ));
        return out;
    };
    for (i, exception) in exceptions.iter().enumerate() {
        let skel = spans(i);
        let here = skel.map_or(1, |s| line_of(s.span().start));
        let at = format!("/exceptions/{i}");
        let Some(exception) = exception.as_table() else {
            out.errors.push(err(
                here,
                LoadErrorKind::Invalid(format!("at `{at}`: expected a table")),
            ));
            continue;
        };
        let container_line = skel
            .and_then(|s| s.get_ref().container.as_ref())
            .map_or(here, |c| line_of(c.span().start));
        let container = match exception.get("container").map(toml_to_json) {
            Some(Value::Object(c)) => c,
            other => {
                let found = other
                    .as_ref()
                    .map_or("none".into(), crate::querydsl::error::describe);
                out.errors.push(err(
                    container_line,
                    LoadErrorKind::Invalid(format!(
                        "at `{at}`: expected a `container` table (the exception list), found {found}"
                    )),
                ));
                continue;
            }
        };
        let origin = Origin {
            file: file.to_path_buf(),
            line: container_line,
        };
        let list = match json::list(&container, None, origin) {
            Ok(l) => l,
            Err(e) => {
                out.errors.push(err(
                    container_line,
                    LoadErrorKind::Invalid(format!(
                        "at `{at}/container{}`: {}",
                        e.at.as_str(),
                        e.message
                    )),
                ));
                continue;
            }
        };
        let items = match exception.get("items") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items.clone(),
            Some(other) => {
                out.errors.push(err(
                    here,
                    LoadErrorKind::Invalid(format!(
                        "at `{at}/items`: expected an array of tables, found {}",
                        other.type_str()
                    )),
                ));
                out.broken.push(list.key.clone());
                out.lists.push(list);
                continue;
            }
        };
        for (j, item) in items.iter().enumerate() {
            let item_skel = skel
                .and_then(|s| s.get_ref().items.as_ref())
                .and_then(|items| items.get(j));
            let item_line = item_skel.map_or(here, |s| line_of(s.span().start));
            let origin = Origin {
                file: file.to_path_buf(),
                line: item_line,
            };
            let parsed = match toml_to_json(item) {
                Value::Object(o) => json::item(&o, Some(&list.key), origin),
                other => {
                    out.errors.push(err(
                        item_line,
                        LoadErrorKind::Invalid(format!(
                            "at `{at}/items/{j}`: expected a table, found {}",
                            crate::querydsl::error::describe(&other)
                        )),
                    ));
                    out.broken.push(list.key.clone());
                    continue;
                }
            };
            match parsed {
                Ok(it) => out.items.push(it),
                Err(e) => {
                    // The line of the entry the pointer is in, when known.
                    let line = entry_line(item_skel.map(Spanned::get_ref), e.at.as_str())
                        .map_or(item_line, line_of);
                    out.errors.push(err(
                        line,
                        LoadErrorKind::Invalid(format!(
                            "at `{at}/items/{j}{}`: {}",
                            e.at.as_str(),
                            e.message
                        )),
                    ));
                    out.broken.push(list.key.clone());
                }
            }
        }
        out.lists.push(list);
    }
    out
}

/// The byte offset of the entry (or nested entry) a pointer inside an item
/// names: `/entries/2/...`, `/entries/2/entries/0/...`.
fn entry_line(item: Option<&SkelItem>, pointer: &str) -> Option<usize> {
    let mut parts = pointer.split('/').skip(1);
    if parts.next()? != "entries" {
        return None;
    }
    let i: usize = parts.next()?.parse().ok()?;
    let entry = item?.entries.as_ref()?.get(i)?;
    let inner = (parts.next() == Some("entries"))
        .then(|| parts.next()?.parse::<usize>().ok())
        .flatten()
        .and_then(|k| {
            entry
                .get_ref()
                .entries
                .as_ref()?
                .get(k)
                .map(|e| e.span().start)
        });
    Some(inner.unwrap_or(entry.span().start))
}
