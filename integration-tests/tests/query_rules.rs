//! Query rules (KQL, Lucene) end to end against a live cluster
//! (`ELASTICSEARCH_URL`): the query translated for the index's real field
//! types and sent as query DSL, alerts written as Kibana's query rule
//! writes them, overrides visible on the alerts. The same runs over memory
//! are in `src/runner/query_tests.rs`.

use chrono::{DateTime, Duration, TimeZone, Utc};
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

/// `user.name` a keyword, `message` text, `event.outcome` a keyword,
/// `source.ip` an ip: the types decide what the KQL means.
fn auth_mapping() -> Value {
    json!({"properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {
            "category": {"type": "keyword"},
            "outcome": {"type": "keyword"},
            "risk": {"type": "float"}
        }},
        "user": {"properties": {"name": {"type": "keyword"}}},
        "host": {"properties": {"name": {"type": "keyword"}}},
        "source": {"properties": {"ip": {"type": "ip"}}},
        "message": {"type": "text"}
    }})
}

fn logon(minute: i64, user: &str, outcome: &str, ip: &str, message: &str) -> Value {
    json!({
        "@timestamp": iso(t0() + Duration::minutes(minute)),
        "event": {"category": "authentication", "outcome": outcome, "risk": 10 + minute},
        "user": {"name": user},
        "host": {"name": "ws-1"},
        "source": {"ip": ip},
        "message": message,
    })
}

struct Fixture {
    space: RunSpace,
    events: String,
}

