//! The detectd command line: wiring only. Each subcommand parses its
//! arguments and calls into the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "detectd",
    version,
    about = "Runs Elastic Security EQL detection rules beside an Elasticsearch or OpenSearch cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate one EQL query over NDJSON events (files or stdin) and print
    /// the result as the Elasticsearch EQL search API would.
    Query(QueryArgs),
    /// Parse and validate rule files (detection-rules TOML) and report every error.
    Check {
        /// Rule files or folders (searched for *.toml). Default: rules/
        paths: Vec<PathBuf>,
    },
    /// Write a deterministic stream of ECS-like events as NDJSON (benchmarks, demos).
    Generate(GenerateArgs),
    /// Run the rules on their schedules against the cluster (the daemon).
    ///
    /// SIGTERM / SIGINT: stop scheduling, finish runs in flight, exit 0.
    /// SIGHUP: reload and re-validate the rules. With --once: exit 0 when no
    /// run failed, 1 when one did; 2 for a configuration or start-up error.
    Run(RunArgs),
    /// Alerts the cluster refused as invalid, kept as dead letters: list
    /// them, or write them again once the cause is fixed.
    ///
    /// Uses the same settings as `run` (--config, ELASTICSEARCH_*). `list`
    /// prints one JSON line per dead letter; `replay` writes them again and
    /// removes those written (or already there). Exit 0, or 1 when dead
    /// letters remain after a replay, 2 on errors.
    DeadLetters(DeadLettersArgs),
    /// Run rules over NDJSON files offline and print the alerts as NDJSON.
    ///
    /// Each line is {"_index": <alerts index>, "_id": <alert id>, "_source":
    /// <alert>}: the document `run` would write. Exit 0, or 1 if a rule
    /// file is invalid, 2 if the files cannot be read.
    Hunt(HuntArgs),
    /// Run the rules' test cases (`<rule>.tests.toml` beside each rule) and
    /// compare their alerts with what each case expects.
    ///
    /// Each case's events go through the same runner as `run` and `hunt`.
    /// Prints one line per case, a diff for each failure, the rules without
    /// tests, and a summary. Exit 0 when every case passes, 1 when one
    /// fails (or a tests or rule file is broken, or with --require-tests a
    /// rule has no tests).
    Test(TestArgs),
}

