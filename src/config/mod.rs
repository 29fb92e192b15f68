//! Settings: raw, mergeable layers (config file, environment, flags) and the
//! validated [`Settings`] built from them once.
//!
//! Precedence is file < environment (`ELASTICSEARCH_*`, cluster only) <
//! flags. Every error is collected (not just the first) and, when it comes
//! from the file, carries the byte span of the offending value so it renders
//! as `detectd.toml:line:col` with a caret. `detectd.example.toml` at the
//! repository root documents every setting and its default.

pub mod cluster;
pub mod cron;
pub mod file;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cluster::{ClusterSettings, ConnectionSettings};
use file::{span, RawConfig};

use crate::eql::Span;
use crate::rule::parse_duration;
pub use crate::sink::alerts_index::BootstrapMode;
use crate::sink::alerts_index::ALERTS_ALIAS_PREFIX;

pub const DEFAULT_RULES_DIR: &str = "rules";
/// Kibana's default alerts alias, so the Security app shows the alerts.
pub const DEFAULT_ALERTS_INDEX: &str = ".alerts-security.alerts-default";
pub const DEFAULT_STATE_INDEX: &str = "detectd-state";
pub const DEFAULT_EXECUTIONS_INDEX: &str = "detectd-executions";
pub const DEFAULT_DEAD_LETTERS_INDEX: &str = "detectd-dead-letters";
pub const DEFAULT_SPACE_ID: &str = "default";
/// How often rules tail with `[realtime]` on (`realtime.every`).
pub const DEFAULT_TAIL_EVERY: Duration = Duration::from_secs(5);
/// How far behind the clock tails stay (`realtime.lag`).
pub const DEFAULT_TAIL_LAG: Duration = Duration::from_secs(15);
/// Elasticsearch's own default address, as its clients assume.
pub const DEFAULT_CLUSTER_URL: &str = "http://localhost:9200";
pub const DEFAULT_CONCURRENCY: usize = 4;
pub const MAX_CONCURRENCY: usize = 1024;
pub const DEFAULT_CATCH_UP_HORIZON: Duration = Duration::from_secs(24 * 60 * 60);
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// How often an instance heartbeats and renews its leases (`instance.heartbeat`).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a lease or heartbeat holds (`instance.lease`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
pub const DEFAULT_STATE_DIR: &str = "detectd-state";
/// 9108 sits in the Prometheus exporter port range and is not a cluster
/// port; loopback only by default, since the endpoints need no auth.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9108";
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// One problem in the configuration. `span` is a byte span into the config
/// file when the value came from there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub span: Option<Span>,
    pub message: String,
}

impl ConfigError {
    fn at(span: Option<Span>, message: impl Into<String>) -> Self {
        ConfigError {
            span,
            message: message.into(),
        }
    }
}

/// Every error of one configuration, with the file they point into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The config file's path and text, if there was a file.
    pub file: Option<(PathBuf, String)>,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    /// Each error as `file:line:col: error: ...` with a caret when it has a
    /// span, else as `config: error: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.errors {
            match (&self.file, e.span) {
                (Some((path, text)), Some(span)) => f.write_str(&crate::diagnostic::render(
                    &path.display().to_string(),
                    text,
                    span,
                    &e.message,
                ))?,
                _ => writeln!(f, "config: error: {}", e.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Values given as command-line flags: the top layer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub rules: Option<Vec<PathBuf>>,
    pub exceptions: Option<Vec<PathBuf>>,
    pub listen: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub concurrency: Option<usize>,
    /// `--no-shared-scans`: every window fetched alone.
    pub no_sharing: bool,
    pub cluster: ClusterSettings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Where checkpoints and execution records are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateBackend {
    /// Indices in the cluster (`indices.state`, `indices.executions`).
    Cluster,
    /// A local directory (`checkpoints.json`, `executions.ndjson`): one
    /// daemon, no write access to the cluster's state indices needed.
    File(PathBuf),
}

/// When a rule's first run falls after the daemon starts (or after a
/// reload adds it); later runs follow every `interval` after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FirstRun {
    /// At a fixed point of the rule's first interval, derived from a hash of
    /// its `rule_id`: 1000 rules spread over the interval instead of firing
    /// together, and a rule fires at the same offset on every start.
    #[default]
    Spread,
    /// At start: every rule runs at once (up to the concurrency limit),
    /// then every interval after. For a few rules (a demo, a test setup).
    Now,
}

impl FirstRun {
    pub fn as_str(self) -> &'static str {
        match self {
            FirstRun::Spread => "spread",
            FirstRun::Now => "now",
        }
    }
}

