//! Fetch and write against a live cluster: paging past 10,000 events in
//! order, missing indices, time-range edges, bulk idempotency, templates.

use chrono::{DateTime, Duration, TimeZone, Utc};
use detectd::alert::Alert;
use detectd::eql::pushdown::{Filter, Scalar};
use detectd::sink::alerts_index::BootstrapMode;
use detectd::sink::elasticsearch::{
    install_templates, BulkSettings, ElasticsearchSink, IndexNames,
};
use detectd::sink::AlertSink;
use detectd::source::elasticsearch::ElasticsearchSource;
use detectd::source::{DocRef, EventSource, FetchRequest, TimeFilter, TimeRange};
use detectd_integration_tests::*;
use serde_json::{json, Value};

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
}

#[tokio::test]
async fn more_than_10k_events_are_paged_in_order() {
    let Some(cluster) = connect_or_skip("more_than_10k_events_are_paged_in_order").await else {
        return;
    };
    let index = unique_index("paging");
    create_index(&cluster, &index, ecs_mapping()).await;
    const N: usize = 12_345;
    // Three events per millisecond, so order within a timestamp comes from
    // the tiebreaker; ids are indexed in reverse to make insertion order useless.
    let docs: Vec<(String, Value)> = (0..N)
        .rev()
        .map(|i| {
            (
                format!("e{i}"),
                json!({
                    "@timestamp": iso(base() + Duration::milliseconds((i / 3) as i64)),
                    "event": {"sequence": i, "category": "process"},
                    "n": i
                }),
            )
        })
        .collect();
    index_docs(&cluster, &index, &docs).await;
    let source = ElasticsearchSource::new(cluster.clone());
    let mut req = FetchRequest::new(
        vec![index.clone()],
        TimeRange {
            from: base(),
            to: base() + Duration::hours(1),
        },
    );
    req.tiebreaker_field = Some("event.sequence".into());
    req.page_size = 1_000;
    req.source_fields = Some(vec!["n".into(), "@timestamp".into()]);
    let mut stream = source.fetch(req.clone()).await.unwrap();
    let mut expected = 0u64;
    while let Some(doc) = stream.next().await {
        let doc = doc.unwrap();
        assert_eq!(
            doc.source["n"],
            json!(expected),
            "event {expected} out of order: {}",
            doc.id
        );
        assert!(
            doc.source.get("event").is_none(),
            "projection keeps only the asked fields"
        );
        expected += 1;
    }
    assert_eq!(expected, N as u64);

    // Without a tiebreaker: timestamps ascending, each event exactly once.
    req.tiebreaker_field = None;
    req.page_size = 5_000;
    let got = source.fetch(req).await.unwrap().collect().await.unwrap();
    assert_eq!(got.len(), N);
    let mut seen = std::collections::HashSet::new();
    let mut last = String::new();
    for d in &got {
        let ts = d.source["@timestamp"].as_str().unwrap().to_string();
        assert!(ts >= last, "timestamps go back: {last} then {ts}");
        last = ts;
        assert!(seen.insert(d.id.clone()), "duplicate {}", d.id);
    }
    delete_indices(&cluster, &[&index]).await;
}

