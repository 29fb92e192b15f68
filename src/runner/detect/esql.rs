//! The ES|QL detector: Elasticsearch runs the rule's query over the window
//! (`EventSource::esql`, Kibana's request: see
//! `source::elasticsearch::esql`) and each row it returns is a match.
//!
//! - A non-aggregating query with `METADATA _id` alerts as the row's
//!   document: its whole `_source` (read by `_index` + `_id`, or by an `ids`
//!   search over the query's indices without `_index`) with the row's
//!   columns over it (`mergeEsqlResultInSource`: a column replaces the
//!   document's field of that name), the id an event alert's. Rows of one
//!   document (`MV_EXPAND`) alert once, with the first row.
//! - Any other row is a made-up hit (index: the query's indices, source:
//!   the row), as Kibana builds it; its id differs from Kibana's, which
//!   hashes the run's window so overlapping windows alert again
//!   (detection-rules#6792):
//!   - a non-aggregating row: SHA-256 of the rule and the row, the same in
//!     every window that returns it;
//!   - an aggregating row (`STATS`): SHA-256 of the rule, the row and the
//!     end of the first window that returned it. The row is remembered
//!     (the rule's group history in its checkpoint) while the windows that
//!     return it overlap, so the same row from overlapping windows is one
//!     alert; the same row again after a window that did not overlap is a
//!     new one. A row whose values changed (a count grew) is a new alert.
//!
//! Kibana asks for `max_signals + 1` rows and asks again for more while
//! duplicates fill them, up to 3 × `max_signals`
//! (`ESQL_PAGE_SIZE_CIRCUIT_BREAKER` in `rule_types/esql/esql.ts`): here
//! one request for `3 × max_signals + 1` rows, the cap applied after
//! dedup, and a warning when rows were left unread.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::super::record::ExecutionRecord;
use super::super::run::RunError;
use super::{note_source_warnings, Candidate, History, Made, Seen};
use crate::alert::ids::digest;
use crate::alert::SourceEvent;
use crate::rule::EsqlRule;
use crate::schedule::window::Window;
use crate::source::{DocRef, Document, EventSource, FetchRequest};

/// The columns that name a row's document rather than describe it.
const METADATA: &[&str] = &["_id", "_index", "_version"];

/// Kibana's ES|QL circuit breaker: rows read per run, in `max_signals`.
const ROWS_PER_SIGNAL: u32 = 3;

pub(in crate::runner) struct EsqlDetector<'r> {
    rule: &'r EsqlRule,
    max_signals: u32,
    rule_uuid: String,
}

impl<'r> EsqlDetector<'r> {
    pub(super) fn new(rule: &'r EsqlRule, max_signals: u32, rule_uuid: String) -> Self {
        EsqlDetector {
            rule,
            max_signals,
            rule_uuid,
        }
    }

    /// The query as sent: the rule's, then the row limit.
    pub(in crate::runner) fn query(&self) -> String {
        format!(
            "{}\n| limit {}",
            self.rule.text.trim_end(),
            self.row_limit() + 1
        )
    }

    fn row_limit(&self) -> usize {
        usize::try_from(self.max_signals.saturating_mul(ROWS_PER_SIGNAL)).unwrap_or(usize::MAX)
    }

    pub(super) fn request(&self, mut request: FetchRequest) -> FetchRequest {
        request.timestamp_field = request.time_filter.primary.clone();
        request.tiebreaker_field = None;
        request
    }

    pub(super) async fn matches<S: EventSource>(
        &self,
        source: &S,
        request: FetchRequest,
        window: Window,
        history: &History,
        record: &mut ExecutionRecord,
    ) -> Result<Vec<Candidate>, RunError> {
        let time = request.time_filter.clone();
        let found = source.esql(&request, &self.query()).await?;
        note_source_warnings(&request.indices, &found.warnings, record);
        let mut rows = found.rows;
        record.events_fetched += rows.len() as u64;
        if rows.len() > self.row_limit() {
            rows.truncate(self.row_limit());
            record.warnings.push(format!(
                "the ES|QL query returned more than {} rows: the rows past them were not read \
                 (narrow the query, or aggregate)",
                self.row_limit()
            ));
        }
        let documents = if self.rule.shape.has_id() {
            self.documents(source, &rows).await?
        } else {
            HashMap::new()
        };
        let mut out = Vec::with_capacity(rows.len());
        let mut seen_docs = std::collections::HashSet::new();
        for (position, row) in rows.into_iter().enumerate() {
            let made = match row.get("_id").and_then(Value::as_str) {
                Some(id) if self.rule.shape.has_id() => {
                    if !seen_docs.insert(id.to_string()) {
                        continue;
                    }
                    let index = row.get("_index").and_then(Value::as_str);
                    let doc = documents.get(&(index.map(str::to_string), id.to_string()));
                    self.document_hit(row.clone(), doc)
                }
                _ => self.made_up_hit(&row, window, history),
            };
            let ts = time
                .time_of(&made.event.source)
                .unwrap_or(window.end.timestamp_millis());
            out.push(Candidate {
                order: (ts, position),
                events: Vec::new(),
                made: Some(Box::new(made)),
                ..Candidate::EMPTY
            });
        }
        out.sort_by_key(|c| c.order);
        Ok(out)
    }

