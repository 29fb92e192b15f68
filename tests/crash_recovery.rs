//! Crash recovery of `detectd run --once` (issue 6): SIGKILL at random
//! points of a run, then a restart, must end with exactly the alerts of a
//! run that was never killed. Against the cluster at ELASTICSEARCH_URL
//! (skipped without one, outside CI).
//!
//! The data: about 30 minutes of generated endpoint events (founding-rule
//! attacks among them, two hand-placed attacks straddling a window
//! boundary, and a burst of large events), all ending 17 minutes before the
//! test starts. Four rules run over it, each catching up from a checkpoint
//! 50 minutes old, one 5-minute window after the other: the founding
//! sequence rule, an event rule with more matches per window than its
//! `max_signals` (cap, then continue in the next window), a capped sequence
//! rule (shells and building blocks) and a rule whose window's alerts need
//! several bulk requests.
//!
//! Every window of a run ends on the same grid (the seeded checkpoint plus
//! whole intervals) however often the process is killed, and the windows
//! that end at the time of the run (off the grid) hold no events, so a
//! killed run and a clean run must write the same alerts.
//!
//! Where each kill landed is read from the run's debug log lines (`window
//! started`, `writing alerts`, ...) and printed. `CRASH_TEST_SEED` repeats
//! a run's kill delays; `DETECTD_BIN` runs another build of the binary.

#[path = "common/process.rs"]
mod process;

use process::*;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use detectd::cluster::Cluster;
use detectd::sink::elasticsearch::{install_templates, IndexNames};
use detectd::state::{Checkpoint, ClusterStateStore, FileStateStore, StateStore};
use elasticsearch::http::Method;
use serde_json::{json, Value};

/// SIGKILLs in all (over several trials).
const KILLS: usize = 20;
/// Kills that must land inside a rule run (after `rule run started`,
/// before its `rule run finished`) for the test to mean anything.
const MIN_MID_RUN_KILLS: usize = 8;
const INTERVAL_MIN: i64 = 5;

/// splitmix64: the kill delays, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Es {
    rt: tokio::runtime::Runtime,
    cluster: Cluster,
}

