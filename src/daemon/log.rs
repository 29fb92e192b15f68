//! Logging: the `tracing` subscriber (human or JSON lines on stderr, level
//! from the config unless `RUST_LOG` is set) and the one structured line
//! each rule run logs. Fields are fields, not text spliced into the message,
//! so a log pipeline can filter on `rule_id` or `status`.
//!
//! Nothing secret reaches a log line: settings are logged through their
//! `Debug`, which redacts passwords and API keys, and run records carry
//! only redacted errors.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use chrono::{DateTime, Utc};

use super::rule_table::{time_text, until_text, RuleRow};
use crate::config::{FirstRun, LogFormat};
use crate::runner::{ExecutionRecord, RunStatus};

/// The filter: `RUST_LOG` when set (and valid), else `level`.
pub fn filter(level: &str) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).unwrap_or_else(|_| EnvFilter::new(level))
        }
        _ => EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")),
    }
}

/// A subscriber writing to `writer` (stderr in production, a buffer in
/// tests); `ansi` colours human lines (for a terminal only).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi && format == LogFormat::Human)
        .with_target(false);
    match format {
        LogFormat::Human => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
        ),
    }
}

/// Installs the global subscriber (stderr). A second call is a no-op.
pub fn init(format: LogFormat, level: &str) {
    let _ = tracing::subscriber::set_global_default(subscriber(
        format,
        filter(level),
        std::io::stderr,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    ));
}

/// The status as Kibana spells it.
pub fn status_text(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::PartialFailure => "partial failure",
        RunStatus::Failed => "failed",
    }
}

/// Logs one finished run: info when it succeeded, warn on partial failure,
/// error when it failed.
/// The daemon's own timing of one run, beside what the record holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunTiming {
    /// How late the run started after its scheduled time.
    pub start_delay: std::time::Duration,
    /// Wall time of the whole run as the daemon measured it.
    pub took: std::time::Duration,
}

pub fn run_finished(record: &ExecutionRecord, timing: RunTiming) {
    let window_start = record.windows.first().map(|w| w.start.to_rfc3339());
    let window_end = record.windows.last().map(|w| w.end.to_rfc3339());
    let gap_start = record.gap.map(|g| g.start.to_rfc3339());
    let gap_end = record.gap.map(|g| g.end.to_rfc3339());
    let warnings = (!record.warnings.is_empty()).then(|| record.warnings.join("; "));
    macro_rules! line {
        ($level:expr) => {
            tracing::event!(
                $level,
                rule_id = %record.rule_id,
                rule_name = %record.rule_name,
                execution_id = %record.execution_id,
                status = status_text(record.status),
                start_delay_ms = timing.start_delay.as_millis() as u64,
                duration_ms = timing.took.as_millis() as u64,
                windows = record.windows.len(),
                window_start = window_start.as_deref(),
                window_end = window_end.as_deref(),
                events_fetched = record.events_fetched,
                events_skipped = record.events_skipped,
                alerts_created = record.alerts_created,
                alerts_duplicate = record.alerts_duplicate,
                alerts_capped = record.alerts_capped,
                alerts_failed = record.alerts_failed,
                alerts_dead_lettered = record.alerts_dead_lettered,
                search_ms = record.search_duration_ms,
                index_ms = record.index_duration_ms,
                gap_start = gap_start.as_deref(),
                gap_end = gap_end.as_deref(),
                warnings = warnings.as_deref(),
                error = record.error.as_deref(),
                "rule run finished"
            )
        };
    }
    match record.status {
        RunStatus::Succeeded => line!(tracing::Level::INFO),
        RunStatus::PartialFailure => line!(tracing::Level::WARN),
        RunStatus::Failed => line!(tracing::Level::ERROR),
    }
}

/// Up to this many scheduled rules get a line each; more get a summary.
pub const RULE_LINES_MAX: usize = 20;

/// Says when rules run next, at start and after a reload: a line per rule
/// (`rule scheduled`, with `next_run` and `next_run_in`) for up to
/// [`RULE_LINES_MAX`] rules, else one `rules scheduled` summary with the
/// first and the last next run (`GET /rules` lists them all). Without this
/// a rule whose first run falls late in its interval looks like a daemon
/// doing nothing.
pub fn rules_scheduled(rows: &[RuleRow], now: DateTime<Utc>, first_run: FirstRun) {
    let planned: Vec<(&RuleRow, DateTime<Utc>)> = rows
        .iter()
        .filter_map(|r| r.next_run.map(|t| (r, t)))
        .collect();
    if planned.len() <= RULE_LINES_MAX {
        for (row, next) in &planned {
            tracing::info!(
                rule_id = %row.rule_id,
                name = %row.name,
                interval = %row.interval,
                cron = row.cron.as_deref(),
                next_run = %time_text(next),
                next_run_in = %until_text(*next - now),
                first_run = first_run.as_str(),
                "rule scheduled"
            );
        }
        return;
    }
    let (Some((first_row, first)), Some((_, last))) = (
        planned.iter().min_by_key(|(_, t)| *t),
        planned.iter().max_by_key(|(_, t)| *t),
    ) else {
        return;
    };
    tracing::info!(
        rules = planned.len(),
        first_next_run = %time_text(first),
        first_rule_id = %first_row.rule_id,
        last_next_run = %time_text(last),
        all_within = %until_text(*last - now),
        first_run = first_run.as_str(),
        "rules scheduled (GET /rules lists each rule's next run)"
    );
}

