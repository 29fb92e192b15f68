//! `[[outputs]]`, `[[routes]]` and `[notify]` of `detectd.toml`: as written
//! (every field optional, spans kept) and validated into [`NotifySettings`].
//!
//! Secrets (URLs that carry tokens, PagerDuty routing keys, header values)
//! come from the environment (`*_env = "VAR"`) or a file (`*_file`), or
//! inline for a local test; they are [`Secret`]s from then on, so `Debug`
//! of the settings and every error say `<redacted>`. A template is compiled
//! and rendered against a sample alert here, so its errors are reported at
//! load with the file's line and column, never at the first alert.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::template::{self, TemplateError, Templates};
use crate::config::cluster::Secret;
use crate::config::ConfigError;
use crate::eql::Span;
use crate::rule::{parse_duration, Severity};

pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `[notify]`: how the delivery worker retries.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawNotify {
    /// Wait after the first failure; doubled after each next one.
    pub retry_initial: Option<Spanned<String>>,
    /// The longest wait between two attempts.
    pub retry_max: Option<Spanned<String>>,
    /// A message not delivered this long after its run is given up.
    pub give_up_after: Option<Spanned<String>>,
    /// Timeout of one attempt (connect, send, answer).
    pub timeout: Option<Spanned<String>>,
    /// How often the worker looks for messages to send.
    pub poll_interval: Option<Spanned<String>>,
}

/// One `[[outputs]]` table as written; which keys a kind takes is checked
/// in [`validate`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawOutput {
    pub name: Option<Spanned<String>>,
    /// `webhook`, `slack`, `teams`, `pagerduty` or `file`.
    pub kind: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub url_env: Option<Spanned<String>>,
    pub url_file: Option<Spanned<PathBuf>>,
    /// `webhook`: `POST` (default), `PUT` or `PATCH`.
    pub method: Option<Spanned<String>>,
    /// `webhook`: header name to value.
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    /// `webhook`: header name to the environment variable of its value.
    pub headers_env: Option<Spanned<BTreeMap<String, String>>>,
    /// `pagerduty`: the integration's routing key.
    pub routing_key: Option<Spanned<String>>,
    pub routing_key_env: Option<Spanned<String>>,
    pub routing_key_file: Option<Spanned<PathBuf>>,
    /// `file`: the NDJSON file messages are appended to.
    pub path: Option<Spanned<PathBuf>>,
    /// Templates: a one-line title, a text, and (webhook) the whole body.
    pub title: Option<Spanned<String>>,
    pub text: Option<Spanned<String>>,
    pub body: Option<Spanned<String>>,
}

/// One `[[routes]]` table as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<Spanned<String>>,
    pub outputs: Option<Spanned<Vec<String>>>,
    pub rule_ids: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub min_severity: Option<Spanned<String>>,
    pub min_risk_score: Option<Spanned<i64>>,
    pub rule_types: Option<Spanned<Vec<String>>>,
    /// `group` (default) or `summary`.
    pub mode: Option<Spanned<String>>,
    pub throttle: Option<Spanned<String>>,
    /// Alert fields whose values, with the rule id, make the throttle key.
    pub group_by: Option<Vec<String>>,
}

/// How pending messages are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub give_up_after: Duration,
    pub timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            timeout: DEFAULT_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

/// Where an output sends, with its secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputKind {
    Webhook {
        url: Secret,
        method: String,
        /// Name and value; every value is kept as a secret (an
        /// `Authorization` header written inline is one too).
        headers: Vec<(String, Secret)>,
    },
    Slack {
        url: Secret,
    },
    Teams {
        url: Secret,
    },
    PagerDuty {
        url: String,
        routing_key: Secret,
    },
    File {
        path: PathBuf,
    },
}

