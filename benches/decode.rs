//! NDJSON decoding throughput: `serde_json::Value` + `build_event` against
//! `decode_event`, on the synthetic ECS stream with the founding rule's
//! fields (plus `@timestamp` and `event.category`).
//!
//! Run with `cargo bench --bench decode`; throughput is in bytes of NDJSON
//! (newlines included). The `decode` group measures wall time as usual;
//! `decode_cpu` measures the same routines in process CPU time, which other
//! processes sharing the cores do not inflate.

use std::time::Duration;

#[path = "support/cpu_time.rs"]
mod cpu_time;

use criterion::measurement::Measurement;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use detectd::eql::compile::{compile, CompileOptions, Plan};
use detectd::eql::schema::Schema;
use detectd::synth::{Synth, SynthConfig};

const FOUNDING_RULE: &str = r#"sequence by host.id, process.entity_id with maxspan=5s [library where dll.name : "taskschd.dll" and process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe")] [network where process.name : ("powershell.exe", "pwsh.exe", "powershell_ise.exe") and destination.port == 135 and not destination.address in ("127.0.0.1", "::1")]"#;

/// Lines of the synthetic stream, as a file would hold them.
fn ndjson(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for doc in Synth::new(SynthConfig::default()).take(n) {
        serde_json::to_writer(&mut out, &doc).expect("synthetic event serialises");
        out.push(b'\n');
    }
    out
}

fn plan() -> Plan {
    let ast = detectd::eql::parse(FOUNDING_RULE).expect("founding rule parses");
    compile(&ast, &Schema::default(), &CompileOptions::default()).expect("founding rule compiles")
}

/// The synthetic lines (newline-terminated) and the founding rule's plan,
/// after checking that both builders agree on every line.
fn setup() -> (Vec<u8>, Plan) {
    const N: usize = 20_000;
    let data = ndjson(N);
    let plan = plan();
    let fields = plan.fields();
    // the two must agree before their speed means anything
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let doc: serde_json::Value = serde_json::from_slice(line).expect("synthetic line parses");
        assert_eq!(
            fields.decode_event(line).expect("synthetic line decodes"),
            fields.build_event(&doc)
        );
    }
    (data, plan)
}

fn bench_decode<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let (data, plan) = setup();
    let fields = plan.fields();
    // split once: the benchmark is about decoding, not finding newlines
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();

    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("serde_json::Value + build_event", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for &line in &lines {
                let doc: serde_json::Value =
                    serde_json::from_slice(black_box(line)).expect("synthetic line parses");
                n += fields.build_event(&doc).timestamp.is_some() as usize;
            }
            n
        })
    });
    group.bench_function("decode_event", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for &line in &lines {
                let e = fields
                    .decode_event(black_box(line))
                    .expect("synthetic line decodes");
                n += e.timestamp.is_some() as usize;
            }
            n
        })
    });
    group.finish();
}

fn bench_decode_wall(c: &mut Criterion) {
    bench_decode(c, "decode");
}

fn bench_decode_cpu(c: &mut Criterion<cpu_time::CpuTime>) {
    bench_decode(c, "decode_cpu");
}

criterion_group!(wall, bench_decode_wall);
criterion_group! {
    name = cpu;
    config = Criterion::default()
        .with_measurement(cpu_time::CpuTime)
        .measurement_time(Duration::from_secs(10));
    targets = bench_decode_cpu
}
criterion_main!(wall, cpu);
