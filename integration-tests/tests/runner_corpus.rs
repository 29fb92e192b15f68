//! Every EQL rule of the detection-rules corpus runs through `Runner`
//! without a panic and without a failed run, over memory (no cluster
//! needed): a few thousand synthetic endpoint events shared by all rules,
//! plus, per rule, documents made from its own query's literals so that a
//! good share of the rules actually alert. Prints how long it took.
//!
//! With a cluster, the same runs write into one Kibana alerts index (as a
//! daemon running the corpus would): every alert must be accepted — odd
//! documents made from rule literals once fixed field types in a
//! dynamically mapped index and had later alerts refused.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use detectd::rule::Rule;
use detectd::rule::{load_paths, LoadOutcome};
use detectd::runner::{RuleExecutor, RunStatus, Runner, RunnerSettings};
use detectd::sink::alerts_index::BootstrapMode;
use detectd::sink::elasticsearch::{BulkSettings, ElasticsearchSink};
use detectd::sink::memory::MemorySink;
use detectd::sink::AlertSink;
use detectd::source::memory::MemorySource;
use detectd::source::{DocRef, Document, EventSource, EventStream, FetchRequest, SourceError};
use detectd::state::MemoryStateStore;
use detectd::synth::{Synth, SynthConfig};
use detectd_integration_tests::gen::{Rng, Vocabulary};
use detectd_integration_tests::{connect_or_skip, AlertsSpace};

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

/// The corpus rules, or `None` (with a notice) outside CI without the share.
fn corpus_rules() -> Option<Vec<Rule>> {
    let Some(dir) = corpus_dir() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("detection-rules corpus missing beside the repo");
        }
        eprintln!("notice: skipping, ../shared/detection-rules-eql not found");
        return None;
    };
    let rules: Vec<_> = load_paths(&[dir])
        .into_iter()
        .filter_map(|f| match f.outcome {
            LoadOutcome::Loaded { rule, .. } => Some(*rule),
            _ => None,
        })
        .collect();
    assert_eq!(rules.len(), 1081);
    Some(rules)
}

/// What the corpus runs did.
#[derive(Default)]
struct Totals {
    failed: Vec<String>,
    alerting: usize,
    alerts: u64,
    alerts_failed: u64,
    dead_lettered: u64,
    events: u64,
    statuses: [usize; 3],
}

/// Runs every rule once over the shared and its own events, writing
/// through the sink `sink()` gives (one per rule run).
async fn run_corpus<K: AlertSink>(
    rules: &[Rule],
    settings: RunnerSettings,
    sink: impl Fn() -> K,
) -> Totals {
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
    let mut t = Totals::default();
    for (n, rule) in rules.iter().enumerate() {
        let eql = rule.eql().expect("the EQL corpus holds EQL rules");
        let vocab = Vocabulary::of(&eql.query);
        let category = eql
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
            sink(),
            MemoryStateStore::new(),
            settings.clone(),
        );
        let rec = runner.execute(rule, now).await;
        t.events += rec.events_fetched;
        t.alerts += rec.alerts_created;
        t.alerts_failed += rec.alerts_failed;
        t.dead_lettered += rec.alerts_dead_lettered;
        if rec.alerts_created > 0 {
            t.alerting += 1;
        }
        t.statuses[match rec.status {
            RunStatus::Succeeded => 0,
            RunStatus::PartialFailure => 1,
            RunStatus::Failed => 2,
        }] += 1;
        if rec.status == RunStatus::Failed {
            t.failed.push(format!(
                "{}: {}",
                rule.rule_id,
                rec.error.unwrap_or_default()
            ));
        }
    }
    let took = clock.elapsed();
    eprintln!(
        "corpus through the runner: {} rules in {:.1?} ({:.1} ms/rule, debug build unless --release); \
         succeeded {}, partial failure {}, failed {}; {} rules alerted, {} alerts, {} refused \
         ({} dead-lettered), {} events fetched",
        rules.len(),
        took,
        took.as_secs_f64() * 1000.0 / rules.len() as f64,
        t.statuses[0],
        t.statuses[1],
        t.statuses[2],
        t.alerting,
        t.alerts,
        t.alerts_failed,
        t.dead_lettered,
        t.events
    );
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_rule_runs_through_the_runner() {
    let Some(rules) = corpus_rules() else {
        return;
    };
    let t = run_corpus(&rules, RunnerSettings::default(), MemorySink::new).await;
    assert!(t.failed.is_empty(), "failed runs:\n{}", t.failed.join("\n"));
    assert!(t.alerting > 200, "only {} rules alerted", t.alerting);
}

/// The same runs into one Kibana alerts index on the cluster: no alert is
/// refused (before the alerts index was Kibana's, 48 alerts of 3 rules
/// were refused and dropped here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_alert_is_accepted_by_kibanas_alerts_index() {
    let Some(cluster) = connect_or_skip("every_corpus_alert_is_accepted").await else {
        return;
    };
    let Some(rules) = corpus_rules() else {
        return;
    };
    let space = AlertsSpace::new("corpus");
    let spec = space.spec(&cluster, BootstrapMode::Create);
    let settings = RunnerSettings {
        alerts_index: space.alias(),
        space_id: space.space().to_string(),
        ..RunnerSettings::default()
    };
    let t = run_corpus(&rules, settings, || {
        ElasticsearchSink::new(cluster.clone(), BulkSettings::default(), spec.clone())
    })
    .await;
    space.delete(&cluster).await;
    assert!(t.failed.is_empty(), "failed runs:\n{}", t.failed.join("\n"));
    assert!(t.alerting > 200, "only {} rules alerted", t.alerting);
    assert_eq!(
        (t.alerts_failed, t.dead_lettered),
        (0, 0),
        "alerts refused by the alerts index"
    );
}