#[derive(clap::Args)]
struct TestArgs {
    /// Rule files, their tests files, or folders. Default: rules/
    paths: Vec<PathBuf>,
    /// A rule without tests fails the command.
    #[arg(long)]
    require_tests: bool,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The config file (default: detectd.toml when it exists).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run every rule once, then exit.
    #[arg(long)]
    once: bool,
    /// Rule files or folders (repeat for more); replaces `rules` of the config.
    #[arg(long, value_name = "DIR")]
    rules: Vec<PathBuf>,
    /// Cluster URL (repeat for more nodes); wins over ELASTICSEARCH_URL.
    #[arg(long, value_name = "URL")]
    elasticsearch_url: Vec<String>,
    /// Address of /healthz and /metrics.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Rule runs in flight at once.
    #[arg(long)]
    concurrency: Option<usize>,
    /// human or json.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// A tracing filter such as info or detectd=debug (RUST_LOG wins).
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

#[derive(clap::Args)]
struct DeadLettersArgs {
    #[command(subcommand)]
    action: DeadLettersAction,
    /// The config file (default: detectd.toml when it exists).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Cluster URL (repeat for more nodes); wins over ELASTICSEARCH_URL.
    #[arg(long, value_name = "URL", global = true)]
    elasticsearch_url: Vec<String>,
}

#[derive(Subcommand, Clone, Copy)]
enum DeadLettersAction {
    /// Print the dead letters, one JSON line each (without the alert).
    List,
    /// Write them again; those written or already there are removed.
    Replay,
}

#[derive(clap::Args)]
struct HuntArgs {
    /// Rule files or folders (repeat for more).
    #[arg(long, value_name = "DIR", default_value = "rules")]
    rules: Vec<PathBuf>,
    /// Kibana space id of the alerts.
    #[arg(long, default_value = "default")]
    space_id: String,
    /// Shown as `_index` of each alert.
    #[arg(long, default_value = detectd::config::DEFAULT_ALERTS_INDEX)]
    alerts_index: String,
    /// The alerts' creation time (RFC 3339), for reproducible output;
    /// default now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// An Elasticsearch mapping (the JSON of GET <index>/_mapping, or a
    /// {"mappings": ...} or {"properties": ...} object) for every events
    /// file, or with NAME= for the events file named NAME; repeatable.
    #[arg(long, value_name = "[NAME=]FILE")]
    mapping: Vec<String>,
    /// NDJSON event files.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct QueryArgs {
    /// An NDJSON file to read (one JSON object per line); repeat for more
    /// files. Standard input when none.
    #[arg(long = "events", short = 'e', value_name = "FILE")]
    events: Vec<PathBuf>,
    /// An Elasticsearch mapping (the JSON of GET <index>/_mapping, or a
    /// {"mappings": ...} or {"properties": ...} object) for every events
    /// file, or with NAME= for the events file named NAME (its `_index`);
    /// repeatable.
    #[arg(long, value_name = "[NAME=]FILE")]
    mapping: Vec<String>,
    /// Field holding the event time (a date, also without a mapping).
    #[arg(long, default_value = "@timestamp")]
    timestamp_field: String,
    /// Field that orders events with the same timestamp.
    #[arg(long)]
    tiebreaker_field: Option<String>,
    /// Field holding the event category (`process where ...`).
    #[arg(long, default_value = "event.category")]
    event_category_field: String,
    /// Maximum number of events or sequences returned.
    #[arg(long, default_value_t = 10)]
    size: usize,
    /// Which matches to return when there are more than `size`: the first or the last.
    #[arg(long, value_enum, default_value_t = ResultPosition::Tail)]
    result_position: ResultPosition,
    /// Samples per join key for `sample` queries.
    #[arg(long)]
    max_samples_per_key: Option<usize>,
    /// The events are already in time order: stream them through the
    /// matcher in bounded memory, also from stdin (an event out of order is
    /// then an error). Files in time order stream without it.
    #[arg(long)]
    sorted: bool,
    /// Partial sequences kept at most (what bounds the memory of sequences
    /// without maxspan); beyond it the oldest are dropped with a warning.
    #[arg(long, default_value_t = 100_000)]
    max_pending: usize,
    /// Read the query from this file instead of the command line.
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    query_file: Option<PathBuf>,
    /// The EQL query.
    #[arg(required_unless_present = "query_file")]
    query: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ResultPosition {
    Head,
    Tail,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Number of events to write.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Distinct processes.
    #[arg(long, default_value_t = 5_000)]
    processes: u32,
    /// Distinct hosts.
    #[arg(long, default_value_t = 50)]
    hosts: u32,
    /// Attack pairs (founding rule) started per 10,000 events.
    #[arg(long, default_value_t = 5)]
    attacks_per_10k: u32,
    /// Random seed; the same seed gives the same stream.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Epoch milliseconds of the first event.
    #[arg(long, default_value_t = 1_700_000_000_000)]
    start_ms: i64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Query(args) => query(args),
        Command::Check { paths } => check(paths),
        Command::Generate(args) => generate(args),
        Command::Run(args) => run(args),
        Command::Hunt(args) => hunt(args),
        Command::Test(args) => test(args),
        Command::DeadLetters(args) => dead_letters(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("detectd: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Bad input lines are warned about one by one up to this many, then counted.
const MAX_BAD_LINE_WARNINGS: u64 = 20;

fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use detectd::eql::{compile, search};
    use detectd::offline::mappings::MappingArg;
    use detectd::offline::Input;

    let (query, origin) = match (&args.query, &args.query_file) {
        (_, Some(path)) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read query file {}", path.display()))?,
            path.display().to_string(),
        ),
        (Some(q), None) => (q.clone(), "<query>".to_string()),
        (None, None) => anyhow::bail!("no query given"),
    };
    let ast = match detectd::eql::parse(&query) {
        Ok(ast) => ast,
        Err(e) => return query_errors(&origin, &query, &[e]),
    };
    let errors = detectd::eql::verify(&ast);
    if !errors.is_empty() {
        return query_errors(&origin, &query, &errors);
    }
    let options = compile::CompileOptions {
        timestamp_field: args.timestamp_field,
        tiebreaker_field: args.tiebreaker_field,
        event_category_field: args.event_category_field,
    };
    let inputs: Vec<Input> = if args.events.is_empty() {
        vec![Input::Stdin]
    } else {
        args.events.into_iter().map(Input::File).collect()
    };
    let names: Vec<String> = inputs.iter().map(Input::name).collect();
    let mapping_args: Vec<MappingArg> = args.mapping.iter().map(|a| MappingArg::parse(a)).collect();
    let schemas = detectd::offline::mappings::load(&mapping_args, &names)?;
    let plans = match compile::PlanSet::compile(
        &ast,
        &options,
        &schemas.fallback,
        schemas.per_input.iter().map(|(n, s)| (n.as_str(), s)),
    ) {
        Ok(plans) => plans,
        Err(mut e) => {
            if let Some(key) = &e.key {
                e.error.message = format!("{} (with the mapping of {key})", e.error.message);
            }
            return query_errors(&origin, &query, &[e.error]);
        }
    };

    let opts = search::SearchOptions {
        size: args.size,
        result_position: match args.result_position {
            ResultPosition::Head => search::ResultPosition::Head,
            ResultPosition::Tail => search::ResultPosition::Tail,
        },
        max_samples_per_key: args.max_samples_per_key.unwrap_or(1),
        limits: detectd::eql::sequence::Limits {
            max_pending: args.max_pending,
        },
    };
    let mut bad_lines = 0u64;
    let outcome = detectd::offline::run_query(&plans, &inputs, &opts, args.sorted, |bad| {
        bad_lines += 1;
        if bad_lines <= MAX_BAD_LINE_WARNINGS {
            eprintln!("detectd: warning: {bad}");
        }
    })?;
    if outcome.dropped_partial_sequences > 0 {
        eprintln!(
            "detectd: warning: {} partial sequences were dropped at the limit of {} pending \
             (--max-pending); the answer may miss sequences",
            outcome.dropped_partial_sequences, opts.limits.max_pending
        );
    }
    let response = outcome.response;
    if bad_lines > MAX_BAD_LINE_WARNINGS {
        eprintln!(
            "detectd: warning: {} more lines skipped",
            bad_lines - MAX_BAD_LINE_WARNINGS
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    serde_json::to_writer_pretty(&mut out, &response)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Prints query errors with line, column and a caret; exit code 1.
fn query_errors(
    origin: &str,
    query: &str,
    errors: &[detectd::eql::EqlError],
) -> anyhow::Result<ExitCode> {
    for e in errors {
        eprint!(
            "{}",
            detectd::diagnostic::render(origin, query, e.span, &e.message)
        );
    }
    Ok(ExitCode::from(1))
}

fn check(paths: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("rules")]
    } else {
        paths
    };
    let stdout = std::io::stdout();
    let summary = detectd::rule::check_paths(&paths, &mut stdout.lock())?;
    Ok(if summary.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let cfg = detectd::synth::SynthConfig {
        seed: args.seed,
        processes: args.processes,
        hosts: args.hosts,
        start_ms: args.start_ms,
        attacks_per_10k: args.attacks_per_10k,
        ..Default::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    for ev in detectd::synth::Synth::new(cfg).take(args.count as usize) {
        serde_json::to_writer(&mut out, &ev)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The config file given, or `./detectd.toml` when it exists.
fn config_path(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let default = PathBuf::from("detectd.toml");
        default.exists().then_some(default)
    })
}

fn dead_letters(args: DeadLettersArgs) -> anyhow::Result<ExitCode> {
    use detectd::config::{cluster::ClusterSettings, Overrides, Settings};

    let flags = Overrides {
        cluster: ClusterSettings {
            urls: (!args.elasticsearch_url.is_empty()).then_some(args.elasticsearch_url),
            ..ClusterSettings::default()
        },
        ..Overrides::default()
    };
    let settings = match Settings::load(config_path(args.config).as_deref(), flags) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.action {
        DeadLettersAction::List => {
            let stdout = std::io::stdout();
            let n = runtime.block_on(detectd::dead_letters::list(&settings, &mut stdout.lock()))?;
            eprintln!("{n} dead letters");
            Ok(ExitCode::SUCCESS)
        }
        DeadLettersAction::Replay => {
            let report = runtime.block_on(detectd::dead_letters::replay(&settings))?;
            for f in report.refused.iter().chain(&report.failed) {
                eprintln!("detectd: not written: {f}");
            }
            eprintln!(
                "{} written, {} already there, {} refused again, {} not written (kept)",
                report.written.len(),
                report.duplicates.len(),
                report.refused.len(),
                report.failed.len()
            );
            Ok(if report.remaining() > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    use detectd::config::{cluster::ClusterSettings, Overrides, Settings};
    use detectd::daemon::{self, Mode};

    let config = config_path(args.config);
    let flags = Overrides {
        rules: (!args.rules.is_empty()).then_some(args.rules),
        listen: args.listen,
        log_format: args.log_format,
        log_level: args.log_level,
        concurrency: args.concurrency,
        cluster: ClusterSettings {
            urls: (!args.elasticsearch_url.is_empty()).then_some(args.elasticsearch_url),
            ..ClusterSettings::default()
        },
    };
    let settings = match Settings::load(config.as_deref(), flags) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    daemon::log::init(settings.log_format, &settings.log_level);
    let mode = if args.once { Mode::Once } else { Mode::Daemon };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(daemon::start::start(settings, mode)) {
        Ok(outcome) if mode == Mode::Once => Ok(ExitCode::from(outcome.once_exit_code())),
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("detectd: error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn hunt(args: HuntArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;

    let now = match &args.now {
        None => chrono::Utc::now(),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("invalid --now {text:?}: expected RFC 3339"))?
            .with_timezone(&chrono::Utc),
    };
    let opts = detectd::hunt::HuntOptions {
        space_id: args.space_id,
        alerts_index: args.alerts_index,
        now,
        kibana_version: detectd::alert::MODELLED_KIBANA_VERSION.to_string(),
        mappings: args
            .mapping
            .iter()
            .map(|a| detectd::offline::mappings::MappingArg::parse(a))
            .collect(),
    };
    // Not `stdout().lock()`: the runner's sink must be `Send`, a lock is not.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
    let stderr = std::io::stderr();
    let summary = detectd::hunt::hunt(
        &args.rules,
        &args.files,
        &opts,
        &mut out,
        &mut stderr.lock(),
    )?;
    eprintln!(
        "{} rules run, {} alerts, {} failed, {} skipped",
        summary.rules_run, summary.alerts, summary.rules_failed, summary.rules_skipped
    );
    Ok(if summary.rules_failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("rules")]
    } else {
        args.paths
    };
    let opts = detectd::ruletest::TestOptions {
        require_tests: args.require_tests,
    };
    let stdout = std::io::stdout();
    let summary = detectd::ruletest::run_tests(&paths, &opts, &mut stdout.lock())?;
    Ok(if summary.ok(&opts) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
