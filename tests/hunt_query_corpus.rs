//! `detectd hunt` over every production query rule of the public corpus
//! (`../shared/detection-rules-other`), on events made from the rules' own
//! KQL literals (`synth::kql_events`) with a mapping of ECS-style type
//! guesses: no crash, every rule runs (the endpoint rules with their
//! `endpoint_list`, exported empty), and the alert counts are reported.
//!
//! What is checked: the command ends normally, the summary line counts
//! every rule as run and none as failed, every alert belongs to one of the
//! rules and says so in its rule fields, no rule exceeds its
//! `max_signals`, and each enabled rule alerts on an event made to match
//! it unless its query needs what the generator cannot make (a field-name
//! pattern no guessed field matches, a range on a field guessed keyword):
//! those are counted and printed, not hidden.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use detectd::filter::FieldTypes;
use detectd::synth::kql_events::{self, QueryLeaves};
use serde_json::{json, Value};

const NOW: &str = "2024-05-01T10:00:00Z";

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/detection-rules-other");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("detection-rules corpus missing at {}", dir.display());
    }
    eprintln!("notice: skipping, {} not found", dir.display());
    None
}

/// A production query rule of the corpus.
struct CorpusRule {
    path: PathBuf,
    rule_id: String,
    max_signals: u64,
    /// Disabled rules are loaded and skipped, as `run` skips them.
    enabled: bool,
    /// The parsed KQL query (`None` for Lucene).
    kql: Option<detectd::kql::Node>,
}

fn production_query_rules(dir: &Path) -> Vec<CorpusRule> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let path = entry.unwrap().into_path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (Some(rule), Some(meta)) = (doc.get("rule"), doc.get("metadata")) else {
            continue;
        };
        let text = |t: &toml::Value, k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
        if text(rule, "type").as_deref() != Some("query")
            || text(meta, "maturity").as_deref() != Some("production")
        {
            continue;
        }
        let kql = match text(rule, "language").as_deref() {
            Some("lucene") => None,
            _ => Some(detectd::kql::parse(&text(rule, "query").unwrap_or_default()).unwrap()),
        };
        out.push(CorpusRule {
            path,
            rule_id: text(rule, "rule_id").unwrap(),
            max_signals: rule
                .get("max_signals")
                .and_then(|v| v.as_integer())
                .map_or(100, |n| n as u64),
            enabled: rule
                .get("enabled")
                .and_then(|v| v.as_bool())
                .unwrap_or(true),
            kql,
        });
    }
    out
}