impl Es {
    fn connect(url: &str) -> Es {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let settings = detectd::config::cluster::ClusterSettings {
            urls: Some(vec![url.to_string()]),
            request_timeout_secs: Some(120.0),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let cluster = rt.block_on(Cluster::connect(&settings)).unwrap();
        Es { rt, cluster }
    }

    fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Value {
        let raw = self
            .rt
            .block_on(
                self.cluster
                    .send_raw(method, path, &[], body, Some("application/x-ndjson")),
            )
            .unwrap();
        serde_json::from_slice(&raw.body).unwrap_or(Value::Null)
    }

    fn bulk(&self, body: String) {
        let r = self.request(Method::Post, "/_bulk", Some(body.into_bytes()));
        assert_eq!(
            r["errors"],
            false,
            "bulk load refused: {:.300}",
            r.to_string()
        );
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn iso(ms: i64) -> String {
    detectd::synth::iso_millis(ms)
}

/// Loads the events; returns the `_id`s of the attacks placed across a
/// window boundary (library, network).
fn load_events(es: &Es, index: &str, c0: DateTime<Utc>) -> Vec<(String, String)> {
    let minute = 60_000;
    let (from, to) = (ms(c0) + 3 * minute, ms(c0) + 33 * minute);
    let action = |id: Option<&str>| match id {
        Some(id) => format!("{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{id}\"}}}}\n"),
        None => format!("{{\"index\":{{\"_index\":\"{index}\"}}}}\n"),
    };
    let synth = detectd::synth::Synth::new(detectd::synth::SynthConfig {
        seed: 6,
        start_ms: from,
        // about 4,000 events: a server indexes them in seconds
        mean_gap_ms: 450,
        hosts: 10,
        attacks_per_10k: 40,
        ..Default::default()
    });
    let mut body = String::new();
    let mut n = 0;
    for ev in synth {
        let ts = ev["@timestamp"].as_str().unwrap();
        let ts = DateTime::parse_from_rfc3339(ts).unwrap().timestamp_millis();
        if ts >= to {
            break;
        }
        body.push_str(&action(None));
        body.push_str(&ev.to_string());
        body.push('\n');
        n += 1;
        if n % 5_000 == 0 {
            es.bulk(std::mem::take(&mut body));
        }
    }
    // Founding-rule attacks whose two events fall in two windows (the
    // library load 2 s before a window end, the connection 1 s after): the
    // window holding the second event must find the sequence, once.
    let mut straddling = Vec::new();
    for (i, boundary) in [15, 25].into_iter().enumerate() {
        let at = ms(c0) + boundary * minute;
        let (host, entity) = (format!("crash-host-{i}"), format!("crash-proc-{i}"));
        let lib = detectd::synth::founding_library(&iso(at - 2_000), &host, &entity, "pwsh.exe");
        let net = detectd::synth::founding_network(
            &iso(at + 1_000),
            &host,
            &entity,
            "pwsh.exe",
            "10.9.9.9",
            135,
        );
        let ids = (format!("straddle-{i}-lib"), format!("straddle-{i}-net"));
        for (id, ev) in [(&ids.0, lib), (&ids.1, net)] {
            body.push_str(&action(Some(id)));
            body.push_str(&ev.to_string());
            body.push('\n');
        }
        straddling.push(ids);
    }
    es.bulk(std::mem::take(&mut body));
    // A burst of large events (120 KB each) across the window boundary at
    // minute 20: each window holding it writes more alerts than one bulk
    // request carries (5 MB), so a kill can fall between two requests.
    let pad = "x".repeat(120_000);
    for i in 0..100i64 {
        let at = ms(c0) + 19 * minute + i * 1_200;
        let ev = json!({
            "@timestamp": iso(at),
            "event": {"category": "file", "kind": "event", "action": "creation"},
            "host": {"id": "crash-host-bulky", "name": "ws-bulky"},
            "process": {"name": "backup.exe", "entity_id": "crash-proc-bulky", "pid": 77},
            "file": {"name": "crash-bulky.bin", "path": format!("C:\\dump\\{i}.bin")},
            "message": pad,
        });
        body.push_str(&action(None));
        body.push_str(&ev.to_string());
        body.push('\n');
        if i % 20 == 19 {
            es.bulk(std::mem::take(&mut body));
        }
    }
    es.request(Method::Post, &format!("/{index}/_refresh"), None);
    straddling
}

/// The rules, as `(rule_id, file text)`.
fn rules(events_index: &str) -> Vec<(String, String)> {
    let founding = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("rules/execution_scheduled_task_powershell.toml"),
    )
    .unwrap();
    let patterns = "index = [\"winlogbeat-*\", \"logs-endpoint.events.*\", \"logs-windows.*\"]";
    assert!(
        founding.contains(patterns),
        "the founding rule's index line moved"
    );
    let founding = founding
        .replace(patterns, &format!("index = [\"{events_index}\"]"))
        .replace("5cd55388-a19c-47c7-8ec4-f41656c2fded", "it-crash-founding");
    let rule = |id: &str, max_signals: u32, query: &str| {
        format!(
            "[rule]\nauthor = [\"detectd tests\"]\ndescription = \"crash recovery: {id}\"\n\
             from = \"now-9m\"\ninterval = \"{INTERVAL_MIN}m\"\nindex = [\"{events_index}\"]\n\
             language = \"eql\"\nlicense = \"Apache-2.0\"\nmax_signals = {max_signals}\n\
             name = \"{id}\"\nrisk_score = 21\nrule_id = \"{id}\"\nseverity = \"low\"\n\
             type = \"eql\"\nquery = '''\n{query}\n'''\n"
        )
    };
    vec![
        ("it-crash-founding".to_string(), founding),
        (
            "it-crash-flood".to_string(),
            // about 80 new matches per 5-minute window, 50 written at most
            rule(
                "it-crash-flood",
                50,
                "network where destination.port in (3389, 445, 22, 80)",
            ),
        ),
        (
            "it-crash-seq-capped".to_string(),
            rule(
                "it-crash-seq-capped",
                3,
                "sequence by host.id with maxspan=60s\n  \
                 [process where process.name : (\"cmd.exe\", \"powershell.exe\")]\n  \
                 [network where destination.port == 22]",
            ),
        ),
        (
            "it-crash-bulky".to_string(),
            rule(
                "it-crash-bulky",
                200,
                "file where file.name == \"crash-bulky.bin\"",
            ),
        ),
    ]
}

/// One installation: its own alerts, state and executions, and config.
struct Setup {
    name: String,
    /// The Kibana space: alerts go to `.alerts-security.alerts-<space>`.
    space: String,
    names: IndexNames,
    /// `Some(dir)`: `state.backend = "file"`.
    state_dir: Option<PathBuf>,
    config: PathBuf,
    logs: PathBuf,
    runs: usize,
    /// The file output every alert group is announced to.
    notifications: PathBuf,
}

impl Setup {
    fn new(root: &Path, name: &str, tag: &str, url: &str, rules: &Path, file: bool) -> Setup {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        // One space for all setups: event alert ids hash the space, and a
        // trial must give the clean run's ids. Setups run one after the
        // other, each deleting its alerts layout when done.
        let space = format!("it-crash-{tag}");
        let names = IndexNames {
            state: format!("it-crash-{name}-state-{tag}"),
            executions: format!("it-crash-{name}-exec-{tag}"),
            dead_letters: format!("it-crash-{name}-dead-{tag}"),
        };
        let state_dir = file.then(|| dir.join("state"));
        let state = match &state_dir {
            Some(d) => format!(
                "[state]\nbackend = \"file\"\npath = {:?}\n",
                d.display().to_string()
            ),
            None => "[state]\nbackend = \"cluster\"\n".to_string(),
        };
        let config = dir.join("detectd.toml");
        let notifications = dir.join("notifications.ndjson");
        // Every alert group to a file output, one line per message sent.
        let notify = format!(
            "[[outputs]]\nname = \"groups\"\nkind = \"file\"\npath = {:?}\n\
             [[routes]]\nname = {ROUTE:?}\noutputs = [\"groups\"]\n",
            notifications.display().to_string()
        );
        std::fs::write(
            &config,
            format!(
                "rules = [{rules:?}]\nspace_id = {space:?}\n[elasticsearch]\nurls = [{url:?}]\n\
                 [indices]\nstate = {:?}\nexecutions = {:?}\ndead_letters = {:?}\n{state}\
                 [log]\nformat = \"json\"\nlevel = \"info,detectd=debug\"\n{notify}",
                names.state,
                names.executions,
                names.dead_letters,
                rules = rules.display().to_string(),
            ),
        )
        .unwrap();
        Setup {
            name: name.to_string(),
            space,
            names,
            state_dir,
            config,
            logs: dir,
            runs: 0,
            notifications,
        }
    }

    /// The idempotency keys of the messages sent, in the order sent.
    fn messages(&self) -> Vec<String> {
        match std::fs::read_to_string(&self.notifications) {
            Ok(text) => text
                .lines()
                .map(|l| {
                    let v: Value = serde_json::from_str(l).expect("a whole message line");
                    v["idempotency_key"].as_str().unwrap().to_string()
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("reading {}: {e}", self.notifications.display()),
        }
    }

    fn backend(&self) -> &'static str {
        if self.state_dir.is_some() {
            "file"
        } else {
            "cluster"
        }
    }

    /// Starts `run --once`; its JSON log goes to the returned file.
    fn spawn(&mut self) -> (Child, PathBuf) {
        self.runs += 1;
        let log = self.logs.join(format!("run-{}.log", self.runs));
        let child = Command::new(detectd_bin())
            .args(["run", "--once", "--config"])
            .arg(&self.config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (child, log)
    }

    /// Every rule's checkpoint, read as detectd reads it: an `Err` is a
    /// checkpoint detectd could not parse (a half-written one).
    fn checkpoints(&self, es: &Es, rule_ids: &[String]) -> Vec<Result<Option<Checkpoint>, String>> {
        rule_ids
            .iter()
            .map(|id| {
                let got = match &self.state_dir {
                    Some(dir) => {
                        let store = FileStateStore::open(dir).map_err(|e| e.to_string())?;
                        es.rt.block_on(store.checkpoint(id))
                    }
                    None => {
                        let store = ClusterStateStore::new(es.cluster.clone(), &self.names);
                        es.rt.block_on(store.checkpoint(id))
                    }
                };
                got.map_err(|e| e.to_string())
            })
            .collect()
    }

    /// The templates detectd installs, and every rule's checkpoint at `c0`.
    fn seed(&self, es: &Es, rule_ids: &[String], c0: DateTime<Utc>) {
        es.rt
            .block_on(install_templates(&es.cluster, &self.names))
            .unwrap();
        for id in rule_ids {
            let checkpoint = Checkpoint {
                threshold_history: Vec::new(),
                rule_id: id.clone(),
                covered_until: c0,
                updated_at: c0,
                pending: None,
            };
            match &self.state_dir {
                Some(dir) => es.rt.block_on(
                    FileStateStore::open(dir)
                        .unwrap()
                        .save_checkpoint(&checkpoint),
                ),
                None => es.rt.block_on(
                    ClusterStateStore::new(es.cluster.clone(), &self.names)
                        .save_checkpoint(&checkpoint),
                ),
            }
            .unwrap();
        }
    }

    /// Every alert: `_id`s in the order the index gives them (repeats kept)
    /// and the documents by id.
    fn alerts(&self, es: &Es) -> (Vec<String>, BTreeMap<String, Value>) {
        let index = &format!(".alerts-security.alerts-{}", self.space);
        // refreshed first, so the count and search see every write
        es.request(Method::Post, &format!("/{index}/_refresh"), None);
        let count = es.request(Method::Get, &format!("/{index}/_count"), None)["count"]
            .as_u64()
            .unwrap();
        assert!(count < 10_000, "{count} alerts: more than one search page");
        let body = json!({"size": 10_000, "query": {"match_all": {}}});
        let found = es.request(
            Method::Post,
            &format!("/{index}/_search"),
            Some(body.to_string().into_bytes()),
        );
        let hits = found["hits"]["hits"].as_array().unwrap();
        assert_eq!(hits.len() as u64, count, "search and count disagree");
        let ids: Vec<String> = hits
            .iter()
            .map(|h| h["_id"].as_str().unwrap().to_string())
            .collect();
        let docs = hits
            .iter()
            .map(|h| (h["_id"].as_str().unwrap().to_string(), h["_source"].clone()))
            .collect();
        (ids, docs)
    }

    /// Lines of `executions.ndjson` that are not JSON (a torn append).
    fn torn_execution_lines(&self) -> Vec<String> {
        let Some(dir) = &self.state_dir else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("executions.ndjson"))
            .unwrap_or_default()
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).is_err())
            .map(|l| format!("{l:.200}"))
            .collect()
    }

    fn delete(&self, es: &Es) {
        let n = &self.names;
        // The backing index by name: a wildcard does not match hidden indices.
        let backing = format!(".internal.alerts-security.alerts-{}-000001", self.space);
        es.request(Method::Delete, &format!("/{backing}"), None);
        for index in [&n.state, &n.executions, &n.dead_letters] {
            es.request(Method::Delete, &format!("/{index}*"), None);
        }
        for template in [&n.state, &n.executions, &n.dead_letters] {
            es.request(
                Method::Delete,
                &format!("/_index_template/{template}-template"),
                None,
            );
        }
        es.request(
            Method::Delete,
            &format!(
                "/_index_template/.alerts-security.alerts-{}-index-template",
                self.space
            ),
            None,
        );
    }
}

/// The binary under test: cargo's, or `DETECTD_BIN` (a release build, or a
/// copy that another build into a shared target directory cannot replace
/// while the test runs).
/// The route every alert group is announced on.
const ROUTE: &str = "all";

/// The idempotency keys the alert groups of `docs` are announced with: one
/// per shell or event alert (building blocks ride with their shell).
fn group_keys(docs: &BTreeMap<String, Value>) -> BTreeSet<String> {
    docs.iter()
        .filter(|(_, d)| d.get("kibana.alert.building_block_type").is_none())
        .map(|(id, _)| format!("{ROUTE}/{id}"))
        .collect()
}

/// Checks the messages of a run against its alert groups: each group has
/// a message, no message is for anything else; returns how many messages
/// repeat a key already sent (what the receiver drops by its key).
fn check_messages(name: &str, setup: &Setup, docs: &BTreeMap<String, Value>) -> usize {
    let sent = setup.messages();
    let keys: BTreeSet<String> = sent.iter().cloned().collect();
    let expected = group_keys(docs);
    let missing: Vec<&String> = expected.difference(&keys).collect();
    let extra: Vec<&String> = keys.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{name}: {} alert groups without a message {missing:?}, {} messages for no group {extra:?}",
        missing.len(),
        extra.len()
    );
    sent.len() - keys.len()
}

