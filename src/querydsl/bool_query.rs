//! The `bool` query with Lucene's clause rules, as Elasticsearch builds it
//! (`BoolQueryBuilder.doToQuery`, `Queries.calculateMinShouldMatch`):
//!
//! - no clause at all matches everything;
//! - `must` and `filter` clauses are required, `must_not` prohibited;
//! - `should` clauses: at least `minimum_should_match` of them must match;
//!   without it, one when there is no `must`/`filter` clause and none
//!   otherwise; a computed 0 with no required clause still needs one (a
//!   pure disjunction); more than there are clauses matches nothing;
//! - only prohibited clauses match everything else (Elasticsearch adds a
//!   match-all unless `adjust_pure_negative` is false).

use serde_json::Value;

use super::error::{DslError, Pointer};
use super::reader::{bool_param, params, Reader};
use crate::filter::Filter;

/// Above this many combinations, "k of n" is not expanded.
const MAX_COMBINATIONS: u64 = 256;

impl Reader {
    pub(super) fn bool_query(&mut self, body: &Value, at: &Pointer) -> Result<Filter, DslError> {
        let o = params(
            "bool",
            body,
            &[
                "must",
                "filter",
                "should",
                "must_not",
                "minimum_should_match",
                "adjust_pure_negative",
                "boost",
                "_name",
            ],
            at,
        )?;
        let mut required = self.clauses(o.get("must"), &at.child("must"))?;
        required.extend(self.clauses(o.get("filter"), &at.child("filter"))?);
        let should = self.clauses(o.get("should"), &at.child("should"))?;
        let must_not = self.clauses(o.get("must_not"), &at.child("must_not"))?;
        let adjust = match o.get("adjust_pure_negative") {
            Some(v) => bool_param(v, &at.child("adjust_pure_negative"))?,
            None => true,
        };
        let msm = match o.get("minimum_should_match") {
            Some(spec) => Some(min_should_match(
                spec,
                should.len(),
                &at.child("minimum_should_match"),
            )?),
            None => None,
        };
        if required.is_empty() && should.is_empty() && must_not.is_empty() {
            return Ok(Filter::MatchAll);
        }
        let k = match msm {
            Some(Ok(k)) => k,
            Some(Err(why)) => return Ok(self.unsupported(why)),
            None => 0,
        };
        // Lucene: with nothing required, an optional clause must match.
        let k = if k == 0 && required.is_empty() && !should.is_empty() {
            1
        } else {
            k
        };
        if k > should.len() {
            return Ok(Filter::MatchNone);
        }
        if required.is_empty() && k == 0 && !adjust {
            return Ok(Filter::MatchNone);
        }
        let mut parts = required;
        if k > 0 {
            parts.push(self.at_least(k, should));
        }
        parts.extend(must_not.into_iter().map(Filter::not));
        Ok(Filter::and(parts))
    }

    /// A clause list: one query object or an array of them.
    fn clauses(&mut self, v: Option<&Value>, at: &Pointer) -> Result<Vec<Filter>, DslError> {
        match v {
            None => Ok(Vec::new()),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, q)| self.query(q, &at.child(i)))
                .collect(),
            Some(q @ Value::Object(_)) => Ok(vec![self.query(q, at)?]),
            Some(other) => Err(DslError::expected(
                at,
                "a query object or an array of them",
                other,
            )),
        }
    }

    /// At least `k` (1..=n) of the clauses.
    fn at_least(&mut self, k: usize, clauses: Vec<Filter>) -> Filter {
        let n = clauses.len();
        if k == 1 {
            return Filter::or(clauses);
        }
        if k == n {
            return Filter::and(clauses);
        }
        if binomial(n as u64, k as u64) > MAX_COMBINATIONS {
            return self.unsupported(format!(
                "a `bool` query needing {k} of {n} `should` clauses"
            ));
        }
        let mut out = Vec::new();
        let mut pick = Vec::with_capacity(k);
        combinations(&clauses, k, 0, &mut pick, &mut out);
        Filter::or(out)
    }
}

fn combinations(
    all: &[Filter],
    k: usize,
    start: usize,
    pick: &mut Vec<usize>,
    out: &mut Vec<Filter>,
) {
    if pick.len() == k {
        out.push(Filter::and(pick.iter().map(|&i| all[i].clone()).collect()));
        return;
    }
    for i in start..all.len() {
        pick.push(i);
        combinations(all, k, i + 1, pick, out);
        pick.pop();
    }
}

fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k);
    (0..k).fold(1u64, |acc, i| acc.saturating_mul(n - i) / (i + 1))
}

/// `minimum_should_match` for `optional` clauses, as Elasticsearch's
/// `Queries.calculateMinShouldMatch` computes it: an integer (negative:
/// that many fewer than all), a percentage (rounded down; negative: of
/// those that may be missing). Conditional specs (`3<90%`) are not
/// modelled (the inner `Err`).
fn min_should_match(
    spec: &Value,
    optional: usize,
    at: &Pointer,
) -> Result<Result<usize, String>, DslError> {
    let bad = || DslError::expected(at, "an integer or a percentage such as \"75%\"", spec);
    let text = match spec {
        Value::Number(n) => n.as_i64().ok_or_else(bad)?.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err(bad()),
    };
    if text.contains('<') {
        return Ok(Err(format!(
            "the conditional minimum_should_match `{text}`"
        )));
    }
    let count = optional as i64;
    let result = match text.strip_suffix('%') {
        Some(p) => {
            let percent: i64 = p.trim().parse().map_err(|_| bad())?;
            // Java: (int) of a float, truncating toward zero.
            let calc = ((count * percent) as f64 / 100.0).trunc() as i64;
            if calc < 0 {
                count + calc
            } else {
                calc
            }
        }
        None => {
            let n: i64 = text.parse().map_err(|_| bad())?;
            if n < 0 {
                count + n
            } else {
                n
            }
        }
    };
    Ok(Ok(result.max(0) as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msm(spec: Value, n: usize) -> usize {
        min_should_match(&spec, n, &Pointer::root())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn minimum_should_match_as_elasticsearch_computes_it() {
        assert_eq!(msm(json!(2), 5), 2);
        assert_eq!(msm(json!("-1"), 5), 4);
        assert_eq!(msm(json!("75%"), 5), 3);
        assert_eq!(msm(json!("-25%"), 5), 4);
        assert_eq!(msm(json!("-100%"), 3), 0);
        assert_eq!(msm(json!(-9), 3), 0);
        assert!(min_should_match(&json!("3<90%"), 5, &Pointer::root())
            .unwrap()
            .is_err());
        assert!(min_should_match(&json!("x"), 5, &Pointer::root()).is_err());
        assert!(min_should_match(&json!(1.5), 5, &Pointer::root()).is_err());
    }

    #[test]
    fn binomials() {
        assert_eq!(binomial(5, 2), 10);
        assert_eq!(binomial(4, 4), 1);
        assert_eq!(binomial(20, 10), 184_756);
    }
}
