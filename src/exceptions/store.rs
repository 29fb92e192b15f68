//! The exception lists of a folder, and a rule's `exceptions_list`
//! resolved against them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use super::error::{LoadError, LoadErrorKind, ResolveError};
use super::model::{ExceptionItem, ExceptionList, ListKey, NamespaceType};
use super::{ndjson, toml_file, Parsed};

/// Every exception list loaded, by `list_id` and `namespace_type`.
#[derive(Clone, Debug, Default)]
pub struct ExceptionStore {
    lists: BTreeMap<ListKey, Arc<ExceptionList>>,
    /// Lists with an object that failed to load: a rule using one must not
    /// run with the rest of it.
    broken: BTreeSet<ListKey>,
}

impl ExceptionStore {
    /// Loads every `.ndjson` (Kibana export) and `.toml` (detection-rules)
    /// file under `dir`, in path order. Errors are collected, the rest
    /// loads; a list with an error is kept as broken.
    pub fn load_dir(dir: &Path) -> (ExceptionStore, Vec<LoadError>) {
        ExceptionStore::load(std::slice::from_ref(&dir.to_path_buf()), [])
    }

    /// Loads the exception files under every folder of `dirs` (a file
    /// named directly is read too), then the lists that `texts` carry
    /// (Kibana rule exports with their lists); a file reached twice is
    /// read once.
    pub fn load<'a>(
        dirs: &[std::path::PathBuf],
        texts: impl IntoIterator<Item = (&'a Path, &'a str)>,
    ) -> (ExceptionStore, Vec<LoadError>) {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for dir in dirs {
            for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
                match entry {
                    Ok(e) if e.file_type().is_file() => {
                        let ext = e.path().extension().and_then(|x| x.to_str());
                        if matches!(ext, Some("ndjson" | "toml")) {
                            files.push(e.into_path());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => errors.push(LoadError {
                        file: e.path().unwrap_or(dir).to_path_buf(),
                        line: None,
                        kind: LoadErrorKind::Io(e.to_string()),
                    }),
                }
            }
        }
        let mut seen = BTreeSet::new();
        let mut parsed = Vec::new();
        for file in files {
            if !seen.insert(canonical(&file)) {
                continue;
            }
            match std::fs::read_to_string(&file) {
                Ok(text) => parsed.push(parse_file(&text, &file)),
                Err(e) => errors.push(LoadError {
                    file,
                    line: None,
                    kind: LoadErrorKind::Io(e.to_string()),
                }),
            }
        }
        for (path, text) in texts {
            if seen.insert(canonical(path)) {
                parsed.push(parse_file(text, path));
            }
        }
        let (store, more) = ExceptionStore::from_parsed(parsed);
        errors.extend(more);
        (store, errors)
    }

    /// A store from file contents already read (`.toml` by extension,
    /// anything else as NDJSON).
    pub fn from_texts<'a>(
        files: impl IntoIterator<Item = (&'a Path, &'a str)>,
    ) -> (ExceptionStore, Vec<LoadError>) {
        ExceptionStore::from_parsed(
            files
                .into_iter()
                .map(|(path, text)| parse_file(text, path))
                .collect(),
        )
    }

    fn from_parsed(files: Vec<Parsed>) -> (ExceptionStore, Vec<LoadError>) {
        let mut store = ExceptionStore::default();
        let mut errors = Vec::new();
        let mut lists: BTreeMap<ListKey, ExceptionList> = BTreeMap::new();
        let mut items: Vec<ExceptionItem> = Vec::new();
        for p in files {
            errors.extend(p.errors);
            store.broken.extend(p.broken);
            items.extend(p.items);
            for list in p.lists {
                match lists.get(&list.key) {
                    Some(first) => {
                        errors.push(LoadError {
                            file: list.origin.file.clone(),
                            line: Some(list.origin.line),
                            kind: LoadErrorKind::DuplicateList {
                                key: list.key.clone(),
                                first: first.origin.to_string(),
                            },
                        });
                        store.broken.insert(list.key.clone());
                    }
                    None => {
                        lists.insert(list.key.clone(), list);
                    }
                }
            }
        }
        for item in items {
            let key = ListKey {
                list_id: item.list_id.clone(),
                namespace_type: item.namespace_type,
            };
            match lists.get_mut(&key) {
                Some(list) => list.items.push(item),
                // Its list failed to load: that error says it.
                None if store.broken.contains(&key) => {}
                None => errors.push(LoadError {
                    file: item.origin.file.clone(),
                    line: Some(item.origin.line),
                    kind: LoadErrorKind::ItemWithoutList {
                        item: item.label(),
                        key,
                    },
                }),
            }
        }
        store.lists = lists.into_iter().map(|(k, l)| (k, Arc::new(l))).collect();
        (store, errors)
    }

    pub fn get(&self, key: &ListKey) -> Option<&ExceptionList> {
        self.lists.get(key).map(|l| l.as_ref())
    }

    pub fn lists(&self) -> impl Iterator<Item = &ExceptionList> {
        self.lists.values().map(|l| l.as_ref())
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// A rule's `exceptions_list` (the JSON array the rule file holds):
    /// each reference checked, each list found. Every missing list is named
    /// at once.
    pub fn resolve_json(&self, refs: &Value) -> Result<RuleExceptions, ResolveError> {
        let list = refs.as_array().ok_or_else(|| ResolveError::Reference {
            index: 0,
            message: format!(
                "expected an array of list references, found {}",
                crate::querydsl::error::describe(refs)
            ),
        })?;
        let refs = list
            .iter()
            .enumerate()
            .map(|(i, r)| ListRef::from_json(r, i))
            .collect::<Result<Vec<_>, _>>()?;
        self.resolve(&refs)
    }

    /// The lists of the references, in order, each once.
    pub fn resolve(&self, refs: &[ListRef]) -> Result<RuleExceptions, ResolveError> {
        let mut seen = BTreeSet::new();
        let mut lists = Vec::new();
        let mut missing = Vec::new();
        for r in refs {
            if !seen.insert(r.key.clone()) {
                continue;
            }
            if self.broken.contains(&r.key) {
                return Err(ResolveError::Broken(r.key.clone()));
            }
            match self.lists.get(&r.key) {
                Some(l) => lists.push(Arc::clone(l)),
                None => missing.push(r.key.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(ResolveError::Missing(missing));
        }
        Ok(RuleExceptions { lists })
    }
}

fn canonical(path: &Path) -> std::path::PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn parse_file(text: &str, path: &Path) -> Parsed {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml_file::parse(text, path),
        _ => ndjson::parse(text, path),
    }
}

/// One entry of a rule's `exceptions_list`: `{id, list_id, namespace_type,
/// type}`. Lists are found by `list_id` and `namespace_type`, as Kibana's
/// `getExceptions` finds their items; `id` and `type` are kept as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListRef {
    pub key: ListKey,
    pub id: Option<String>,
    pub list_type: Option<String>,
}

