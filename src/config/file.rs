//! `detectd.toml` as written: every field optional, values that need
//! checking kept with their byte span so an error points at them.
//!
//! Nothing here applies defaults or validates; [`super::Settings`] does,
//! once, after the environment and flags are layered on top.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::cluster::ClusterSettings;
use super::ConfigError;
use crate::eql::Span;

/// The whole file. Unknown keys are errors: a typo in a config file must
/// not silently fall back to a default.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// Rule files or folders (walked for `*.toml`).
    pub rules: Option<Vec<PathBuf>>,
    /// Exception list files or folders: Kibana exception-list exports
    /// (NDJSON) and detection-rules exceptions TOML.
    pub exceptions: Option<Vec<PathBuf>>,
    /// Kibana space the alerts belong to (`kibana.space_ids`, alert ids).
    pub space_id: Option<Spanned<String>>,
    pub elasticsearch: Option<Spanned<ClusterSettings>>,
    pub indices: RawIndices,
    pub alerts: RawAlerts,
    pub kibana: RawKibana,
    pub schedule: RawSchedule,
    pub state: RawState,
    /// `[instance]`: this process among several (see `coord`).
    pub instance: RawInstance,
    /// `[sharing]`: shared scans (see `runner::share`).
    pub sharing: RawSharing,
    /// `[realtime]`: rules that also tail new events every few seconds.
    pub realtime: RawRealtime,
    pub server: RawServer,
    pub log: RawLog,
    /// `[notify]`: delivery retries (see `notify::config`).
    pub notify: crate::notify::config::RawNotify,
    /// `[[outputs]]`: where notifications go.
    pub outputs: Vec<crate::notify::config::RawOutput>,
    /// `[[routes]]`: which alerts go to which outputs.
    pub routes: Vec<crate::notify::config::RawRoute>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawIndices {
    /// Only Kibana's alias of `space_id` is accepted: the alerts index
    /// follows from the space.
    pub alerts: Option<Spanned<String>>,
    pub state: Option<Spanned<String>>,
    pub executions: Option<Spanned<String>>,
    pub dead_letters: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAlerts {
    /// `"create"` or `"wait"`: what to do when the alerts alias is missing.
    pub bootstrap: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawKibana {
    /// `kibana.version` stamped on alerts (default: the cluster's version).
    pub version: Option<Spanned<String>>,
    /// Kibana's `server.publicBaseUrl`, for `kibana.alert.url`.
    pub public_base_url: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSchedule {
    /// Rule runs in flight at once, over all rules.
    pub concurrency: Option<Spanned<i64>>,
    /// When each rule's first run falls: `"spread"` (at a point of its
    /// first interval derived from its rule_id) or `"now"` (at start).
    pub first_run: Option<Spanned<String>>,
    /// The old name of `first_run`: `true` is `"spread"`, `false` `"now"`.
    pub startup_jitter: Option<Spanned<bool>>,
    /// How far back catch-up goes after downtime (`"1h"`, `"30m"`).
    pub catch_up_horizon: Option<Spanned<String>>,
    /// How often `/healthz` asks the cluster whether it is there.
    pub health_check_interval: Option<Spanned<String>>,
    /// `[[schedule.cron]]`: cron schedules for rules by id or tag.
    pub cron: Vec<Spanned<super::cron::RawCron>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawState {
    /// `"cluster"` or `"file"`.
    pub backend: Option<Spanned<String>>,
    /// The state directory when `backend = "file"`.
    pub path: Option<Spanned<PathBuf>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawInstance {
    /// This instance's id among several (default: a new uuid per process).
    pub id: Option<Spanned<String>>,
    /// How often the instance says it is alive and renews its leases.
    pub heartbeat: Option<Spanned<String>>,
    /// How long a lease (and a heartbeat) holds without renewal.
    pub lease: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSharing {
    /// Whether rules that fire together read their windows in shared
    /// scans (default true).
    pub enabled: Option<bool>,
    /// Events one shared scan may hold in memory.
    pub max_events: Option<Spanned<i64>>,
    /// Rules one shared scan reads for.
    pub max_rules: Option<Spanned<i64>>,
    /// Whether rules without an exact clause are selected locally from one
    /// read of their windows (default true).
    pub select_locally: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRealtime {
    /// Whether any rule tails (default false).
    pub enabled: Option<bool>,
    /// How often the tail runs (`"5s"`).
    pub every: Option<Spanned<String>>,
    /// How far behind the clock the tail stays, for events still on their
    /// way (`"15s"`).
    pub lag: Option<Spanned<String>>,
    /// Only these rules (by id) and rules with one of these tags; neither
    /// given: every rule that can tail.
    pub rule_ids: Vec<String>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServer {
    /// Address of `/healthz` and `/metrics`.
    pub listen: Option<Spanned<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    /// `"human"` or `"json"`.
    pub format: Option<Spanned<String>>,
    /// A `tracing` filter (`"info"`, `"detectd=debug,warn"`).
    pub level: Option<Spanned<String>>,
}

impl RawConfig {
    /// Parses the file text; a syntax or type error carries its span.
    pub fn parse(text: &str) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError {
            span: e.span().map(|r| Span::new(r.start, r.end)),
            message: e.message().trim_end().to_string(),
        })
    }
}

/// The span of a spanned value, as the diagnostics want it.
pub(super) fn span<T>(v: &Spanned<T>) -> Option<Span> {
    let r = v.span();
    Some(Span::new(r.start, r.end))
}
