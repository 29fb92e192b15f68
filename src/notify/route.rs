//! Which route takes which alert group: a route matches on the rule (ids,
//! tags, type) and on the group's head alert (its severity and risk score,
//! which severity and risk overrides may have changed from the rule's).
//! Every condition given must hold; a condition not given holds always.
//! A rule's own `[[rule.actions]]` are routes too, each taking only that
//! rule's groups ([`Router::routes_for`]).

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::Value;

use super::config::{NotifySettings, RouteKind, RouteMode, RouteSettings, DEFAULT_RULE_FAILURES};
use super::message::{field, text};
use crate::rule::{Rule, RuleAction, Severity};

/// The routes of the settings, in the order written.
#[derive(Clone, Debug, Default)]
pub struct Router {
    routes: Vec<RouteSettings>,
    /// The configured outputs, which rule actions may name.
    outputs: BTreeSet<String>,
    rule_failures: u32,
}

impl Router {
    pub fn new(settings: &NotifySettings) -> Router {
        Router {
            routes: settings.routes.clone(),
            outputs: settings.outputs.iter().map(|o| o.name.clone()).collect(),
            rule_failures: settings.rule_failures,
        }
    }

    /// The routes that may take `rule`'s groups: the configured ones, then
    /// the rule's own actions, named `<rule_id>/actions/<n>` (1-based), a
    /// name that is part of their messages' idempotency keys.
    pub fn routes_for<'a>(&'a self, rule: &Rule) -> Vec<Cow<'a, RouteSettings>> {
        let mut routes: Vec<Cow<'a, RouteSettings>> =
            self.routes.iter().map(Cow::Borrowed).collect();
        for (i, action) in rule.actions.iter().enumerate() {
            routes.push(Cow::Owned(action_route(rule, i, action)));
        }
        routes
    }

    /// Failed runs in a row before a rule's failure is announced.
    pub fn rule_failures(&self) -> u32 {
        if self.rule_failures == 0 {
            DEFAULT_RULE_FAILURES
        } else {
            self.rule_failures
        }
    }

    /// Whether some route takes alerts about detectd itself.
    pub fn watches_detectd(&self) -> bool {
        self.routes.iter().any(|r| r.kind == RouteKind::Detectd)
    }

    pub fn routes(&self) -> &[RouteSettings] {
        &self.routes
    }

    /// No routes and no outputs a rule's actions could name.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.outputs.is_empty()
    }
}

/// The route of a rule's action `i` (0-based).
fn action_route(rule: &Rule, i: usize, action: &RuleAction) -> RouteSettings {
    RouteSettings {
        name: format!("{}/actions/{}", rule.rule_id, i + 1),
        outputs: action.outputs.clone(),
        rule_ids: vec![rule.rule_id.clone()],
        tags: Vec::new(),
        min_severity: action.min_severity,
        min_risk_score: action.min_risk_score,
        rule_types: Vec::new(),
        mode: if action.summary {
            RouteMode::Summary
        } else {
            RouteMode::Group
        },
        throttle: action.throttle,
        group_by: action.group_by.clone(),
        kind: RouteKind::Alert,
        events: Vec::new(),
    }
}

/// Whether `route` takes a group of `rule` whose head alert is `head`.
pub fn matches(route: &RouteSettings, rule: &Rule, head: &Value) -> bool {
    if route.kind != RouteKind::Alert {
        return false;
    }
    if !route.rule_ids.is_empty() && !route.rule_ids.contains(&rule.rule_id) {
        return false;
    }
    if !route.tags.is_empty() && !route.tags.iter().any(|t| rule.tags.contains(t)) {
        return false;
    }
    if !route.rule_types.is_empty() && !route.rule_types.iter().any(|t| t == rule.rule_type()) {
        return false;
    }
    if let Some(min) = route.min_severity {
        let severity = text(head, "kibana.alert.severity")
            .and_then(|s| Severity::parse(&s))
            .unwrap_or(rule.severity);
        if severity < min {
            return false;
        }
    }
    if let Some(min) = route.min_risk_score {
        let risk = field(head, "kibana.alert.risk_score")
            .and_then(Value::as_f64)
            .unwrap_or(f64::from(rule.risk_score));
        if risk < f64::from(min) {
            return false;
        }
    }
    true
}

