//! Members of a shared scan selected here instead of by a named clause each
//! (`ScanOptions::select_locally`).
//!
//! A member whose search is its time range, its indices and its pushdown
//! filter (no exact clause: no query rule's query, no filters, no
//! exceptions) is put in a *reach*: the members with the same time range.
//! The scan reads every event of a reach once, with one named clause (`r0`,
//! `r1`, ...: the range, and the concrete indices its members read), and
//! each event goes to the members of the reach that read its index and
//! whose pushdown filter, adapted to their indices' mappings, passes it.
//! `dsl::adapt` keeps only leaves that mean on the cluster what they mean
//! in [`Filter::matches`] (`dsl::adapt_on_source`: the same leaves, on the
//! `_source` field where the cluster reads a keyword sub-field), so the
//! member gets the events its own search would select, in the same order;
//! more where `_source` does not hold what the evaluator compares (an
//! alias, a `null_value`, a `constant_keyword`, a number, date or ip
//! compared by value: such leaves are widened here) or a keyword sub-field
//! leaves out long values — the evaluator then judges those events itself,
//! as it does every event of a mapped index in the memory source, so the
//! alerts are the same. The cluster evaluates a clause per
//! reach instead of one per member, and every event is read once however
//! many members select it.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use super::{dsl, SearchPlan};
use crate::eql::pushdown::Filter;
use crate::eql::schema::{FieldInfo, FieldType};
use crate::source::FetchRequest;

/// The prefix of a reach clause's name (members' clauses are numbers).
const REACH: char = 'r';

/// Which members are selected locally, and how.
#[derive(Debug, Default)]
pub(super) struct LocalSelection {
    /// Per member: its adapted pushdown when it is selected here.
    filters: Vec<Option<Filter>>,
    /// Per reach: its time range clause, and per concrete index the
    /// members reading it.
    reaches: Vec<Reach>,
}

#[derive(Debug)]
struct Reach {
    range: Value,
    readers: HashMap<String, Vec<usize>>,
}

impl LocalSelection {
    /// Splits the members: with `enabled`, those searching with their time
    /// range and pushdown alone (and at least one index) are selected here,
    /// in reaches by time range.
    pub(super) fn plan(
        requests: &[FetchRequest],
        plans: &[SearchPlan],
        restricted: &[bool],
        enabled: bool,
    ) -> LocalSelection {
        let mut out = LocalSelection {
            filters: vec![None; plans.len()],
            reaches: Vec::new(),
        };
        if !enabled {
            return out;
        }
        for (m, (request, plan)) in requests.iter().zip(plans).enumerate() {
            // a member restricted by its aliases' filters needs its clause
            let Some(range) = time_range(request, plan).filter(|_| !restricted[m]) else {
                continue;
            };
            let at = match out.reaches.iter().position(|r| r.range == *range) {
                Some(at) => at,
                None => {
                    out.reaches.push(Reach {
                        range: range.clone(),
                        readers: HashMap::new(),
                    });
                    out.reaches.len() - 1
                }
            };
            for index in &plan.indices {
                out.reaches[at]
                    .readers
                    .entry(index.clone())
                    .or_default()
                    .push(m);
            }
            out.filters[m] = Some(local_filter(request, plan));
        }
        out
    }

    /// Whether member `m` is selected here (it has no clause of its own).
    pub(super) fn is_local(&self, m: usize) -> bool {
        self.filters.get(m).is_some_and(Option::is_some)
    }

    /// The named clause of each reach: its range (left out when it is the
    /// scan's `common` filter) and its indices (left out when they are
    /// `all` the scan reads).
    pub(super) fn clauses(&self, common: Option<&Value>, all: &BTreeSet<&String>) -> Vec<Value> {
        self.reaches
            .iter()
            .enumerate()
            .map(|(k, reach)| {
                let mut filters = Vec::new();
                if Some(&reach.range) != common {
                    filters.push(reach.range.clone());
                }
                let indices: BTreeSet<&String> = reach.readers.keys().collect();
                if indices != *all {
                    filters.push(json!({ "terms": { "_index": indices } }));
                }
                json!({ "bool": { "filter": filters, "_name": format!("{REACH}{k}") } })
            })
            .collect()
    }

