//! threat_match rules run over memory (events in `logs-*`, indicators in
//! `ti-*`), with hand-computed alerts: an OR of two mappings, one an AND of
//! two entries; an event matching two indicators; a non-matching event;
//! indicators that lack the mapped fields; an indicator index that matches
//! nothing. The same against a cluster: `integration-tests/tests/threat_match.rs`.

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::sink::memory::MemorySink;
use crate::source::memory::MemorySource;
use crate::source::Document;
use crate::state::MemoryStateStore;

const ALERTS: &str = ".alerts-security.alerts-default";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn at(minute: i64) -> String {
    (t0() + Duration::minutes(minute)).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn rule(threat_index: &str) -> Rule {
    let text = format!(
        "[rule]\nrule_id = \"tm-1\"\nname = \"Indicator match\"\ndescription = \"d\"\n\
         type = \"threat_match\"\nlanguage = \"kuery\"\nindex = [\"logs-*\"]\n\
         severity = \"high\"\nrisk_score = 73\nfrom = \"now-9m\"\ninterval = \"5m\"\n\
         query = 'event.category:network'\nthreat_index = [\"{threat_index}\"]\n\
         threat_query = 'event.kind:enrichment'\n\
         [[rule.threat_mapping]]\n[[rule.threat_mapping.entries]]\nfield = \"destination.ip\"\n\
         type = \"mapping\"\nvalue = \"threat.indicator.ip\"\n\
         [[rule.threat_mapping]]\n[[rule.threat_mapping.entries]]\nfield = \"host.name\"\n\
         type = \"mapping\"\nvalue = \"threat.indicator.host\"\n\
         [[rule.threat_mapping.entries]]\nfield = \"user.name\"\ntype = \"mapping\"\n\
         value = \"threat.indicator.user\"\n"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

fn event(id: &str, minute: i64, dst: &str, host: &str, user: &str) -> Document {
    Document {
        index: "logs-net".into(),
        id: id.into(),
        source: json!({
            "@timestamp": at(minute),
            "event": {"category": ["network"], "kind": "event"},
            "destination": {"ip": dst},
            "host": {"name": host},
            "user": {"name": user},
        }),
    }
}

fn indicator(id: &str, indicator: Value) -> Document {
    Document {
        index: "ti-feed".into(),
        id: id.into(),
        // indicators are old: no time range applies to them
        source: json!({"@timestamp": "2020-01-01T00:00:00.000Z", "event": {"kind": "enrichment"},
                       "threat": {"indicator": indicator, "feed": {"name": "Feed"}}}),
    }
}

fn docs() -> Vec<Document> {
    vec![
        indicator("ip-1", json!({"ip": "203.0.113.9", "type": "ipv4-addr"})),
        indicator("hu-1", json!({"host": "ws-7", "user": "mallory"})),
        // half of the AND mapping: matches nothing alone
        indicator("h-only", json!({"host": "ws-1"})),
        // no mapped field at all: skipped
        indicator("none", json!({"url": "http://x"})),
        // the field, but no value to compare (an object): skipped
        indicator("obj", json!({"ip": {"v4": "203.0.113.9"}})),
        // not selected by threat_query
        Document {
            index: "ti-feed".into(),
            id: "other".into(),
            source: json!({"event": {"kind": "event"}, "threat": {"indicator": {"ip": "198.51.100.1"}}}),
        },
        // matches by the IP mapping only
        event("e1", 1, "203.0.113.9", "ws-1", "bob"),
        // matches both: the IP indicator and the host+user indicator
        event("e2", 2, "203.0.113.9", "ws-7", "mallory"),
        // host matches h-only and hu-1's host, but not the user: no match
        event("e3", 3, "10.0.0.1", "ws-1", "alice"),
        // IP of the indicator threat_query leaves out: no match
        event("e4", 4, "198.51.100.1", "ws-9", "carol"),
    ]
}

fn runner(docs: Vec<Document>) -> Runner<MemorySource, MemorySink, MemoryStateStore> {
    Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        MemoryStateStore::new(),
        RunnerSettings::default(),
    )
}

fn enrichment(field: &str, atomic: &str, id: &str, indicator: Value) -> Value {
    json!({"indicator": indicator, "feed": {"name": "Feed"},
           "matched": {"atomic": atomic, "field": field, "id": id, "index": "ti-feed",
                       "type": "indicator_match_rule"}})
}

#[tokio::test]
async fn events_join_indicators_by_an_or_of_mappings_with_kibanas_enrichments() {
    let rule = rule("ti-*");
    let r = runner(docs());
    let record = r.run(&rule, t0() + Duration::minutes(5)).await;
    // indicators lacking a mapping's fields are left out by the search,
    // as Kibana's `getMappingFilters` leaves them out
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    assert_eq!(record.events_fetched, 4);
    assert_eq!(record.alerts_created, 2);
    let alerts = r.sink().alerts(ALERTS);
    let by_event = |id: &str| {
        alerts
            .values()
            .find(|a| a["kibana.alert.ancestors"][0]["id"] == json!(id))
            .unwrap_or_else(|| panic!("no alert for {id}"))
            .clone()
    };
    let e1 = by_event("e1");
    assert_eq!(e1["kibana.alert.rule.rule_type_id"], "siem.indicatorRule");
    assert_eq!(e1["kibana.alert.rule.category"], "Indicator Match Rule");
    let ip = json!({"ip": "203.0.113.9", "type": "ipv4-addr"});
    assert_eq!(
        e1["threat"]["enrichments"],
        json!([enrichment(
            "destination.ip",
            "203.0.113.9",
            "ip-1",
            ip.clone()
        )])
    );
    let hu = json!({"host": "ws-7", "user": "mallory"});
    assert_eq!(
        by_event("e2")["threat"]["enrichments"],
        json!([
            enrichment("destination.ip", "203.0.113.9", "ip-1", ip),
            enrichment("host.name", "ws-7", "hu-1", hu.clone()),
            enrichment("user.name", "mallory", "hu-1", hu),
        ])
    );
    // the id recipe of a query rule's event alert
    let id = crate::alert::ids::event_alert_id(
        crate::alert::ids::EventRef {
            index: "logs-net",
            id: "e1",
        },
        "default",
        "tm-1",
    );
    assert!(alerts.contains_key(&id));
}

#[tokio::test]
async fn an_indicator_index_that_matches_nothing_is_a_warning_and_no_alert() {
    let rule = rule("missing-ti-*");
    let r = runner(docs());
    let record = r.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(record.status, RunStatus::PartialFailure, "{record:?}");
    assert_eq!(record.alerts_created, 0);
    assert!(
        record.warnings.iter().any(|w| w.contains("missing-ti-*")),
        "{:?}",
        record.warnings
    );
}

/// The rule's exceptions narrow the events and, as Kibana's indicator
/// search has them too (`get_threat_list.ts`), the indicators.
#[tokio::test]
async fn exceptions_apply_to_events_and_to_indicators() {
    use crate::exceptions::{ExceptionStore, ListRef};
    let list = json!({"list_id": "ex", "namespace_type": "single", "type": "detection",
        "name": "ex", "description": "d"});
    let item = |n: u32, field: &str, value: &str| {
        json!({"item_id": format!("ex-{n}"), "list_id": "ex", "namespace_type": "single",
            "type": "simple", "name": "i", "description": "d",
            "entries": [{"field": field, "operator": "included", "type": "match", "value": value}]})
    };
    let ndjson = format!(
        "{list}\n{}\n{}\n",
        item(1, "threat.indicator.host", "ws-7"),
        item(2, "user.name", "bob")
    );
    let (store, errors) =
        ExceptionStore::from_texts([(std::path::Path::new("lists.ndjson"), ndjson.as_str())]);
    assert!(errors.is_empty(), "{errors:?}");
    let refs =
        [ListRef::from_json(&json!({"list_id": "ex", "namespace_type": "single"}), 0).unwrap()];
    let mut rule = rule("ti-*");
    rule.common.exceptions = std::sync::Arc::new(store.resolve(&refs).unwrap());
    let r = runner(docs());
    let record = r.run(&rule, t0() + Duration::minutes(5)).await;
    assert_eq!(record.status, RunStatus::Succeeded, "{record:?}");
    // e1 (bob) is excepted; e2 keeps only the IP indicator: hu-1 (host
    // ws-7) is excepted as an indicator
    let alerts: Vec<Value> = r.sink().alerts(ALERTS).into_values().collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["kibana.alert.ancestors"][0]["id"], json!("e2"));
    let ip = json!({"ip": "203.0.113.9", "type": "ipv4-addr"});
    assert_eq!(
        alerts[0]["threat"]["enrichments"],
        json!([enrichment("destination.ip", "203.0.113.9", "ip-1", ip)])
    );
}