impl ListRef {
    /// `index` is the entry's place in `exceptions_list`, for errors.
    pub fn from_json(v: &Value, index: usize) -> Result<ListRef, ResolveError> {
        let bad = |message: String| ResolveError::Reference { index, message };
        let o = v.as_object().ok_or_else(|| {
            bad(format!(
                "expected an object with `list_id` and `namespace_type`, found {}",
                crate::querydsl::error::describe(v)
            ))
        })?;
        let string = |key: &str| -> Result<Option<String>, ResolveError> {
            match o.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(bad(format!(
                    "expected a non-empty string for `{key}`, found {}",
                    crate::querydsl::error::describe(other)
                ))),
            }
        };
        let list_id =
            string("list_id")?.ok_or_else(|| bad("expected `list_id`, found none".into()))?;
        let ns = string("namespace_type")?
            .ok_or_else(|| bad("expected `namespace_type`, found none".into()))?;
        let namespace_type = NamespaceType::parse(&ns).ok_or_else(|| {
            bad(format!(
                "expected \"single\" or \"agnostic\" for `namespace_type`, found {ns:?}"
            ))
        })?;
        Ok(ListRef {
            key: ListKey {
                list_id,
                namespace_type,
            },
            id: string("id")?,
            list_type: string("type")?,
        })
    }
}

/// The exception lists a rule uses, resolved.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleExceptions {
    lists: Vec<Arc<ExceptionList>>,
}

impl RuleExceptions {
    pub fn lists(&self) -> impl Iterator<Item = &ExceptionList> {
        self.lists.iter().map(|l| l.as_ref())
    }

    /// Every item, list by list in the rule's order, each list's in file
    /// order.
    pub fn items(&self) -> impl Iterator<Item = &ExceptionItem> {
        self.lists.iter().flat_map(|l| l.items.iter())
    }

    /// No list, or lists without items.
    pub fn is_empty(&self) -> bool {
        self.items().next().is_none()
    }
}