fn detectd_bin() -> PathBuf {
    std::env::var_os("DETECTD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_detectd")))
}

/// The rule a log line is about: its own `rule_id` field, or that of the
/// `rule_run` span it was logged in (bulk requests).
fn line_rule(line: &Value) -> Option<&str> {
    line["rule_id"].as_str().or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|s| s["rule_id"].as_str())
    })
}

/// Where one rule's run was when the process died, from its last log line.
fn rule_phase(log: &[Value], rule_id: &str) -> &'static str {
    let last = log
        .iter()
        .filter(|l| line_rule(l) == Some(rule_id))
        .filter_map(|l| l["message"].as_str())
        .next_back();
    match last {
        None => "not started",
        Some("rule run started") => "reading the checkpoint",
        Some("windows planned") | Some("checkpoint saved") => "between windows",
        Some("window started") => "fetch and match",
        Some("window matched") => "dedup and source reads",
        Some("writing alerts") => "first bulk request",
        Some("bulk request done") => "later bulk request, or after the bulk",
        Some("window alerts written") => "checkpoint write",
        Some("storing the execution record") => "execution record write",
        Some("rule run finished") => "finished",
        Some(_) => "other",
    }
}

fn in_run(phase: &str) -> bool {
    !matches!(phase, "not started" | "finished")
}

