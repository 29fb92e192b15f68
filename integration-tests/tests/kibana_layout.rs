//! Kibana's alerts index on a live cluster: detectd started before Kibana,
//! after Kibana, with the alias gone mid-life, with an index squatting the
//! alias name, and waiting for Kibana (`alerts.bootstrap = "wait"`).
//!
//! Kibana itself cannot run here, so these tests replay the requests its
//! alerts service sends when it installs a space's resources
//! (`createOrUpdateIndexTemplate`, then `createAliasStream` in Kibana's
//! `x-pack/platform/plugins/shared/alerting/server/alerts_service/lib/`):
//! the index template, `GET <backing patterns>/_alias/<base pattern>`, and
//! for the indices found `PUT _settings` (total fields) and `PUT _mapping`
//! with the template's mappings, or, with none found, `PUT -000001` with the
//! alias as write index. Each test uses a Kibana space of its own.

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::alert::Alert;
use detectd::cluster::{Cluster, Distribution};
use detectd::runner::{RunStatus, Runner, RunnerSettings};
use detectd::sink::alerts_index::{
    ensure, index_mappings, index_settings, AlertsIndexError, AlertsLayout, BootstrapMode,
    BootstrapSpec, Ensured,
};
use detectd::sink::elasticsearch::{BulkSettings, ElasticsearchSink};
use detectd::sink::{AlertSink, SinkError};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::state::{Checkpoint, MemoryStateStore, StateStore};
use detectd_integration_tests::*;
use elasticsearch::http::Method;
use serde_json::{json, Value};

fn sink(cluster: &Cluster, space: &AlertsSpace, mode: BootstrapMode) -> ElasticsearchSink {
    ElasticsearchSink::new(
        cluster.clone(),
        BulkSettings {
            refresh: Some("true".into()),
            ..BulkSettings::default()
        },
        space.spec(cluster, mode),
    )
}

fn alert(id: &str) -> Alert {
    Alert {
        id: id.into(),
        source: json!({"@timestamp": "2024-05-01T10:00:00.000Z", "kibana.alert.uuid": id,
            "host": {"name": "ws-1"}}),
    }
}

async fn get(cluster: &Cluster, path: &str) -> (u16, Value) {
    let raw = cluster
        .send_raw(Method::Get, path, &[], None, None)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (
        raw.status,
        serde_json::from_slice(&raw.body).unwrap_or(Value::Null),
    )
}

async fn send(cluster: &Cluster, method: Method, path: &str, body: Value) -> (u16, Value) {
    let raw = cluster
        .send_raw(
            method,
            path,
            &[],
            Some(serde_json::to_vec(&body).unwrap()),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    (
        raw.status,
        serde_json::from_slice(&raw.body).unwrap_or(Value::Null),
    )
}

/// What `name` is on the cluster: `alias`, `index`, `data_stream` or `none`.
async fn kind_of(cluster: &Cluster, name: &str) -> &'static str {
    let (_, v) = get(
        cluster,
        &format!("/_resolve/index/{name}?expand_wildcards=all"),
    )
    .await;
    let has = |key: &str| {
        v[key]
            .as_array()
            .is_some_and(|l| l.iter().any(|i| i["name"] == json!(name)))
    };
    if has("aliases") {
        "alias"
    } else if has("indices") {
        "index"
    } else if has("data_streams") {
        "data_stream"
    } else {
        "none"
    }
}

/// The mapping Kibana's template gives the space's backing indices on this
/// cluster (inline here: Kibana composes it from component templates, whose
/// names are global to the cluster).
fn kibana_mappings(cluster: &Cluster, layout: &AlertsLayout) -> Value {
    let spec = BootstrapSpec::for_cluster(cluster.info(), BootstrapMode::Create, None);
    index_mappings(layout, &spec)
}

/// Kibana's index template for the space (`getIndexTemplate`).
async fn kibana_put_template(cluster: &Cluster, layout: &AlertsLayout) {
    let body = json!({
        "index_patterns": [layout.backing_pattern(), layout.reindexed_pattern()],
        "priority": layout.space().len(),
        "template": {
            "settings": index_settings(layout, cluster.info().distribution),
            "mappings": kibana_mappings(cluster, layout),
            "aliases": { layout.secondary_alias(): { "is_write_index": false } }
        },
        "_meta": {"kibana": {"version": "8.15.3"}, "managed": true, "namespace": layout.space()}
    });
    let (status, v) = send(
        cluster,
        Method::Put,
        &format!("/_index_template/{}", layout.template()),
        body,
    )
    .await;
    assert_eq!(status, 200, "Kibana's template PUT: {v}");
}

