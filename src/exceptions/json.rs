//! One JSON object of an exception file -> a list, an item, or something to
//! skip. Both file formats read through here (TOML converted to JSON), so
//! they accept and refuse the same things. Keys detectd does not use
//! (`comments`, `tags`, `meta`, timestamps...) are not checked, as Kibana's
//! exact schemas drop unknown keys.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::model::{Entry, ExceptionItem, ExceptionList, ListKey, NamespaceType, Operator, Origin};
use crate::querydsl::error::describe;
use crate::querydsl::Pointer;

/// What is wrong, at a JSON pointer into the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Invalid {
    pub at: Pointer,
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at.as_str().is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at `{}`: {}", self.at, self.message)
        }
    }
}

fn invalid(at: &Pointer, expected: &str, found: &Value) -> Invalid {
    Invalid {
        at: at.clone(),
        message: format!("expected {expected}, found {}", describe(found)),
    }
}

fn missing(at: &Pointer, key: &str, what: &str) -> Invalid {
    Invalid {
        at: at.clone(),
        message: format!("expected `{key}` in {what}, found none"),
    }
}

pub(super) enum Object {
    List(ExceptionList),
    Item(ExceptionItem),
    /// Kibana's export summary line, or a rule or connector of a rules
    /// export (which may carry the exception lists its rules use).
    Skip,
}

/// An object of a Kibana export.
pub(super) fn object(v: &Value, origin: Origin) -> Result<Object, Invalid> {
    let root = Pointer::root();
    let o = v
        .as_object()
        .ok_or_else(|| invalid(&root, "an exception list or exception list item object", v))?;
    let is_summary =
        o.contains_key("exported_exception_list_count") || o.contains_key("exported_count");
    let is_rule = o.contains_key("rule_id");
    let is_connector =
        o.get("type").and_then(Value::as_str) == Some("action") && o.contains_key("attributes");
    if is_summary || is_rule || is_connector {
        return Ok(Object::Skip);
    }
    if o.contains_key("entries") || o.contains_key("item_id") {
        return item(o, None, origin).map(Object::Item);
    }
    if o.contains_key("list_id") {
        return list(o, None, origin).map(Object::List);
    }
    Err(Invalid {
        at: root,
        message: format!(
            "expected an exception list (with `list_id`), an exception list item (with `entries`) or an export summary, found {}",
            describe(v)
        ),
    })
}

/// A list object (an export's list line, a TOML `container`); `default`
/// namespace when it has none (Kibana's default is `single`).
pub(super) fn list(
    o: &Map<String, Value>,
    default_ns: Option<NamespaceType>,
    origin: Origin,
) -> Result<ExceptionList, Invalid> {
    let root = Pointer::root();
    let list_id = non_empty(o, "list_id", &root)?
        .ok_or_else(|| missing(&root, "list_id", "an exception list"))?;
    Ok(ExceptionList {
        key: ListKey {
            list_id,
            namespace_type: namespace(o, &root)?
                .or(default_ns)
                .unwrap_or(NamespaceType::Single),
        },
        id: opt_string(o, "id", &root)?,
        name: opt_string(o, "name", &root)?,
        list_type: opt_string(o, "type", &root)?,
        items: Vec::new(),
        origin,
    })
}

/// An item object; in a TOML file `container` gives the list it belongs to
/// when the item does not say.
pub(super) fn item(
    o: &Map<String, Value>,
    container: Option<&ListKey>,
    origin: Origin,
) -> Result<ExceptionItem, Invalid> {
    let root = Pointer::root();
    let list_id = match (non_empty(o, "list_id", &root)?, container) {
        (Some(id), Some(c)) if id != c.list_id => {
            return Err(Invalid {
                at: root.child("list_id"),
                message: format!(
                    "expected the container's list_id `{}`, found `{id}`",
                    c.list_id
                ),
            })
        }
        (Some(id), _) => id,
        (None, Some(c)) => c.list_id.clone(),
        (None, None) => return Err(missing(&root, "list_id", "an exception list item")),
    };
    if let Some(t) = o.get("type") {
        if t.as_str() != Some("simple") {
            return Err(invalid(&root.child("type"), "\"simple\"", t));
        }
    }
    let entries_at = root.child("entries");
    let entries = match o.get("entries") {
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, e)| entry(e, false, &entries_at.child(i)))
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(invalid(&entries_at, "a non-empty array of entries", other)),
        None => return Err(missing(&root, "entries", "an exception list item")),
    };
    let os_at = root.child("os_types");
    let os_types = match o.get("os_types") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some(s @ ("windows" | "linux" | "macos")) => Ok(s.to_string()),
                _ => Err(invalid(
                    &os_at.child(i),
                    "\"windows\", \"linux\" or \"macos\"",
                    v,
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => return Err(invalid(&os_at, "an array of operating systems", other)),
    };
    let expire_at = root.child("expire_time");
    let expire_time = match o.get("expire_time") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| {
                    invalid(
                        &expire_at,
                        "an ISO 8601 date and time such as \"2024-04-24T19:00:00.000Z\"",
                        &Value::String(s.clone()),
                    )
                })?,
        ),
        Some(other) => return Err(invalid(&expire_at, "an ISO 8601 date and time", other)),
    };
    Ok(ExceptionItem {
        item_id: opt_string(o, "item_id", &root)?,
        name: opt_string(o, "name", &root)?,
        namespace_type: namespace(o, &root)?
            .or(container.map(|c| c.namespace_type))
            .unwrap_or(NamespaceType::Single),
        list_id,
        entries,
        os_types,
        expire_time,
        origin,
    })
}