/// Fields that legitimately differ between two runs writing the same alert:
/// all stamped from the run, not from the events or the rule.
const PER_RUN_FIELDS: &[&str] = &[
    // the time the alert was written (Kibana: the run's start time)
    "@timestamp",
    // when the alert started / was last seen: the writing run's time
    "kibana.alert.start",
    "kibana.alert.last_detected",
    // the run's scheduled time and start time
    "kibana.alert.intended_timestamp",
    "kibana.alert.rule.execution.timestamp",
    // a fresh uuid per run
    "kibana.alert.rule.execution.uuid",
    // a rule Kibana never saw and without `[metadata]` dates: the run's time
    "kibana.alert.rule.created_at",
    "kibana.alert.rule.updated_at",
];

fn without_per_run_fields(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(map) = doc.as_object_mut() {
        for f in PER_RUN_FIELDS {
            map.remove(*f);
        }
        // a shell's original time is its first building block's creation
        // time (as Kibana reads it), so the writing run's too
        if map.contains_key("kibana.alert.group.id")
            && !map.contains_key("kibana.alert.group.index")
        {
            map.remove("kibana.alert.original_time");
        }
    }
    doc
}

/// What an alert is about, independent of its id: the rule, the position
/// in its group and the events. Two alerts with the same identity are a
/// duplicate even when their ids differ.
fn identity(doc: &Value) -> String {
    let events: Vec<String> = doc["kibana.alert.ancestors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["type"] == "event")
                .map(|x| format!("{}/{}", x["index"], x["id"]))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "{} {} {} {}",
        doc["kibana.alert.rule.rule_id"],
        doc["kibana.alert.building_block_type"],
        doc["kibana.alert.group.index"],
        events.join(",")
    )
}

