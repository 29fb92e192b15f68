//! What the notification tests share: the founding rule and an event
//! rule over the same events, attacks as events, settings from a config
//! text, a runner with routes, and what a receiver got.
//! Included with `#[path = "common/notify_fixture.rs"] mod notify_fixture;`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use detectd::config::cluster::ClusterSettings;
use detectd::config::{Overrides, Settings};
use detectd::notify::{NotifySettings, Router};
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{Runner, RunnerSettings};
use detectd::sink::memory::MemorySink;
use detectd::source::memory::MemorySource;
use detectd::source::Document;
use detectd::state::StateStore;

use super::receiver::Receiver;

pub const FOUNDING: &str = include_str!("../../rules/execution_scheduled_task_powershell.toml");

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn load(text: &str) -> Rule {
    match load_str(text) {
        LoadOutcome::Loaded { rule, .. } => *rule,
        other => panic!("rule does not load: {other:?}"),
    }
}

/// The founding rule: a two-event sequence.
pub fn sequence_rule() -> Rule {
    load(FOUNDING)
}

/// An event rule over the same events: every taskschd.dll load.
pub fn event_rule() -> Rule {
    let start = FOUNDING.find("query = '''").unwrap();
    let end = FOUNDING[start + 11..].find("'''").unwrap() + start + 14;
    let mut text = FOUNDING.to_string();
    text.replace_range(
        start..end,
        "query = '''\nlibrary where dll.name : \"taskschd.dll\"\n'''",
    );
    let text = text.replace(
        "rule_id = \"5cd55388-a19c-47c7-8ec4-f41656c2fded\"",
        "rule_id = \"00000000-0000-4000-8000-00000000e1e1\"",
    );
    load(&text)
}

/// The attack on `host` at `at`: a library load, then 2 s later the RPC call.
pub fn attack(host: &str, at: DateTime<Utc>) -> Vec<Document> {
    vec![
        Document {
            index: "logs-endpoint.events.library-default".into(),
            id: format!("{host}-lib"),
            source: detectd::synth::founding_library(&iso(at), host, host, "powershell.exe"),
        },
        Document {
            index: "logs-endpoint.events.network-default".into(),
            id: format!("{host}-net"),
            source: detectd::synth::founding_network(
                &iso(at + Duration::seconds(2)),
                host,
                host,
                "powershell.exe",
                "10.0.0.5",
                135,
            ),
        },
    ]
}

/// The notification settings of a config file's text.
pub fn notify_settings(text: &str) -> NotifySettings {
    Settings::from_layers(
        Some((PathBuf::from("detectd.toml"), text.to_string())),
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .notify
}

/// A webhook output at the receiver and one route to it, plus `route_extra`
/// (throttle, mode...).
pub fn webhook_config(r: &Receiver, route_extra: &str) -> String {
    format!(
        r#"
[notify]
retry_initial = "1s"
retry_max = "1m"

[[outputs]]
name = "hook"
kind = "webhook"
url = "{}"

[[routes]]
name = "all"
outputs = ["hook"]
{route_extra}
"#,
        r.url("/hook")
    )
}

pub type Run<T> = Runner<MemorySource, MemorySink, T>;

pub fn runner<T: StateStore>(docs: Vec<Document>, state: T, settings: &NotifySettings) -> Run<T> {
    Runner::new(
        MemorySource::new(docs),
        MemorySink::new(),
        state,
        RunnerSettings::default(),
    )
    .with_router(Arc::new(Router::new(settings)))
}

/// The idempotency keys of what the receiver answered 200 to, with counts.
pub fn delivered_keys(r: &Receiver) -> BTreeMap<String, usize> {
    let mut keys = BTreeMap::new();
    for req in r.delivered() {
        let key = req.body["idempotency_key"].as_str().unwrap().to_string();
        assert_eq!(
            req.headers.get("idempotency-key"),
            Some(&key),
            "the header and the body carry the same key"
        );
        *keys.entry(key).or_default() += 1;
    }
    keys
}

/// The ids of the head alerts (event alerts and shells) the sink holds.
pub fn head_ids(sink: &MemorySink) -> BTreeSet<String> {
    sink.alerts(".alerts-security.alerts-default")
        .into_iter()
        .filter(|(_, a)| a.get("kibana.alert.building_block_type").is_none())
        .map(|(id, _)| id)
        .collect()
}
