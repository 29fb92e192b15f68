//! `detectd query --language kql|lucene`: a query rule's query over NDJSON,
//! answered in the shape of an EQL event query (`hits.events`, oldest
//! first), so a query can be tried on exported events before it becomes a
//! rule.
//!
//! The query is translated as a query rule's is (`KqlOptions` and
//! `LuceneOptions` of the detection engine) for the field types of the
//! `--mapping`s given, every file's types together, as Kibana translates
//! a rule's query for its data view; fields no mapping knows are typed
//! from their values, as Elasticsearch's dynamic mapping would. The filter
//! is then evaluated on each event by the same matcher `hunt`, `test` and
//! the memory source use (`filter::eval`). A Lucene query outside the
//! subset detectd evaluates is an error, never a silently wrong answer.
//! Without a mapping, lines the query cannot match are ruled out from
//! their bytes before they are decoded (`offline::tree_prefilter`).
//!
//! Unlike a rule run there is no time range: every event is searched.
//! Matches sort by the timestamp field (events without one last), then the
//! tiebreaker, then their place in the input; `size` and `result_position`
//! cut them as for an EQL event query.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::chunks::{Chunk, Threads};
use super::prefilter::{for_each_kept, Prefilter};
use super::{read_chunks, Input, OfflineError};
use crate::eql::compile::CompileOptions;
use crate::eql::pushdown::Filter as Pushdown;
use crate::eql::search::{self, HitEvent, Hits, ResultPosition, SearchResponse, Total};
use crate::filter::eval::{self, EvalOptions, Matcher, Unmapped};
use crate::filter::{FieldTypes, Filter};
use crate::kql::lucene::{self, LuceneOptions};
use crate::kql::{self, KqlOptions};
use crate::source::files::BadLine;
use crate::source::select::SortKey;

/// The language of a query other than EQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterLanguage {
    Kql,
    Lucene,
}

/// Why a query cannot be answered, with the span of the query it is about
/// when there is one.
#[derive(Debug, thiserror::Error)]
pub enum FilterQueryError {
    #[error("{message}")]
    Query {
        message: String,
        span: Option<crate::eql::Span>,
    },
}

/// A query compiled for the field types of the inputs.
pub struct FilterQuery {
    matcher: Matcher,
    /// Without a mapping, what rules lines out before they are decoded
    /// (`offline::tree_prefilter`).
    prefilter: Option<Prefilter>,
}

impl FilterQuery {
    /// Parses `text` in `language` and compiles it for `types` (`None`: no
    /// mapping given, every field typed from its values).
    pub fn compile(
        text: &str,
        language: FilterLanguage,
        types: Option<&FieldTypes>,
    ) -> Result<FilterQuery, FilterQueryError> {
        let filter: Filter = match language {
            FilterLanguage::Kql => {
                let node = kql::parse(text).map_err(|e| FilterQueryError::Query {
                    message: e.to_string(),
                    span: Some(e.span()),
                })?;
                kql::lower(&node, types, &KqlOptions::detection_rules()).map_err(|e| {
                    FilterQueryError::Query {
                        message: e.to_string(),
                        span: Some(e.span()),
                    }
                })?
            }
            FilterLanguage::Lucene => lucene::to_filter(text, &LuceneOptions::detection_rules()),
        };
        let matcher = eval::compile(
            &filter,
            &types.cloned().unwrap_or_default(),
            &EvalOptions {
                unmapped: Unmapped::Dynamic,
            },
        )
        .map_err(|e| FilterQueryError::Query {
            message: e.to_string(),
            span: None,
        })?;
        let prefilter = match types {
            None => Prefilter::for_tree(&filter, &Pushdown::MatchAll, &CompileOptions::default()),
            Some(_) => None,
        };
        Ok(FilterQuery { matcher, prefilter })
    }
}

/// How the matches are ordered and cut.
#[derive(Clone, Debug)]
pub struct FilterQueryOptions {
    pub timestamp_field: String,
    pub tiebreaker_field: Option<String>,
    pub size: usize,
    pub result_position: ResultPosition,
    /// What date math in the query (`now-1h`) is relative to.
    pub now: DateTime<Utc>,
    /// Threads parsing and matching lines (the answer is the same on any
    /// number).
    pub threads: Threads,
}