/// The trial's alerts equal the clean run's: same ids, none twice (by id or
/// by what they alert on), same documents apart from [`PER_RUN_FIELDS`].
fn assert_same_alerts(
    trial: &str,
    clean: &BTreeMap<String, Value>,
    ids: &[String],
    docs: &BTreeMap<String, Value>,
) {
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "{trial}: an alert _id is stored more than once"
    );
    let mut seen = HashSet::new();
    for doc in docs.values() {
        let who = identity(doc);
        assert!(seen.insert(who.clone()), "{trial}: alerted twice: {who}");
    }
    let missing: Vec<&String> = clean.keys().filter(|k| !docs.contains_key(*k)).collect();
    let extra: Vec<(&String, String)> = docs
        .iter()
        .filter(|(k, _)| !clean.contains_key(*k))
        .map(|(k, d)| (k, identity(d)))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{trial}: {} alerts of the clean run missing, {} extra (clean {}, here {}); \
         missing {:?}; extra {:?}",
        missing.len(),
        extra.len(),
        clean.len(),
        docs.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.iter().take(5).collect::<Vec<_>>(),
    );
    for (id, doc) in docs {
        assert_eq!(
            without_per_run_fields(doc),
            without_per_run_fields(&clean[id]),
            "{trial}: alert {id} differs from the clean run's"
        );
    }
}