/// The throttle key of a group: the route, the rule and the values of the
/// route's `group_by` fields on the head alert (empty when absent), so
/// `group_by = ["host.name"]` throttles each host on its own.
pub fn throttle_key(route: &RouteSettings, rule: &Rule, head: Option<&Value>) -> String {
    let mut key = format!("{}/{}", route.name, rule.rule_id);
    for f in &route.group_by {
        key.push('|');
        if let Some(v) = head.and_then(|h| text(h, f)) {
            key.push_str(&v);
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::config::RouteMode;
    use crate::rule::{load_str, LoadOutcome};
    use serde_json::json;

    fn rule() -> Rule {
        match load_str(include_str!(
            "../../rules/execution_scheduled_task_powershell.toml"
        )) {
            LoadOutcome::Loaded { rule, .. } => *rule,
            other => panic!("{other:?}"),
        }
    }

    fn route() -> RouteSettings {
        RouteSettings {
            name: "r".into(),
            outputs: vec!["o".into()],
            rule_ids: vec![],
            tags: vec![],
            min_severity: None,
            min_risk_score: None,
            rule_types: vec![],
            mode: RouteMode::Group,
            throttle: None,
            group_by: vec![],
            kind: RouteKind::Alert,
            events: vec![],
        }
    }

    #[test]
    fn every_condition_given_must_hold() {
        let rule = rule();
        let head = json!({"kibana.alert.severity": "medium", "kibana.alert.risk_score": 47});
        assert!(matches(&route(), &rule, &head));
        let by_id = RouteSettings {
            rule_ids: vec!["other".into()],
            ..route()
        };
        assert!(!matches(&by_id, &rule, &head));
        let by_own_id = RouteSettings {
            rule_ids: vec![rule.rule_id.clone()],
            ..route()
        };
        assert!(matches(&by_own_id, &rule, &head));
        let by_tag = RouteSettings {
            tags: vec!["no such tag".into(), rule.tags[0].clone()],
            ..route()
        };
        assert!(matches(&by_tag, &rule, &head));
        let by_missing_tag = RouteSettings {
            tags: vec!["no such tag".into()],
            ..route()
        };
        assert!(!matches(&by_missing_tag, &rule, &head));
        let by_type = RouteSettings {
            rule_types: vec!["query".into()],
            ..route()
        };
        assert!(!matches(&by_type, &rule, &head));
        let eql = RouteSettings {
            rule_types: vec!["eql".into()],
            ..route()
        };
        assert!(matches(&eql, &rule, &head));
    }

    #[test]
    fn severity_and_risk_are_the_alerts_not_only_the_rules() {
        let rule = rule();
        let high = RouteSettings {
            min_severity: Some(Severity::High),
            ..route()
        };
        assert!(!matches(
            &high,
            &rule,
            &json!({"kibana.alert.severity": "medium"})
        ));
        assert!(matches(
            &high,
            &rule,
            &json!({"kibana.alert.severity": "critical"})
        ));
        let risky = RouteSettings {
            min_risk_score: Some(70),
            ..route()
        };
        assert!(!matches(
            &risky,
            &rule,
            &json!({"kibana.alert.risk_score": 69})
        ));
        assert!(matches(
            &risky,
            &rule,
            &json!({"kibana.alert.risk_score": 70})
        ));
    }

    #[test]
    fn the_throttle_key_takes_the_group_by_values() {
        let rule = rule();
        let r = RouteSettings {
            group_by: vec!["host.name".into()],
            ..route()
        };
        let a = throttle_key(&r, &rule, Some(&json!({"host": {"name": "ws-1"}})));
        let b = throttle_key(&r, &rule, Some(&json!({"host": {"name": "ws-2"}})));
        assert_ne!(a, b);
        assert!(a.ends_with("|ws-1"), "{a}");
        assert_eq!(
            throttle_key(&route(), &rule, None),
            format!("r/{}", rule.rule_id)
        );
    }
}
