//! Every EQL rule of the detection-rules corpus runs through `Runner`
//! without a panic and without a failed run, over memory (no cluster
//! needed): a few thousand synthetic endpoint events shared by all rules,
//! plus, per rule, documents made from its own query's literals so that a
//! good share of the rules actually alert. Prints how long it took.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use detectd::rule::{load_paths, LoadOutcome};
use detectd::runner::{RuleExecutor, RunStatus, Runner, RunnerSettings};
use detectd::sink::memory::MemorySink;
use detectd::source::memory::MemorySource;
use detectd::source::{DocRef, Document, EventSource, EventStream, FetchRequest, SourceError};
use detectd::state::MemoryStateStore;
use detectd::synth::{Synth, SynthConfig};
use detectd_integration_tests::gen::{Rng, Vocabulary};

/// The shared synthetic events, then the rule's own (all later in time),
/// whatever index patterns the rule names.
struct CorpusSource<'a> {
    shared: &'a MemorySource,
    own: MemorySource,
}

impl EventSource for CorpusSource<'_> {
    async fn fetch(&self, mut request: FetchRequest) -> Result<EventStream, SourceError> {
        request.indices = vec!["*".to_string()];
        let mut docs = self.shared.fetch(request.clone()).await?.collect().await?;
        docs.extend(self.own.fetch(request).await?.collect().await?);
        Ok(EventStream::from_documents(Vec::new(), docs))
    }

    async fn fetch_sources(&self, refs: &[DocRef]) -> Result<Vec<Document>, SourceError> {
        let mut out = self.shared.fetch_sources(refs).await?;
        out.extend(self.own.fetch_sources(refs).await?);
        Ok(out)
    }
}

fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/detection-rules-eql");
    dir.is_dir().then_some(dir)
}

fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_rule_runs_through_the_runner() {
    let Some(dir) = corpus_dir() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("detection-rules corpus missing beside the repo");
        }
        eprintln!("notice: skipping, ../shared/detection-rules-eql not found");
        return;
    };
    let rules: Vec<_> = load_paths(&[dir])
        .into_iter()
        .filter_map(|f| match f.outcome {
            LoadOutcome::Loaded { rule, .. } => Some(*rule),
            _ => None,
        })
        .collect();
    assert_eq!(rules.len(), 1081);

    let config = SynthConfig {
        attacks_per_10k: 50,
        ..SynthConfig::default()
    };
    let start_ms = config.start_ms;
    let shared = MemorySource::new(
        Synth::new(config)
            .take(3_000)
            .enumerate()
            .map(|(i, source)| Document {
                index: "logs-endpoint.events.synth".into(),
                id: format!("s{i}"),
                source,
            })
            .collect(),
    );
    let own_start = start_ms + 60_000;
    let now = DateTime::<Utc>::from_timestamp_millis(start_ms).unwrap() + Duration::minutes(3);

    let clock = Instant::now();
    let mut failed = Vec::new();
    let mut alerting = 0;
    let mut alerts = 0u64;
    let mut events = 0u64;
    let mut statuses = [0usize; 3];
    for (n, rule) in rules.iter().enumerate() {
        let vocab = Vocabulary::of(&rule.query);
        let category = rule
            .event_category_override
            .as_deref()
            .unwrap_or("event.category");
        let mut rng = Rng(n as u64 + 1);
        let own: Vec<Document> = (0..40)
            .map(|i| Document {
                index: "logs-own".into(),
                id: format!("r{n}-{i}"),
                source: vocab.document(&mut rng, &iso(own_start + i * 100), category),
            })
            .collect();
        let runner = Runner::new(
            CorpusSource {
                shared: &shared,
                own: MemorySource::new(own),
            },
            MemorySink::new(),
            MemoryStateStore::new(),
            RunnerSettings::default(),
        );
        let rec = runner.execute(rule, now).await;
        events += rec.events_fetched;
        alerts += rec.alerts_created;
        if rec.alerts_created > 0 {
            alerting += 1;
        }
        statuses[match rec.status {
            RunStatus::Succeeded => 0,
            RunStatus::PartialFailure => 1,
            RunStatus::Failed => 2,
        }] += 1;
        if rec.status == RunStatus::Failed {
            failed.push(format!(
                "{}: {}",
                rule.rule_id,
                rec.error.unwrap_or_default()
            ));
        }
    }
    let took = clock.elapsed();
    eprintln!(
        "corpus through the runner: {} rules in {:.1?} ({:.1} ms/rule, debug build unless --release); \
         succeeded {}, partial failure {}, failed {}; {} rules alerted, {} alerts, {} events fetched",
        rules.len(),
        took,
        took.as_secs_f64() * 1000.0 / rules.len() as f64,
        statuses[0],
        statuses[1],
        statuses[2],
        alerting,
        alerts,
        events
    );
    assert!(failed.is_empty(), "failed runs:\n{}", failed.join("\n"));
    assert!(alerting > 200, "only {alerting} rules alerted");
}