    /// The documents the rows name, by (`_index` if the row has it, `_id`).
    async fn documents<S: EventSource>(
        &self,
        source: &S,
        rows: &[Map<String, Value>],
    ) -> Result<HashMap<(Option<String>, String), Document>, RunError> {
        let mut refs = Vec::new();
        let mut bare = Vec::new();
        for row in rows {
            let Some(id) = row.get("_id").and_then(Value::as_str) else {
                continue;
            };
            match row.get("_index").and_then(Value::as_str) {
                Some(index) => refs.push(DocRef {
                    index: index.to_string(),
                    id: id.to_string(),
                }),
                None => bare.push(id.to_string()),
            }
        }
        let mut out = HashMap::new();
        if !refs.is_empty() {
            for d in source.fetch_sources(&refs).await? {
                out.insert((Some(d.index.clone()), d.id.clone()), d);
            }
        }
        if !bare.is_empty() {
            for d in source.search_ids(&self.rule.shape.indices, &bare).await? {
                out.insert((None, d.id.clone()), d);
            }
        }
        Ok(out)
    }

    /// A row of a document: the document with the row's columns over it.
    fn document_hit(&self, mut row: Map<String, Value>, doc: Option<&Document>) -> Made {
        let id = row
            .get("_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let index = row
            .get("_index")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| doc.map(|d| d.index.clone()))
            .unwrap_or_default();
        for m in METADATA {
            row.remove(*m);
        }
        let mut source = doc
            .map(|d| d.source.clone())
            .unwrap_or_else(|| Value::Object(Map::new()));
        merge_row(&mut source, row);
        Made {
            event: SourceEvent { index, id, source },
            mark: None,
        }
    }

    /// A row that is not a document: Kibana's made-up hit, with an id that
    /// holds across overlapping windows (see the module docs).
    fn made_up_hit(&self, row: &Map<String, Value>, window: Window, history: &History) -> Made {
        let row_hash = hash_row(row);
        let (id, mark) = if self.rule.shape.aggregating {
            let start = window.start.timestamp_millis();
            let first = history
                .get(&row_hash)
                .filter(|seen| seen.last > start)
                .and_then(first_window_end)
                .unwrap_or(window.end.timestamp_millis());
            let id = digest(&[&self.rule_uuid, &row_hash, &first.to_string()]);
            let seen = Seen {
                terms: vec![(FIRST_WINDOW_END.to_string(), Value::from(first))],
                last: window.end.timestamp_millis(),
            };
            (id, Some((row_hash, seen)))
        } else {
            (digest(&[&self.rule_uuid, &row_hash]), None)
        };
        let mut source = Map::new();
        for (k, v) in row {
            if !METADATA.contains(&k.as_str()) {
                source.insert(k.clone(), v.clone());
            }
        }
        Made {
            event: SourceEvent {
                index: self.rule.shape.indices.join(","),
                id,
                source: Value::Object(source),
            },
            mark,
        }
    }
}

/// The history term of an aggregating row: the end of the first window
/// that returned it (epoch ms).
const FIRST_WINDOW_END: &str = "esql.first_window_end";

fn first_window_end(seen: &Seen) -> Option<i64> {
    seen.terms
        .iter()
        .find(|(k, _)| k == FIRST_WINDOW_END)
        .and_then(|(_, v)| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
}

/// Kibana's `mergeEsqlResultInSource`: each column replaces the field of
/// that name (nested or dotted) and is set under its dotted name.
fn merge_row(source: &mut Value, row: Map<String, Value>) {
    let Value::Object(doc) = source else {
        *source = Value::Object(row);
        return;
    };
    for (field, value) in row {
        remove_path(doc, &field);
        doc.insert(field, value);
    }
}

fn remove_path(doc: &mut Map<String, Value>, path: &str) {
    if doc.remove(path).is_some() {
        return;
    }
    let mut parts = path.splitn(2, '.');
    let (Some(head), Some(rest)) = (parts.next(), parts.next()) else {
        return;
    };
    if let Some(Value::Object(inner)) = doc.get_mut(head) {
        remove_path(inner, rest);
    }
}

/// SHA-256 of a row: its columns in name order with their values.
fn hash_row(row: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = row.keys().collect();
    keys.sort();
    let parts: Vec<String> = keys
        .into_iter()
        .filter(|k| !METADATA.contains(&k.as_str()))
        .map(|k| format!("{k}\u{0}{}", row[k]))
        .collect();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    digest(&refs)
}