/// One entry; inside a `nested` entry only `match`, `match_any` and
/// `exists` (Kibana's `nestedEntryItem`).
fn entry(v: &Value, in_nested: bool, at: &Pointer) -> Result<Entry, Invalid> {
    let o = v
        .as_object()
        .ok_or_else(|| invalid(at, "an entry object", v))?;
    let field = non_empty(o, "field", at)?.ok_or_else(|| missing(at, "field", "an entry"))?;
    let kind = match o.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(other) => return Err(invalid(&at.child("type"), "an entry type", other)),
        None => return Err(missing(at, "type", "an entry")),
    };
    let allowed: &[&str] = if in_nested {
        &["match", "match_any", "exists"]
    } else {
        &["match", "match_any", "wildcard", "exists", "list", "nested"]
    };
    if !allowed.contains(&kind) {
        let names: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
        return Err(Invalid {
            at: at.child("type"),
            message: format!(
                "expected {}{}, found `{kind}`",
                names.join(", "),
                if in_nested {
                    " inside a nested entry"
                } else {
                    ""
                },
            ),
        });
    }
    if kind == "nested" {
        let inner_at = at.child("entries");
        let entries = match o.get("entries") {
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .enumerate()
                .map(|(i, e)| entry(e, true, &inner_at.child(i)))
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => return Err(invalid(&inner_at, "a non-empty array of entries", other)),
            None => return Err(missing(at, "entries", "a nested entry")),
        };
        return Ok(Entry::Nested { field, entries });
    }
    let operator = match o.get("operator") {
        Some(Value::String(s)) if s == "included" => Operator::Included,
        Some(Value::String(s)) if s == "excluded" => Operator::Excluded,
        Some(other) => {
            return Err(invalid(
                &at.child("operator"),
                "\"included\" or \"excluded\"",
                other,
            ))
        }
        None => return Err(missing(at, "operator", "an entry")),
    };
    let value = || {
        non_empty(o, "value", at)?.ok_or_else(|| missing(at, "value", &format!("a `{kind}` entry")))
    };
    Ok(match kind {
        "match" => Entry::Match {
            field,
            operator,
            value: value()?,
        },
        "wildcard" => Entry::Wildcard {
            field,
            operator,
            value: value()?,
        },
        "exists" => Entry::Exists { field, operator },
        "match_any" => {
            let values_at = at.child("value");
            let values = match o.get("value") {
                Some(Value::Array(list)) if !list.is_empty() => list
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v.as_str() {
                        Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
                        _ => Err(invalid(&values_at.child(i), "a non-empty string", v)),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(other) => {
                    return Err(invalid(&values_at, "a non-empty array of strings", other))
                }
                None => return Err(missing(at, "value", "a `match_any` entry")),
            };
            Entry::MatchAny {
                field,
                operator,
                values,
            }
        }
        _ => {
            // Kibana's `list`; detection-rules' dataclass names it `list_vals`.
            let (key, list) = match (o.get("list"), o.get("list_vals")) {
                (Some(l), _) => ("list", l),
                (None, Some(l)) => ("list_vals", l),
                (None, None) => return Err(missing(at, "list", "a `list` entry")),
            };
            let list_at = at.child(key);
            let lo = list
                .as_object()
                .ok_or_else(|| invalid(&list_at, "an object with `id` and `type`", list))?;
            Entry::List {
                field,
                operator,
                list_id: non_empty(lo, "id", &list_at)?
                    .ok_or_else(|| missing(&list_at, "id", "a value list reference"))?,
                list_type: opt_string(lo, "type", &list_at)?.unwrap_or_default(),
            }
        }
    })
}

fn namespace(o: &Map<String, Value>, at: &Pointer) -> Result<Option<NamespaceType>, Invalid> {
    match o.get("namespace_type") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(NamespaceType::parse)
            .map(Some)
            .ok_or_else(|| invalid(&at.child("namespace_type"), "\"single\" or \"agnostic\"", v)),
    }
}

fn opt_string(o: &Map<String, Value>, key: &str, at: &Pointer) -> Result<Option<String>, Invalid> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(&at.child(key), "a string", other)),
    }
}

/// A string that is not blank (Kibana's `NonEmptyString`), if present.
fn non_empty(o: &Map<String, Value>, key: &str, at: &Pointer) -> Result<Option<String>, Invalid> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(invalid(&at.child(key), "a non-empty string", other)),
    }
}
