//! A rule's alert overrides: an event's own values in place of the rule's
//! severity (`severity_mapping`), risk score (`risk_score_mapping`) and
//! name (`rule_name_override`), as Kibana computes them for each event
//! alert (`rule_types/utils/mappings/build_severity_from_mapping.ts`,
//! `build_risk_score_from_mapping.ts`, `build_rule_name_from_mapping.ts`,
//! applied by `factories/utils/transform_hit_to_alert.ts` when
//! `applyOverrides` is set, which `wrap_hits_factory.ts` does for event
//! alerts; a sequence's shell and building blocks get none).
//!
//! Only the computation is here; reading the settings from a rule file is
//! `rule::validate`'s, stamping the results on the alert is `fields`'.

use serde_json::{json, Value};

use super::doc::lodash_get;

/// One `severity_mapping` entry: an event whose `field` holds `value` gets
/// the alert severity `severity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeverityMapping {
    pub field: String,
    pub value: String,
    /// `low`, `medium`, `high` or `critical` (checked at load).
    pub severity: String,
}

/// What a rule overrides; the default overrides nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub severity_mapping: Vec<SeverityMapping>,
    /// The field of the first `risk_score_mapping` entry: Kibana reads only
    /// that one ("current MVP support is for mapping from a single field").
    pub risk_score_field: Option<String>,
    /// `rule_name_override`: the field whose string value names the alert.
    pub rule_name_field: Option<String>,
}

/// The values an event alert carries in place of the rule's.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub name: String,
    pub severity: String,
    /// A JSON number: a mapped risk score may have a fraction (47.5).
    pub risk_score: Value,
}

/// Kibana's `event.severity` special case: the ECS field is a `long`, so
/// the mapping's value is taken for a number there and only numeric event
/// values match.
const ECS_SEVERITY_FIELD: &str = "event.severity";

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.severity_mapping.is_empty()
            && self.risk_score_field.is_none()
            && self.rule_name_field.is_none()
    }

    /// The name, severity and risk score of the alert for the event with
    /// this `_source`, the rule's own where no override applies.
    pub fn apply(&self, source: &Value, name: &str, severity: &str, risk_score: i64) -> Applied {
        Applied {
            name: self.name(source).unwrap_or_else(|| name.to_string()),
            severity: self
                .severity(source)
                .unwrap_or_else(|| severity.to_string()),
            risk_score: self
                .risk_score(source)
                .map_or_else(|| json!(risk_score), number),
        }
    }

    /// `buildRuleNameFromMapping`: the field's value when it is a string
    /// (an array of strings is not).
    fn name(&self, source: &Value) -> Option<String> {
        let field = self.rule_name_field.as_deref()?;
        lodash_get(source, field)?.as_str().map(str::to_string)
    }

    /// `buildSeverityFromMapping`: the mappings ordered from low to high
    /// severity (a stable sort), the last that matches wins, so the highest
    /// severity any mapping gives.
    fn severity(&self, source: &Value) -> Option<String> {
        let mut sorted: Vec<&SeverityMapping> = self.severity_mapping.iter().collect();
        sorted.sort_by_key(|m| severity_rank(&m.severity));
        sorted
            .into_iter()
            .filter(|m| severity_matches(m, source))
            .last()
            .map(|m| m.severity.clone())
    }

    /// `buildRiskScoreFromMapping`: the largest of the field's values that
    /// is a finite number from 0 to 100, numeric strings included.
    fn risk_score(&self, source: &Value) -> Option<f64> {
        let field = self.risk_score_field.as_deref()?;
        let value = lodash_get(source, field)?;
        let values = match value {
            Value::Array(items) => items.as_slice(),
            one => std::slice::from_ref(one),
        };
        values
            .iter()
            .filter_map(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => js_number(s),
                _ => None,
            })
            .filter(|n| n.is_finite() && (0.0..=100.0).contains(n))
            .reduce(f64::max)
    }
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "low" => 0,
        "medium" => 1,
        "high" => 2,
        _ => 3,
    }
}

/// Does the event hold the mapping's value in its field? Kibana compares
/// the event's safe-integer numbers and strings, as strings (`String(5)`
/// is `"5"`), except for `event.severity`: there numbers only, against the
/// mapping's value floored to a number.
fn severity_matches(mapping: &SeverityMapping, source: &Value) -> bool {
    let Some(value) = lodash_get(source, &mapping.field) else {
        return false;
    };
    let values = match value {
        Value::Array(items) => items.as_slice(),
        one => std::slice::from_ref(one),
    };
    if mapping.field == ECS_SEVERITY_FIELD {
        let Some(wanted) = js_number(&mapping.value).map(f64::floor) else {
            return false;
        };
        values
            .iter()
            .filter_map(safe_integer)
            .any(|n| n as f64 == wanted)
    } else {
        values.iter().any(|v| match v {
            Value::String(s) => *s == mapping.value,
            other => safe_integer(other).is_some_and(|n| n.to_string() == mapping.value),
        })
    }
}

/// JavaScript's `Number.isSafeInteger`: a number with no fraction within
/// ±(2^53 − 1); `5.0` is one (JavaScript has one number type).
fn safe_integer(value: &Value) -> Option<i64> {
    const MAX_SAFE: i64 = (1 << 53) - 1;
    let Value::Number(n) = value else {
        return None;
    };
    let i = match n.as_i64() {
        Some(i) => i,
        None => {
            let f = n.as_f64()?;
            if f.fract() != 0.0 || f.abs() > MAX_SAFE as f64 {
                return None;
            }
            f as i64
        }
    };
    (-MAX_SAFE..=MAX_SAFE).contains(&i).then_some(i)
}