    /// The reach a clause name stands for (`None`: not a reach's name).
    pub(super) fn reach_of(&self, name: &str) -> Option<usize> {
        let k = name.strip_prefix(REACH)?.parse::<usize>().ok()?;
        (k < self.reaches.len()).then_some(k)
    }

    /// Adds to `out` the members of reach `k` that select an event of
    /// `index` with this `_source`.
    pub(super) fn select(&self, k: usize, index: &str, source: &Value, out: &mut Vec<usize>) {
        let Some(readers) = self.reaches.get(k).and_then(|r| r.readers.get(index)) else {
            return;
        };
        for &m in readers {
            if self.filters[m].as_ref().is_some_and(|f| f.matches(source)) {
                out.push(m);
            }
        }
    }

    /// The fields the local filters read, which the scan's projection must
    /// return.
    pub(super) fn fields(&self) -> BTreeSet<String> {
        self.filters
            .iter()
            .flatten()
            .flat_map(Filter::fields)
            .collect()
    }
}

/// What a member's events are selected by here: its pushdown adapted as
/// for the cluster, on the `_source` fields, with every leaf on a field
/// whose `_source` value may not be what the evaluator compares widened
/// (a superset, which the evaluator narrows again, as the memory source
/// does for mapped indices).
fn local_filter(request: &FetchRequest, plan: &SearchPlan) -> Filter {
    let adapted = dsl::adapt_on_source(&request.filter, &plan.types);
    let schemas = plan.mappings.distinct();
    widen(&adapted, &|field| {
        schemas
            .iter()
            .all(|s| as_in_source(&s.resolve(field), field))
    })
}

/// Whether [`Filter::matches`] reading `field`'s `_source` value sees what
/// the evaluator compares, given its mapping: a keyword (or text) field of
/// its own that the mapping gives no value of its own — not an alias, no
/// `null_value`, not a `constant_keyword` — or a field the mapping does not
/// declare. Numbers (coerced, rounded), dates, ips (normalised) and
/// versions are compared by value, not as written.
fn as_in_source(info: &FieldInfo, field: &str) -> bool {
    !info.mapped
        || (info.ty == FieldType::Keyword
            && info.source_path == field
            && info.null_value.is_none()
            && info.constant.is_none())
}

/// `filter` with the leaves on fields not `plain` matching everything (an
/// exclusion with such a leaf is dropped: the result only grows).
fn widen(filter: &Filter, plain: &dyn Fn(&str) -> bool) -> Filter {
    let kept = |leaf: &Filter| leaf.fields().iter().all(|f| plain(f));
    dsl::widen_leaves(
        filter,
        &|leaf| match kept(leaf) {
            true => leaf.clone(),
            false => Filter::MatchAll,
        },
        &|excluded| widen(excluded, plain) == *excluded,
    )
}