/// Logs the settings the daemon starts with. Secrets appear redacted (the
/// cluster settings' `Debug` never shows them).
pub fn settings(settings: &crate::config::Settings) {
    let urls: Vec<&str> = settings.cluster.urls.iter().map(|u| u.as_str()).collect();
    let auth = match &settings.cluster.auth {
        crate::config::cluster::Auth::None => "none".to_string(),
        crate::config::cluster::Auth::ApiKey(key) => format!("api key {key}"),
        crate::config::cluster::Auth::Basic { username, password } => {
            format!("basic {username}:{password}")
        }
    };
    tracing::info!(
        rules = ?settings.rules,
        cluster = ?urls,
        auth = %auth,
        alerts_index = %settings.indices.alerts,
        space_id = %settings.space_id,
        concurrency = settings.concurrency,
        first_run = settings.first_run.as_str(),
        catch_up_horizon_s = settings.catch_up_horizon.as_secs(),
        state = ?settings.state,
        listen = %settings.listen,
        "starting"
    );
    tracing::debug!(connection = ?settings.cluster, "cluster connection settings");
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::cluster::{
        ClusterSettings, ENV_API_KEY, ENV_PASSWORD, ENV_URL, ENV_USERNAME,
    };
    use crate::config::{Overrides, Settings};

    /// A log sink in memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn captured(format: LogFormat, f: impl FnOnce()) -> String {
        let capture = Capture::default();
        let sub = subscriber(format, EnvFilter::new("debug"), capture.clone(), false);
        tracing::subscriber::with_default(sub, f);
        capture.text()
    }

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let env = ClusterSettings::from_env_with(|k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        Settings::from_layers(None, env, Overrides::default()).unwrap()
    }

    #[test]
    fn secrets_never_reach_the_log() {
        let basic = settings(&[
            (ENV_URL, "http://es:9200"),
            (ENV_USERNAME, "elastic-user"),
            (ENV_PASSWORD, "hunter2-password"),
        ]);
        let key = settings(&[
            (ENV_URL, "http://es:9200"),
            (ENV_API_KEY, "c2VjcmV0LWFwaS1rZXk="),
        ]);
        for format in [LogFormat::Human, LogFormat::Json] {
            let log = captured(format, || {
                super::settings(&basic);
                super::settings(&key);
            });
            assert!(log.contains("elastic-user"), "the capture works: {log}");
            assert!(log.contains("<redacted>"), "{log}");
            assert!(!log.contains("hunter2-password"), "{log}");
            assert!(!log.contains("c2VjcmV0LWFwaS1rZXk="), "{log}");
        }
    }

    fn timing() -> RunTiming {
        RunTiming {
            start_delay: std::time::Duration::from_millis(1500),
            took: std::time::Duration::from_millis(2750),
        }
    }

    #[test]
    fn a_run_is_one_json_line_with_fields() {
        let mut record = crate::daemon::metrics::tests::record("r1", RunStatus::PartialFailure);
        record.warnings = vec!["capped".into()];
        let log = captured(LogFormat::Json, || run_finished(&record, timing()));
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "rule run finished");
        assert_eq!(v["rule_id"], "r1");
        assert_eq!(v["status"], "partial failure");
        assert_eq!(v["alerts_created"], 3);
        assert_eq!(v["alerts_capped"], 1);
        assert_eq!(v["events_fetched"], 10);
        assert_eq!(v["warnings"], "capped");
        assert_eq!(v["start_delay_ms"], 1500);
        assert_eq!(v["duration_ms"], 2750);
        assert_eq!(v["gap_start"], "2024-05-01T09:58:30+00:00");
        assert!(v.get("error").is_none(), "absent fields are left out: {v}");
    }

    #[test]
    fn human_lines_carry_the_same_fields() {
        let record = crate::daemon::metrics::tests::record("r2", RunStatus::Failed);
        let log = captured(LogFormat::Human, || run_finished(&record, timing()));
        assert!(log.contains("ERROR"), "{log}");
        assert!(log.contains("rule_id=r2"), "{log}");
        assert!(log.contains("status=\"failed\""), "{log}");
    }
}
