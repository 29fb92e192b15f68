//! The mappings of the indices a window reads: what each event is
//! evaluated with (DESIGN.md, "What one rule run MUST do", step 3).
//!
//! [`Mappings`] is one window's view: the [`Schema`] of every concrete
//! index the search covers. [`MappingCache`] fills it from the cluster with
//! `GET <indices>/_mapping`, one entry per concrete index:
//!
//! * an index not seen before (a rollover's new backing index, a new data
//!   stream, a new index matching a pattern) is fetched when a window first
//!   covers it;
//! * an index that may still receive documents (a plain index, a data
//!   stream's write index) is fetched again once its entry is older than
//!   [`MappingCache::max_age`], so fields that dynamic mapping added since
//!   are picked up; older backing indices only age and are kept as read;
//! * an index no window asked for during [`MappingCache::idle`] is dropped.
//!
//! Until a refresh, a field an index does not map is typed from its JSON
//! value, as dynamic mapping would type it (strings as keywords, numbers as
//! long or double; dynamic date detection is not reproduced).
//!
//! Identical mappings (the backing indices of one data stream) share one
//! `Arc<Schema>`, interned by a SHA-256 of the mapping JSON, so memory grows
//! with the distinct mappings, not with the indices.
//!
//! A failed fetch is a [`SourceError`]: the run fails with it and keeps its
//! window, as for any other cluster failure.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use elasticsearch::http::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::SourceError;
use crate::cluster::{encode_path_part, snippet, Cluster, ClusterError, ConcreteIndex};
use crate::eql::schema::Schema;
use crate::filter::FieldTypes;

/// Longest comma-joined index list put in one `_mapping` URL path.
const MAX_PATH_LEN: usize = 2_000;

/// The schema of each concrete index one window covers, and the field
/// types the shared filter tree is translated with (`filter::FieldTypes`,
/// for query rules' KQL), from the same mappings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mappings {
    by_index: HashMap<String, Arc<Schema>>,
    types: HashMap<String, Arc<FieldTypes>>,
}

impl Mappings {
    pub fn new(by_index: HashMap<String, Arc<Schema>>) -> Mappings {
        Mappings {
            by_index,
            types: HashMap::new(),
        }
    }

    /// Each index's schema, and its field types for the shared filter tree
    /// (both read from the same mapping).
    pub fn from_parts(
        by_index: HashMap<String, Arc<Schema>>,
        types: HashMap<String, Arc<FieldTypes>>,
    ) -> Mappings {
        Mappings { by_index, types }
    }

    /// The field types of every index together, as Kibana's data view
    /// unites them; `None` when no mapping was read.
    pub fn field_types(&self) -> Option<FieldTypes> {
        if self.types.is_empty() {
            return None;
        }
        let mut seen: Vec<*const FieldTypes> = Vec::new();
        let mut out = FieldTypes::default();
        for t in self.types.values() {
            let ptr = Arc::as_ptr(t);
            if !seen.contains(&ptr) {
                seen.push(ptr);
                out.merge(t);
            }
        }
        Some(out)
    }