impl Fixture {
    async fn new(test: &str) -> Option<Fixture> {
        let space = RunSpace::new(test, "query").await?;
        let cluster = space.cluster.clone();
        let prefix = space.prefix.clone();
        let events = format!("{prefix}-ev-auth");
        create_index(&cluster, &events, auth_mapping()).await;
        let docs: Vec<(String, Value)> = [
            logon(
                1,
                "admin",
                "success",
                "10.1.2.3",
                "Accepted password for admin",
            ),
            logon(
                2,
                "alice",
                "success",
                "192.168.7.9",
                "Accepted publickey for alice",
            ),
            logon(
                3,
                "Admin",
                "failure",
                "10.1.9.9",
                "Failed password for Admin",
            ),
            logon(
                4,
                "admin",
                "failure",
                "172.16.0.1",
                "Failed password for admin from vpn",
            ),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, d)| (format!("e{}", i + 1), d))
        .collect();
        index_docs(&cluster, &events, &docs).await;
        Some(Fixture { space, events })
    }

    fn rule(&self, language: &str, query: &str, extra: &str) -> Rule {
        let text = format!(
            "[rule]\nrule_id = \"q-it\"\nname = \"Logon rule\"\ndescription = \"d\"\n\
             type = \"query\"\nlanguage = \"{language}\"\nindex = [\"{}\"]\n\
             severity = \"low\"\nrisk_score = 21\nfrom = \"now-6m\"\n\
             query = '''{query}'''\n{extra}",
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

    /// The alerts, oldest event first.
    async fn alerts(&self) -> Vec<Value> {
        self.space
            .alert_hits(&json!({"size": 100, "sort": [{"kibana.alert.original_time": "asc"}]}))
            .await
            .into_iter()
            .map(|h| h["_source"].clone())
            .collect()
    }

    async fn cleanup(&self) {
        self.space.cleanup(&[&self.events]).await;
    }
}

fn assert_ok(rec: &ExecutionRecord) {
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:#?}");
}

fn users(alerts: &[Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| a["user"]["name"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// KQL for the index's types: `user.name` is a keyword (exact, case
/// sensitive), `message` text (analysed words), `source.ip` an ip (CIDR).
#[tokio::test]
async fn a_kql_rule_alerts_with_the_semantics_of_the_mapping() {
    let Some(fx) = Fixture::new("a_kql_rule_alerts_with_the_semantics_of_the_mapping").await else {
        return;
    };
    let rule = fx.rule(
        "kuery",
        "event.category:authentication and message:failed and source.ip:10.0.0.0/8",
        "",
    );
    let runner = fx.runner();
    let rec = runner.run(&rule, t0() + Duration::minutes(5)).await;
    assert_ok(&rec);
    let alerts = fx.alerts().await;
    assert_eq!(users(&alerts), vec!["Admin"], "{rec:#?}");
    let a = &alerts[0];
    assert_eq!(a["kibana.alert.rule.rule_type_id"], json!("siem.queryRule"));
    assert_eq!(a["kibana.alert.rule.category"], json!("Custom Query Rule"));
    assert_eq!(a["kibana.alert.rule.type"], json!("query"));
    assert_eq!(
        a["kibana.alert.rule.parameters"]["language"],
        json!("kuery")
    );
    assert_eq!(a["kibana.alert.ancestors"][0]["id"], json!("e3"));
    assert_eq!(a["kibana.alert.ancestors"][0]["index"], json!(fx.events));

    // A keyword is exact: `admin` is not `Admin`.
    let exact = fx.rule("kuery", "user.name:admin", "");
    let mut exact = exact;
    exact.common.rule_id = "q-it-exact".into();
    let rec = runner.run(&exact, t0() + Duration::minutes(5)).await;
    assert_ok(&rec);
    assert_eq!(rec.alerts_created, 2, "{rec:#?}");
    fx.cleanup().await;
}

#[tokio::test]
async fn a_lucene_rule_runs_as_query_string() {
    let Some(fx) = Fixture::new("a_lucene_rule_runs_as_query_string").await else {
        return;
    };
    let rule = fx.rule(
        "lucene",
        "user.name:admin AND NOT event.outcome:success",
        "",
    );
    let rec = fx.runner().run(&rule, t0() + Duration::minutes(5)).await;
    assert_ok(&rec);
    let alerts = fx.alerts().await;
    assert_eq!(users(&alerts), vec!["admin"], "{rec:#?}");
    assert_eq!(
        alerts[0]["kibana.alert.rule.parameters"]["language"],
        json!("lucene")
    );
    assert_eq!(alerts[0]["kibana.alert.ancestors"][0]["id"], json!("e4"));
    fx.cleanup().await;
}

/// severity_mapping, risk_score_mapping and rule_name_override, visible
/// on the alerts Kibana shows.
#[tokio::test]
async fn overrides_are_visible_on_the_alerts() {
    let Some(fx) = Fixture::new("overrides_are_visible_on_the_alerts").await else {
        return;
    };
    let rule = fx.rule(
        "kuery",
        "event.category:authentication",
        "rule_name_override = \"message\"\n\
         [[rule.severity_mapping]]\nfield = \"event.outcome\"\noperator = \"equals\"\n\
         severity = \"high\"\nvalue = \"failure\"\n\
         [[rule.risk_score_mapping]]\nfield = \"event.risk\"\noperator = \"equals\"\nvalue = \"\"\n",
    );
    let rec = fx.runner().run(&rule, t0() + Duration::minutes(5)).await;
    assert_ok(&rec);
    let got: Vec<(String, String, Value)> = fx
        .alerts()
        .await
        .iter()
        .map(|a| {
            (
                a["kibana.alert.rule.name"].as_str().unwrap().to_string(),
                a["kibana.alert.severity"].as_str().unwrap().to_string(),
                a["kibana.alert.risk_score"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "Accepted password for admin".into(),
                "low".into(),
                json!(11)
            ),
            (
                "Accepted publickey for alice".into(),
                "low".into(),
                json!(12)
            ),
            ("Failed password for Admin".into(), "high".into(), json!(13)),
            (
                "Failed password for admin from vpn".into(),
                "high".into(),
                json!(14)
            ),
        ]
    );
    fx.cleanup().await;
}
