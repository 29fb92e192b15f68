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

use crate::config::LogFormat;
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
/// tests).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
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
    let _ =
        tracing::subscriber::set_global_default(subscriber(format, filter(level), std::io::stderr));
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
pub fn run_finished(record: &ExecutionRecord) {
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
                windows = record.windows.len(),
                window_start = window_start.as_deref(),
                window_end = window_end.as_deref(),
                events_fetched = record.events_fetched,
                alerts_created = record.alerts_created,
                alerts_duplicate = record.alerts_duplicate,
                alerts_capped = record.alerts_capped,
                alerts_failed = record.alerts_failed,
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
        startup_jitter = settings.startup_jitter,
        catch_up_horizon_s = settings.catch_up_horizon.as_secs(),
        state = ?settings.state,
        listen = %settings.listen,
        "starting"
    );
    tracing::debug!(connection = ?settings.cluster, "cluster connection settings");
}