/// What Kibana's `createAliasStream` does after its template, as requests.
/// Returns what it did: "updated <indices>" or "created".
async fn kibana_create_alias_stream(cluster: &Cluster, layout: &AlertsLayout) -> String {
    let (status, found) = get(
        cluster,
        &format!(
            "/{},{}/_alias/.alerts-security.alerts-*",
            layout.backing_pattern(),
            layout.reindexed_pattern()
        ),
    )
    .await;
    assert!(
        status == 200 || status == 404,
        "GET _alias: {status} {found}"
    );
    let concrete: Vec<(String, bool)> = found
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(index, v)| {
                    let a = v["aliases"].get(layout.alias())?;
                    Some((index.clone(), a["is_write_index"] == json!(true)))
                })
                .collect()
        })
        .unwrap_or_default();
    if !concrete.is_empty() {
        for (index, _) in &concrete {
            // updateTotalFieldLimitSetting (ignore_dynamic_beyond_limit is
            // Elasticsearch 8.13+ only)
            let mut settings = json!({"index.mapping.total_fields.limit": 2500});
            if cluster.info().distribution == Distribution::Elasticsearch {
                settings["index.mapping.total_fields.ignore_dynamic_beyond_limit"] = json!(true);
            }
            let (status, v) = send(
                cluster,
                Method::Put,
                &format!("/{index}/_settings"),
                settings,
            )
            .await;
            assert_eq!(status, 200, "Kibana's PUT {index}/_settings: {v}");
            // updateUnderlyingMapping: the template's mappings, put on the index
            let (status, v) = send(
                cluster,
                Method::Put,
                &format!("/{index}/_mapping"),
                kibana_mappings(cluster, layout),
            )
            .await;
            assert_eq!(status, 200, "Kibana's PUT {index}/_mapping conflicts: {v}");
        }
        assert!(
            concrete.iter().any(|(_, write)| *write),
            "Kibana would have to pick a write index: {concrete:?}"
        );
        return format!(
            "updated {:?}",
            concrete.iter().map(|(i, _)| i).collect::<Vec<_>>()
        );
    }
    let (status, v) = send(
        cluster,
        Method::Put,
        &format!("/{}", layout.first_index()),
        json!({"aliases": {layout.alias(): {"is_write_index": true}}}),
    )
    .await;
    assert_eq!(status, 200, "Kibana's PUT -000001: {v}");
    "created".into()
}

/// Writes one alert as Kibana's rule data client does (`require_alias`).
async fn kibana_writes(cluster: &Cluster, layout: &AlertsLayout, id: &str) -> Value {
    let body = format!(
        "{}\n{}\n",
        json!({"create": {"_index": layout.alias(), "_id": id}}),
        json!({"@timestamp": "2024-05-01T10:00:00.000Z", "kibana.alert.uuid": id, "host": {"name": "k"}})
    );
    let raw = cluster
        .send_raw(
            Method::Post,
            "/_bulk",
            &[("require_alias", "true"), ("refresh", "true")],
            Some(body.into_bytes()),
            Some("application/x-ndjson"),
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&raw.body).unwrap();
    v["items"][0]["create"].clone()
}

