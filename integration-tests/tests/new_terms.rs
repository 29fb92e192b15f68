//! New-terms rules end to end against a live cluster (`ELASTICSEARCH_URL`):
//! the window's tuples, the history and the first documents found with
//! composite aggregations (no event fetched), alerts in Kibana's new_terms
//! shape with ids per document, rule and tuple; the same rule with the
//! aggregations off (events fetched and walked locally) gives the same
//! alerts. Every expectation is worked out by hand from the documents. The
//! same over memory, with more cases: `src/runner/new_terms_tests.rs`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::alert::new_terms::new_terms_alert_id;
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{ExecutionRecord, RunStatus, Runner};
use detectd::sink::elasticsearch::ElasticsearchSink;
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::ClusterStateStore;
use detectd_integration_tests::*;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn at(minute: i64) -> String {
    iso(t0() + Duration::minutes(minute))
}

fn process_mapping() -> Value {
    json!({"properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"category": {"type": "keyword"}, "ingested": {"type": "date"}}},
        "process": {"properties": {"name": {"type": "keyword"}}},
        "host": {"properties": {"id": {"type": "keyword"}, "name": {"type": "keyword"}}},
        "user": {"properties": {"name": {"type": "keyword"}}}
    }})
}

fn process(id: &str, minute: i64, name: Option<&str>) -> (String, Value) {
    let mut doc = json!({
        "@timestamp": at(minute),
        "event": {"category": "process"},
        "host": {"id": "h1", "name": "ws-1"},
    });
    if let Some(name) = name {
        doc["process"] = json!({"name": name});
    }
    (id.to_string(), doc)
}

fn logon(id: &str, minute: i64, host: Option<&str>, users: Value) -> (String, Value) {
    let mut doc = json!({
        "@timestamp": at(minute),
        "event": {"category": "process"},
        "user": {"name": users},
    });
    if let Some(host) = host {
        doc["host"] = json!({"id": host});
    }
    (id.to_string(), doc)
}

/// The run at minute 60 (`now-9m`, history from `now-1h`): window
/// [51, 60], history [0, 51].
fn boundary_docs() -> Vec<(String, Value)> {
    vec![
        // in the history and the window: not new
        process("old-h", 10, Some("old")),
        process("old-w", 55, Some("old")),
        // only in the window: alerts on its first document
        process("new-1", 53, Some("new")),
        process("new-2", 57, Some("new")),
        // exactly at the history start: history
        process("edge-h", 0, Some("edge")),
        process("edge-w", 56, Some("edge")),
        // before the history start: not history
        process("gone-h", -1, Some("gone")),
        process("gone-w", 58, Some("gone")),
        // first seen exactly at the window's start: not new (Kibana's
        // `first_seen > from`)
        process("start-1", 51, Some("start")),
        process("start-2", 54, Some("start")),
        // exactly at the window's end: in the window
        process("end-1", 60, Some("end")),
        // no process.name: no tuple
        process("none", 55, None),
        // not a process event
        (
            "net".to_string(),
            json!({"@timestamp": at(55), "event": {"category": "network"},
                   "process": {"name": "net"}}),
        ),
    ]
}

/// Two fields, arrays: (h1, b) is history, (h1, c) and (h2, a) are new.
fn tuple_docs() -> Vec<(String, Value)> {
    vec![
        logon("hist", 20, Some("h1"), json!(["a", "b"])),
        logon("w1", 55, Some("h1"), json!(["b", "c"])),
        logon("w2", 56, Some("h1"), json!("c")),
        logon("w3", 57, Some("h2"), json!("a")),
        logon("w4", 58, None, json!("z")),
    ]
}

struct Fixture {
    space: RunSpace,
    events: String,
}

impl Fixture {
    async fn new(test: &str, docs: Vec<(String, Value)>) -> Option<Fixture> {
        let space = RunSpace::new(test, "nt").await?;
        let cluster = space.cluster.clone();
        let prefix = space.prefix.clone();
        let events = format!("{prefix}-ev-proc");
        create_index(&cluster, &events, process_mapping()).await;
        index_docs(&cluster, &events, &docs).await;
        Some(Fixture { space, events })
    }

    fn rule(&self, fields: &str) -> Rule {
        let text = format!(
            "[rule]\nrule_id = \"nt-it\"\nname = \"New process\"\ndescription = \"d\"\n\
             type = \"new_terms\"\nlanguage = \"kuery\"\nindex = [\"{}\"]\n\
             severity = \"medium\"\nrisk_score = 47\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
             query = 'event.category:process'\n\n[rule.new_terms]\n\
             field = \"new_terms_fields\"\nvalue = {fields}\n\n\
             [[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\n\
             value = \"now-1h\"\n",
            self.events
        );
        match load_str(&text) {
            LoadOutcome::Loaded { rule, .. } => *rule,
            other => panic!("rule does not load: {other:?}"),
        }
    }

