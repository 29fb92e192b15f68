//! EQL benchmarks: parse + semantic checks of the whole detection-rules
//! corpus, and event-query evaluation throughput on pre-built events.
//!
//! Run with `cargo bench --bench eql`. The corpus group reads
//! `../shared/detection-rules-eql` and is skipped with a notice when absent.

use std::path::{Path, PathBuf};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

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

fn bench_corpus(c: &mut Criterion) {
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
fn bench_event_query(c: &mut Criterion) {
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

criterion_group!(benches, bench_corpus, bench_event_query);
criterion_main!(benches);
