//! Lucene queries (`language = "lucene"`, what pySigma's Elasticsearch
//! backend writes): sent to the cluster exactly as Kibana sends them, and
//! evaluated locally for the subset [`parser`] reads.
//!
//! Kibana's `buildEsQuery` passes a Lucene query through as
//! `{"query_string": {"query": ..., "analyze_wildcard": true, "time_zone":
//! "Zulu"}}` in `bool.must` (`kbn-es-query` `es_query/from_lucene.ts`,
//! `decorate_query.ts`, with the detection engine's `queryStringOptions` and
//! `dateFormatTZ`); an empty query is `match_all` and dropped. Locally the
//! filter's [`crate::filter::Local`] holds the parsed meaning, or the reason
//! it cannot be evaluated offline (an error at evaluation, never a guess).

pub mod lower;
pub mod parser;

pub use parser::{parse, LQuery, LuceneError, Occur, Term};

use serde_json::{json, Value};

use crate::filter::{to_dsl, Filter, Local, QueryString};

/// Kibana's `query:queryString:options` and `dateFormatTZ` for a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LuceneOptions {
    pub analyze_wildcard: Option<bool>,
    pub time_zone: Option<String>,
}

impl LuceneOptions {
    /// The detection engine's (`rule_types/utils/get_query_filter.ts`).
    pub fn detection_rules() -> LuceneOptions {
        LuceneOptions {
            analyze_wildcard: Some(true),
            time_zone: Some("Zulu".into()),
        }
    }
}

/// The filter of a Lucene query: a `query_string` passthrough carrying its
/// local meaning.
pub fn to_filter(text: &str, opts: &LuceneOptions) -> Filter {
    if text.trim().is_empty() {
        return Filter::MatchAll;
    }
    let local = match parse(text) {
        Ok(q) => match lower::lower(
            &q,
            opts.time_zone.as_deref(),
            opts.analyze_wildcard == Some(true),
        ) {
            Ok(f) => Local::Tree(Box::new(f)),
            Err(what) => Local::Unsupported(format!(
                "{what} is outside the Lucene subset detectd evaluates"
            )),
        },
        Err(LuceneError::Unsupported { what, .. }) => Local::Unsupported(format!(
            "{what} is outside the Lucene subset detectd evaluates"
        )),
        Err(e) => Local::Unsupported(format!("the Lucene query does not parse: {e}")),
    };
    Filter::QueryString(QueryString {
        query: text.to_string(),
        fields: Vec::new(),
        analyze_wildcard: opts.analyze_wildcard,
        time_zone: opts.time_zone.clone(),
        local,
    })
}

/// The whole query as Kibana's `buildEsQuery` sends a Lucene query (in
/// `bool.must`).
pub fn es_query(filter: &Filter) -> Value {
    let clauses: Vec<Value> = match filter {
        Filter::MatchAll => Vec::new(),
        f => vec![to_dsl(f)],
    };
    json!({ "bool": { "must": clauses, "filter": [], "should": [], "must_not": [] } })
}

#[cfg(test)]
mod tests;
