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

use super::template::Templates;
use crate::config::cluster::Secret;
use crate::config::ConfigError;
use crate::eql::Span;
use crate::rule::{parse_duration, Severity};

mod output;
mod route;
#[cfg(test)]
mod tests;

pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_RULE_FAILURES: u32 = 3;
pub const DEFAULT_CLUSTER_UNREACHABLE: Duration = Duration::from_secs(5 * 60);
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
    /// Failed runs in a row of one rule before a `kind = "detectd"` route
    /// hears of it.
    pub rule_failures: Option<Spanned<i64>>,
    /// How long the cluster may not answer before a `kind = "detectd"`
    /// route hears of it.
    pub cluster_unreachable: Option<Spanned<String>>,
}

/// One `[[outputs]]` table as written; which keys a kind takes is checked
/// in [`validate`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawOutput {
    pub name: Option<Spanned<String>>,
    /// `webhook`, `slack`, `teams`, `pagerduty`, `email` or `file`.
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
    /// `email`: the SMTP server, its port (default by `tls`: 587, 465, 25)
    /// and `tls`: `starttls` (default), `tls` or `none`.
    pub host: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub tls: Option<Spanned<String>>,
    /// `email`: login, with the password inline, `password_env` or `password_file`.
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_file: Option<Spanned<PathBuf>>,
    /// `email`: the sender and the recipients (`"SOC <soc@example.com>"`).
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<Vec<String>>>,
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
    /// `alert` (default): alert groups; `detectd`: alerts about detectd itself.
    pub kind: Option<Spanned<String>>,
    /// `kind = "detectd"`: the events taken (empty: all), see `notify::incident`.
    pub events: Option<Spanned<Vec<String>>>,
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
    Email(EmailSettings),
}

/// How an email output reaches its SMTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required), port 587.
    StartTls,
    /// TLS from the first byte (SMTPS), port 465.
    Tls,
    /// No encryption: a local relay only, port 25.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

impl OutputKind {
    pub fn name(&self) -> &'static str {
        match self {
            OutputKind::Webhook { .. } => "webhook",
            OutputKind::Slack { .. } => "slack",
            OutputKind::Teams { .. } => "teams",
            OutputKind::PagerDuty { .. } => "pagerduty",
            OutputKind::File { .. } => "file",
            OutputKind::Email(_) => "email",
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

/// What a route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// Alert groups of rule runs.
    Alert,
    /// Alerts about detectd itself (`notify::incident`), never alert groups.
    Detectd,
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
    pub kind: RouteKind,
    /// `RouteKind::Detectd`: the incident events taken; empty: all.
    pub events: Vec<String>,
}

/// Validated notification settings; empty when nothing is configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotifySettings {
    pub outputs: Vec<OutputSettings>,
    pub routes: Vec<RouteSettings>,
    pub delivery: DeliverySettings,
    /// Failed runs in a row before a rule's failure is announced.
    pub rule_failures: u32,
    /// How long the cluster may not answer before it is announced.
    pub cluster_unreachable: Duration,
}

impl NotifySettings {
    pub fn output(&self, name: &str) -> Option<&OutputSettings> {
        self.outputs.iter().find(|o| o.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

pub(super) fn sp<T>(v: &Spanned<T>) -> Option<Span> {
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
                err(
                    sp(&s),
                    format!("invalid notify.{what}: expected more than 0"),
                );
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
    let cluster_unreachable = duration(
        notify.cluster_unreachable,
        DEFAULT_CLUSTER_UNREACHABLE,
        "cluster_unreachable",
    );

    let rule_failures = match notify.rule_failures {
        None => DEFAULT_RULE_FAILURES,
        Some(n) => match u32::try_from(*n.get_ref()) {
            Ok(v) if v >= 1 => v,
            _ => {
                errors.push(ConfigError {
                    span: sp(&n),
                    message: format!(
                        "invalid notify.rule_failures {}: expected 1 or more",
                        n.get_ref()
                    ),
                });
                DEFAULT_RULE_FAILURES
            }
        },
    };

    let mut out = Vec::new();
    let mut names = HashSet::new();
    for raw in outputs {
        if let Some(o) = output::output(raw, text, env, errors) {
            if !names.insert(o.name.clone()) {
                errors.push(ConfigError {
                    span: None,
                    message: format!("two outputs are named {:?}: expected unique names", o.name),
                });
            }
            out.push(o);
        }
    }
    let mut routes_out = Vec::new();
    let mut route_names = HashSet::new();
    for raw in routes {
        if let Some(r) = route::route(raw, &names, errors) {
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
        rule_failures,
        cluster_unreachable,
    }
}

/// A name usable in ids and metric labels.
pub(super) fn good_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub(super) fn name_of(
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