#[tokio::test]
async fn missing_indices_are_warnings_not_failures() {
    let Some(cluster) = connect_or_skip("missing_indices_are_warnings_not_failures").await else {
        return;
    };
    let index = unique_index("present");
    create_index(&cluster, &index, ecs_mapping()).await;
    index_docs(
        &cluster,
        &index,
        &[("a".into(), json!({"@timestamp": iso(base())}))],
    )
    .await;
    let source = ElasticsearchSource::new(cluster.clone());
    let missing = unique_index("absent");
    let range = TimeRange {
        from: base() - Duration::minutes(1),
        to: base() + Duration::minutes(1),
    };
    // One pattern matches nothing, one concrete index does not exist.
    let req = FetchRequest::new(
        vec![format!("{missing}-*"), index.clone(), missing.clone()],
        range,
    );
    let stream = source.fetch(req).await.unwrap();
    assert_eq!(stream.warnings().len(), 2, "{:?}", stream.warnings());
    assert!(stream.warnings()[0].contains(&missing));
    let docs = stream.collect().await.unwrap();
    assert_eq!(docs.len(), 1);
    // Nothing matches at all: an empty window with a warning.
    let stream = source
        .fetch(FetchRequest::new(vec![format!("{missing}-*")], range))
        .await
        .unwrap();
    assert_eq!(stream.warnings().len(), 1);
    assert!(stream.collect().await.unwrap().is_empty());
    delete_indices(&cluster, &[&index]).await;
}

#[tokio::test]
async fn time_range_is_inclusive_and_the_override_falls_back_to_timestamp() {
    let Some(cluster) = connect_or_skip("time_range_edges").await else {
        return;
    };
    let index = unique_index("range");
    create_index(&cluster, &index, ecs_mapping()).await;
    let from = base();
    let to = base() + Duration::minutes(9);
    let ms = Duration::milliseconds;
    let doc = |ts: DateTime<Utc>, ingested: Option<DateTime<Utc>>| match ingested {
        Some(i) => json!({"@timestamp": iso(ts), "event": {"ingested": iso(i)}}),
        None => json!({"@timestamp": iso(ts)}),
    };
    let docs: Vec<(String, Value)> = vec![
        ("before".into(), doc(from - ms(1), None)),
        ("at-from".into(), doc(from, None)),
        ("middle".into(), doc(from + ms(5), None)),
        ("at-to".into(), doc(to, None)),
        ("after".into(), doc(to + ms(1), None)),
        // @timestamp outside, override inside: in with the override.
        (
            "ingested-in".into(),
            doc(from - Duration::hours(1), Some(from + ms(1))),
        ),
        // @timestamp inside, override outside: out with the override.
        (
            "ingested-out".into(),
            doc(from + ms(2), Some(to + Duration::hours(1))),
        ),
    ];
    index_docs(&cluster, &index, &docs).await;
    let source = ElasticsearchSource::new(cluster.clone());
    let ids = |docs: Vec<detectd::source::Document>| {
        let mut v: Vec<String> = docs.into_iter().map(|d| d.id).collect();
        v.sort();
        v
    };
    let mut req = FetchRequest::new(vec![index.clone()], TimeRange { from, to });
    let plain = ids(source
        .fetch(req.clone())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap());
    assert_eq!(plain, vec!["at-from", "at-to", "ingested-out", "middle"]);

    req.time_filter = TimeFilter::kibana(Some("event.ingested"), false);
    let fallback = ids(source
        .fetch(req.clone())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap());
    assert_eq!(fallback, vec!["at-from", "at-to", "ingested-in", "middle"]);

    req.time_filter = TimeFilter::kibana(Some("event.ingested"), true);
    let no_fallback = ids(source.fetch(req).await.unwrap().collect().await.unwrap());
    assert_eq!(no_fallback, vec!["ingested-in"]);
    delete_indices(&cluster, &[&index]).await;
}

