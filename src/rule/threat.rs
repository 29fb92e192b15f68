//! A `threat_match` (indicator match) rule's own keys: `threat_index`,
//! `threat_query` in `threat_language` (`kuery` by default, or `lucene`),
//! `threat_filters`, `threat_mapping` and `threat_indicator_path`
//! (`threat.indicator` by default: `DEFAULT_INDICATOR_SOURCE_PATH` in
//! security_solution `common/constants.ts`). As in Kibana's rule schema
//! (`ThreatMapping` in `common/api/detection_engine/model/rule_schema`),
//! `threat_mapping` is a non-empty list of `{entries}`, each a non-empty
//! list of `{field, value, type = "mapping"}`. Kibana 9's `negate` entries
//! ("does not match") are refused rather than run as a match. The event
//! query itself is a query rule's, parsed by `validate`;
//! `concurrent_searches` and `items_per_search` only tune Kibana's chunked
//! searches and mean nothing to a local join.

use toml::Value;

use super::error::RuleErrorKind;
use super::fields::Fields;
use super::raw::toml_to_json;
use super::rule::{QueryLanguage, QueryRule, ThreatMapping, ThreatMappingEntry, ThreatMatchRule};
use crate::eql::Span;
use crate::kibana_filter::parse_filters;

/// Kibana's default `threat_indicator_path`.
pub const DEFAULT_INDICATOR_PATH: &str = "threat.indicator";

