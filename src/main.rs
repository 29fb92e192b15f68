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
}

#[derive(clap::Args)]
struct QueryArgs {
    /// NDJSON files to read (one JSON object per line); stdin when none.
    #[arg(long = "events", short = 'e', num_args = 1..)]
    events: Vec<PathBuf>,
    /// Field holding the event time.
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
    /// The EQL query.
    query: String,
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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("detectd: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn query(_args: QueryArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the query command is being wired up")
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