impl OutputKind {
    pub fn name(&self) -> &'static str {
        match self {
            OutputKind::Webhook { .. } => "webhook",
            OutputKind::Slack { .. } => "slack",
            OutputKind::Teams { .. } => "teams",
            OutputKind::PagerDuty { .. } => "pagerduty",
            OutputKind::File { .. } => "file",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSettings {
    pub name: String,
    pub kind: OutputKind,
    /// Template sources (the kind's defaults where none was written).
    pub templates: Templates,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteMode {
    /// One message per alert group: a sequence's shell and building blocks
    /// are one message.
    Group,
    /// One message per committed window of a rule (one per run unless it
    /// caught up), listing its groups.
    Summary,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSettings {
    pub name: String,
    pub outputs: Vec<String>,
    /// Empty: any.
    pub rule_ids: Vec<String>,
    /// Any of these; empty: any.
    pub tags: Vec<String>,
    pub min_severity: Option<Severity>,
    pub min_risk_score: Option<u8>,
    /// Empty: any.
    pub rule_types: Vec<String>,
    pub mode: RouteMode,
    pub throttle: Option<Duration>,
    pub group_by: Vec<String>,
}

/// Validated notification settings; empty when nothing is configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifySettings {
    pub outputs: Vec<OutputSettings>,
    pub routes: Vec<RouteSettings>,
    pub delivery: DeliverySettings,
}

impl NotifySettings {
    pub fn output(&self, name: &str) -> Option<&OutputSettings> {
        self.outputs.iter().find(|o| o.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

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

fn sp<T>(v: &Spanned<T>) -> Option<Span> {
    let r = v.span();
    Some(Span::new(r.start, r.end))
}

/// Validates the notification part of a config file. `text` is the file's
/// text (template errors point at their line in it); `env` reads an
/// environment variable. Every error goes to `errors`.
pub fn validate(
    notify: RawNotify,
    outputs: Vec<RawOutput>,
    routes: Vec<RawRoute>,
    text: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> NotifySettings {
    let mut err = |span: Option<Span>, message: String| errors.push(ConfigError { span, message });
    let mut duration = |v: Option<Spanned<String>>, default: Duration, what: &str| match v {
        None => default,
        Some(s) => match parse_duration(s.get_ref()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                err(sp(&s), format!("invalid notify.{what}: expected more than 0"));
                default
            }
            Err(e) => {
                err(
                    sp(&s),
                    format!("invalid notify.{what}: {e} (expected e.g. \"30s\", \"5m\", \"1h\")"),
                );
                default
            }
        },
    };
    let delivery = DeliverySettings {
        retry_initial: duration(notify.retry_initial, DEFAULT_RETRY_INITIAL, "retry_initial"),
        retry_max: duration(notify.retry_max, DEFAULT_RETRY_MAX, "retry_max"),
        give_up_after: duration(notify.give_up_after, DEFAULT_GIVE_UP_AFTER, "give_up_after"),
        timeout: duration(notify.timeout, DEFAULT_TIMEOUT, "timeout"),
        poll_interval: duration(notify.poll_interval, DEFAULT_POLL_INTERVAL, "poll_interval"),
    };

    let mut out = Vec::new();
    let mut names = HashSet::new();
    for raw in outputs {
        if let Some(o) = output(raw, text, env, errors) {
            if !names.insert(o.name.clone()) {
                errors.push(ConfigError {
                    span: None,
                    message: format!(
                        "two outputs are named {:?}: expected unique names",
                        o.name
                    ),
                });
            }
            out.push(o);
        }
    }
    let mut routes_out = Vec::new();
    let mut route_names = HashSet::new();
    for raw in routes {
        if let Some(r) = route(raw, &names, errors) {
            if !route_names.insert(r.name.clone()) {
                errors.push(ConfigError {
                    span: None,
                    message: format!("two routes are named {:?}: expected unique names", r.name),
                });
            }
            routes_out.push(r);
        }
    }
    NotifySettings {
        outputs: out,
        routes: routes_out,
        delivery,
    }
}

/// A name usable in ids and metric labels.
fn good_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn name_of(
    v: Option<Spanned<String>>,
    what: &str,
    table_span: Option<Span>,
    errors: &mut Vec<ConfigError>,
) -> Option<String> {
    match v {
        None => {
            errors.push(ConfigError {
                span: table_span,
                message: format!("{what} without `name`: expected a name"),
            });
            None
        }
        Some(n) if good_name(n.get_ref()) => Some(n.into_inner()),
        Some(n) => {
            errors.push(ConfigError {
                span: sp(&n),
                message: format!(
                    "invalid {what} name {:?}: expected letters, digits, `-`, `_` or `.` (at most 64)",
                    n.get_ref()
                ),
            });
            None
        }
    }
}

/// A secret given inline, from an environment variable or from a file:
/// exactly one of the three.
fn secret(
    what: &str,
    inline: Option<Spanned<String>>,
    from_env: Option<Spanned<String>>,
    from_file: Option<Spanned<PathBuf>>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
    missing_span: Option<Span>,
) -> Option<Secret> {
    let given = usize::from(inline.is_some())
        + usize::from(from_env.is_some())
        + usize::from(from_file.is_some());
    if given > 1 {
        let span = from_env
            .as_ref()
            .and_then(sp)
            .or(from_file.as_ref().and_then(sp));
        errors.push(ConfigError {
            span,
            message: format!("{what}, {what}_env and {what}_file: expected only one of them"),
        });
        return None;
    }
    if let Some(v) = inline {
        return Some(Secret::new(v.into_inner()));
    }
    if let Some(var) = from_env {
        return match env(var.get_ref()) {
            Some(value) if !value.trim().is_empty() => Some(Secret::new(value.trim())),
            _ => {
                errors.push(ConfigError {
                    span: sp(&var),
                    message: format!(
                        "{what}_env: expected the environment variable {} to be set, found it unset or empty",
                        var.get_ref()
                    ),
                });
                None
            }
        };
    }
    if let Some(path) = from_file {
        return match std::fs::read_to_string(path.get_ref()) {
            Ok(value) if !value.trim().is_empty() => Some(Secret::new(value.trim())),
            Ok(_) => {
                errors.push(ConfigError {
                    span: sp(&path),
                    message: format!(
                        "{what}_file {}: expected the secret, found an empty file",
                        path.get_ref().display()
                    ),
                });
                None
            }
            Err(e) => {
                errors.push(ConfigError {
                    span: sp(&path),
                    message: format!("{what}_file {}: cannot read it: {e}", path.get_ref().display()),
                });
                None
            }
        };
    }
    errors.push(ConfigError {
        span: missing_span,
        message: format!("expected {what}, {what}_env or {what}_file"),
    });
    None
}

fn url_secret(
    raw: &mut RawOutput,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
    span: Option<Span>,
) -> Option<Secret> {
    let url_span = raw.url.as_ref().and_then(sp);
    let url = secret(
        "url",
        raw.url.take(),
        raw.url_env.take(),
        raw.url_file.take(),
        env,
        errors,
        span,
    )?;
    let text = url.expose();
    if text.starts_with("http://") || text.starts_with("https://") {
        Some(url)
    } else {
        // Never the value: it may carry a token.
        errors.push(ConfigError {
            span: url_span.or(span),
            message: "invalid url: expected an http:// or https:// url".to_string(),
        });
        None
    }
}

/// Rejects keys the kind does not take, so a misplaced key is not
/// silently ignored.
fn unused(raw: &RawOutput, kind: &str, errors: &mut Vec<ConfigError>) {
    let keys: [(&str, Option<Span>); 9] = [
        ("method", raw.method.as_ref().and_then(sp)),
        ("headers", raw.headers.as_ref().and_then(sp)),
        ("headers_env", raw.headers_env.as_ref().and_then(sp)),
        ("routing_key", raw.routing_key.as_ref().and_then(sp)),
        ("routing_key_env", raw.routing_key_env.as_ref().and_then(sp)),
        ("routing_key_file", raw.routing_key_file.as_ref().and_then(sp)),
        ("path", raw.path.as_ref().and_then(sp)),
        ("url", raw.url.as_ref().and_then(sp)),
        ("body", raw.body.as_ref().and_then(sp)),
    ];
    for (key, span) in keys {
        if span.is_some() {
            errors.push(ConfigError {
                span,
                message: format!("`{key}` is not a setting of a {kind} output"),
            });
        }
    }
    for (key, span) in [
        ("url_env", raw.url_env.as_ref().and_then(sp)),
        ("url_file", raw.url_file.as_ref().and_then(sp)),
    ] {
        if span.is_some() {
            errors.push(ConfigError {
                span,
                message: format!("`{key}` is not a setting of a {kind} output"),
            });
        }
    }
}

fn output(
    mut raw: RawOutput,
    text: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<OutputSettings> {
    let kind_span = raw.kind.as_ref().and_then(sp);
    let table_span = raw.name.as_ref().and_then(sp).or(kind_span);
    let name = name_of(raw.name.take(), "output", kind_span, errors);
    let Some(kind_text) = raw.kind.take() else {
        errors.push(ConfigError {
            span: table_span,
            message: "output without `kind`: expected \"webhook\", \"slack\", \"teams\", \"pagerduty\" or \"file\"".into(),
        });
        return None;
    };
    let kind = match kind_text.get_ref().as_str() {
        "webhook" => {
            let url = url_secret(&mut raw, env, errors, kind_span);
            let method = match raw.method.take() {
                None => "POST".to_string(),
                Some(m) => {
                    let upper = m.get_ref().to_ascii_uppercase();
                    if matches!(upper.as_str(), "POST" | "PUT" | "PATCH") {
                        upper
                    } else {
                        errors.push(ConfigError {
                            span: sp(&m),
                            message: format!(
                                "invalid method {:?}: expected \"POST\", \"PUT\" or \"PATCH\"",
                                m.get_ref()
                            ),
                        });
                        "POST".into()
                    }
                }
            };
            let mut headers = Vec::new();
            if let Some(h) = raw.headers.take() {
                let span = sp(&h);
                for (k, v) in h.into_inner() {
                    if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        errors.push(ConfigError {
                            span,
                            message: format!("invalid header name {k:?}: expected a token"),
                        });
                    }
                    headers.push((k, Secret::new(v)));
                }
            }
            if let Some(h) = raw.headers_env.take() {
                let span = sp(&h);
                for (k, var) in h.into_inner() {
                    match env(&var) {
                        Some(v) if !v.is_empty() => headers.push((k, Secret::new(v))),
                        _ => errors.push(ConfigError {
                            span,
                            message: format!(
                                "headers_env.{k}: expected the environment variable {var} to be set, found it unset or empty"
                            ),
                        }),
                    }
                }
            }
            unused(&raw, "webhook", errors);
            OutputKind::Webhook {
                url: url?,
                method,
                headers,
            }
        }
        "slack" | "teams" => {
            let url = url_secret(&mut raw, env, errors, kind_span);
            unused(&raw, kind_text.get_ref(), errors);
            if kind_text.get_ref() == "slack" {
                OutputKind::Slack { url: url? }
            } else {
                OutputKind::Teams { url: url? }
            }
        }
        "pagerduty" => {
            let key = secret(
                "routing_key",
                raw.routing_key.take(),
                raw.routing_key_env.take(),
                raw.routing_key_file.take(),
                env,
                errors,
                kind_span,
            );
            // The URL is PagerDuty's unless set (a proxy, a test receiver).
            let url = match raw.url.take() {
                None => PAGERDUTY_URL.to_string(),
                Some(u)
                    if u.get_ref().starts_with("http://")
                        || u.get_ref().starts_with("https://") =>
                {
                    u.into_inner()
                }
                Some(u) => {
                    errors.push(ConfigError {
                        span: sp(&u),
                        message: format!(
                            "invalid url {:?}: expected an http:// or https:// url",
                            u.get_ref()
                        ),
                    });
                    PAGERDUTY_URL.into()
                }
            };
            unused(&raw, "pagerduty", errors);
            OutputKind::PagerDuty {
                url,
                routing_key: key?,
            }
        }
        "file" => {
            let Some(path) = raw.path.take() else {
                errors.push(ConfigError {
                    span: kind_span,
                    message: "file output without `path`: expected the NDJSON file to append to"
                        .into(),
                });
                return None;
            };
            unused(&raw, "file", errors);
            OutputKind::File {
                path: path.into_inner(),
            }
        }
        other => {
            errors.push(ConfigError {
                span: kind_span,
                message: format!(
                    "invalid output kind {other:?}: expected \"webhook\", \"slack\", \"teams\", \"pagerduty\" or \"file\""
                ),
            });
            return None;
        }
    };
    let templates = Templates::for_kind(
        &kind,
        raw.title.as_ref().map(|t| t.get_ref().clone()),
        raw.text.as_ref().map(|t| t.get_ref().clone()),
        raw.body.as_ref().map(|t| t.get_ref().clone()),
    );
    // Compiled and rendered once against a sample: a syntax error, an
    // unknown filter or a body that is not JSON shows now, with its place.
    if let Err(e) = template::check(&templates, &kind) {
        let value = match e.template {
            "title" => raw.title.as_ref(),
            "text" => raw.text.as_ref(),
            _ => raw.body.as_ref(),
        };
        errors.push(template_error(&e, value, text, kind_span));
    }
    Some(OutputSettings {
        name: name?,
        kind,
        templates,
    })
}

/// A template's error at its line in the config file: the line of a
/// multi-line string (`'''` or `"""`) the error names, else the value.
fn template_error(
    e: &TemplateError,
    value: Option<&Spanned<String>>,
    text: Option<&str>,
    fallback: Option<Span>,
) -> ConfigError {
    let span = match (value, text) {
        (Some(v), Some(text)) => {
            let r = v.span();
            let raw = text.get(r.start..r.end).unwrap_or("");
            let mut start = r.start;
            if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
                start += 3;
                // TOML drops a newline right after the opening quotes.
                if text[start..].starts_with("\r\n") {
                    start += 2;
                } else if text[start..].starts_with('\n') {
                    start += 1;
                }
                for _ in 1..e.line.max(1) {
                    match text[start..r.end].find('\n') {
                        Some(i) => start += i + 1,
                        None => break,
                    }
                }
                let end = text[start..r.end].find('\n').map_or(r.end, |i| start + i);
                Some(Span::new(start, end.max(start + 1)))
            } else {
                Some(Span::new(r.start, r.end))
            }
        }
        (Some(v), None) => sp(v),
        (None, _) => fallback,
    };
    ConfigError {
        span,
        message: format!("{e}"),
    }
}

fn route(
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
    let min_risk_score = raw.min_risk_score.and_then(|r| match u8::try_from(*r.get_ref()) {
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
    let throttle = raw.throttle.and_then(|t| match parse_duration(t.get_ref()) {
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
    })
}
