//! One query compiled for several mappings: a [`PlanSet`].
//!
//! Elasticsearch evaluates every index with its own mapping, so a query
//! over indices whose mappings disagree (a field that is `keyword` here and
//! `ip` there) means something different in each. A [`PlanSet`] holds one
//! [`Plan`] per distinct meaning and says which plan each index (or events
//! file) uses. Indices share a plan when their mappings say the same about
//! every field the query reads, so hundreds of backing indices with one
//! template compile once. Events of an index the set does not know use the
//! fallback plan.
//!
//! What this does not do: fetch mappings (`source::mappings`, or `--mapping`
//! files in `offline`), or decide which index an event came from.

use std::collections::HashMap;
use std::sync::Arc;

use super::{compile, CompileOptions, EqlError, FieldInfo, Plan, Schema};
use crate::eql::ast::Query;
use crate::eql::pushdown::referenced_fields;

/// A query compiled once per distinct mapping of the fields it reads.
#[derive(Clone, Debug)]
pub struct PlanSet {
    plans: Vec<Plan>,
    by_key: HashMap<String, usize>,
    fallback: usize,
}

/// The query does not compile with the mapping of `key` (`None`: the
/// fallback mapping).
#[derive(Debug, thiserror::Error)]
#[error("{}{error}", key.as_ref().map(|k| format!("with the mapping of `{k}`: ")).unwrap_or_default())]
pub struct PlanSetError {
    pub key: Option<String>,
    pub error: EqlError,
}

impl PlanSet {
    /// A set with one plan, for every key.
    pub fn single(plan: Plan) -> PlanSet {
        PlanSet {
            plans: vec![plan],
            by_key: HashMap::new(),
            fallback: 0,
        }
    }

    /// Compiles `query` for each keyed schema and for `fallback`; keys whose
    /// schemas agree on every field the query reads share a plan.
    pub fn compile<'s>(
        query: &Query,
        opts: &CompileOptions,
        fallback: &Schema,
        keyed: impl IntoIterator<Item = (&'s str, &'s Arc<Schema>)>,
    ) -> Result<PlanSet, PlanSetError> {
        let mut names: Vec<String> = referenced_fields(query, &opts.event_category_field)
            .into_iter()
            .collect();
        names.push(opts.timestamp_field.clone());
        names.push(opts.event_category_field.clone());
        names.extend(opts.tiebreaker_field.clone());
        names.sort();
        names.dedup();
        let signature = |schema: &Schema| -> Vec<FieldInfo> {
            names.iter().map(|n| schema.resolve(n)).collect()
        };

        let mut plans = Vec::new();
        let mut signatures: Vec<Vec<FieldInfo>> = Vec::new();
        let mut add = |key: Option<&str>, sig: Vec<FieldInfo>, schema: &Schema| {
            if let Some(i) = signatures.iter().position(|s| *s == sig) {
                return Ok(i);
            }
            let plan = compile(query, schema, opts).map_err(|error| PlanSetError {
                key: key.map(str::to_string),
                error,
            })?;
            plans.push(plan);
            signatures.push(sig);
            Ok(plans.len() - 1)
        };
        let fallback = add(None, signature(fallback), fallback)?;
        let mut by_key = HashMap::new();
        // Backing indices of one data stream share one `Arc`: look each
        // schema up once.
        let mut seen: Vec<(*const Schema, usize)> = Vec::new();
        for (key, schema) in keyed {
            let ptr = Arc::as_ptr(schema);
            let i = match seen.iter().find(|(p, _)| *p == ptr) {
                Some(&(_, i)) => i,
                None => {
                    let i = add(Some(key), signature(schema), schema)?;
                    seen.push((ptr, i));
                    i
                }
            };
            by_key.insert(key.to_string(), i);
        }
        Ok(PlanSet {
            plans,
            by_key,
            fallback,
        })
    }

    /// The plan that gives the query's shape (kind, stages, pipes,
    /// `maxspan`): the same in every plan of the set.
    pub fn shape(&self) -> &Plan {
        &self.plans[self.fallback]
    }

    /// The plan for events of `key` (an index, an events file).
    pub fn for_key(&self, key: &str) -> &Plan {
        &self.plans[self.index_of(key)]
    }

    /// Which of [`PlanSet::plans`] events of `key` use.
    pub fn index_of(&self, key: &str) -> usize {
        self.by_key.get(key).copied().unwrap_or(self.fallback)
    }

    /// The distinct plans (the fallback's first).
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::compile::PlanKind;
    use serde_json::json;

    fn schema(mapping: serde_json::Value) -> Arc<Schema> {
        Arc::new(Schema::from_mapping(&mapping).unwrap())
    }

    #[test]
    fn indices_share_a_plan_when_the_read_fields_agree() {
        let q = crate::eql::parse(r#"network where destination.ip == "10.0.0.1""#).unwrap();
        let ip =
            schema(json!({"properties": {"destination": {"properties": {"ip": {"type": "ip"}}}}}));
        // another field differs: same plan
        let ip_too = schema(json!({"properties": {
            "destination": {"properties": {"ip": {"type": "ip"}}},
            "other": {"type": "long"}
        }}));
        let kw = schema(
            json!({"properties": {"destination": {"properties": {"ip": {"type": "keyword"}}}}}),
        );
        let set = PlanSet::compile(
            &q,
            &CompileOptions::default(),
            &Schema::default(),
            [("a", &ip), ("b", &ip_too), ("c", &kw), ("d", &ip)],
        )
        .unwrap();
        assert_eq!(set.plans().len(), 3, "fallback, ip, keyword");
        assert_eq!(set.index_of("a"), set.index_of("b"));
        assert_eq!(set.index_of("a"), set.index_of("d"));
        assert_ne!(set.index_of("a"), set.index_of("c"));
        assert_eq!(set.index_of("unknown"), 0);
        assert_eq!(set.shape().kind, PlanKind::Event);
        let doc =
            json!({"event": {"category": "network"}, "destination": {"ip": "::ffff:10.0.0.1"}});
        let matches = |key: &str| {
            let p = set.for_key(key);
            p.stages[0].matches(&p.event(&doc))
        };
        assert!(matches("a"));
        assert!(!matches("c"), "a keyword compares the text");
        assert!(!matches("unknown"));
    }

    #[test]
    fn a_compile_error_names_the_index() {
        let q = crate::eql::parse(r#"any where source.ip == "not an ip""#).unwrap();
        let ip = schema(json!({"properties": {"source": {"properties": {"ip": {"type": "ip"}}}}}));
        let err = PlanSet::compile(
            &q,
            &CompileOptions::default(),
            &Schema::default(),
            [("logs-1", &ip)],
        )
        .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("logs-1"));
        assert!(
            err.to_string()
                .starts_with("with the mapping of `logs-1`: "),
            "{err}"
        );
    }
}