/// Names of the indices detectd writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Indices {
    /// Kibana's alerts alias of the space, `.alerts-security.alerts-<space_id>`.
    pub alerts: String,
    pub state: String,
    pub executions: String,
    pub dead_letters: String,
}

/// What detectd needs to know of Kibana.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KibanaSettings {
    /// `kibana.version` of the alerts; `None`: the version Kibana would
    /// have for the cluster (its own version).
    pub version: Option<String>,
    /// Kibana's public URL (`server.publicBaseUrl`); alerts then carry
    /// `kibana.alert.url`, a link to the alert in Kibana.
    pub public_base_url: Option<String>,
}

/// Validated settings: nothing here can be invalid.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub rules: Vec<PathBuf>,
    /// Where the rules' exception lists are (none by default).
    pub exceptions: Vec<PathBuf>,
    pub space_id: String,
    pub cluster: ConnectionSettings,
    pub indices: Indices,
    /// What to do when the alerts alias is missing (`alerts.bootstrap`).
    pub alerts_bootstrap: BootstrapMode,
    pub kibana: KibanaSettings,
    /// Rule runs in flight at once, over all rules (at least 1).
    pub concurrency: usize,
    /// When each rule's first run falls (`schedule.first_run`).
    pub first_run: FirstRun,
    pub catch_up_horizon: Duration,
    pub health_check_interval: Duration,
    /// `[[schedule.cron]]`: cron schedules for rules by id or tag.
    pub cron: cron::CronOverrides,
    pub state: StateBackend,
    /// This process among several instances (`[instance]`).
    pub instance: InstanceSettings,
    /// `[sharing]`: shared scans.
    pub sharing: SharingSettings,
    /// `[realtime]`: near-real-time tails (`None`: off).
    pub realtime: Option<RealtimeSettings>,
    pub listen: SocketAddr,
    pub log_format: LogFormat,
    /// A `tracing` filter directive (`RUST_LOG` wins over it when set).
    pub log_level: String,
    /// Outputs, routes and delivery of notifications (none by default).
    pub notify: crate::notify::NotifySettings,
}

/// `[instance]`: who this process is among several, and its lease timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceSettings {
    /// Configured id; `None`: a new uuid per process.
    pub id: Option<String>,
    pub heartbeat: Duration,
    /// At least twice the heartbeat, so one lost heartbeat loses no lease.
    pub lease: Duration,
}

/// `[sharing]`: whether rules that fire together read their windows in
/// shared scans (`runner::share`), and how many events a scan may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharingSettings {
    pub enabled: bool,
    pub max_events: usize,
    pub max_rules: usize,
    /// Rules without filters, exceptions or a query of their own are
    /// selected locally from one read of their windows (default true).
    pub select_locally: bool,
}

/// `[realtime]`: rules that, besides their scheduled runs, tail new events
/// every `every`, `lag` behind the clock (see `runner::run::tail`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealtimeSettings {
    pub every: Duration,
    pub lag: Duration,
    /// Rule ids and tags that tail; both empty: every rule that can.
    pub rule_ids: Vec<String>,
    pub tags: Vec<String>,
}