#[test]
fn hunt_runs_every_production_query_rule_on_events_from_their_literals() {
    let Some(dir) = corpus() else { return };
    let rules = production_query_rules(&dir);
    let work = tempfile::tempdir().unwrap();
    let rules_dir = work.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    for r in &rules {
        let name = r
            .path
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('/', "__");
        std::fs::copy(&r.path, rules_dir.join(name)).unwrap();
    }

    // one mapping for every query's fields, then each query's documents
    let leaves: Vec<Option<QueryLeaves>> = rules
        .iter()
        .map(|r| r.kql.as_ref().map(QueryLeaves::of))
        .collect();
    let mut guessed: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut nested = BTreeSet::new();
    for ls in leaves.iter().flatten() {
        guessed.extend(ls.guessed_types().map(|(f, t)| (f.to_string(), t)));
        nested.extend(ls.nested.iter().cloned());
    }
    guessed.insert("@timestamp".into(), "date");
    guessed.insert("message".into(), "match_only_text");
    let mapping = kql_events::mapping(&guessed, &nested);
    let types = FieldTypes::from_mapping(&mapping);
    let now: DateTime<Utc> = NOW.parse().unwrap();
    let at = "2024-05-01T09:30:00.000Z";
    let mut events = String::new();
    let mut count = 0usize;
    for ls in leaves.iter().flatten() {
        for mut doc in ls.documents(&types, &nested, now) {
            doc.insert("@timestamp".into(), json!(at));
            events.push_str(&Value::Object(doc).to_string());
            events.push('\n');
            count += 1;
        }
    }
    let events_path = work.path().join("events.ndjson");
    std::fs::write(&events_path, events).unwrap();
    let mapping_path = work.path().join("mapping.json");
    std::fs::write(&mapping_path, mapping.to_string()).unwrap();
    // the endpoint rules' list, exported from Kibana without items
    let lists = work.path().join("exceptions");
    std::fs::create_dir(&lists).unwrap();
    std::fs::write(
        lists.join("endpoint_list.ndjson"),
        json!({"list_id": "endpoint_list", "id": "endpoint_list", "name": "Endpoint Security Exception List",
               "description": "Endpoint Security Exception List", "namespace_type": "agnostic",
               "type": "endpoint", "os_types": [], "tags": [], "immutable": false, "version": 1})
            .to_string()
            + "\n",
    )
    .unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_detectd"))
        .args(["hunt", "--rules"])
        .arg(&rules_dir)
        .arg("--exceptions")
        .arg(&lists)
        .arg("--mapping")
        .arg(&mapping_path)
        .args(["--now", NOW])
        .arg(&events_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary = stderr.lines().last().unwrap_or_default();
    let enabled = rules.iter().filter(|r| r.enabled).count();
    assert!(
        summary.starts_with(&format!("{enabled} rules run, ")),
        "{stderr}"
    );
    assert!(
        summary.ends_with(&format!(
            " alerts, 0 failed, {} skipped",
            rules.len() - enabled
        )),
        "{stderr}"
    );

    let by_id: BTreeMap<&str, &CorpusRule> =
        rules.iter().map(|r| (r.rule_id.as_str(), r)).collect();
    let mut alerts: BTreeMap<String, u64> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let s = &doc["_source"];
        let id = s["kibana.alert.rule.rule_id"].as_str().unwrap();
        assert!(by_id.contains_key(id), "an alert of an unknown rule {id}");
        assert_eq!(s["kibana.alert.rule.type"], "query");
        assert_eq!(doc["_id"], s["kibana.alert.uuid"]);
        *alerts.entry(id.to_string()).or_default() += 1;
    }
    for (id, n) in &alerts {
        assert!(*n <= by_id[id.as_str()].max_signals, "{id}: {n} alerts");
    }
    let total: u64 = alerts.values().sum();
    assert!(summary.contains(&format!(" {total} alerts, ")), "{summary}");
    let kql_rules = rules.iter().filter(|r| r.kql.is_some()).count();
    let silent: Vec<&str> = rules
        .iter()
        .filter(|r| r.enabled && r.kql.is_some() && !alerts.contains_key(&r.rule_id))
        .map(|r| r.path.file_name().unwrap().to_str().unwrap())
        .collect();
    eprintln!(
        "hunt over the corpus's production query rules: {} rules ({kql_rules} KQL, {} Lucene; \
         {enabled} enabled), {count} events, {total} alerts; {} rules alert, {} enabled KQL rules \
         alert on none of the events made from their literals",
        rules.len(),
        rules.len() - kql_rules,
        alerts.len(),
        silent.len()
    );
    for s in &silent {
        eprintln!("  silent: {s}");
    }
    // A rule silent on its own events is one the generator cannot serve:
    // any other is a regression in hunt, the query rule or KQL.
    let unexplained: Vec<&str> = rules
        .iter()
        .zip(&leaves)
        .filter(|(r, _)| r.enabled && r.kql.is_some() && !alerts.contains_key(&r.rule_id))
        .filter(|(_, ls)| {
            ls.as_ref()
                .is_none_or(|ls| !ls.leaves.iter().any(|l| l.is_guesswork()))
        })
        .map(|(r, _)| r.rule_id.as_str())
        .collect();
    assert!(
        unexplained.is_empty(),
        "silent on events made to match them: {unexplained:?}"
    );
}
