//! threat_match rules end to end against a live cluster (`ELASTICSEARCH_URL`):
//! indicators loaded from their own index with a point in time (no time
//! range: the indicators are years older than the window), joined locally
//! with the window's events by an OR of two mappings (one an AND of two
//! entries), alerts written with Kibana's `threat.enrichments` and the
//! event alert id; 100,000 indicators bulked in and the exact alerts
//! asserted; an indicator index that matches nothing is a warning, not a
//! failure. The same over memory: `src/runner/threat_tests.rs`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{RunStatus, Runner};
use detectd::sink::elasticsearch::ElasticsearchSink;
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::ClusterStateStore;
use detectd_integration_tests::*;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn events_mapping() -> Value {
    json!({"properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"category": {"type": "keyword"}}},
        "destination": {"properties": {"ip": {"type": "ip"}}},
        "host": {"properties": {"name": {"type": "keyword"}}},
        "user": {"properties": {"name": {"type": "keyword"}}}
    }})
}

fn indicators_mapping() -> Value {
    json!({"properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"kind": {"type": "keyword"}}},
        "threat": {"properties": {
            "feed": {"properties": {"name": {"type": "keyword"}}},
            "indicator": {"properties": {
                "ip": {"type": "ip"},
                "host": {"type": "keyword"},
                "user": {"type": "keyword"},
                "type": {"type": "keyword"}
            }}
        }}
    }})
}

/// The ip of indicator `k`: 10.x.y.z from its number.
fn ip(k: u32) -> String {
    format!("10.{}.{}.{}", k >> 16, (k >> 8) & 255, k & 255)
}

/// Indicator `k`: an ip; odd ones also a host and a user.
fn indicator(k: u32) -> (String, Value) {
    let mut ind = json!({"ip": ip(k), "type": "ipv4-addr"});
    if k % 2 == 1 {
        ind["host"] = json!(format!("h{k}"));
        ind["user"] = json!(format!("u{k}"));
    }
    (
        format!("ind-{k:06}"),
        json!({"@timestamp": "2020-01-01T00:00:00Z", "event": {"kind": "enrichment"},
               "threat": {"indicator": ind, "feed": {"name": "Feed"}}}),
    )
}

fn flow(id: &str, minute: i64, dst: &str, host: &str, user: &str) -> (String, Value) {
    (
        id.to_string(),
        json!({"@timestamp": iso(t0() + Duration::minutes(minute)),
               "event": {"category": "network"},
               "destination": {"ip": dst}, "host": {"name": host}, "user": {"name": user}}),
    )
}

struct Fixture {
    space: RunSpace,
    events: String,
    indicators: String,
}

impl Fixture {
    async fn new(test: &str, indicators: u32, flows: Vec<(String, Value)>) -> Option<Fixture> {
        let space = RunSpace::new(test, "tm").await?;
        let cluster = space.cluster.clone();
        let prefix = space.prefix.clone();
        let events = format!("{prefix}-ev-net");
        create_index(&cluster, &events, events_mapping()).await;
        index_docs(&cluster, &events, &flows).await;
        let ti = format!("{prefix}-ti-feed");
        create_index(&cluster, &ti, indicators_mapping()).await;
        let docs: Vec<(String, Value)> = (0..indicators).map(indicator).collect();
        index_docs(&cluster, &ti, &docs).await;
        Some(Fixture {
            space,
            events,
            indicators: ti,
        })
    }