/// A member's time range clause when its search is that range and its
/// pushdown alone: `None` for an exact clause, an indicator list, or no
/// index to read.
fn time_range<'p>(request: &FetchRequest, plan: &'p SearchPlan) -> Option<&'p Value> {
    if request.exact.is_some() || request.timeless || plan.indices.is_empty() {
        return None;
    }
    // `dsl::search_query`: the time range first, then the adapted pushdown
    let clauses = plan.query["bool"]["filter"].as_array()?;
    match clauses.len() {
        1 | 2 => clauses.first(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TimeRange;
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use std::sync::Arc;

    fn plan(indices: &[&str], range: i64, pushdown: Option<Value>) -> SearchPlan {
        let mut filter = vec![json!({ "range": { "@timestamp": { "gte": range } } })];
        filter.extend(pushdown);
        SearchPlan {
            targets: indices.iter().map(|i| i.to_string()).collect(),
            indices: indices.iter().map(|i| i.to_string()).collect(),
            // mapped as keyword, the pushdown is kept as it is
            types: dsl::FieldTypes::default().with("process.name", &["keyword"]),
            warnings: vec![],
            query: json!({ "bool": { "filter": filter } }),
            sort: json!([]),
            source: json!(true),
            mappings: Arc::default(),
        }
    }

    fn request(filter: Filter) -> FetchRequest {
        let t = Utc.timestamp_opt(0, 0).unwrap();
        let mut r = FetchRequest::new(vec!["*".into()], TimeRange { from: t, to: t });
        r.filter = filter;
        r
    }

    #[test]
    fn members_with_the_same_range_share_a_reach_and_are_chosen_by_their_filter() {
        let cmd = Filter::Term {
            field: "process.name".into(),
            value: crate::eql::pushdown::Scalar::String("cmd.exe".into()),
            case_insensitive: false,
        };
        let requests = vec![
            request(cmd.clone()),
            request(Filter::MatchAll),
            request(cmd.clone()),
            {
                let mut r = request(cmd.clone());
                r.exact = Some(crate::source::Exact::new(|_| {
                    Ok(crate::filter::Filter::MatchAll)
                }));
                r
            },
        ];
        let plans = vec![
            plan(&["a", "b"], 1, Some(json!({ "term": {} }))),
            plan(&["b"], 1, None),
            plan(&["a"], 2, Some(json!({ "term": {} }))),
            plan(&["a"], 1, Some(json!({ "term": {} }))),
        ];
        let local = LocalSelection::plan(&requests, &plans, &[false; 4], true);
        assert!(local.is_local(0) && local.is_local(1) && local.is_local(2));
        assert!(!local.is_local(3), "an exact clause keeps its named clause");
        let aliased = LocalSelection::plan(&requests, &plans, &[false, true, false, false], true);
        assert!(
            !aliased.is_local(1),
            "a member restricted by its aliases' filters keeps its named clause"
        );
        assert_eq!(local.reaches.len(), 2, "two ranges");
        let (a, b) = ("a".to_string(), "b".to_string());
        let common = &plans[0].query["bool"]["filter"][0];
        let clauses = local.clauses(Some(common), &BTreeSet::from([&a, &b]));
        assert_eq!(
            clauses[0],
            json!({ "bool": { "_name": "r0", "filter": [] } })
        );
        assert_eq!(
            clauses[1],
            json!({ "bool": { "_name": "r1", "filter": [
                { "range": { "@timestamp": { "gte": 2 } } },
                { "terms": { "_index": ["a"] } }
            ] } })
        );
        assert_eq!(local.reach_of("r1"), Some(1));
        assert_eq!(local.reach_of("r2"), None);
        assert_eq!(local.reach_of("1"), None);

        let mut out = Vec::new();
        let event = json!({ "process": { "name": "cmd.exe" } });
        local.select(0, "b", &event, &mut out);
        assert_eq!(out, [0, 1]);
        out.clear();
        local.select(0, "b", &json!({ "process": { "name": "sh" } }), &mut out);
        assert_eq!(out, [1], "member 0's filter rules the event out");
        out.clear();
        local.select(0, "c", &event, &mut out);
        assert!(out.is_empty(), "nobody reads index c");
        assert!(local.fields().contains("process.name"));

        // a field whose value the mapping gives (a constant, a null_value),
        // an alias or a number: the leaf is widened, the rest kept
        let schema = crate::eql::schema::Schema::from_mapping(&json!({ "properties": {
            "ds": { "type": "constant_keyword", "value": "x" },
            "dom": { "type": "keyword", "null_value": "NULL" },
            "host": { "type": "alias", "path": "name" },
            "name": { "type": "keyword" },
            "port": { "type": "long" },
            "process": { "properties": { "name": { "type": "keyword" } } },
        } }))
        .unwrap();
        let mut mapped = plan(&["a"], 1, None);
        mapped.types = ["ds", "dom", "host", "name", "port", "process.name"]
            .iter()
            .fold(dsl::FieldTypes::default(), |t, f| t.with(f, &["keyword"]));
        mapped.mappings = Arc::new(crate::source::Mappings::new(
            [("a".to_string(), Arc::new(schema))].into(),
        ));
        for (field, kept) in [
            ("ds", false),
            ("dom", false),
            ("host", false),
            ("port", false),
            ("name", true),
            ("process.name", true),
        ] {
            let leaf = Filter::Term {
                field: field.into(),
                value: crate::eql::pushdown::Scalar::String("v".into()),
                case_insensitive: false,
            };
            let expected = if kept { leaf.clone() } else { Filter::MatchAll };
            assert_eq!(local_filter(&request(leaf), &mapped), expected, "{field}");
        }

        let off = LocalSelection::plan(&requests, &plans, &[false; 4], false);
        assert!((0..4).all(|m| !off.is_local(m)));
        assert!(off.clauses(None, &BTreeSet::new()).is_empty());
    }
}