/// Runs `query` over the inputs; lines that are not JSON objects go to
/// `bad_line` and are skipped.
pub fn run_filter_query(
    query: &FilterQuery,
    inputs: &[Input],
    opts: &FilterQueryOptions,
    mut bad_line: impl FnMut(BadLine),
) -> Result<SearchResponse, OfflineError> {
    enum Line {
        Unreadable(u64, String),
        Other,
        Hit(u64, SortKey, Value),
    }
    // parsed and matched on the worker threads; lines the prefilter rules
    // out match nothing (positions only order the hits)
    let work = |chunk: &Chunk| {
        let mut lines = Vec::new();
        for_each_kept(query.prefilter.as_ref(), chunk, |line, _, bytes| {
            lines.push(match serde_json::from_slice(bytes) {
                Ok(source @ Value::Object(_)) => {
                    if query.matcher.matches(&source, opts.now) {
                        let key = SortKey::of(
                            &source,
                            &opts.timestamp_field,
                            opts.tiebreaker_field.as_deref(),
                        );
                        Line::Hit(line, key, source)
                    } else {
                        Line::Other
                    }
                }
                Ok(_) => Line::Unreadable(line, "expected a JSON object".into()),
                Err(e) => Line::Unreadable(line, format!("invalid JSON: {e}")),
            });
        });
        lines
    };
    let mut found: Vec<(SortKey, usize, HitEvent)> = Vec::new();
    let mut position = 0usize;
    for input in inputs {
        let index = input.name();
        let merge = |first_line: u64, lines: Vec<Line>| -> Result<(), OfflineError> {
            for line in lines {
                match line {
                    Line::Unreadable(line, reason) => {
                        bad_line(unreadable(&index, first_line + line, reason))
                    }
                    Line::Other => position += 1,
                    Line::Hit(line, key, source) => {
                        position += 1;
                        let hit = HitEvent {
                            index: index.clone(),
                            id: (first_line + line).to_string(),
                            source,
                            missing: false,
                        };
                        found.push((key, position, hit));
                    }
                }
            }
            Ok(())
        };
        read_chunks(input, opts.threads, &work, merge)?;
    }
    found.sort_by(|(ka, pa, _), (kb, pb, _)| ka.cmp_at(*pa, kb, *pb));
    let total = found.len();
    let keep = match opts.result_position {
        ResultPosition::Head => 0..total.min(opts.size),
        ResultPosition::Tail => total.saturating_sub(opts.size)..total,
    };
    let events: Vec<HitEvent> = found.drain(keep).map(|(_, _, hit)| hit).collect();
    Ok(search::response(Hits {
        total: Total {
            value: total as u64,
            relation: "eq",
        },
        events: Some(events),
        sequences: None,
    }))
}

