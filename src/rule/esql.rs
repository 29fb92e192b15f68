//! An `esql` rule's part: `language = "esql"` and its query, whose shape
//! (indices, `METADATA`, `STATS`) is read at load (`crate::esql::Shape`).
//! Kibana's ES|QL rules have no `index`: the query's `FROM` names what they
//! read (`getIndexListFromEsqlQuery` in `@kbn/securitysolution-utils`).
//! Elasticsearch runs the query (8.11 or later); OpenSearch has no ES|QL.

use super::error::RuleErrorKind;
use super::fields::Fields;
use super::rule::{EsqlRule, RuleKind};
use crate::esql::Shape;

impl Fields<'_> {
    /// An ES|QL rule's part, every problem reported.
    pub(super) fn esql_kind(&mut self) -> Option<RuleKind> {
        if let Some((language, span)) = self.string_spanned("language") {
            if language != "esql" {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("expected language \"esql\" for an esql rule, found {language:?}"),
                );
            }
        } else if !self.table.contains_key("language") {
            self.missing("language");
        }
        if let Some((_, span)) = self.get("index") {
            // Kibana's schema has no `index` for ES|QL rules: the query's
            // FROM is what runs, so an `index` here would mislead.
            self.error(
                RuleErrorKind::Value,
                span,
                "an esql rule reads the indices after FROM in its query: remove `index`"
                    .to_string(),
            );
        }
        let text = self.required_string("query")?;
        let span = self.get("query").map(|(_, s)| s)?;
        match Shape::read(&text) {
            Ok(shape) => Some(RuleKind::Esql(EsqlRule { text, shape })),
            Err(e) => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("invalid ES|QL query: {e}"),
                );
                None
            }
        }
    }
}