#[tokio::test]
async fn bulk_create_twice_gives_duplicates_and_templates_install_idempotently() {
    let Some(cluster) = connect_or_skip("bulk_idempotency").await else {
        return;
    };
    let space = AlertsSpace::new("bulk");
    let index = space.alias();
    let alerts: Vec<Alert> = (0..250)
        .map(|i| Alert {
            id: format!("{i:064x}"),
            source: json!({"@timestamp": iso(base()), "kibana": {"alert": {"uuid": format!("{i:064x}")}}, "pad": "x".repeat(300)}),
        })
        .collect();
    let sink = ElasticsearchSink::new(
        cluster.clone(),
        BulkSettings {
            // Several requests per write.
            max_request_bytes: 20_000,
            refresh: Some("true".into()),
            ..BulkSettings::default()
        },
        space.spec(&cluster, BootstrapMode::Create),
    );
    let first = sink.write(&index, &alerts).await.unwrap();
    assert_eq!(first.created.len(), 250, "{:?}", first.failed.first());
    assert!(first.duplicates.is_empty() && first.failed.is_empty());
    let second = sink.write(&index, &alerts).await.unwrap();
    assert!(second.created.is_empty());
    assert_eq!(second.duplicates.len(), 250);
    assert!(second.failed.is_empty());
    assert_eq!(count(&cluster, &index).await, 250);
    // A mix: 10 old, 5 new.
    let mut mix: Vec<Alert> = alerts[..10].to_vec();
    mix.extend((1000..1005).map(|i| Alert {
        id: format!("new-{i}"),
        source: json!({"@timestamp": iso(base())}),
    }));
    let third = sink.write(&index, &mix).await.unwrap();
    assert_eq!((third.created.len(), third.duplicates.len()), (5, 10));

    // The full source of a few alerts, as for events that end up in alerts.
    let source = ElasticsearchSource::new(cluster.clone());
    let refs = vec![
        DocRef {
            index: index.clone(),
            id: alerts[3].id.clone(),
        },
        DocRef {
            index: index.clone(),
            id: "no-such-id".into(),
        },
    ];
    let docs = source.fetch_sources(&refs).await.unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].source["pad"], alerts[3].source["pad"]);

    // The first write created Kibana's layout: the alias over a hidden
    // backing index, mapped as Kibana maps it.
    let mapping = cluster
        .request_json(
            elasticsearch::http::Method::Get,
            &format!("/{}/_mapping", space.layout.first_index()),
            &[],
            None,
        )
        .await
        .unwrap();
    let m = mapping.as_object().unwrap().values().next().unwrap();
    assert!(
        matches!(m.pointer("/mappings/dynamic"), Some(v) if v == &json!(false) || v == &json!("false")),
        "{m}"
    );
    assert_eq!(
        m.pointer("/mappings/properties/kibana/properties/alert/properties/uuid/type"),
        Some(&json!("keyword"))
    );

    let names = IndexNames {
        state: unique_index("state"),
        executions: unique_index("executions"),
        dead_letters: unique_index("dead-letters"),
    };
    let t1 = install_templates(&cluster, &names).await.unwrap();
    assert_eq!(t1.templates.len(), 5);
    let t2 = install_templates(&cluster, &names).await.unwrap();
    assert_eq!(t2.templates, t1.templates);
    // None of detectd's templates matches Kibana's alias names: writing one
    // by accident could never create a concrete index under its template.
    for name in &t1.templates {
        let t = cluster
            .request_json(
                elasticsearch::http::Method::Get,
                &format!("/_index_template/{name}"),
                &[],
                None,
            )
            .await
            .unwrap();
        let patterns = t
            .pointer("/index_templates/0/index_template/index_patterns")
            .unwrap();
        for p in patterns.as_array().unwrap() {
            let p = p.as_str().unwrap();
            assert!(
                !p.starts_with(".alerts") && !p.starts_with(".internal"),
                "{name}: {p}"
            );
        }
        let _ = cluster
            .send_raw(
                elasticsearch::http::Method::Delete,
                &format!("/_index_template/{name}"),
                &[],
                None,
                None,
            )
            .await;
    }
    space.delete(&cluster).await;
}