impl Fields<'_> {
    /// The threat part of a threat_match rule, every problem reported.
    pub(super) fn threat_match(&mut self, query: QueryRule) -> Option<ThreatMatchRule> {
        let mut ok = true;
        let threat_index = match self.get("threat_index") {
            None => {
                self.missing("threat_index");
                ok = false;
                Vec::new()
            }
            Some((_, span)) => {
                let list = self.string_list("threat_index");
                if list.is_empty() || list.iter().any(|p| p.trim().is_empty()) {
                    ok = false;
                    self.error(
                        RuleErrorKind::Value,
                        span,
                        "expected index patterns in `threat_index`, found none or an empty string"
                            .to_string(),
                    );
                }
                list
            }
        };
        let threat_query = self.threat_query();
        ok &= threat_query.is_some();
        let threat_filters = match self.get("threat_filters") {
            None => Vec::new(),
            Some((value, span)) if !value.is_array() => {
                self.wrong_type(
                    "threat_filters",
                    "an array of Kibana filter objects",
                    value,
                    span,
                );
                ok = false;
                Vec::new()
            }
            Some((value, span)) => match parse_filters(&toml_to_json(value)) {
                Ok(filters) => filters,
                Err(errors) => {
                    ok = false;
                    for e in errors {
                        self.error(
                            RuleErrorKind::Value,
                            span,
                            format!("invalid `threat_filters`: {e}"),
                        );
                    }
                    Vec::new()
                }
            },
        };
        let threat_mapping = self.threat_mapping();
        ok &= threat_mapping.is_some();
        let indicator_path = match self.get("threat_indicator_path") {
            None => Some(DEFAULT_INDICATOR_PATH.to_string()),
            Some(_) => self.non_empty_string("threat_indicator_path"),
        };
        ok &= indicator_path.is_some();
        if !ok {
            return None;
        }
        Some(ThreatMatchRule {
            query,
            threat_index,
            threat_query: threat_query?,
            threat_filters,
            threat_mapping: threat_mapping?,
            indicator_path: indicator_path?,
        })
    }

    /// `threat_query` (required, as in Kibana's schema; `*:*` or an empty
    /// string select every indicator) in `threat_language`.
    fn threat_query(&mut self) -> Option<QueryRule> {
        let language = match self.string_spanned("threat_language") {
            None => "kuery".to_string(),
            Some((l, _)) if l == "kuery" || l == "lucene" => l,
            Some((l, span)) => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("expected `threat_language` \"kuery\" or \"lucene\", found {l:?}"),
                );
                return None;
            }
        };
        if self.get("threat_query").is_none() {
            self.missing("threat_query");
            return None;
        }
        let (text, span) = self.string_spanned("threat_query")?;
        let language = if language == "lucene" {
            QueryLanguage::Lucene
        } else {
            match crate::kql::parse(&text) {
                Ok(node) => QueryLanguage::Kql(node),
                Err(e) => {
                    self.error(
                        RuleErrorKind::Kql,
                        span,
                        format!("invalid KQL in `threat_query`: {e}"),
                    );
                    return None;
                }
            }
        };
        Some(QueryRule {
            language,
            text,
            saved_id: None,
        })
    }

    fn threat_mapping(&mut self) -> Option<Vec<ThreatMapping>> {
        let Some((value, span)) = self.get("threat_mapping") else {
            self.missing("threat_mapping");
            return None;
        };
        let Value::Array(items) = value else {
            self.wrong_type(
                "threat_mapping",
                "an array of `{entries}` tables",
                value,
                span,
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                RuleErrorKind::Value,
                span,
                "expected at least one mapping in `threat_mapping`, found none".to_string(),
            );
            return None;
        }
        let mut ok = true;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match self.mapping(i + 1, item, span) {
                Some(m) => out.push(m),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// The `n`th (1-based) mapping.
    fn mapping(&mut self, n: usize, item: &Value, span: Span) -> Option<ThreatMapping> {
        let entries = match item {
            Value::Table(t) => t.get("entries"),
            _ => None,
        };
        let Some(Value::Array(entries)) = entries else {
            self.error(
                RuleErrorKind::Type,
                span,
                format!("expected mapping {n} of `threat_mapping` to be a table with `entries`"),
            );
            return None;
        };
        if entries.is_empty() {
            self.error(
                RuleErrorKind::Value,
                span,
                format!(
                    "expected at least one entry in mapping {n} of `threat_mapping`, found none"
                ),
            );
            return None;
        }
        let mut ok = true;
        let mut out = Vec::with_capacity(entries.len());
        for (j, entry) in entries.iter().enumerate() {
            let place = format!("entry {} of mapping {n} of `threat_mapping`", j + 1);
            let Value::Table(t) = entry else {
                ok = false;
                self.error(
                    RuleErrorKind::Type,
                    span,
                    format!("expected {place} to be a `{{field, value, type}}` table"),
                );
                continue;
            };
            let name = |key: &str| match t.get(key) {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
                _ => None,
            };
            let (field, value) = (name("field"), name("value"));
            for (key, got) in [("field", &field), ("value", &value)] {
                if got.is_none() {
                    ok = false;
                    self.error(
                        RuleErrorKind::Missing,
                        span,
                        format!("expected a field name as `{key}` of {place}"),
                    );
                }
            }
            match t.get("type") {
                Some(Value::String(s)) if s == "mapping" => {}
                other => {
                    ok = false;
                    let found = other.map_or("nothing".to_string(), |v| v.to_string());
                    self.error(
                        RuleErrorKind::Value,
                        span,
                        format!("expected `type = \"mapping\"` in {place}, found {found}"),
                    );
                }
            }
            if matches!(t.get("negate"), Some(Value::Boolean(true))) {
                ok = false;
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!(
                        "{place} is negated (\"does not match\"): not supported yet, and running \
                         it as a match would alert on the opposite"
                    ),
                );
            }
            for key in t.keys() {
                if !["field", "value", "type", "negate"].contains(&key.as_str()) {
                    self.error(
                        RuleErrorKind::UnknownField,
                        span,
                        format!("unknown field `{key}` in {place} is ignored"),
                    );
                }
            }
            if let (Some(field), Some(value)) = (field, value) {
                out.push(ThreatMappingEntry { field, value });
            }
        }
        ok.then_some(ThreatMapping { entries: out })
    }
}
