//! Shared scans against a live cluster (`ELASTICSEARCH_URL`): the rules of
//! one cohort, run at one `now`, read their windows in one search (each
//! rule's whole query a named clause on its own indices) and write the same
//! alerts as the same rules fetching alone; the scan reads each event
//! once. The same comparison over memory is in `src/runner/share_tests.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::rule::{load_str, LoadOutcome, Rule};
use detectd::runner::{ScanBoard, ScanStats};
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::synth::{Synth, SynthConfig};
use detectd_integration_tests::*;
use serde_json::{json, Value};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn rule(id: &str, index: &str, body: &str) -> Arc<Rule> {
    let text = format!(
        "[rule]\nrule_id = \"{id}\"\nname = \"{id}\"\ndescription = \"d\"\n\
         severity = \"low\"\nrisk_score = 21\ninterval = \"5m\"\nindex = [{index}]\n{body}"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => Arc::new(*rule),
        other => panic!("rule {id} does not load: {other:?}"),
    }
}

fn eql(query: &str) -> String {
    format!("type = \"eql\"\nlanguage = \"eql\"\nfrom = \"now-9m\"\nquery = '''{query}'''\n")
}

/// Rules over the test's two indices: overlapping selections, one index
/// each or both, an EQL sequence, KQL and Lucene query rules, a longer
/// look-back, and a threshold rule (never shared).
fn rules(prefix: &str) -> Vec<Arc<Rule>> {
    let both = format!("\"{prefix}-ev-process\", \"{prefix}-ev-network\", \"{prefix}-ev-library\"");
    let net = format!("\"{prefix}-ev-net*\"");
    vec![
        rule(
            "shell",
            &both,
            &eql(
                r#"process where process.name : ("powershell.exe", "cmd.exe") and process.args == "-arg""#,
            ),
        ),
        rule(
            "cmd",
            &both,
            &eql(r#"any where process.name : "cmd.exe" and host.os.type == "windows""#),
        ),
        rule(
            "taskschd-rpc",
            &both,
            &eql(r#"sequence by host.id, process.entity_id with maxspan = 5s
 [library where dll.name : "taskschd.dll"]
 [network where destination.port == 135]"#),
        ),
        rule(
            "rdp",
            &net,
            &eql(r#"network where destination.port == 3389 and process.name : "cmd.exe""#),
        ),
        rule(
            "crypt32",
            &both,
            "type = \"query\"\nlanguage = \"kuery\"\nfrom = \"now-7m\"\n\
             query = 'event.category:library and dll.name:crypt32.dll and host.os.type:linux'\n",
        ),
        rule(
            "msedge-445",
            &net,
            "type = \"query\"\nlanguage = \"lucene\"\nfrom = \"now-15m\"\n\
             query = 'process.name:msedge.exe AND destination.port:445'\n",
        ),
        rule(
            "many-rdp",
            &both,
            "type = \"threshold\"\nlanguage = \"kuery\"\nfrom = \"now-9m\"\n\
             query = 'destination.port:3389'\n[rule.threshold]\nfield = [\"host.id\"]\nvalue = 8\n",
        ),
    ]
}

/// `n` generated events, 100 ms apart from five minutes before [`t0`],
/// indexed by category: the i-th index takes `categories[i]`, the last one
/// every other category. The events of each index, as indexed.
async fn load_events(
    cluster: &detectd::cluster::Cluster,
    indices: &[String],
    categories: &[&str],
    n: usize,
) -> Vec<Vec<(String, Value)>> {
    let start = t0() - Duration::minutes(5);
    let mut per_index: Vec<Vec<(String, Value)>> = vec![Vec::new(); indices.len()];
    for (i, source) in Synth::new(SynthConfig {
        start_ms: start.timestamp_millis(),
        mean_gap_ms: 100,
        attacks_per_10k: 60,
        ..SynthConfig::default()
    })
    .take(n)
    .enumerate()
    {
        let category = source["event"]["category"].as_str().unwrap_or("");
        let at = categories
            .iter()
            .position(|c| *c == category)
            .unwrap_or(indices.len() - 1);
        per_index[at].push((format!("e{i}"), source));
    }
    for (index, docs) in indices.iter().zip(&per_index) {
        index_docs(cluster, index, docs).await;
    }
    per_index
}

#[tokio::test]
async fn rules_sharing_a_scan_write_the_alerts_they_write_alone() {
    compare_with_and_without_sharing(false).await;
}

/// The EQL rules selected locally from one read of their window.
#[tokio::test]
async fn rules_selected_locally_write_the_alerts_they_write_alone() {
    compare_with_and_without_sharing(true).await;
}

async fn compare_with_and_without_sharing(select_locally: bool) {
    let (a_name, s_name) = match select_locally {
        false => ("scan-alone", "scan-shared"),
        true => ("local-alone", "local-shared"),
    };
    let Some(alone) = RunSpace::new("shared_scans", a_name).await else {
        return;
    };
    let shared = RunSpace::new("shared_scans", s_name)
        .await
        .expect("the cluster answered a moment ago");
    let cluster = alone.cluster.clone();
    let prefix = alone.prefix.clone();
    let indices: Vec<String> = ["process", "network", "library", "file"]
        .iter()
        .map(|c| format!("{prefix}-ev-{c}"))
        .collect();
    for index in &indices {
        create_index(&cluster, index, ecs_mapping()).await;
    }
    // 6,000 events over the 10 minutes before the second tick
    let per_index = load_events(
        &cluster,
        &indices,
        &["process", "network", "library"],
        6_000,
    )
    .await;

    let rules = rules(&prefix);
    let stats = Arc::new(ScanStats::default());
    let board =
        Arc::new(ScanBoard::new(1_000_000, stats.clone()).with_local_selection(select_locally));
    board.set_cohorts(vec![rules.clone()]);
    let by_itself = alone.runner(ElasticsearchSource::new(cluster.clone()));
    let together = shared
        .runner(ElasticsearchSource::new(cluster.clone()))
        .with_sharing(board);
    for now in [t0(), t0() + Duration::minutes(5)] {
        for rule in &rules {
            for (runner, how) in [(&by_itself, "alone"), (&together, "shared")] {
                let record = runner.run(rule, now).await;
                assert!(
                    record.error.is_none(),
                    "{} ({how}) failed: {:?}",
                    rule.rule_id,
                    record.error
                );
            }
        }
    }

    let (a, s) = (alone.alert_set().await, shared.alert_set().await);
    assert_eq!(a, s, "the same alerts with and without sharing");
    let rules_alerting: BTreeSet<&str> = a.iter().map(|(r, _)| r.as_str()).collect();
    for r in &rules {
        assert!(
            rules_alerting.contains(r.rule_id.as_str()),
            "{} made no alert: the test data should make some ({rules_alerting:?})",
            r.rule_id
        );
    }
    // per tick, the six rules that read their window's events share (the
    // threshold rule aggregates on the cluster): in one scan of named
    // clauses, or the four EQL rules in a scan selecting locally and the
    // two query rules in one of named clauses
    let scans_per_tick = if select_locally { 2 } else { 1 };
    assert_eq!(stats.scans.get(), 2 * scans_per_tick);
    assert_eq!(stats.members.get(), 12);
    assert_eq!(stats.served.get(), 12);
    assert_eq!(stats.failed.get(), 0);
    let (read, wanted) = (stats.events_read.get(), stats.member_events.get());
    if select_locally {
        // every event of the windows is read, once per tick at most (the
        // query rules' scan reads what their clauses select, again)
        let events: u64 = per_index.iter().map(|d| d.len() as u64).sum();
        assert!(
            read <= 2 * events + wanted,
            "each event is read once per tick: {read} read, {events} events"
        );
    } else {
        assert!(
            read < wanted,
            "the scan read each event once: {read} read, {wanted} for the rules"
        );
    }

    let names: Vec<&str> = indices.iter().map(String::as_str).collect();
    alone.cleanup(&names).await;
    shared.cleanup(&[]).await;
}

/// The ids of a stream's events, in order.
async fn ids(stream: detectd::source::EventStream) -> Vec<String> {
    let docs = stream.collect().await.expect("the stream reads");
    docs.into_iter()
        .map(|d| format!("{}/{}", d.index, d.id))
        .collect()
}

/// The ids each member gets from one shared scan of `requests`, and how
/// many events the scan read.
async fn member_ids(
    source: &ElasticsearchSource,
    requests: &[detectd::source::FetchRequest],
    select_locally: bool,
) -> (Vec<Vec<String>>, u64) {
    use detectd::source::{EventSource, ScanOptions};
    let options = ScanOptions {
        select_locally,
        ..ScanOptions::fresh(1_000_000)
    };
    let scan = source
        .fetch_shared(requests, options)
        .await
        .expect("the scan reads")
        .expect("a cluster shares scans");
    let mut out = Vec::with_capacity(requests.len());
    for m in 0..requests.len() {
        out.push(ids(scan.stream(m).expect("a member's stream")).await);
    }
    (out, scan.read)
}

/// Three indices of [`load_events`]' events (process, network, the rest),
/// named `{prefix}-{tag}-{category}`, the i-th created with `mapping(i)`.
async fn three_indices(
    space: &RunSpace,
    tag: &str,
    mapping: impl Fn(usize) -> Value,
) -> Vec<String> {
    let indices: Vec<String> = ["process", "network", "library"]
        .iter()
        .map(|c| format!("{}-{tag}-{c}", space.prefix))
        .collect();
    for (i, index) in indices.iter().enumerate() {
        create_index(&space.cluster, index, mapping(i)).await;
    }
    load_events(&space.cluster, &indices, &["process", "network"], 3_000).await;
    indices
}

/// Minutes 1 to 4 of the events of [`load_events`].
fn window() -> detectd::source::TimeRange {
    let start = t0() - Duration::minutes(5);
    detectd::source::TimeRange {
        from: start + Duration::minutes(1),
        to: start + Duration::minutes(4),
    }
}

/// A request of the EQL `query` over `on` in the [`window`].
fn window_request(on: &[&String], query: &str) -> detectd::source::FetchRequest {
    let query = detectd::eql::parse(query).expect("the query parses");
    detectd::source::FetchRequest::new(on.iter().map(|i| i.to_string()).collect(), window())
        .for_query(&query, "event.category")
}

/// At the source: a scan selecting locally gives every member the events
/// its own search returns, in its order, as a scan of named clauses does
/// (more where its filter compares a field by value), and reads each event
/// of the window once.
#[tokio::test]
async fn a_scan_selecting_locally_gives_each_member_what_its_own_search_returns() {
    use detectd::source::{EventSource, Exact, FetchRequest};
    let Some(space) = RunSpace::new("shared_scans", "local-source").await else {
        return;
    };
    let cluster = space.cluster.clone();
    // the library events dynamically mapped: text with keyword sub-fields,
    // which the cluster searches and `_source` does not have
    let indices = three_indices(&space, "src", |i| match i {
        2 => json!({ "properties": { "@timestamp": { "type": "date" } } }),
        _ => ecs_mapping(),
    })
    .await;
    let (request, range) = (window_request, window());
    let [process, network, library] = [&indices[0], &indices[1], &indices[2]];
    let mut with_exact = request(&[process], "any where true");
    with_exact.exact = Some(Exact::new(|_| {
        Ok(detectd::filter::Filter::term("process.name", "cmd.exe"))
    }));
    let requests = vec![
        request(
            &[process, network, library],
            r#"process where process.name : ("powershell.exe", "cmd.exe")"#,
        ),
        request(&[network], "network where destination.port == 135"),
        request(
            &[process, network, library],
            r#"sequence by host.id [library where dll.name : "taskschd.dll"] [network where true]"#,
        ),
        request(&[process, library], "any where true"),
        with_exact,
    ];
    let source = ElasticsearchSource::new(cluster.clone());
    let mut own = Vec::new();
    for r in &requests {
        own.push(ids(source.fetch(r.clone()).await.expect("fetch")).await);
    }
    let everything = ids(source
        .fetch(FetchRequest::new(indices.clone(), range))
        .await
        .expect("fetch"))
    .await;
    for select_locally in [false, true] {
        let (scanned, read) = member_ids(&source, &requests, select_locally).await;
        for (m, (want, got)) in own.iter().zip(scanned).enumerate() {
            // selected locally, a leaf on a field compared by value (the
            // port, a long) matches everything: the member gets more, in
            // the same order, and its evaluator narrows them again
            let exact = !select_locally || m != 1;
            let ok = match exact {
                true => got == *want,
                false => {
                    let mut rest = got.iter();
                    want.iter().all(|w| rest.any(|g| g == w)) && got.len() > want.len()
                }
            };
            assert!(
                ok,
                "member {m} (select_locally {select_locally}) gets {} its own search returns: \
                 {} events for {}",
                if exact {
                    "what"
                } else {
                    "more than, in order, what"
                },
                got.len(),
                want.len()
            );
        }
        if select_locally {
            assert_eq!(
                read,
                everything.len() as u64,
                "every event of the window is read once"
            );
            assert!(
                own[..4].iter().all(|o| o.len() < everything.len()),
                "the pushdown filters select some events, not all"
            );
        }
    }
    assert!(
        own.iter().all(|o| !o.is_empty()),
        "every member selects some events"
    );

    let names: Vec<&str> = indices.iter().map(String::as_str).collect();
    space.cleanup(&names).await;
}

/// At the source: members reading indices through filtered aliases get
/// from a shared scan what their own search of the aliases returns — the
/// alias's filter for each index, even where another member names the
/// index itself (which makes the cluster search it whole) — and a member
/// reading through a routed alias is named as unshareable.
#[tokio::test]
async fn members_reading_through_filtered_aliases_get_what_their_own_search_returns() {
    use detectd::source::{EventSource, ScanError, ScanOptions};
    use elasticsearch::http::Method;
    let Some(space) = RunSpace::new("shared_scans", "aliases").await else {
        return;
    };
    let cluster = space.cluster.clone();
    let prefix = space.prefix.clone();
    let indices = three_indices(&space, "al", |_| ecs_mapping()).await;
    let [process, network, library] = [&indices[0], &indices[1], &indices[2]];
    let (tenant, whole, routed) = (
        format!("{prefix}-al-tenant"),
        format!("{prefix}-al-whole"),
        format!("{prefix}-al-routed"),
    );
    // one alias filtering its two indices differently, one without a
    // filter, one routing searches
    let windows = json!({ "term": { "host.os.type": "windows" } });
    let rdp = json!({ "term": { "destination.port": 3389 } });
    cluster
        .request_json(
            Method::Post,
            "/_aliases",
            &[],
            Some(&json!({ "actions": [
                { "add": { "index": process, "alias": tenant, "filter": windows } },
                { "add": { "index": network, "alias": tenant, "filter": rdp } },
                { "add": { "index": library, "alias": whole } },
                { "add": { "index": library, "alias": routed, "search_routing": "1" } },
            ] })),
        )
        .await
        .expect("the aliases are made");

    let request = window_request;
    let requests = vec![
        request(&[&tenant], "any where true"),
        // names both indices itself: the scan searches them whole
        request(&[process, network, library], "any where true"),
        request(&[&tenant, &whole], r#"any where process.name : "cmd.exe""#),
        // the process index itself, the network index through the filter
        request(&[&tenant, process], "any where true"),
    ];
    let source = ElasticsearchSource::new(cluster.clone());
    let mut own = Vec::new();
    for r in &requests {
        own.push(ids(source.fetch(r.clone()).await.expect("fetch")).await);
    }
    assert!(
        !own[0].is_empty() && own[0].len() * 2 < own[1].len(),
        "the filters select some events: {} of {}",
        own[0].len(),
        own[1].len()
    );
    assert!(own[3].len() > own[0].len() && own[3].len() < own[1].len());
    for select_locally in [false, true] {
        let (scanned, _) = member_ids(&source, &requests, select_locally).await;
        for (m, (want, got)) in own.iter().zip(scanned).enumerate() {
            assert!(
                got == *want,
                "member {m} (select_locally {select_locally}) gets what its own search returns: \
                 {} events for {}",
                got.len(),
                want.len()
            );
        }
    }
    let with_routed = vec![requests[1].clone(), request(&[&routed], "any where true")];
    match source
        .fetch_shared(&with_routed, ScanOptions::fresh(1_000_000))
        .await
    {
        Err(ScanError::Unshareable { members, reason }) => {
            assert_eq!(members, vec![1], "the member reading the routed alias");
            assert!(reason.contains("routes searches"), "{reason}");
        }
        Err(e) => panic!("a routed alias makes its member unshareable, not {e}"),
        Ok(_) => panic!("a routed alias cannot share a scan"),
    }

    let names: Vec<&str> = indices.iter().map(String::as_str).collect();
    space.cleanup(&names).await;
}
