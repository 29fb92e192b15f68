//! The rule's query compiled for the indices of one window: which plan
//! evaluates an event, by the index it came from.
//!
//! The source hands over the mapping of every index it searched
//! ([`crate::source::Mappings`]); [`WindowPlans`] compiles the query once
//! per distinct meaning ([`PlanSet`]: indices whose mappings agree on the
//! fields the query reads share a plan), and then, per event, interns its
//! index name (hits refer to it) and picks the plan. An event of an index
//! the mappings do not cover (created between the mapping read and the
//! search, e.g. a rollover) is typed from its JSON, as without a mapping.

use std::collections::HashMap;
use std::sync::Arc;

use crate::eql::ast::Query;
use crate::eql::compile::{CompileOptions, Plan, PlanSet, PlanSetError};
use crate::eql::schema::Schema;
use crate::source::Mappings;

/// The plans of one window, and the index names seen so far.
#[derive(Debug)]
pub(super) struct WindowPlans {
    set: PlanSet,
    /// Index name -> (the shared name, its plan in `set`).
    indices: HashMap<String, (Arc<str>, usize)>,
}

impl WindowPlans {
    pub(super) fn compile(
        query: &Query,
        options: &CompileOptions,
        mappings: &Mappings,
    ) -> Result<WindowPlans, PlanSetError> {
        Ok(WindowPlans {
            set: PlanSet::compile(query, options, &Schema::default(), mappings.iter())?,
            indices: HashMap::new(),
        })
    }

    /// The plan that gives the query's shape.
    pub(super) fn shape(&self) -> &Plan {
        self.set.shape()
    }

    /// The shared name of `index` and the plan its events are evaluated
    /// with.
    pub(super) fn for_index(&mut self, index: String) -> (Arc<str>, &Plan) {
        let (name, i) = match self.indices.get(&index) {
            Some((name, i)) => (name.clone(), *i),
            None => {
                let i = self.set.index_of(&index);
                let name: Arc<str> = Arc::from(index.as_str());
                self.indices.insert(index, (name.clone(), i));
                (name, i)
            }
        };
        (name, &self.set.plans()[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_index_gets_its_own_plan_and_unknown_ones_the_dynamic_one() {
        let q = crate::eql::parse(r#"any where destination.ip == "::1""#).unwrap();
        let m = Mappings::from_json(&[
            (
                "ip",
                json!({"properties": {"destination": {"properties": {"ip": {"type": "ip"}}}}}),
            ),
            (
                "kw",
                json!({"properties": {"destination": {"properties": {"ip": {"type": "keyword"}}}}}),
            ),
        ])
        .unwrap();
        let mut plans = WindowPlans::compile(&q, &CompileOptions::default(), &m).unwrap();
        let doc = json!({"destination": {"ip": "0:0:0:0:0:0:0:1"}});
        let mut matches = |index: &str| {
            let (name, plan) = plans.for_index(index.to_string());
            assert_eq!(&*name, index);
            plan.stages[0].matches(&plan.event(&doc))
        };
        assert!(matches("ip"));
        assert!(!matches("kw"));
        assert!(!matches("new-index"));
        assert!(matches("ip"), "the second lookup gives the same plan");
    }
}
