//! EQL benchmarks: parse + semantic checks of the whole detection-rules
//! corpus, and event-query evaluation throughput on pre-built events.
//!
//! Times are CPU time of the (single-threaded) bench process, so figures
//! are per core even on a busy machine. Run with `cargo bench --bench eql`.
//! The corpus group reads
//! `../shared/detection-rules-eql` and is skipped with a notice when absent.

use std::path::{Path, PathBuf};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

#[path = "support/cpu_time.rs"]
mod cpu_time;

type Bench = Criterion<cpu_time::CpuTime>;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/detection-rules-eql")
}

/// Every `rule.query` of the EQL rules in the corpus.
fn corpus_queries() -> Vec<String> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(corpus_dir()).sort_by_file_name() {
        let Ok(entry) = entry else { continue };
        if entry.path().extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml::Table>() else {
            continue;
        };
        let rule = doc.get("rule").and_then(|r| r.as_table());
        if rule.and_then(|r| r.get("type")).and_then(|t| t.as_str()) != Some("eql") {
            continue;
        }
        if let Some(q) = rule.and_then(|r| r.get("query")).and_then(|q| q.as_str()) {
            out.push(q.to_string());
        }
    }
    out
}

fn bench_corpus(c: &mut Bench) {
    let queries = corpus_queries();
    if queries.is_empty() {
        eprintln!(
            "notice: {} not found; corpus benchmark skipped",
            corpus_dir().display()
        );
        return;
    }
    let bytes: usize = queries.iter().map(String::len).sum();
    let mut group = c.benchmark_group("corpus");
    group.sample_size(20);
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function(
        format!("parse+verify {} rules ({bytes} bytes)", queries.len()),
        |b| {
            b.iter(|| {
                for q in &queries {
                    let ast = detectd::eql::parse(black_box(q)).expect("corpus query parses");
                    black_box(detectd::eql::verify(&ast));
                }
            })
        },
    );
    group.finish();
}

/// Events of the synthetic ECS stream, built once for `query`'s fields.
fn prebuilt_events(
    query: &str,
    n: usize,
) -> (detectd::eql::compile::Plan, Vec<detectd::eql::event::Event>) {
    let ast = detectd::eql::parse(query).expect("bench query parses");
    let plan = detectd::eql::compile::compile(
        &ast,
        &detectd::eql::schema::Schema::default(),
        &detectd::eql::compile::CompileOptions::default(),
    )
    .expect("bench query compiles");
    let events = detectd::synth::Synth::new(detectd::synth::SynthConfig::default())
        .take(n)
        .map(|doc| plan.event(&doc))
        .collect();
    (plan, events)
}

/// Event-query evaluation on pre-built events: the per-event cost of a
/// typical rule condition, without JSON parsing.
fn bench_event_query(c: &mut Bench) {
    const N: usize = 200_000;
    let queries = [
        (
            "typical rule",
            r#"process where process.name : ("powershell.exe", "pwsh.exe", "cmd.exe") and process.args == "-arg""#,
        ),
        (
            "founding rule stage 2",
            r#"network where process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe") and destination.port == 135 and not destination.address in ("127.0.0.1", "::1")"#,
        ),
        (
            "wildcards and cidr",
            r#"any where host.os.type == "windows" and process.executable : "?:\\Windows\\System32\\*.exe" and not cidrmatch(destination.ip, "127.0.0.0/8", "::1/128")"#,
        ),
    ];
    let mut group = c.benchmark_group("event_query");
    group.throughput(Throughput::Elements(N as u64));
    for (name, query) in queries {
        let (plan, events) = prebuilt_events(query, N);
        let stage = &plan.stages[0];
        group.bench_function(name, |b| {
            b.iter(|| {
                events
                    .iter()
                    .filter(|e| stage.matches(black_box(e)))
                    .count()
            })
        });
    }
    group.finish();
}

/// The founding rule's sequence (issue 3, benchmark b).
const SEQ_2_STAGES: &str = r#"sequence by host.id, process.entity_id with maxspan=5s
  [library where dll.name : "taskschd.dll" and process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe")]
  [network where process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe") and destination.port == 135 and not destination.address in ("127.0.0.1", "::1")]"#;

/// Three stages and `until` (issue 3, benchmark c): busier stages, so many
/// partial sequences are pending at once.
const SEQ_3_STAGES_UNTIL: &str = r#"sequence by process.entity_id with maxspan=30s
  [process where process.name : ("powershell.exe", "cmd.exe")]
  [library where dll.name : ("ws2_32.dll", "crypt32.dll")]
  [network where destination.port in (443, 445, 3389)]
until [process where event.action == "end"]"#;

/// Sequence matching on pre-built events in time order: stage predicates,
/// join keys and the streaming matcher, per event.
fn bench_sequences(c: &mut Bench) {
    use detectd::eql::search::{ordinal, sequence_spec, sequence_stage_hits};
    use detectd::eql::sequence::{Limits, SequenceMatcher};
    use detectd::eql::value::Value;

    const N: usize = 1_000_000;
    let mut group = c.benchmark_group("sequence");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    for (name, query) in [
        (
            "2 stages by host.id, process.entity_id maxspan=5s",
            SEQ_2_STAGES,
        ),
        ("3 stages with until, maxspan=30s", SEQ_3_STAGES_UNTIL),
    ] {
        let (plan, events) = prebuilt_events(query, N);
        let ordinals: Vec<_> = events
            .iter()
            .enumerate()
            .map(|(i, e)| ordinal(e, i).expect("synthetic events have timestamps"))
            .collect();
        let spec = sequence_spec(&plan);
        let mut found = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut matcher: SequenceMatcher<Vec<Value>, usize> =
                    SequenceMatcher::new(spec.clone(), Limits::default()).expect("valid spec");
                let mut hits = Vec::new();
                for (i, (event, ord)) in events.iter().zip(&ordinals).enumerate() {
                    sequence_stage_hits(&plan, event, &mut hits);
                    matcher.push(i, ord, &hits);
                }
                matcher.finish();
                found = matcher.drain_completed().len();
                black_box(found)
            })
        });
        eprintln!("{name}: {found} sequences in {N} events");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(cpu_time::CpuTime);
    targets = bench_corpus, bench_event_query, bench_sequences
}
criterion_main!(benches);