    /// A runner whose new terms are found by aggregations on the cluster
    /// (`aggregate`), or from the fetched events.
    fn runner_with(
        &self,
        aggregate: bool,
    ) -> Runner<ElasticsearchSource, ElasticsearchSink, ClusterStateStore> {
        self.space.runner(
            ElasticsearchSource::new(self.space.cluster.clone()).with_aggregations(aggregate),
        )
    }

    /// The alerts (`_id`, `_source`), oldest first.
    async fn alerts(&self) -> Vec<(String, Value)> {
        self.space
            .alert_hits(&json!({"size": 100, "sort": [{"kibana.alert.original_time": "asc"}]}))
            .await
            .into_iter()
            .map(|h| {
                (
                    h["_id"].as_str().unwrap_or("").to_string(),
                    h["_source"].clone(),
                )
            })
            .collect()
    }

    /// (new terms, source document id) of every alert, oldest first.
    async fn alerted(&self) -> Vec<(Value, String)> {
        self.alerts()
            .await
            .into_iter()
            .map(|(_, a)| {
                (
                    a["kibana.alert.new_terms"].clone(),
                    a["kibana.alert.ancestors"][0]["id"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string(),
                )
            })
            .collect()
    }

    /// Alerts and state gone, templates back: as before the first run.
    async fn reset(&self) {
        self.space.reset().await;
    }

    async fn cleanup(&self) {
        self.space.cleanup(&[&self.events]).await;
    }
}

fn assert_ok(rec: &ExecutionRecord) {
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
}

/// History present: no alert; absent: an alert on the first window
/// document; at the history start: history; first seen exactly at the
/// window's start: not new. Kibana's alert shape and the id recipe.
#[tokio::test]
async fn pushed_down_new_terms_respect_history_and_both_boundaries() {
    let Some(fx) = Fixture::new("new_terms_boundaries", boundary_docs()).await else {
        return;
    };
    let rule = fx.rule("[\"process.name\"]");
    let rec = fx
        .runner_with(true)
        .run(&rule, t0() + Duration::minutes(60))
        .await;
    assert_ok(&rec);
    // Found by aggregations: no event was fetched.
    assert_eq!(rec.events_fetched, 0, "{rec:#?}");
    assert_eq!(
        fx.alerted().await,
        [
            (json!(["new"]), "new-1".to_string()),
            (json!(["gone"]), "gone-w".to_string()),
            (json!(["end"]), "end-1".to_string()),
        ]
    );
    let all = fx.alerts().await;
    let (id, a) = &all[0];
    let expected = new_terms_alert_id(
        &fx.events,
        "new-1",
        &[json!("new")],
        fx.space.alerts.space(),
        &rule.rule_id,
    );
    assert_eq!(id, &expected);
    assert_eq!(a["kibana.alert.uuid"], json!(expected));
    assert_eq!(
        a["kibana.alert.rule.rule_type_id"],
        json!("siem.newTermsRule")
    );
    assert_eq!(a["kibana.alert.rule.category"], json!("New Terms Rule"));
    assert_eq!(a["kibana.alert.rule.producer"], json!("siem"));
    assert_eq!(a["kibana.alert.original_time"], json!(at(53)));
    assert_eq!(
        a["kibana.alert.rule.parameters"]["new_terms_fields"],
        json!(["process.name"])
    );

    // The next run, window [56, 65]: `new` is history now, `gone` and
    // `end` have the same first documents: the same ids, nothing new.
    let rec = fx
        .runner_with(true)
        .run(&rule, t0() + Duration::minutes(65))
        .await;
    assert_ok(&rec);
    assert_eq!(rec.alerts_created, 0, "{rec:#?}");
    assert_eq!(rec.alerts_duplicate, 2, "{rec:#?}");
    fx.cleanup().await;
}

/// Two fields with arrays: every combination is a tuple, a document
/// missing a field has none.
#[tokio::test]
async fn pushed_down_new_terms_of_several_fields() {
    let Some(fx) = Fixture::new("new_terms_several_fields", tuple_docs()).await else {
        return;
    };
    let rule = fx.rule("[\"host.id\", \"user.name\"]");
    let rec = fx
        .runner_with(true)
        .run(&rule, t0() + Duration::minutes(60))
        .await;
    assert_ok(&rec);
    assert_eq!(rec.events_fetched, 0, "{rec:#?}");
    assert_eq!(
        fx.alerted().await,
        [
            (json!(["h1", "c"]), "w1".to_string()),
            (json!(["h2", "a"]), "w3".to_string()),
        ]
    );
    fx.cleanup().await;
}

/// The same documents, the same rules: the alerts (ids and bodies but
/// the run's own fields) found by the aggregations and by the local walk
/// over the fetched events are the same.
#[tokio::test]
async fn pushed_down_and_local_new_terms_agree() {
    let mut docs = boundary_docs();
    docs.extend(tuple_docs());
    let Some(fx) = Fixture::new("new_terms_agree", docs).await else {
        return;
    };
    for fields in ["[\"process.name\"]", "[\"host.id\", \"user.name\"]"] {
        let rule = fx.rule(fields);
        let mut found = Vec::new();
        for aggregate in [true, false] {
            fx.reset().await;
            let rec = fx
                .runner_with(aggregate)
                .run(&rule, t0() + Duration::minutes(60))
                .await;
            assert_ok(&rec);
            assert_eq!(rec.events_fetched == 0, aggregate, "{rec:#?}");
            let ids: Vec<(String, Value, Value)> = fx
                .alerts()
                .await
                .into_iter()
                .map(|(id, a)| {
                    (
                        id,
                        a["kibana.alert.new_terms"].clone(),
                        a["kibana.alert.original_time"].clone(),
                    )
                })
                .collect();
            found.push(ids);
        }
        assert!(!found[0].is_empty(), "{fields}");
        assert_eq!(found[0], found[1], "{fields}");
    }
    fx.cleanup().await;
}

/// `timestamp_override = "event.ingested"` with the `@timestamp` fallback:
/// an event without the override is history by its `@timestamp`, and the
/// first event of a new tuple is the earlier of those with the override
/// and those without it; pushed down and local agree.
#[tokio::test]
async fn new_terms_on_an_override_with_fallback() {
    let ingested = |id: &str, minute: i64, name: &str| {
        let (id, mut doc) = process(id, minute, Some(name));
        doc["event"]["ingested"] = json!(at(minute));
        (id, doc)
    };
    let docs = vec![
        // history by @timestamp only
        process("fb-h", 10, Some("fb")),
        ingested("fb-w", 55, "fb"),
        // first in the window without the override (53), then with it (57)
        process("ing-0", 53, Some("ing")),
        ingested("ing-1", 57, "ing"),
    ];
    let Some(fx) = Fixture::new("new_terms_override", docs).await else {
        return;
    };
    let mut rule = fx.rule("[\"process.name\"]");
    rule.timestamp_override = Some("event.ingested".into());
    for aggregate in [true, false] {
        fx.reset().await;
        let rec = fx
            .runner_with(aggregate)
            .run(&rule, t0() + Duration::minutes(60))
            .await;
        assert_ok(&rec);
        assert_eq!(
            fx.alerted().await,
            [(json!(["ing"]), "ing-0".to_string())],
            "aggregate: {aggregate}"
        );
    }
    fx.cleanup().await;
}

/// More tuples than a composite page (2,400 in the window, in three
/// pages): every third is new (no event in the history), the others were
/// seen there; the pushdown pages through the window, the history and the
/// first events page by page and finds the same 800 alerts as the local
/// walk.
#[tokio::test]
async fn new_terms_over_several_pages_agree_with_the_local_walk() {
    let mut docs = Vec::new();
    for i in 0..2_400 {
        let host = format!("h{:02}", i % 40);
        let user = format!("u{i:04}");
        if i % 3 != 0 {
            docs.push(logon(
                &format!("hist-{i}"),
                5 + i % 40,
                Some(&host),
                json!(user),
            ));
        }
        docs.push(logon(
            &format!("win-{i}"),
            52 + i % 8,
            Some(&host),
            json!(user),
        ));
    }
    let Some(fx) = Fixture::new("new_terms_pages", docs).await else {
        return;
    };
    let rule = fx.rule("[\"host.id\", \"user.name\"]");
    let mut rule = rule;
    rule.max_signals = 1_000;
    let mut found = Vec::new();
    for aggregate in [true, false] {
        fx.reset().await;
        let rec = fx
            .runner_with(aggregate)
            .run(&rule, t0() + Duration::minutes(60))
            .await;
        assert_ok(&rec);
        assert_eq!(rec.alerts_created, 800, "aggregate: {aggregate}");
        let mut ids: Vec<String> = all_ids(&fx).await;
        ids.sort();
        found.push(ids);
    }
    assert_eq!(found[0].len(), 800);
    assert_eq!(found[0], found[1]);
    fx.cleanup().await;
}

/// Every alert id of the fixture's alerts index (more than a search page).
async fn all_ids(fx: &Fixture) -> Vec<String> {
    fx.space
        .alert_hits(&json!({"size": 5000}))
        .await
        .iter()
        .map(|h| {
            let terms = &h["_source"]["kibana.alert.new_terms"];
            assert!(
                terms[1]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('u')
                    .parse::<u32>()
                    .unwrap()
                    % 3
                    == 0,
                "{terms}"
            );
            h["_id"].as_str().unwrap_or("").to_string()
        })
        .collect()
}