/// Runs `run --once` (no kill) until every rule ran without failing and
/// its checkpoint reached `caught_up`; returns the last run's log.
fn run_to_the_end(
    setup: &mut Setup,
    es: &Es,
    rule_ids: &[String],
    caught_up: DateTime<Utc>,
) -> Vec<Value> {
    for _ in 0..3 {
        let (mut child, log_path) = setup.spawn();
        let status = child.wait().unwrap();
        let log = json_lines(&log_path);
        let finished: Vec<&Value> = log
            .iter()
            .filter(|l| l["message"] == "rule run finished")
            .collect();
        let checkpoints = setup.checkpoints(es, rule_ids);
        let done = status.code() == Some(0)
            && finished.len() == rule_ids.len()
            && finished.iter().all(|l| l["status"] != "failed")
            && checkpoints
                .iter()
                .all(|c| matches!(c, Ok(Some(c)) if c.covered_until >= caught_up));
        if done {
            return log;
        }
        eprintln!(
            "{}: run {} did not complete the catch-up ({status}): {finished:?} {checkpoints:?}",
            setup.name, setup.runs
        );
    }
    panic!("{}: no run completed the catch-up in 3 tries", setup.name);
}

/// The fixture does what it is for: the cap is reached, sequences are
/// found across a window boundary, a window needs several bulk requests.
fn check_the_fixture(
    clean_log: &[Value],
    clean_docs: &BTreeMap<String, Value>,
    straddling: &[(String, String)],
) {
    let finished = |rule: &str| {
        clean_log
            .iter()
            .find(|l| l["message"] == "rule run finished" && l["rule_id"] == rule)
            .unwrap()
            .clone()
    };
    for rule in ["it-crash-flood", "it-crash-seq-capped"] {
        let run = finished(rule);
        assert!(run["alerts_capped"].as_u64().unwrap() > 0, "{run}");
    }
    for (lib, net) in straddling {
        let shells = clean_docs
            .values()
            .filter(|d| {
                d["kibana.alert.depth"] == 2 && {
                    let a = d["kibana.alert.ancestors"].to_string();
                    a.contains(lib.as_str()) && a.contains(net.as_str())
                }
            })
            .count();
        assert_eq!(shells, 1, "the sequence {lib} -> {net} across windows");
    }
    let bulky_requests = clean_log
        .iter()
        .filter(|l| l["message"] == "bulk request done" && line_rule(l) == Some("it-crash-bulky"))
        .count();
    // "window alerts written" carries the run's running total
    let mut created_so_far = 0;
    let mut bulky_windows = 0;
    for l in clean_log
        .iter()
        .filter(|l| l["message"] == "window alerts written" && l["rule_id"] == "it-crash-bulky")
    {
        let total = l["alerts_created"].as_u64().unwrap();
        bulky_windows += usize::from(total > created_so_far);
        created_so_far = total;
    }
    assert!(
        bulky_requests > bulky_windows,
        "{bulky_requests} bulk requests for {bulky_windows} windows with alerts"
    );
}