fn unreadable(index: &str, line: u64, reason: String) -> BadLine {
    BadLine {
        index: index.to_string(),
        line,
        reason,
        unreadable: true,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use serde_json::json;

    fn lines(dir: &Path, name: &str, docs: &[Value]) -> Input {
        let path = dir.join(name);
        let text: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
        std::fs::write(&path, text.join("\n") + "\nnot json\n").unwrap();
        Input::File(path)
    }

    fn opts(size: usize, result_position: ResultPosition) -> FilterQueryOptions {
        FilterQueryOptions {
            timestamp_field: "@timestamp".into(),
            tiebreaker_field: None,
            size,
            result_position,
            now: Utc::now(),
            threads: Threads {
                workers: 2,
                chunk_bytes: 16,
            },
        }
    }

    fn ids(r: &SearchResponse) -> Vec<String> {
        r.hits
            .events
            .as_ref()
            .unwrap()
            .iter()
            .map(|h| format!("{}:{}", h.index, h.id))
            .collect()
    }

    fn sample(dir: &Path) -> Input {
        lines(
            dir,
            "auth.ndjson",
            &[
                json!({"@timestamp": "2024-05-01T09:03:00Z", "user": {"name": "admin"}}),
                json!({"@timestamp": "2024-05-01T09:01:00Z", "user": {"name": "alice"}}),
                json!({"user": {"name": "admin2"}}),
                json!({"@timestamp": "2024-05-01T09:02:00Z", "user": {"name": "Admin"}}),
            ],
        )
    }

    #[test]
    fn kql_matches_sort_by_time_untimed_last_and_are_cut_like_eql() {
        let dir = tempfile::tempdir().unwrap();
        let input = [sample(dir.path())];
        let q = FilterQuery::compile("user.name: admin*", FilterLanguage::Kql, None).unwrap();
        let mut bad = Vec::new();
        let r =
            run_filter_query(&q, &input, &opts(10, ResultPosition::Tail), |b| bad.push(b)).unwrap();
        // dynamic text: `Admin` is analysed to lower case and matches
        assert_eq!(ids(&r), ["auth.ndjson:4", "auth.ndjson:1", "auth.ndjson:3"]);
        assert_eq!(r.hits.total.value, 3);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 5);
        let head = run_filter_query(&q, &input, &opts(2, ResultPosition::Head), |_| {}).unwrap();
        assert_eq!(ids(&head), ["auth.ndjson:4", "auth.ndjson:1"]);
        assert_eq!(head.hits.total.value, 3);
        let tail = run_filter_query(&q, &input, &opts(2, ResultPosition::Tail), |_| {}).unwrap();
        assert_eq!(ids(&tail), ["auth.ndjson:1", "auth.ndjson:3"]);
    }

    #[test]
    fn a_keyword_mapping_makes_kql_case_sensitive() {
        let dir = tempfile::tempdir().unwrap();
        let input = [sample(dir.path())];
        let types = FieldTypes::from_mapping(
            &json!({"properties": {"user": {"properties": {"name": {"type": "keyword"}}}}}),
        );
        let q =
            FilterQuery::compile("user.name: admin*", FilterLanguage::Kql, Some(&types)).unwrap();
        let r = run_filter_query(&q, &input, &opts(10, ResultPosition::Tail), |_| {}).unwrap();
        assert_eq!(ids(&r), ["auth.ndjson:1", "auth.ndjson:3"]);
    }

    #[test]
    fn lucene_in_the_subset_runs_and_outside_it_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let input = [sample(dir.path())];
        let q = FilterQuery::compile(
            "user.name:admin* AND NOT user.name:admin2",
            FilterLanguage::Lucene,
            None,
        )
        .unwrap();
        let r = run_filter_query(&q, &input, &opts(10, ResultPosition::Tail), |_| {}).unwrap();
        assert_eq!(ids(&r), ["auth.ndjson:4", "auth.ndjson:1"]);
        let err = FilterQuery::compile("user.name:adm~2", FilterLanguage::Lucene, None)
            .err()
            .expect("fuzzy queries are outside the subset");
        assert!(err.to_string().contains("cannot evaluate offline"), "{err}");
    }

    #[test]
    fn a_kql_syntax_error_has_its_span() {
        let err = FilterQuery::compile("user.name:(admin or", FilterLanguage::Kql, None)
            .err()
            .unwrap();
        let FilterQueryError::Query { span, .. } = err;
        assert_eq!(span.map(|s| s.start), Some(19));
    }

    #[test]
    fn without_a_mapping_lines_are_ruled_out_first_and_the_answer_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let input = [lines(
            dir.path(),
            "p.ndjson",
            &[
                json!({"@timestamp": "2024-05-01T09:01:00Z", "process": {"name": "cmd.exe"}}),
                json!({"@timestamp": "2024-05-01T09:02:00Z", "process": {"name": "bash"}}),
                json!({"@timestamp": "2024-05-01T09:03:00Z", "process": {"name": "C:\\CMD.EXE"}}),
                json!({"@timestamp": "2024-05-01T09:04:00Z", "process": {"name": "Cmd.Exe"}}),
                json!({"@timestamp": "2024-05-01T09:05:00Z", "message": "cmd.exe ran"}),
            ],
        )];
        let query = "process.name: cmd.exe or message: \"cmd.exe ran\"";
        let mut q = FilterQuery::compile(query, FilterLanguage::Kql, None).unwrap();
        assert!(q.prefilter.is_some());
        let mut bad = Vec::new();
        let with = run_filter_query(&q, &input, &opts(10, ResultPosition::Tail), |b| bad.push(b));
        let with = ids(&with.unwrap());
        assert_eq!(
            with,
            ["p.ndjson:1", "p.ndjson:3", "p.ndjson:4", "p.ndjson:5"]
        );
        q.prefilter = None;
        let without = run_filter_query(&q, &input, &opts(10, ResultPosition::Tail), |_| {});
        assert_eq!(with, ids(&without.unwrap()));
        // the line that is no JSON is still reported
        assert_eq!(bad.len(), 1);
        let typed = FilterQuery::compile(query, FilterLanguage::Kql, Some(&FieldTypes::default()));
        assert!(typed.unwrap().prefilter.is_none());
    }
}