#[tokio::test]
async fn detectd_before_kibana_creates_a_layout_kibana_adopts() {
    let Some(cluster) = connect_or_skip("detectd_before_kibana").await else {
        return;
    };
    let space = AlertsSpace::new("kl-before");
    let layout = &space.layout;
    let s = sink(&cluster, &space, BootstrapMode::Create);
    let report = s.write(&space.alias(), &[alert("a1")]).await.unwrap();
    assert_eq!(report.created, vec!["a1"], "{report:?}");
    // Kibana's layout, not a concrete index named like the alias
    assert_eq!(kind_of(&cluster, &space.alias()).await, "alias");
    let (_, index) = get(&cluster, &format!("/{}", layout.first_index())).await;
    let index = &index[layout.first_index()];
    assert_eq!(
        index["aliases"][space.alias()]["is_write_index"],
        json!(true),
        "{index}"
    );
    assert_eq!(
        index["aliases"][layout.secondary_alias()]["is_write_index"],
        json!(false)
    );
    let settings = &index["settings"]["index"];
    assert_eq!(settings["hidden"], json!("true"), "{settings}");
    assert_eq!(settings["mapping"]["ignore_malformed"], json!("true"));
    assert_eq!(settings["mapping"]["total_fields"]["limit"], json!("2500"));
    let mappings = &index["mappings"];
    assert!(
        mappings["dynamic"] == json!(false) || mappings["dynamic"] == json!("false"),
        "{mappings}"
    );
    assert_eq!(mappings["_meta"]["namespace"], json!(space.space()));
    assert_eq!(mappings["_meta"]["managed"], json!(true));

    // Kibana starts: installs its template, finds our index, puts its
    // settings and mapping on it (no conflict), keeps it as write index.
    kibana_put_template(&cluster, layout).await;
    let did = kibana_create_alias_stream(&cluster, layout).await;
    assert!(did.starts_with("updated"), "{did}");
    // Kibana's create of -000001 had it not found one: already exists, and
    // is the alias's write index, which Kibana accepts.
    let (status, v) = send(
        &cluster,
        Method::Put,
        &format!("/{}", layout.first_index()),
        json!({"aliases": {space.alias(): {"is_write_index": true}}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "resource_already_exists_exception");
    // Both write through the alias.
    assert_eq!(
        kibana_writes(&cluster, layout, "k1").await["status"],
        json!(201)
    );
    let report = s.write(&space.alias(), &[alert("a2")]).await.unwrap();
    assert_eq!(report.created, vec!["a2"]);
    assert_eq!(count(&cluster, &space.alias()).await, 3);
    space.delete(&cluster).await;
}

#[tokio::test]
async fn kibana_before_detectd_is_written_through_and_nothing_is_created() {
    let Some(cluster) = connect_or_skip("kibana_before_detectd").await else {
        return;
    };
    let space = AlertsSpace::new("kl-after");
    let layout = &space.layout;
    kibana_put_template(&cluster, layout).await;
    assert_eq!(
        kibana_create_alias_stream(&cluster, layout).await,
        "created"
    );
    let (_, template_before) =
        get(&cluster, &format!("/_index_template/{}", layout.template())).await;

    let s = sink(&cluster, &space, BootstrapMode::Create);
    s.prepare(&space.alias()).await.unwrap();
    let spec = space.spec(&cluster, BootstrapMode::Create);
    assert_eq!(
        ensure(&cluster, layout, &spec).await.unwrap(),
        Ensured::Existing
    );
    let report = s
        .write(&space.alias(), &[alert("a1"), alert("a2")])
        .await
        .unwrap();
    assert_eq!(report.created.len(), 2, "{report:?}");
    // into Kibana's index; no other index, Kibana's template untouched
    assert_eq!(count(&cluster, &layout.first_index()).await, 2);
    let (_, backing) = get(
        &cluster,
        &format!(
            "/_resolve/index/{}?expand_wildcards=all",
            layout.backing_pattern()
        ),
    )
    .await;
    let names: Vec<&str> = backing["indices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, vec![layout.first_index().as_str()]);
    let (_, template_after) =
        get(&cluster, &format!("/_index_template/{}", layout.template())).await;
    assert_eq!(template_before, template_after);
    space.delete(&cluster).await;
}

#[tokio::test]
async fn an_alias_gone_mid_life_is_restored_and_never_replaced_by_an_index() {
    let Some(cluster) = connect_or_skip("alias_gone_mid_life").await else {
        return;
    };
    let space = AlertsSpace::new("kl-gone");
    let layout = &space.layout;
    let s = sink(&cluster, &space, BootstrapMode::Create);
    s.write(&space.alias(), &[alert("a1")]).await.unwrap();

    // Someone removes the alias, keeping the index. The sink still
    // believes the alias is there: its write finds out and restores it.
    let (status, v) = send(
        &cluster,
        Method::Post,
        "/_aliases",
        json!({"actions": [{"remove": {"index": layout.first_index(), "alias": space.alias()}}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(kind_of(&cluster, &space.alias()).await, "none");
    let report = s.write(&space.alias(), &[alert("a2")]).await.unwrap();
    assert_eq!(report.created, vec!["a2"], "{report:?}");
    assert_eq!(kind_of(&cluster, &space.alias()).await, "alias");
    assert_eq!(count(&cluster, &layout.first_index()).await, 2);

    // The whole layout deleted: created again.
    let (status, _) = send(
        &cluster,
        Method::Delete,
        &format!("/{}", layout.first_index()),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let report = s.write(&space.alias(), &[alert("a3")]).await.unwrap();
    assert_eq!(report.created, vec!["a3"], "{report:?}");
    assert_eq!(kind_of(&cluster, &space.alias()).await, "alias");
    assert_eq!(count(&cluster, &space.alias()).await, 1);
    space.delete(&cluster).await;
}

#[tokio::test]
async fn a_concrete_index_squatting_the_alias_is_refused_with_the_fix() {
    let Some(cluster) = connect_or_skip("squatter").await else {
        return;
    };
    let space = AlertsSpace::new("kl-squat");
    // what an earlier detectd (or any writer without require_alias) made
    create_index(&cluster, &space.alias(), json!({})).await;
    // Kibana cannot create its layout beside it ...
    let (status, v) = send(
        &cluster,
        Method::Put,
        &format!("/{}", space.layout.first_index()),
        json!({"aliases": {space.alias(): {"is_write_index": true}}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["type"], "invalid_alias_name_exception");
    // ... and detectd refuses it, saying how to fix it, and writes nothing
    let s = sink(&cluster, &space, BootstrapMode::Create);
    let err = s.prepare(&space.alias()).await.unwrap_err();
    assert!(
        matches!(
            err,
            SinkError::AlertsIndex(AlertsIndexError::Squatted { .. })
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("a concrete index named")
            && text.contains("Fix:")
            && text.contains("_reindex"),
        "{text}"
    );
    let report = s.write(&space.alias(), &[alert("a1")]).await.unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].reason.contains("concrete index"),
        "{report:?}"
    );
    assert_eq!(count(&cluster, &space.alias()).await, 0);
    delete_indices(&cluster, &[&space.alias()]).await;
    space.delete(&cluster).await;
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// With `alerts.bootstrap = "wait"`, a run before Kibana created the alias
/// searches and writes nothing, keeps its window and says why; once Kibana
/// has created it, the next run writes that window's alerts.
#[tokio::test]
async fn waiting_for_kibana_keeps_the_window_until_the_alias_exists() {
    let Some(cluster) = connect_or_skip("wait_for_kibana").await else {
        return;
    };
    let space = AlertsSpace::new("kl-wait");
    let events = unique_index("kl-wait-ev");
    create_index(&cluster, &events, ecs_mapping()).await;
    let at = t0() + Duration::minutes(2);
    index_docs(
        &cluster,
        &events,
        &[
            (
                "lib".into(),
                detectd::synth::founding_library(&iso(at), "h1", "h1", "powershell.exe"),
            ),
            (
                "net".into(),
                detectd::synth::founding_network(
                    &iso(at + Duration::seconds(2)),
                    "h1",
                    "h1",
                    "powershell.exe",
                    "10.0.0.5",
                    135,
                ),
            ),
        ],
    )
    .await;
    let mut rule = founding_rule();
    rule.index = vec![events.clone()];
    let state = MemoryStateStore::new();
    state.set(Checkpoint {
        threshold_history: Vec::new(),
        rule_id: rule.rule_id.clone(),
        covered_until: t0(),
        updated_at: t0(),
        pending: None,
    });
    let runner = Runner::new(
        ElasticsearchSource::new(cluster.clone()),
        sink(&cluster, &space, BootstrapMode::Wait),
        state,
        RunnerSettings {
            alerts_index: space.alias(),
            space_id: space.space().to_string(),
            ..RunnerSettings::default()
        },
    );
    let now = t0() + Duration::minutes(5);
    let rec = runner.run(&rule, now).await;
    assert_eq!(rec.status, RunStatus::Failed, "{rec:?}");
    assert!(
        rec.error
            .as_deref()
            .is_some_and(|e| e.contains("waiting for Kibana")),
        "{rec:?}"
    );
    assert_eq!(rec.events_fetched, 0, "nothing searched while waiting");
    assert_eq!(
        runner
            .state()
            .checkpoint(&rule.rule_id)
            .await
            .unwrap()
            .unwrap()
            .covered_until,
        t0(),
        "the window is kept"
    );
    assert_eq!(kind_of(&cluster, &space.alias()).await, "none");

    // Kibana creates the space's layout; the next run writes the window.
    kibana_put_template(&cluster, &space.layout).await;
    assert_eq!(
        kibana_create_alias_stream(&cluster, &space.layout).await,
        "created"
    );
    let rec = runner.run(&rule, now + Duration::minutes(5)).await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{rec:?}");
    assert_eq!(rec.alerts_created, 3, "a shell and two building blocks");
    refresh(&cluster, &space.alias()).await;
    assert_eq!(count(&cluster, &space.layout.first_index()).await, 3);
    delete_indices(&cluster, &[&events]).await;
    space.delete(&cluster).await;
}