    /// Only the indices `keep` accepts.
    pub fn filtered(&self, keep: impl Fn(&str) -> bool) -> Mappings {
        Mappings {
            by_index: self
                .by_index
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            types: self
                .types
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Reads `{"<index>": <mapping>, ...}` (each mapping as
    /// [`Schema::from_mapping`] takes it), for tests and the memory source.
    pub fn from_json(
        by_index: &[(&str, Value)],
    ) -> Result<Mappings, crate::eql::schema::SchemaError> {
        let mut out = HashMap::new();
        let mut types = HashMap::new();
        for (index, mapping) in by_index {
            out.insert(index.to_string(), Arc::new(Schema::from_mapping(mapping)?));
            types.insert(
                index.to_string(),
                Arc::new(FieldTypes::from_mapping(mapping)),
            );
        }
        Ok(Mappings {
            by_index: out,
            types,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.by_index.is_empty()
    }

    /// The schema of `index`, if the window knows it.
    pub fn get(&self, index: &str) -> Option<&Arc<Schema>> {
        self.by_index.get(index)
    }

    /// Every index with its schema, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Schema>)> {
        self.by_index.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Each distinct schema once.
    pub fn distinct(&self) -> Vec<&Schema> {
        let mut seen: Vec<*const Schema> = Vec::new();
        let mut out = Vec::new();
        for schema in self.by_index.values() {
            let ptr = Arc::as_ptr(schema);
            if !seen.contains(&ptr) {
                seen.push(ptr);
                out.push(schema.as_ref());
            }
        }
        out
    }

    /// The `_source` paths to fetch for fields read by these names: each
    /// name, and where its value lives in some index (an alias's target,
    /// a multi-field's parent), which a `_source` filter must name.
    pub fn source_fields(&self, names: &[String]) -> Vec<String> {
        let mut out: BTreeSet<String> = names.iter().cloned().collect();
        for schema in self.distinct() {
            for name in names {
                let path = schema.resolve(name).source_path;
                if path != *name {
                    out.insert(path);
                }
            }
        }
        out.into_iter().collect()
    }
}

/// One cached mapping.
#[derive(Debug)]
struct Entry {
    /// `None`: asked for, but not in the answer (the name of a data stream
    /// an alias points to, whose backing indices come instead; an index
    /// closed or deleted meanwhile). Asked again after `max_age`.
    schema: Option<(Arc<Schema>, Arc<FieldTypes>)>,
    fetched: Instant,
    used: Instant,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Interned schemas and field types by SHA-256 of their mapping JSON.
    interned: HashMap<[u8; 32], (Weak<Schema>, Weak<FieldTypes>)>,
    last_sweep: Option<Instant>,
}

/// Mappings read from the cluster, per concrete index. Shared by every
/// rule run of a source (clones share it).
#[derive(Clone, Debug)]
pub struct MappingCache {
    state: Arc<Mutex<State>>,
    max_age: Duration,
    idle: Duration,
}

impl Default for MappingCache {
    fn default() -> Self {
        MappingCache::new(Duration::from_secs(10 * 60), Duration::from_secs(60 * 60))
    }
}

impl MappingCache {
    /// A cache that fetches a live index's mapping again after `max_age`
    /// and forgets indices not asked for during `idle`.
    pub fn new(max_age: Duration, idle: Duration) -> MappingCache {
        MappingCache {
            state: Arc::default(),
            max_age,
            idle,
        }
    }

    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// The mappings of `indices`, fetching those not cached (or stale).
    pub async fn mappings(
        &self,
        cluster: &Cluster,
        indices: &[ConcreteIndex],
    ) -> Result<Mappings, SourceError> {
        let now = Instant::now();
        let mut by_index = HashMap::new();
        let mut types = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        {
            let mut state = self.lock();
            for index in indices {
                match state.entries.get_mut(&index.name) {
                    Some(e)
                        if (!index.live && e.schema.is_some())
                            || now.duration_since(e.fetched) < self.max_age =>
                    {
                        e.used = now;
                        if let Some((schema, t)) = &e.schema {
                            by_index.insert(index.name.clone(), schema.clone());
                            types.insert(index.name.clone(), t.clone());
                        }
                    }
                    _ => missing.push(index.name.clone()),
                }
            }
        }
        for chunk in chunks(&missing) {
            let fetched = fetch(cluster, &chunk).await?;
            let mut state = self.lock();
            for name in &chunk {
                if !fetched.iter().any(|(index, _)| index == name) {
                    state.entries.insert(
                        name.clone(),
                        Entry {
                            schema: None,
                            fetched: now,
                            used: now,
                        },
                    );
                }
            }
            for (index, body) in fetched {
                let (schema, t) = state.intern(&index, &body)?;
                state.entries.insert(
                    index.clone(),
                    Entry {
                        schema: Some((schema.clone(), t.clone())),
                        fetched: now,
                        used: now,
                    },
                );
                by_index.insert(index.clone(), schema);
                types.insert(index, t);
            }
        }
        self.lock().sweep(now, self.idle);
        Ok(Mappings { by_index, types })
    }

    /// Indices cached now (for tests and diagnostics).
    pub fn cached(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves only a cache behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// The schema of one index's mapping body, shared with every index
    /// whose mapping is the same.
    fn intern(
        &mut self,
        index: &str,
        body: &Value,
    ) -> Result<(Arc<Schema>, Arc<FieldTypes>), SourceError> {
        let digest: [u8; 32] = Sha256::digest(body.to_string().as_bytes()).into();
        if let Some((s, t)) = self.interned.get(&digest) {
            if let (Some(s), Some(t)) = (s.upgrade(), t.upgrade()) {
                return Ok((s, t));
            }
        }
        let schema = Arc::new(
            Schema::from_mapping(body).map_err(|e| SourceError::Mapping {
                indices: index.to_string(),
                reason: e.to_string(),
            })?,
        );
        let types = Arc::new(FieldTypes::from_mapping(body));
        self.interned
            .insert(digest, (Arc::downgrade(&schema), Arc::downgrade(&types)));
        Ok((schema, types))
    }

    /// Forgets indices not used for `idle` (at most once a minute).
    fn sweep(&mut self, now: Instant, idle: Duration) {
        if self
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.entries
            .retain(|_, e| now.duration_since(e.used) < idle);
        self.interned.retain(|_, (w, _)| w.strong_count() > 0);
    }
}

/// A few index names for a message: the first three, then how many more.
fn describe(indices: &[String]) -> String {
    match indices {
        [a] => a.clone(),
        [a, b] => format!("{a}, {b}"),
        [a, b, c] => format!("{a}, {b}, {c}"),
        [a, b, c, rest @ ..] => format!("{a}, {b}, {c} and {} more", rest.len()),
        [] => "no index".to_string(),
    }
}

/// Index names in groups whose comma-joined length fits a URL path (a
/// name longer than that alone is a group of its own).
fn chunks(names: &[String]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut joined = 0;
    for name in names {
        match out.last_mut() {
            Some(chunk) if joined + 1 + name.len() <= MAX_PATH_LEN => {
                chunk.push(name.clone());
                joined += 1 + name.len();
            }
            _ => {
                out.push(vec![name.clone()]);
                joined = name.len();
            }
        }
    }
    out
}

/// `GET /<indices>/_mapping`: each concrete index with its mapping body
/// (`{"mappings": ...}`). Indices gone since they were resolved are left
/// out (`ignore_unavailable`).
async fn fetch(cluster: &Cluster, indices: &[String]) -> Result<Vec<(String, Value)>, SourceError> {
    let path = format!("/{}/_mapping", encode_path_part(&indices.join(",")));
    let wrap = |error: ClusterError| SourceError::MappingRequest {
        indices: describe(indices),
        error,
    };
    let body = cluster
        .request_json(
            Method::Get,
            &path,
            &[
                ("ignore_unavailable", "true"),
                ("allow_no_indices", "true"),
                ("expand_wildcards", "open"),
            ],
            None,
        )
        .await
        .map_err(wrap)?;
    let bad = |reason: String| {
        wrap(ClusterError::BadResponse {
            method: "GET",
            path: path.clone(),
            reason,
        })
    };
    let Value::Object(map) = body else {
        return Err(bad(format!(
            "expected an object of indices, found {}",
            snippet(body.to_string().as_bytes())
        )));
    };
    let mut out = Vec::with_capacity(map.len());
    for (index, entry) in map {
        if !entry.get("mappings").is_some_and(Value::is_object) {
            return Err(bad(format!(
                "expected `{index}` to hold a `mappings` object, found {}",
                snippet(entry.to_string().as_bytes())
            )));
        }
        out.push((index, entry));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::schema::FieldType;
    use serde_json::json;

    #[test]
    fn chunks_keep_paths_short_and_lose_nothing() {
        let names: Vec<String> = (0..500).map(|i| format!(".ds-logs-x-{i:06}")).collect();
        let parts = chunks(&names);
        assert!(parts.len() > 1);
        for p in &parts {
            assert!(p.join(",").len() <= MAX_PATH_LEN);
        }
        assert_eq!(parts.concat(), names);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn identical_mappings_share_one_schema() {
        let mut state = State::default();
        let m = json!({"mappings": {"properties": {"a": {"type": "ip"}}}});
        let a = state.intern("i1", &m).unwrap();
        let b = state.intern("i2", &m).unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.1, &b.1));
        let c = state
            .intern(
                "i3",
                &json!({"mappings": {"properties": {"a": {"type": "keyword"}}}}),
            )
            .unwrap();
        assert!(!Arc::ptr_eq(&a.0, &c.0));
        let err = state
            .intern(
                "i4",
                &json!({"mappings": {"properties": {"x": {"type": "alias"}}}}),
            )
            .unwrap_err();
        assert!(err.to_string().contains("i4"), "{err}");
    }

    #[test]
    fn source_fields_add_alias_targets_and_multi_field_parents() {
        let m = Mappings::from_json(&[
            (
                "a",
                json!({"properties": {
                    "host": {"properties": {"hostname": {"type": "keyword"},
                        "name": {"type": "alias", "path": "host.hostname"}}},
                    "msg": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}
                }}),
            ),
            (
                "b",
                json!({"properties": {"host": {"properties": {"name": {"type": "keyword"}}}}}),
            ),
        ])
        .unwrap();
        assert_eq!(
            m.source_fields(&["host.name".into(), "msg.keyword".into(), "x".into()]),
            ["host.hostname", "host.name", "msg", "msg.keyword", "x"]
        );
        assert_eq!(
            m.get("a").unwrap().resolve("host.name").ty,
            FieldType::Keyword
        );
        assert_eq!(m.distinct().len(), 2);
    }
}