impl RealtimeSettings {
    /// Whether the settings select `rule` (by id or tag).
    pub fn selects(&self, rule: &crate::rule::Rule) -> bool {
        (self.rule_ids.is_empty() && self.tags.is_empty())
            || self.rule_ids.contains(&rule.rule_id)
            || rule.tags.iter().any(|t| self.tags.contains(t))
    }
}

/// Events a shared scan may hold by default: about 1 GB of projected events
/// at the sizes measured in `benches/shared_scans`.
pub const DEFAULT_SCAN_EVENTS: usize = 1_000_000;

impl Default for SharingSettings {
    fn default() -> Self {
        SharingSettings {
            enabled: true,
            max_events: DEFAULT_SCAN_EVENTS,
            max_rules: crate::runner::DEFAULT_MAX_RULES,
            select_locally: true,
        }
    }
}

impl Default for InstanceSettings {
    fn default() -> Self {
        InstanceSettings {
            id: None,
            heartbeat: DEFAULT_HEARTBEAT,
            lease: DEFAULT_LEASE,
        }
    }
}

impl Settings {
    /// The settings with nothing configured.
    pub fn defaults() -> Settings {
        Settings::from_layers(None, ClusterSettings::default(), Overrides::default())
            .expect("the defaults are valid")
    }

    /// Reads `path` (if given) and builds the settings from it, the process
    /// environment and `flags`.
    pub fn load(path: Option<&Path>, flags: Overrides) -> Result<Settings, ConfigErrors> {
        let file = match path {
            None => None,
            Some(p) => match std::fs::read_to_string(p) {
                Ok(text) => Some((p.to_path_buf(), text)),
                Err(e) => {
                    return Err(ConfigErrors {
                        file: None,
                        errors: vec![ConfigError::at(
                            None,
                            format!("cannot read config file {}: {e}", p.display()),
                        )],
                    })
                }
            },
        };
        Settings::from_layers(file, ClusterSettings::from_env(), flags)
    }

    /// Layers file < environment < flags and validates the result.
    pub fn from_layers(
        file: Option<(PathBuf, String)>,
        env: ClusterSettings,
        flags: Overrides,
    ) -> Result<Settings, ConfigErrors> {
        let raw = match &file {
            None => Ok(RawConfig::default()),
            Some((_, text)) => RawConfig::parse(text),
        };
        let result = match raw {
            Err(e) => Err(vec![e]),
            Ok(raw) => validate(raw, file.as_ref().map(|(_, t)| t.as_str()), env, flags),
        };
        result.map_err(|errors| ConfigErrors { file, errors })
    }
}

