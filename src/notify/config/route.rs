//! Validating one `[[routes]]` table: its outputs exist, its conditions,
//! mode and throttle are well formed.

use std::collections::HashSet;

use super::{name_of, sp, RawRoute, RouteKind, RouteMode, RouteSettings};
use crate::config::ConfigError;
use crate::notify::incident::EVENTS;
use crate::rule::{parse_duration, Severity};

const RULE_TYPES: &[&str] = &[
    "eql",
    "query",
    "saved_query",
    "threshold",
    "new_terms",
    "threat_match",
    "esql",
    "machine_learning",
];

pub(super) fn route(
    raw: RawRoute,
    outputs: &HashSet<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<RouteSettings> {
    let outputs_span = raw.outputs.as_ref().and_then(sp);
    let name = name_of(raw.name, "route", outputs_span, errors);
    let route_outputs = match raw.outputs {
        Some(o) if !o.get_ref().is_empty() => {
            for name in o.get_ref() {
                if !outputs.contains(name) {
                    errors.push(ConfigError {
                        span: sp(&o),
                        message: format!(
                            "route output {name:?} is not defined: expected the name of an [[outputs]] table"
                        ),
                    });
                }
            }
            o.into_inner()
        }
        Some(o) => {
            errors.push(ConfigError {
                span: sp(&o),
                message: "route without outputs: expected at least one output name".into(),
            });
            Vec::new()
        }
        None => {
            errors.push(ConfigError {
                span: None,
                message: format!(
                    "route {:?} without `outputs`: expected at least one output name",
                    name.as_deref().unwrap_or("?")
                ),
            });
            Vec::new()
        }
    };
    let min_severity = raw.min_severity.and_then(|s| match Severity::parse(s.get_ref()) {
        Some(v) => Some(v),
        None => {
            errors.push(ConfigError {
                span: sp(&s),
                message: format!(
                    "invalid min_severity {:?}: expected \"low\", \"medium\", \"high\" or \"critical\"",
                    s.get_ref()
                ),
            });
            None
        }
    });
    let min_risk_score = raw
        .min_risk_score
        .and_then(|r| match u8::try_from(*r.get_ref()) {
            Ok(v) if v <= 100 => Some(v),
            _ => {
                errors.push(ConfigError {
                    span: sp(&r),
                    message: format!("invalid min_risk_score {}: expected 0 to 100", r.get_ref()),
                });
                None
            }
        });
    let rule_types = match raw.rule_types {
        None => Vec::new(),
        Some(t) => {
            for ty in t.get_ref() {
                if !RULE_TYPES.contains(&ty.as_str()) {
                    errors.push(ConfigError {
                        span: sp(&t),
                        message: format!(
                            "invalid rule type {ty:?}: expected one of {}",
                            RULE_TYPES.join(", ")
                        ),
                    });
                }
            }
            t.into_inner()
        }
    };
    let mode = match raw.mode {
        None => RouteMode::Group,
        Some(m) => match m.get_ref().as_str() {
            "group" => RouteMode::Group,
            "summary" => RouteMode::Summary,
            other => {
                errors.push(ConfigError {
                    span: sp(&m),
                    message: format!("invalid mode {other:?}: expected \"group\" or \"summary\""),
                });
                RouteMode::Group
            }
        },
    };
    let throttle = raw
        .throttle
        .and_then(|t| match parse_duration(t.get_ref()) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(ConfigError {
                    span: sp(&t),
                    message: format!("invalid throttle: {e} (expected e.g. \"10m\", \"1h\")"),
                });
                None
            }
        });
    let kind = match raw.kind {
        None => RouteKind::Alert,
        Some(k) => match k.get_ref().as_str() {
            "alert" => RouteKind::Alert,
            "detectd" => RouteKind::Detectd,
            other => {
                errors.push(ConfigError {
                    span: sp(&k),
                    message: format!("invalid kind {other:?}: expected \"alert\" or \"detectd\""),
                });
                RouteKind::Alert
            }
        },
    };
    let events = match raw.events {
        None => Vec::new(),
        Some(e) => {
            for ev in e.get_ref() {
                if !EVENTS.contains(&ev.as_str()) {
                    errors.push(ConfigError {
                        span: sp(&e),
                        message: format!(
                            "invalid event {ev:?}: expected one of {}",
                            EVENTS.join(", ")
                        ),
                    });
                }
            }
            if kind != RouteKind::Detectd {
                errors.push(ConfigError {
                    span: sp(&e),
                    message: "`events` without `kind = \"detectd\"`: events are alerts about detectd itself".into(),
                });
            }
            e.into_inner()
        }
    };
    Some(RouteSettings {
        name: name?,
        outputs: route_outputs,
        rule_ids: raw.rule_ids.unwrap_or_default(),
        tags: raw.tags.unwrap_or_default(),
        min_severity,
        min_risk_score,
        rule_types,
        mode,
        throttle,
        group_by: raw.group_by.unwrap_or_default(),
        kind,
        events,
    })
}
