//! The detectd command line: wiring only. Each subcommand parses its
//! arguments and calls into the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use detectd::offline::filter_query::FilterLanguage;

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
    /// Parse and validate rule files (detection-rules TOML, Kibana exports)
    /// and report every error.
    Check {
        /// Exception list files or folders (Kibana exception-list exports,
        /// detection-rules exceptions TOML): resolve every rule's
        /// `exceptions_list` against them; repeatable. Without it the
        /// references are checked in shape only.
        #[arg(long, value_name = "DIR")]
        exceptions: Vec<PathBuf>,
        /// Rule files or folders (searched for *.toml and *.ndjson). Default: rules/
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
    /// The instances sharing the cluster state, and for each rule the
    /// instance holding its lease, how long the lease has left, its
    /// checkpoint and its last run.
    ///
    /// Uses the same settings as `run` (--config, ELASTICSEARCH_*). Exit 0,
    /// 2 on a configuration error or when the cluster cannot be read.
    Status(StatusArgs),
    /// Notifications: `test --output NAME` sends a sample alert message
    /// through one configured output, so a route can be checked end to end.
    ///
    /// Exit 0 when the output acknowledged it, 1 when it did not, 2 on a
    /// configuration error or an unknown output.
    Notify(NotifyArgs),
    /// Show a rule as detectd understands it: type, indices, the next
    /// window, the query DSL a run sends (what falls back to match-all, and
    /// why), the fields fetched, the alert ids; with --event, which stage or
    /// clause each event fails and why.
    ///
    /// Offline (field types from ECS) unless --elasticsearch-url is given:
    /// then the cluster resolves the indices and field types. Exit 0, 1 if
    /// the rule file is invalid or holds no EQL rule, 2 on other errors.
    Explain(ExplainArgs),
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
    /// Exception list files or folders the rules' `exceptions_list` is
    /// resolved from (repeat for more), as `run --exceptions`.
    #[arg(long, value_name = "DIR")]
    exceptions: Vec<PathBuf>,
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
    /// Exception list files or folders (repeat for more); replaces
    /// `exceptions` of the config.
    #[arg(long, value_name = "DIR")]
    exceptions: Vec<PathBuf>,
    /// Cluster URL (repeat for more nodes); wins over ELASTICSEARCH_URL.
    #[arg(long, value_name = "URL")]
    elasticsearch_url: Vec<String>,
    /// Address of /healthz and /metrics.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Rule runs in flight at once.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Fetch every rule's windows alone rather than in shared scans
    /// (`[sharing] enabled = false`).
    #[arg(long)]
    no_shared_scans: bool,
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

#[derive(clap::Args)]
struct StatusArgs {
    /// The config file (default: detectd.toml when it exists).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Cluster URL (repeat for more nodes); wins over ELASTICSEARCH_URL.
    #[arg(long, value_name = "URL")]
    elasticsearch_url: Vec<String>,
}

#[derive(clap::Args)]
struct NotifyArgs {
    #[command(subcommand)]
    action: NotifyAction,
    /// The config file (default: detectd.toml when it exists).
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum NotifyAction {
    /// Send a sample message (a made-up sequence alert) to one output.
    Test {
        /// The `name` of an [[outputs]] table.
        #[arg(long, value_name = "NAME")]
        output: String,
    },
}

#[derive(Subcommand, Clone, Copy)]
enum DeadLettersAction {
    /// Print the dead letters, one JSON line each (without the alert).
    List,
    /// Write them again; those written or already there are removed.
    Replay,
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// A rule file (detection-rules TOML, or a Kibana export).
    #[arg(value_name = "RULE_FILE")]
    rule_file: PathBuf,
    /// Ask this cluster (repeat for more nodes) for the indices and field
    /// types; credentials from ELASTICSEARCH_API_KEY or _USERNAME/_PASSWORD.
    #[arg(long, value_name = "URL")]
    elasticsearch_url: Vec<String>,
    /// Events to check against the rule: a JSON object, an array, or NDJSON.
    #[arg(long, value_name = "FILE")]
    event: Option<PathBuf>,
    /// An Elasticsearch mapping (the JSON of GET <index>/_mapping, or a
    /// {"mappings": ...} or {"properties": ...} object) the events are
    /// evaluated with, or with NAME= for the events of index NAME (an event
    /// file's name, or a search hit's _index); repeatable. Default: with a
    /// cluster its mappings, else typed from the JSON.
    #[arg(long, value_name = "[NAME=]FILE", requires = "event")]
    mapping: Vec<String>,
    /// The time of the run to explain (RFC 3339); default now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Kibana space id (part of event alert ids; the alerts alias
    /// follows it). Default: the config's `space_id`, else "default".
    #[arg(long)]
    space_id: Option<String>,
    /// Exception list files or folders the rule's `exceptions_list` is
    /// resolved from (repeat for more), as `run --exceptions`.
    #[arg(long, value_name = "DIR")]
    exceptions: Vec<PathBuf>,
    /// The config file `run` would use (default: detectd.toml when it
    /// exists): its `[sharing]`, `[realtime]`, catch-up horizon, space and
    /// alerts alias are explained instead of the defaults. The cluster is
    /// still asked only with --elasticsearch-url.
    #[arg(long)]
    config: Option<PathBuf>,
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
    /// Exception list files or folders the rules' `exceptions_list` is
    /// resolved from (repeat for more), as `run --exceptions`.
    #[arg(long, value_name = "DIR")]
    exceptions: Vec<PathBuf>,
    /// NDJSON indicator files for threat_match rules (repeat for more):
    /// their `threat_query`, `threat_filters` and mappings select from
    /// these lines (`_index` = file name, `_id` = line number), never from
    /// the event files.
    #[arg(long, value_name = "FILE")]
    indicators: Vec<PathBuf>,
    /// Threads parsing the files' lines (default: one per core); the
    /// alerts are the same for any number.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
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
    /// The query language: EQL, or KQL / Lucene as query rules use them
    /// (the same answer shape as an EQL event query).
    #[arg(long, value_enum, default_value_t = Language::Eql)]
    language: Language,
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
    /// Threads decoding and evaluating lines (default: one per core); the
    /// answer is the same for any number.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Read the query from this file instead of the command line.
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    query_file: Option<PathBuf>,
    /// The EQL query.
    #[arg(required_unless_present = "query_file")]
    query: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Language {
    Eql,
    Kql,
    Lucene,
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

/// mimalloc rather than the system allocator: faster for the offline
/// commands' many small allocations across threads (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Query(args) => query(args),
        Command::Check { paths, exceptions } => check(paths, exceptions),
        Command::Generate(args) => generate(args),
        Command::Run(args) => run(args),
        Command::Hunt(args) => hunt(args),
        Command::Explain(args) => explain(args),
        Command::Test(args) => test(args),
        Command::DeadLetters(args) => dead_letters(args),
        Command::Status(args) => status(args),
        Command::Notify(args) => notify(args),
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

    let (query, origin) = match (&args.query, &args.query_file) {
        (_, Some(path)) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read query file {}", path.display()))?,
            path.display().to_string(),
        ),
        (Some(q), None) => (q.clone(), "<query>".to_string()),
        (None, None) => anyhow::bail!("no query given"),
    };
    let language = match args.language {
        Language::Eql => None,
        Language::Kql => Some(FilterLanguage::Kql),
        Language::Lucene => Some(FilterLanguage::Lucene),
    };
    if let Some(language) = language {
        return filter_query(args, language, &query, &origin);
    }
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
    // Lines the query cannot match are not decoded; a mapping changes what
    // its texts mean, so not with one (see `offline::prefilter`).
    let prefilter = if args.mapping.is_empty() {
        detectd::offline::Prefilter::for_query(&ast, &options)
    } else {
        None
    };
    let (inputs, schemas) = query_inputs(args.events, &args.mapping)?;
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
        result_position: args.result_position.into(),
        max_samples_per_key: args.max_samples_per_key.unwrap_or(1),
        limits: detectd::eql::sequence::Limits {
            max_pending: args.max_pending,
        },
    };
    let mut bad_lines = BadLineWarnings::default();
    let threads = query_threads(args.threads);
    let outcome = detectd::offline::run_query(
        &plans,
        &inputs,
        &opts,
        args.sorted,
        prefilter.as_ref(),
        threads,
        |bad| bad_lines.note(&bad),
    )?;
    if outcome.dropped_partial_sequences > 0 {
        eprintln!(
            "detectd: warning: {} partial sequences were dropped at the limit of {} pending \
             (--max-pending); the answer may miss sequences",
            outcome.dropped_partial_sequences, opts.limits.max_pending
        );
    }
    bad_lines.finish();
    print_response(&outcome.response)?;
    Ok(ExitCode::SUCCESS)
}

/// `--threads N` of `query` and `hunt`: N, else one per core.
fn query_threads(threads: Option<usize>) -> detectd::offline::Threads {
    threads.map_or_else(
        detectd::offline::Threads::available,
        detectd::offline::Threads::new,
    )
}

/// The events files of `query` (standard input when none) and their
/// `--mapping`s.
fn query_inputs(
    events: Vec<PathBuf>,
    mapping: &[String],
) -> anyhow::Result<(
    Vec<detectd::offline::Input>,
    detectd::offline::mappings::InputSchemas,
)> {
    use detectd::offline::mappings::MappingArg;
    use detectd::offline::Input;

    let inputs: Vec<Input> = if events.is_empty() {
        vec![Input::Stdin]
    } else {
        events.into_iter().map(Input::File).collect()
    };
    let names: Vec<String> = inputs.iter().map(Input::name).collect();
    let mapping_args: Vec<MappingArg> = mapping.iter().map(|a| MappingArg::parse(a)).collect();
    let schemas = detectd::offline::mappings::load(&mapping_args, &names)?;
    Ok((inputs, schemas))
}

/// `query --language kql|lucene`: the query as a query rule's, over the
/// events, in the shape of an EQL event query's answer.
fn filter_query(
    args: QueryArgs,
    language: FilterLanguage,
    query: &str,
    origin: &str,
) -> anyhow::Result<ExitCode> {
    use detectd::offline::filter_query::{
        run_filter_query, FilterQuery, FilterQueryError, FilterQueryOptions,
    };

    let (inputs, schemas) = query_inputs(args.events, &args.mapping)?;
    let types = schemas.mappings().field_types();
    let compiled = match FilterQuery::compile(query, language, types.as_ref()) {
        Ok(q) => q,
        Err(FilterQueryError::Query { message, span }) => {
            match span {
                Some(span) => eprint!(
                    "{}",
                    detectd::diagnostic::render(origin, query, span, &message)
                ),
                None => eprintln!("{origin}: error: {message}"),
            }
            return Ok(ExitCode::from(1));
        }
    };
    let opts = FilterQueryOptions {
        timestamp_field: args.timestamp_field,
        tiebreaker_field: args.tiebreaker_field,
        size: args.size,
        result_position: args.result_position.into(),
        now: chrono::Utc::now(),
        threads: query_threads(args.threads),
    };
    let mut bad_lines = BadLineWarnings::default();
    let response = run_filter_query(&compiled, &inputs, &opts, |bad| bad_lines.note(&bad))?;
    bad_lines.finish();
    print_response(&response)?;
    Ok(ExitCode::SUCCESS)
}

impl From<ResultPosition> for detectd::eql::search::ResultPosition {
    fn from(p: ResultPosition) -> Self {
        match p {
            ResultPosition::Head => detectd::eql::search::ResultPosition::Head,
            ResultPosition::Tail => detectd::eql::search::ResultPosition::Tail,
        }
    }
}

/// Bad input lines: a warning each up to [`MAX_BAD_LINE_WARNINGS`], then
/// a count.
#[derive(Default)]
struct BadLineWarnings(u64);

impl BadLineWarnings {
    fn note(&mut self, bad: &detectd::source::files::BadLine) {
        self.0 += 1;
        if self.0 <= MAX_BAD_LINE_WARNINGS {
            eprintln!("detectd: warning: {bad}");
        }
    }

    fn finish(self) {
        if self.0 > MAX_BAD_LINE_WARNINGS {
            eprintln!(
                "detectd: warning: {} more lines skipped",
                self.0 - MAX_BAD_LINE_WARNINGS
            );
        }
    }
}

/// The answer on stdout, pretty JSON as Elasticsearch's EQL API prints it.
fn print_response(response: &detectd::eql::search::SearchResponse) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    serde_json::to_writer_pretty(&mut out, response)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
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

fn check(paths: Vec<PathBuf>, exceptions: Vec<PathBuf>) -> anyhow::Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("rules")]
    } else {
        paths
    };
    let stdout = std::io::stdout();
    let exceptions = (!exceptions.is_empty()).then_some(exceptions.as_slice());
    let summary = detectd::rule::check_paths_with(&paths, exceptions, &mut stdout.lock())?;
    Ok(if summary.failed > 0 || summary.list_errors > 0 {
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

fn notify(args: NotifyArgs) -> anyhow::Result<ExitCode> {
    use detectd::config::{Overrides, Settings};

    let settings = match Settings::load(config_path(args.config).as_deref(), Overrides::default()) {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let NotifyAction::Test { output } = args.action;
    let Some(o) = settings.notify.output(&output) else {
        let names: Vec<&str> = settings
            .notify
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        eprintln!(
            "detectd: no output named {output:?}: expected one of [{}]",
            names.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let out = detectd::notify::Output::new(o, settings.notify.delivery.timeout)?;
    // A key of its own per test, so a receiver that drops repeats still
    // shows each test.
    let key = format!("test/{}", uuid::Uuid::new_v4());
    let message = detectd::notify::message::sample(&key);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(out.send(&message)) {
        Ok(()) => {
            eprintln!(
                "sent a sample message to output {output:?} ({}), idempotency key {key}",
                o.kind.name()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("detectd: output {output:?} ({}): {e}", o.kind.name());
            Ok(ExitCode::from(1))
        }
    }
}

/// The settings of a command that only talks to the cluster: the config
/// file (or none) with `--elasticsearch-url` over it; an invalid config is
/// printed and is exit code 2.
fn cluster_command_settings(
    config: Option<PathBuf>,
    urls: Vec<String>,
) -> Result<detectd::config::Settings, ExitCode> {
    use detectd::config::{cluster::ClusterSettings, Overrides, Settings};

    let flags = Overrides {
        cluster: ClusterSettings {
            urls: (!urls.is_empty()).then_some(urls),
            ..ClusterSettings::default()
        },
        ..Overrides::default()
    };
    Settings::load(config_path(config).as_deref(), flags).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(2)
    })
}

fn dead_letters(args: DeadLettersArgs) -> anyhow::Result<ExitCode> {
    let settings = match cluster_command_settings(args.config, args.elasticsearch_url) {
        Ok(s) => s,
        Err(code) => return Ok(code),
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

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let settings = match cluster_command_settings(args.config, args.elasticsearch_url) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let read = runtime.block_on(async {
        let cluster = detectd::cluster::Cluster::connect(&settings.cluster).await?;
        detectd::coord::status::Status::read(
            &cluster,
            &settings.indices.state,
            &settings.indices.executions,
        )
        .await
    });
    match read {
        Ok(status) => {
            print!("{}", status.render(chrono::Utc::now()));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("detectd: cannot read the status: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    use detectd::config::{cluster::ClusterSettings, Overrides, Settings};
    use detectd::daemon::{self, Mode};

    let config = config_path(args.config);
    let flags = Overrides {
        rules: (!args.rules.is_empty()).then_some(args.rules),
        exceptions: (!args.exceptions.is_empty()).then_some(args.exceptions),
        listen: args.listen,
        log_format: args.log_format,
        log_level: args.log_level,
        concurrency: args.concurrency,
        no_sharing: args.no_shared_scans,
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

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use detectd::config::{cluster::ClusterSettings, Overrides, Settings};
    use detectd::explain::{self, ExplainOptions, FileVerdict};

    let now = match &args.now {
        None => chrono::Utc::now(),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("invalid --now {text:?}: expected RFC 3339"))?
            .with_timezone(&chrono::Utc),
    };
    let mut opts = ExplainOptions::at(now);
    opts.exceptions = args.exceptions;
    if let Some(path) = config_path(args.config) {
        let settings = match Settings::load(Some(&path), Overrides::default()) {
            Ok(s) => s,
            Err(e) => {
                eprint!("{e}");
                return Ok(ExitCode::from(2));
            }
        };
        opts.runner.catch_up_horizon = settings.catch_up_horizon;
        opts.space_id = settings.space_id.clone();
        opts.runner.alerts_index = settings.indices.alerts.clone();
        opts.daemon = Some(explain::DaemonConfig {
            file: path.display().to_string(),
            sharing: settings.sharing,
            realtime: settings.realtime,
        });
    }
    if let Some(space) = args.space_id {
        opts.runner.alerts_index =
            detectd::sink::alerts_index::AlertsLayout::for_space(&space).alias();
        opts.space_id = space;
    }
    let events = match &args.event {
        Some(path) => Some(explain::read_events(path)?),
        None => None,
    };
    let schemas = match &events {
        Some(events) => {
            let mut names: Vec<String> = events.iter().map(|e| e.doc.index.clone()).collect();
            names.sort();
            names.dedup();
            let mapping_args: Vec<detectd::offline::mappings::MappingArg> = args
                .mapping
                .iter()
                .map(|a| detectd::offline::mappings::MappingArg::parse(a))
                .collect();
            detectd::offline::mappings::load(&mapping_args, &names)?
        }
        None => detectd::offline::mappings::InputSchemas::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let source = if args.elasticsearch_url.is_empty() {
        None
    } else {
        let flags = Overrides {
            cluster: ClusterSettings {
                urls: Some(args.elasticsearch_url),
                ..ClusterSettings::default()
            },
            ..Overrides::default()
        };
        let settings = match Settings::load(None, flags) {
            Ok(s) => s,
            Err(e) => {
                eprint!("{e}");
                return Ok(ExitCode::from(2));
            }
        };
        Some(
            runtime
                .block_on(explain::cluster_source(&settings))
                .context("cannot connect to the cluster")?,
        )
    };
    let mut out = String::new();
    let verdict = runtime.block_on(explain::explain_file(
        &args.rule_file,
        &opts,
        source.as_ref(),
        events.as_deref().map(|e| (e, &schemas)),
        &mut out,
    ))?;
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(match verdict {
        FileVerdict::Explained => ExitCode::SUCCESS,
        FileVerdict::NotExplained => ExitCode::from(1),
    })
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
        exceptions: args.exceptions,
        indicators: args.indicators,
        threads: query_threads(args.threads),
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
    let file_errors = match summary.exception_file_errors {
        0 => String::new(),
        n => format!(", {n} exception file errors"),
    };
    eprintln!(
        "{} rules run, {} alerts, {} failed, {} skipped{file_errors}",
        summary.rules_run, summary.alerts, summary.rules_failed, summary.rules_skipped
    );
    Ok(
        if summary.rules_failed > 0 || summary.exception_file_errors > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("rules")]
    } else {
        args.paths
    };
    let opts = detectd::ruletest::TestOptions {
        require_tests: args.require_tests,
        exceptions: args.exceptions,
    };
    let stdout = std::io::stdout();
    let summary = detectd::ruletest::run_tests(&paths, &opts, &mut stdout.lock())?;
    Ok(if summary.ok(&opts) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