fn validate(
    raw: RawConfig,
    text: Option<&str>,
    env: ClusterSettings,
    flags: Overrides,
) -> Result<Settings, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut err = |span: Option<Span>, message: String| errors.push(ConfigError::at(span, message));

    let rules = flags
        .rules
        .filter(|r| !r.is_empty())
        .or(raw.rules)
        .unwrap_or_else(|| vec![PathBuf::from(DEFAULT_RULES_DIR)]);
    let exceptions = flags
        .exceptions
        .filter(|e| !e.is_empty())
        .or(raw.exceptions)
        .unwrap_or_default();

    let space_id = match raw.space_id {
        None => DEFAULT_SPACE_ID.to_string(),
        Some(s) if is_space_id(s.get_ref()) => s.into_inner(),
        Some(s) => {
            err(
                span(&s),
                format!(
                    "invalid space_id {:?}: expected lower-case letters, digits, `_` and `-`",
                    s.get_ref()
                ),
            );
            String::new()
        }
    };

    let mut index = |v: Option<toml::Spanned<String>>, default: &str| match v {
        None => default.to_string(),
        Some(s) => {
            if let Some(why) = bad_index_name(s.get_ref()) {
                err(
                    span(&s),
                    format!("invalid index name {:?}: {why}", s.get_ref()),
                );
            }
            s.into_inner()
        }
    };
    let state_index = index(raw.indices.state, DEFAULT_STATE_INDEX);
    let executions = index(raw.indices.executions, DEFAULT_EXECUTIONS_INDEX);
    let dead_letters = index(raw.indices.dead_letters, DEFAULT_DEAD_LETTERS_INDEX);
    // The alerts index is the space's: Kibana shows a space the alerts of
    // its own alias only, so the two may never disagree.
    let alerts = format!("{ALERTS_ALIAS_PREFIX}{space_id}");
    if let Some(given) = &raw.indices.alerts {
        if given.get_ref() != &alerts {
            err(
                span(given),
                format!(
                    "indices.alerts {:?} does not match space_id {space_id:?}: alerts go to Kibana's \
                     alias of the space, {alerts:?}; remove indices.alerts (it follows from \
                     space_id) or set space_id",
                    given.get_ref()
                ),
            );
        }
    }
    let indices = Indices {
        alerts,
        state: state_index,
        executions,
        dead_letters,
    };

    let alerts_bootstrap = match raw.alerts.bootstrap.as_ref() {
        None => BootstrapMode::Create,
        Some(b) => match b.get_ref().as_str() {
            "create" => BootstrapMode::Create,
            "wait" => BootstrapMode::Wait,
            other => {
                err(
                    span(b),
                    format!("invalid alerts.bootstrap {other:?}: expected \"create\" or \"wait\""),
                );
                BootstrapMode::Create
            }
        },
    };
    let kibana = KibanaSettings {
        version: raw.kibana.version.and_then(|v| {
            if crate::cluster::Version::parse(v.get_ref()).is_some() {
                Some(v.into_inner())
            } else {
                err(
                    span(&v),
                    format!(
                        "invalid kibana.version {:?}: expected a version like \"8.15.3\"",
                        v.get_ref()
                    ),
                );
                None
            }
        }),
        public_base_url: raw.kibana.public_base_url.and_then(|u| {
            let text = u.get_ref().trim_end_matches('/').to_string();
            if text.starts_with("http://") || text.starts_with("https://") {
                Some(text)
            } else {
                err(
                    span(&u),
                    format!(
                        "invalid kibana.public_base_url {:?}: expected an http:// or https:// url",
                        u.get_ref()
                    ),
                );
                None
            }
        }),
    };

    let concurrency = match (flags.concurrency, raw.schedule.concurrency) {
        (Some(n), _) if (1..=MAX_CONCURRENCY).contains(&n) => n,
        (Some(n), _) => {
            err(
                None,
                format!("--concurrency {n}: expected a number from 1 to {MAX_CONCURRENCY}"),
            );
            1
        }
        (None, None) => DEFAULT_CONCURRENCY,
        (None, Some(n)) => match usize::try_from(*n.get_ref()) {
            Ok(v) if (1..=MAX_CONCURRENCY).contains(&v) => v,
            _ => {
                err(
                    span(&n),
                    format!(
                        "invalid concurrency {}: expected a number from 1 to {MAX_CONCURRENCY}",
                        n.get_ref()
                    ),
                );
                1
            }
        },
    };

    let mut positive = |v: &Option<toml::Spanned<i64>>, default: usize, what: &str| match v {
        None => default,
        Some(n) => match usize::try_from(*n.get_ref()) {
            Ok(v) if v >= 1 => v,
            _ => {
                err(
                    span(n),
                    format!("invalid {what} {}: expected a positive number", n.get_ref()),
                );
                default
            }
        },
    };
    let sharing = SharingSettings {
        enabled: raw.sharing.enabled.unwrap_or(true) && !flags.no_sharing,
        max_events: positive(
            &raw.sharing.max_events,
            DEFAULT_SCAN_EVENTS,
            "sharing.max_events",
        ),
        max_rules: positive(
            &raw.sharing.max_rules,
            crate::runner::DEFAULT_MAX_RULES,
            "sharing.max_rules",
        ),
        select_locally: raw.sharing.select_locally.unwrap_or(true),
    };

    let first_run = match (&raw.schedule.first_run, &raw.schedule.startup_jitter) {
        (Some(f), Some(j)) => {
            err(
                span(j),
                format!(
                    "schedule.startup_jitter and schedule.first_run are both set (first_run = {:?}): \
                     expected only first_run (startup_jitter is its old name: true is \"spread\", \
                     false is \"now\")",
                    f.get_ref()
                ),
            );
            FirstRun::Spread
        }
        (Some(f), None) => match f.get_ref().as_str() {
            "spread" => FirstRun::Spread,
            "now" => FirstRun::Now,
            other => {
                err(
                    span(f),
                    format!("invalid schedule.first_run {other:?}: expected \"spread\" or \"now\""),
                );
                FirstRun::Spread
            }
        },
        (None, Some(j)) if *j.get_ref() => FirstRun::Spread,
        (None, Some(_)) => FirstRun::Now,
        (None, None) => FirstRun::default(),
    };

    let mut duration = |v: Option<toml::Spanned<String>>, default: Duration, what: &str| match v {
        None => default,
        Some(s) => match parse_duration(s.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                err(
                    span(&s),
                    format!("invalid {what}: {e} (expected e.g. \"30s\", \"5m\", \"1h\")"),
                );
                default
            }
        },
    };
    let catch_up_horizon = duration(
        raw.schedule.catch_up_horizon,
        DEFAULT_CATCH_UP_HORIZON,
        "catch_up_horizon",
    );
    let health_check_interval = duration(
        raw.schedule.health_check_interval,
        DEFAULT_HEALTH_CHECK_INTERVAL,
        "health_check_interval",
    );

    let realtime = raw
        .realtime
        .enabled
        .unwrap_or(false)
        .then(|| RealtimeSettings {
            // at most one tail a second per rule
            every: duration(
                raw.realtime.every.clone(),
                DEFAULT_TAIL_EVERY,
                "realtime.every",
            )
            .max(Duration::from_secs(1)),
            lag: duration(raw.realtime.lag.clone(), DEFAULT_TAIL_LAG, "realtime.lag"),
            rule_ids: raw.realtime.rule_ids.clone(),
            tags: raw.realtime.tags.clone(),
        });

    let mut cron_errors = Vec::new();
    let cron = cron::validate(raw.schedule.cron, &mut cron_errors);
    let heartbeat = duration(
        raw.instance.heartbeat,
        DEFAULT_HEARTBEAT,
        "instance.heartbeat",
    );
    let lease_span = raw.instance.lease.as_ref().and_then(span);
    let lease = duration(raw.instance.lease, DEFAULT_LEASE, "instance.lease");
    let instance_id = raw.instance.id.and_then(|id| {
        let ok = !id.get_ref().is_empty()
            && id.get_ref().len() <= 128
            && id
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Some(id.into_inner())
        } else {
            err(
                span(&id),
                format!(
                    "invalid instance.id {:?}: expected 1 to 128 letters, digits, `-`, `_` or `.`",
                    id.get_ref()
                ),
            );
            None
        }
    });
    if heartbeat.is_zero() || lease < heartbeat * 2 {
        err(
            lease_span,
            format!(
                "instance.lease {} s is less than twice instance.heartbeat {} s: expected a \
                 lease that outlives a lost heartbeat",
                lease.as_secs_f64(),
                heartbeat.as_secs_f64()
            ),
        );
    }
    let instance = InstanceSettings {
        id: instance_id,
        heartbeat,
        lease,
    };

    let state = match raw.state.backend.as_ref().map(|b| b.get_ref().as_str()) {
        None | Some("cluster") => {
            if let Some(path) = &raw.state.path {
                err(
                    span(path),
                    "state.path is set but state.backend is not \"file\"".to_string(),
                );
            }
            StateBackend::Cluster
        }
        Some("file") => StateBackend::File(
            raw.state
                .path
                .map(|p| p.into_inner())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        ),
        Some(other) => {
            err(
                raw.state.backend.as_ref().and_then(span),
                format!("invalid state backend {other:?}: expected \"cluster\" or \"file\""),
            );
            StateBackend::Cluster
        }
    };

    let listen = match (flags.listen, raw.server.listen) {
        (Some(text), _) => text.parse().unwrap_or_else(|e| {
            err(
                None,
                format!("--listen {text:?}: {e} (expected host:port, e.g. 127.0.0.1:9108)"),
            );
            default_listen()
        }),
        (None, Some(s)) => s.get_ref().parse().unwrap_or_else(|e| {
            err(
                span(&s),
                format!(
                    "invalid listen address {:?}: {e} (expected ip:port, e.g. 127.0.0.1:9108)",
                    s.get_ref()
                ),
            );
            default_listen()
        }),
        (None, None) => default_listen(),
    };

    let (format_text, format_span) = match (flags.log_format, raw.log.format) {
        (Some(f), _) => (f, None),
        (None, Some(s)) => {
            let sp = span(&s);
            (s.into_inner(), sp)
        }
        (None, None) => ("human".to_string(), None),
    };
    let log_format = match format_text.as_str() {
        "human" => LogFormat::Human,
        "json" => LogFormat::Json,
        other => {
            err(
                format_span,
                format!("invalid log format {other:?}: expected \"human\" or \"json\""),
            );
            LogFormat::Human
        }
    };
    let (log_level, level_span) = match (flags.log_level, raw.log.level) {
        (Some(l), _) => (l, None),
        (None, Some(s)) => {
            let sp = span(&s);
            (s.into_inner(), sp)
        }
        (None, None) => (DEFAULT_LOG_LEVEL.to_string(), None),
    };
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log_level) {
        err(
            level_span,
            format!(
                "invalid log level {log_level:?}: {e} (expected e.g. \"info\", \"detectd=debug\")"
            ),
        );
    }

    let (file_cluster, cluster_span) = match raw.elasticsearch {
        None => (ClusterSettings::default(), None),
        Some(c) => {
            let sp = span(&c);
            (c.into_inner(), sp)
        }
    };
    let mut merged = file_cluster.merge(env).merge(flags.cluster);
    if merged.urls.as_ref().is_none_or(|u| u.is_empty()) {
        merged.urls = Some(vec![DEFAULT_CLUSTER_URL.to_string()]);
    }
    let cluster = match merged.resolve() {
        Ok(c) => Some(c),
        Err(e) => {
            err(
                cluster_span,
                format!("invalid cluster settings (file, environment and flags merged): {e}"),
            );
            None
        }
    };

    errors.extend(cron_errors);
    // Secrets of outputs come from the process environment (`*_env`).
    let notify = crate::notify::config::validate(
        raw.notify,
        raw.outputs,
        raw.routes,
        text,
        &|var| std::env::var(var).ok(),
        &mut errors,
    );

    match cluster {
        Some(cluster) if errors.is_empty() => Ok(Settings {
            rules,
            exceptions,
            space_id,
            cluster,
            indices,
            alerts_bootstrap,
            kibana,
            concurrency,
            first_run,
            catch_up_horizon,
            health_check_interval,
            cron,
            state,
            instance,
            sharing,
            realtime,
            listen,
            log_format,
            log_level,
            notify,
        }),
        _ => Err(errors),
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address parses")
}

/// Kibana space ids: lower-case alphanumerics, `_` and `-`.
fn is_space_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Elasticsearch's index-name rules (lower case, no separators), so a bad
/// name fails at start-up rather than on the first write.
fn bad_index_name(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("expected a non-empty name")
    } else if s.chars().any(|c| c.is_uppercase()) {
        Some("expected lower case")
    } else if s.chars().any(|c| {
        matches!(
            c,
            ' ' | ',' | '"' | '*' | '\\' | '/' | '<' | '>' | '|' | '?' | '#'
        )
    }) {
        Some("expected no spaces or any of , \" * \\ / < > | ? #")
    } else if s.starts_with(['-', '_', '+']) {
        Some("expected no leading -, _ or +")
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