    fn rule(&self, threat_index: &str) -> Rule {
        let text = format!(
            "[rule]\nrule_id = \"tm-it\"\nname = \"Indicator match\"\ndescription = \"d\"\n\
             type = \"threat_match\"\nlanguage = \"kuery\"\nindex = [\"{}\"]\n\
             severity = \"high\"\nrisk_score = 73\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
             query = 'event.category:network'\nthreat_index = [\"{threat_index}\"]\n\
             threat_query = 'event.kind:enrichment'\nmax_signals = 1000\n\
             [[rule.threat_mapping]]\n[[rule.threat_mapping.entries]]\n\
             field = \"destination.ip\"\ntype = \"mapping\"\nvalue = \"threat.indicator.ip\"\n\
             [[rule.threat_mapping]]\n[[rule.threat_mapping.entries]]\nfield = \"host.name\"\n\
             type = \"mapping\"\nvalue = \"threat.indicator.host\"\n\
             [[rule.threat_mapping.entries]]\nfield = \"user.name\"\ntype = \"mapping\"\n\
             value = \"threat.indicator.user\"\n",
            self.events
        );
        match load_str(&text) {
            LoadOutcome::Loaded { rule, .. } => *rule,
            other => panic!("rule does not load: {other:?}"),
        }
    }

    fn runner(&self) -> Runner<ElasticsearchSource, ElasticsearchSink, ClusterStateStore> {
        self.space
            .runner(ElasticsearchSource::new(self.space.cluster.clone()))
    }

    /// The alerts by the id of their event.
    async fn alerts(&self) -> Vec<(String, String, Value)> {
        let mut out: Vec<(String, String, Value)> = self
            .space
            .alert_hits(&json!({"size": 100, "sort": [{"kibana.alert.original_time": "asc"}]}))
            .await
            .into_iter()
            .map(|h| {
                let s = h["_source"].clone();
                let event = s["kibana.alert.ancestors"][0]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                (event, h["_id"].as_str().unwrap_or("").to_string(), s)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    async fn cleanup(&self) {
        self.space.cleanup(&[&self.events, &self.indicators]).await;
    }

    fn enrichment(&self, field: &str, atomic: &str, k: u32) -> Value {
        json!({"indicator": indicator(k).1["threat"]["indicator"], "feed": {"name": "Feed"},
               "matched": {"atomic": atomic, "field": field, "id": format!("ind-{k:06}"),
                           "index": self.indicators, "type": "indicator_match_rule"}})
    }
}

/// The flows of both tests: hand-computed against indicators 0..n.
fn flows() -> Vec<(String, Value)> {
    vec![
        // ip of indicator 0 (even: no host/user): one enrichment
        flow("f1", 1, &ip(0), "ws-1", "bob"),
        // ip of indicator 2, host and user of indicator 7: two
        // indicators, three enrichments (ip; host and user)
        flow("f2", 2, &ip(2), "h7", "u7"),
        // host of 7 with the user of 9: half of the AND, and an ip
        // outside the list: no match
        flow("f3", 3, "192.168.0.1", "h7", "u9"),
        // host/user of an even indicator, which has none: no match
        flow("f4", 4, "192.168.0.2", "h4", "u4"),
    ]
}

async fn check(fx: &Fixture, last: u32) {
    let rec = fx
        .runner()
        .run(&fx.rule(&fx.indicators), t0() + Duration::minutes(5))
        .await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
    assert_eq!(rec.events_fetched, 5, "{rec:#?}");
    assert_eq!(rec.alerts_created, 3, "{rec:#?}");
    let alerts = fx.alerts().await;
    let events: Vec<&str> = alerts.iter().map(|(e, _, _)| e.as_str()).collect();
    assert_eq!(events, ["f1", "f2", "f5"]);
    let (_, id, f1) = &alerts[0];
    assert_eq!(f1["kibana.alert.rule.rule_type_id"], "siem.indicatorRule");
    assert_eq!(
        f1["threat"]["enrichments"],
        json!([fx.enrichment("destination.ip", &ip(0), 0)])
    );
    // the id recipe of a query rule's event alert
    let expected = detectd::alert::ids::event_alert_id(
        detectd::alert::ids::EventRef {
            index: &fx.events,
            id: "f1",
        },
        fx.space.alerts.space(),
        "tm-it",
    );
    assert_eq!(id, &expected);
    assert_eq!(
        alerts[1].2["threat"]["enrichments"],
        json!([
            fx.enrichment("destination.ip", &ip(2), 2),
            fx.enrichment("host.name", "h7", 7),
            fx.enrichment("user.name", "u7", 7),
        ])
    );
    // the last indicator loaded (the last page of the point in time)
    assert_eq!(
        alerts[2].2["threat"]["enrichments"],
        json!([fx.enrichment("destination.ip", &ip(last), last)])
    );
}

#[tokio::test]
async fn events_join_indicators_by_an_or_of_mappings_with_kibanas_enrichments() {
    let mut flows = flows();
    flows.push(flow("f5", 5, &ip(9), "ws-2", "eve"));
    let Some(fx) = Fixture::new("threat_match_small", 10, flows).await else {
        return;
    };
    check(&fx, 9).await;

    // an indicator index that matches nothing: a warning, no alert
    let rec = fx
        .runner()
        .run(&fx.rule("no-such-ti-*"), t0() + Duration::minutes(10))
        .await;
    assert_eq!(rec.status, RunStatus::PartialFailure, "{rec:#?}");
    assert_eq!(rec.alerts_created, 0);
    assert!(
        rec.warnings.iter().any(|w| w.contains("no-such-ti-*")),
        "{:?}",
        rec.warnings
    );
    fx.cleanup().await;
}

#[tokio::test]
async fn one_hundred_thousand_indicators_give_the_exact_alerts() {
    let mut flows = flows();
    flows.push(flow("f5", 5, &ip(99_999), "ws-2", "eve"));
    let Some(fx) = Fixture::new("threat_match_100k", 100_000, flows).await else {
        return;
    };
    assert_eq!(count(&fx.space.cluster, &fx.indicators).await, 100_000);
    check(&fx, 99_999).await;
    fx.cleanup().await;
}