/// Starts `run --once`, SIGKILLs it after `delay`, and tells where it was:
/// whether the kill came before the process exited, a summary, and the
/// phases of the rule runs it was inside (empty when it died before any
/// run started or after every run).
fn kill_after(
    setup: &mut Setup,
    delay: Duration,
    rule_ids: &[String],
) -> (bool, String, Vec<&'static str>) {
    let (mut child, log_path) = setup.spawn();
    std::thread::sleep(delay);
    // An exited but unreaped child still has its pid: no race.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let log = json_lines(&log_path);
    let phases: Vec<&'static str> = rule_ids.iter().map(|r| rule_phase(&log, r)).collect();
    let summary = if status.signal() != Some(libc::SIGKILL) {
        "exited before the kill".to_string()
    } else if !log.iter().any(|l| l["message"] == "rule run started") {
        "start-up (no run started)".to_string()
    } else if phases.iter().all(|p| *p == "finished") {
        "after every run".to_string()
    } else {
        rule_ids
            .iter()
            .zip(&phases)
            .map(|(r, p)| format!("{}: {p}", r.trim_start_matches("it-crash-")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let killed = status.signal() == Some(libc::SIGKILL);
    let inside = if killed {
        phases.into_iter().filter(|p| in_run(p)).collect()
    } else {
        Vec::new()
    };
    (killed, summary, inside)
}

/// Issue 6: `detectd run --once` SIGKILLed 20 times at random points (over
/// trials of one to three kills in a row, each followed by a restart that
/// runs to the end; an attempt that exits before its kill ends the trial
/// and is not counted) leaves exactly the alerts of a clean run: no alert
/// missing, none extra, none twice, documents equal but for per-run
/// fields; every checkpoint parses after every kill, and each trial's
/// checkpoints end where the clean run's do (past the data, on time).
/// The kills must spread over the phases of a run: at least
/// [`MIN_MID_RUN_KILLS`] of them inside a rule run.
#[test]
fn sigkill_at_random_points_then_restart_writes_exactly_the_clean_runs_alerts() {
    let Some(url) = cluster_url() else { return };
    let seed = std::env::var("CRASH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test seed {seed} (CRASH_TEST_SEED={seed} repeats the kill delays)");
    let mut rng = Rng(seed);
    let es = Es::connect(&url);
    let tag = format!("{}-{}", std::process::id(), seed % 100_000);
    let t0 = Utc::now();
    let c0 = t0 - TimeDelta::minutes(10 * INTERVAL_MIN);
    let events_index = format!("it-crash-events-{tag}");
    let clock = Instant::now();
    let straddling = load_events(&es, &events_index, c0);
    eprintln!("events loaded in {:?}", clock.elapsed());

    let root = tempfile::tempdir().unwrap();
    let rules_dir = root.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let rules = rules(&events_index);
    for (id, text) in &rules {
        std::fs::write(rules_dir.join(format!("{id}.toml")), text).unwrap();
    }
    let rule_ids: Vec<String> = rules.iter().map(|(id, _)| id.clone()).collect();

    // The clean run: the reference, and how long a whole run takes.
    let mut clean = Setup::new(root.path(), "clean", &tag, &url, &rules_dir, false);
    clean.seed(&es, &rule_ids, c0);
    let started = Instant::now();
    let clean_log = run_to_the_end(&mut clean, &es, &rule_ids, t0);
    let clean_duration = started.elapsed();
    assert_eq!(clean.runs, 1, "the clean run failed once");
    let (clean_ids, clean_docs) = clean.alerts(&es);
    let clean_checkpoints: Vec<Checkpoint> = clean
        .checkpoints(&es, &rule_ids)
        .into_iter()
        .map(|c| c.unwrap().unwrap())
        .collect();
    assert_same_alerts("clean run", &clean_docs, &clean_ids, &clean_docs);
    assert_eq!(
        check_messages("clean run", &clean, &clean_docs),
        0,
        "the clean run sent a message twice"
    );
    // read: its alerts layout makes room for the trials' (the same space)
    clean.delete(&es);
    let by_rule = |rule: &str| {
        clean_docs
            .values()
            .filter(|d| d["kibana.alert.rule.rule_id"] == rule)
            .count()
    };
    eprintln!(
        "clean run: {clean_duration:?}, {} alerts ({})",
        clean_docs.len(),
        rule_ids
            .iter()
            .map(|r| format!("{r}: {}", by_rule(r)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    check_the_fixture(&clean_log, &clean_docs, &straddling);

    // The trials.
    let delay_limit = clean_duration.as_millis() as u64;
    let (mut kills, mut attempts, mut mid_run, mut trial) = (0usize, 0usize, 0usize, 0usize);
    let mut phases_seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut groups_announced, mut repeats) = (0usize, 0usize);
    while kills < KILLS {
        trial += 1;
        let mut setup = Setup::new(
            root.path(),
            &format!("t{trial}"),
            &tag,
            &url,
            &rules_dir,
            trial % 2 == 1,
        );
        setup.seed(&es, &rule_ids, c0);
        let in_a_row = 1 + rng.below(3) as usize;
        let mut killed_here = 0;
        while killed_here < in_a_row && kills < KILLS {
            attempts += 1;
            assert!(
                attempts <= 3 * KILLS,
                "{attempts} attempts for {kills} kills: runs end long before the clean run's time"
            );
            let delay = Duration::from_millis(rng.below(delay_limit));
            let (killed, summary, phases) = kill_after(&mut setup, delay, &rule_ids);
            kills += usize::from(killed);
            killed_here += usize::from(killed);
            if !phases.is_empty() {
                mid_run += 1;
                for p in phases {
                    *phases_seen.entry(p).or_default() += 1;
                }
            }
            let what = if killed {
                format!("kill {kills:>2}/{KILLS}")
            } else {
                "no kill".to_string()
            };
            eprintln!(
                "{what} (trial {trial}, {} state) at {delay:?}: {summary}",
                setup.backend()
            );
            for (rule, checkpoint) in rule_ids.iter().zip(setup.checkpoints(&es, &rule_ids)) {
                assert!(
                    checkpoint.is_ok(),
                    "kill {kills}: the checkpoint of {rule} does not parse: {checkpoint:?}"
                );
            }
            if !killed {
                // that run completed: nothing is left to interrupt
                break;
            }
        }
        let log = run_to_the_end(&mut setup, &es, &rule_ids, t0);
        let (ids, docs) = setup.alerts(&es);
        let name = format!("trial {trial} ({} state)", setup.backend());
        assert_same_alerts(&name, &clean_docs, &ids, &docs);
        // every alert group announced; a repeat carries the key of a
        // message already sent (a kill between a send and its record)
        let repeated = check_messages(&name, &setup, &docs);
        groups_announced += group_keys(&docs).len();
        repeats += repeated;
        let torn = setup.torn_execution_lines();
        assert!(torn.is_empty(), "{name}: torn execution records {torn:?}");
        for (clean_cp, cp) in clean_checkpoints
            .iter()
            .zip(setup.checkpoints(&es, &rule_ids))
        {
            let cp = cp.unwrap().unwrap();
            // Both ran up to their own "now", past every window with
            // events; the trial's restart came later.
            assert!(
                clean_cp.covered_until >= t0 && cp.covered_until >= clean_cp.covered_until,
                "{name}: checkpoint {cp:?}, clean run's {clean_cp:?}"
            );
        }
        let created: u64 = log
            .iter()
            .filter(|l| l["message"] == "rule run finished")
            .map(|l| l["alerts_created"].as_u64().unwrap_or(0))
            .sum();
        eprintln!(
            "trial {trial}: {killed_here} kill(s), restart created {created}, {} alerts as in the \
             clean run ({:?} into the test)",
            docs.len(),
            clock.elapsed()
        );
        setup.delete(&es);
    }
    eprintln!("kills inside a rule run: {mid_run}/{KILLS}; phases: {phases_seen:?}");
    eprintln!(
        "notifications over the {trial} trials: {groups_announced} alert groups, 0 without a \
         message, {repeats} repeated messages (each with the key of one already sent)"
    );
    assert!(
        mid_run >= MIN_MID_RUN_KILLS,
        "only {mid_run} of {KILLS} kills landed inside a rule run: {phases_seen:?}"
    );

    clean.delete(&es);
    es.request(Method::Delete, &format!("/{events_index}"), None);
}
