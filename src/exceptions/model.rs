//! Exception lists and items as Kibana's lists plugin defines them
//! (`@kbn/securitysolution-io-ts-list-types`: `exceptionListSchema`,
//! `exceptionListItemSchema`, `entriesArray`), the fields detectd uses.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

/// `namespace_type`: a list of one Kibana space, or of all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NamespaceType {
    Single,
    Agnostic,
}

impl NamespaceType {
    pub fn parse(s: &str) -> Option<NamespaceType> {
        match s {
            "single" => Some(NamespaceType::Single),
            "agnostic" => Some(NamespaceType::Agnostic),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceType::Single => "single",
            NamespaceType::Agnostic => "agnostic",
        }
    }
}

/// How a list is found: Kibana looks lists up by `list_id` and
/// `namespace_type` (the saved object `id` differs between spaces and
/// clusters).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListKey {
    pub list_id: String,
    pub namespace_type: NamespaceType,
}

impl std::fmt::Display for ListKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({})", self.list_id, self.namespace_type.as_str())
    }
}

/// An entry's `operator`: `excluded` negates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Included,
    Excluded,
}

/// One condition of an item; an item's entries all hold for it to apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Match {
        field: String,
        operator: Operator,
        value: String,
    },
    MatchAny {
        field: String,
        operator: Operator,
        values: Vec<String>,
    },
    Wildcard {
        field: String,
        operator: Operator,
        value: String,
    },
    Exists {
        field: String,
        operator: Operator,
    },
    /// Against a value list (`.lists` / `.items` indices): not supported
    /// yet, kept so the error can name it.
    List {
        field: String,
        operator: Operator,
        list_id: String,
        list_type: String,
    },
    /// Entries on the objects of a `nested` field, their fields relative to
    /// it; only `match`, `match_any` and `exists` entries.
    Nested {
        field: String,
        entries: Vec<Entry>,
    },
}

/// Where an object was read: file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// An exception item: its entries AND'ed; an item applies to an event when
/// all hold (and, with `os_types`, the host runs one of them).
#[derive(Clone, Debug, PartialEq)]
pub struct ExceptionItem {
    pub item_id: Option<String>,
    pub name: Option<String>,
    pub list_id: String,
    pub namespace_type: NamespaceType,
    pub entries: Vec<Entry>,
    /// `windows`, `linux`, `macos`.
    pub os_types: Vec<String>,
    /// Past it, the item no longer applies.
    pub expire_time: Option<DateTime<Utc>>,
    pub origin: Origin,
}

impl ExceptionItem {
    /// How an error names the item.
    pub fn label(&self) -> String {
        match (&self.item_id, &self.name) {
            (Some(id), _) => format!("`{id}`"),
            (None, Some(name)) => format!("`{name}`"),
            (None, None) => format!("at {}", self.origin),
        }
    }
}

/// An exception list and its items, in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct ExceptionList {
    pub key: ListKey,
    /// The saved object id, when the file has one.
    pub id: Option<String>,
    pub name: Option<String>,
    /// `detection`, `endpoint`, `rule_default`, ...
    pub list_type: Option<String>,
    pub items: Vec<ExceptionItem>,
    pub origin: Origin,
}