/// JavaScript's `Number(string)` for the strings a field holds: blank is
/// 0, surrounding whitespace is ignored, `0x`/`0o`/`0b` integers are read;
/// what it cannot read is `None` (JavaScript's NaN).
fn js_number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return Some(0.0);
    }
    for (prefix, radix) in [("0x", 16), ("0X", 16), ("0o", 8), ("0O", 8), ("0b", 2), ("0B", 2)] {
        if let Some(digits) = t.strip_prefix(prefix) {
            return u64::from_str_radix(digits, radix).ok().map(|n| n as f64);
        }
    }
    match t {
        "Infinity" | "+Infinity" => return Some(f64::INFINITY),
        "-Infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    // Rust reads "inf" and "nan", JavaScript does not.
    if t.chars().any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
        return None;
    }
    t.parse::<f64>().ok()
}

/// A risk score as JSON: an integer where it has no fraction, as
/// JavaScript writes `50` for 50.0.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(field: &str, value: &str, severity: &str) -> SeverityMapping {
        SeverityMapping {
            field: field.into(),
            value: value.into(),
            severity: severity.into(),
        }
    }

    fn apply(o: &Overrides, source: Value) -> Applied {
        o.apply(&source, "Rule", "low", 21)
    }

    #[test]
    fn no_overrides_keep_the_rules_values() {
        let got = apply(&Overrides::default(), json!({"a": 1}));
        assert_eq!(
            got,
            Applied {
                name: "Rule".into(),
                severity: "low".into(),
                risk_score: json!(21)
            }
        );
    }

    /// Kibana's build_severity_from_mapping.test.ts cases: the highest
    /// matching severity wins whatever the order written, numbers match
    /// their string form, event.severity compares numbers.
    #[test]
    fn severity_mapping_follows_kibana() {
        let o = Overrides {
            severity_mapping: vec![
                mapping("host.name", "critical-host", "critical"),
                mapping("event.action", "login", "medium"),
                mapping("process.pid", "42", "high"),
                mapping("event.severity", "3.9", "high"),
            ],
            ..Overrides::default()
        };
        let sev = |source: Value| apply(&o, source).severity;
        assert_eq!(sev(json!({"event": {"action": "login"}})), "medium");
        assert_eq!(sev(json!({"event.action": "login"})), "medium");
        assert_eq!(
            sev(json!({"event": {"action": "login"}, "host": {"name": "critical-host"}})),
            "critical"
        );
        assert_eq!(sev(json!({"process": {"pid": 42}})), "high");
        assert_eq!(sev(json!({"process": {"pid": 42.0}})), "high");
        assert_eq!(sev(json!({"process": {"pid": "42"}})), "high");
        assert_eq!(sev(json!({"process": {"pid": 42.5}})), "low");
        assert_eq!(sev(json!({"event": {"action": ["x", "login"]}})), "medium");
        assert_eq!(sev(json!({"event": {"action": true}})), "low");
        // event.severity: "3.9" floors to 3; only numbers match there.
        assert_eq!(sev(json!({"event": {"severity": 3}})), "high");
        assert_eq!(sev(json!({"event": {"severity": "3"}})), "low");
        assert_eq!(sev(json!({"event": {"severity": 4}})), "low");
        assert_eq!(sev(json!({})), "low");
    }

    #[test]
    fn risk_score_mapping_takes_the_largest_valid_value() {
        let o = Overrides {
            risk_score_field: Some("event.risk_score".into()),
            ..Overrides::default()
        };
        let risk = |source: Value| apply(&o, source).risk_score;
        assert_eq!(risk(json!({"event": {"risk_score": 73}})), json!(73));
        assert_eq!(risk(json!({"event": {"risk_score": 47.5}})), json!(47.5));
        assert_eq!(risk(json!({"event": {"risk_score": "88"}})), json!(88));
        assert_eq!(risk(json!({"event": {"risk_score": " 0x10 "}})), json!(16));
        assert_eq!(risk(json!({"event": {"risk_score": [5, "99", 101, -1]}})), json!(99));
        assert_eq!(risk(json!({"event": {"risk_score": 101}})), json!(21));
        assert_eq!(risk(json!({"event": {"risk_score": "high"}})), json!(21));
        assert_eq!(risk(json!({"event": {"risk_score": "inf"}})), json!(21));
        // JavaScript's Number("") is 0, a valid score.
        assert_eq!(risk(json!({"event": {"risk_score": ""}})), json!(0));
        assert_eq!(risk(json!({"event": {"risk_score": null}})), json!(21));
        assert_eq!(risk(json!({})), json!(21));
    }

    #[test]
    fn rule_name_override_takes_strings_only() {
        let o = Overrides {
            rule_name_field: Some("rule.name".into()),
            ..Overrides::default()
        };
        let name = |source: Value| apply(&o, source).name;
        assert_eq!(name(json!({"rule": {"name": "From the event"}})), "From the event");
        assert_eq!(name(json!({"rule.name": "Dotted"})), "Dotted");
        assert_eq!(name(json!({"rule": {"name": ["a", "b"]}})), "Rule");
        assert_eq!(name(json!({"rule": {"name": 7}})), "Rule");
        assert_eq!(name(json!({})), "Rule");
    }
}