#[tokio::test]
async fn early_drop_and_server_errors_surface_cleanly() {
    let Some(cluster) = connect_or_skip("early_drop").await else {
        return;
    };
    let index = unique_index("drop");
    create_index(&cluster, &index, ecs_mapping()).await;
    let docs: Vec<(String, Value)> = (0..300)
        .map(|i| {
            (
                format!("d{i}"),
                json!({"@timestamp": iso(base() + Duration::seconds(i)), "x": "y"}),
            )
        })
        .collect();
    index_docs(&cluster, &index, &docs).await;
    let source = ElasticsearchSource::new(cluster.clone());
    let mut req = FetchRequest::new(
        vec![index.clone()],
        TimeRange {
            from: base(),
            to: base() + Duration::hours(1),
        },
    );
    req.page_size = 10;
    // Reading a few events and dropping the stream stops the fetch.
    let mut stream = source.fetch(req.clone()).await.unwrap();
    for _ in 0..15 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    // A filter with a term on the keyword field works and narrows.
    req.filter = Filter::Term {
        field: "x".into(),
        value: Scalar::String("Y".into()),
        case_insensitive: true,
    };
    assert_eq!(
        source
            .fetch(req.clone())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .len(),
        300
    );
    req.filter = Filter::Term {
        field: "x".into(),
        value: Scalar::String("Y".into()),
        case_insensitive: false,
    };
    assert_eq!(
        source
            .fetch(req)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .len(),
        0
    );
    delete_indices(&cluster, &[&index]).await;
}

#[tokio::test]
async fn gzip_compressed_requests_are_accepted() {
    if connect_or_skip("gzip_compressed_requests_are_accepted")
        .await
        .is_none()
    {
        return;
    }
    let mut settings = detectd::config::cluster::ClusterSettings::from_env();
    settings.gzip = Some(true);
    let cluster = detectd::cluster::Cluster::connect(&settings.resolve().unwrap())
        .await
        .unwrap();
    let space = AlertsSpace::new("gzip");
    let index = space.alias();
    let sink = ElasticsearchSink::new(
        cluster.clone(),
        BulkSettings {
            refresh: Some("true".into()),
            ..BulkSettings::default()
        },
        space.spec(&cluster, BootstrapMode::Create),
    );
    let alerts: Vec<Alert> = (0..20)
        .map(|i| Alert {
            id: format!("g{i}"),
            source: json!({"@timestamp": iso(base() + Duration::seconds(i))}),
        })
        .collect();
    let report = sink.write(&index, &alerts).await.unwrap();
    assert_eq!(report.created.len(), 20, "{:?}", report.failed.first());
    let source = ElasticsearchSource::new(cluster.clone());
    let got = source
        .fetch(FetchRequest::new(
            vec![index.clone()],
            TimeRange {
                from: base(),
                to: base() + Duration::minutes(1),
            },
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(got.len(), 20);
    space.delete(&cluster).await;
}

/// A term on a field under a `nested` object matches nothing as a plain
/// query, while the evaluator reads it from `_source`: the pushdown must
/// widen it instead of dropping the event.
#[tokio::test]
async fn fields_under_nested_objects_are_not_filtered_on() {
    let Some(cluster) = connect_or_skip("nested_fields").await else {
        return;
    };
    let index = unique_index("nested");
    create_index(
        &cluster,
        &index,
        json!({"properties": {
            "@timestamp": {"type": "date"},
            "n": {"type": "nested", "properties": {"k": {"type": "keyword"}}}
        }}),
    )
    .await;
    index_docs(
        &cluster,
        &index,
        &[(
            "a".into(),
            json!({"@timestamp": iso(base()), "n": [{"k": "x"}]}),
        )],
    )
    .await;
    let query = detectd::eql::parse(r#"any where n.k == "x""#).unwrap();
    let req = FetchRequest::new(
        vec![index.clone()],
        TimeRange {
            from: base(),
            to: base() + Duration::minutes(1),
        },
    )
    .for_query(&query, "event.category");
    let source = ElasticsearchSource::new(cluster.clone());
    let got = source.fetch(req).await.unwrap().collect().await.unwrap();
    assert_eq!(got.len(), 1, "the nested event must be fetched");
    delete_indices(&cluster, &[&index]).await;
}
