//! The security alerts mapping built from Kibana's field maps
//! (`detectd::alert::fieldmap`) against a live server: an index with it is
//! created, the server counts its fields as we do, and a source event that
//! would break the mapping is written once cleaned as Kibana cleans it.

use detectd::alert::doc::clean_source;
use detectd::alert::fieldmap::{alerts_mappings, count_fields, Flavour, TOTAL_FIELDS_LIMIT};
use detectd::cluster::server::Distribution;
use detectd::cluster::Cluster;
use detectd_integration_tests::*;
use elasticsearch::http::Method;
use serde_json::{json, Value};

fn flavour(cluster: &Cluster) -> Flavour {
    let info = cluster.info();
    match info.distribution {
        Distribution::Elasticsearch => Flavour::Elasticsearch {
            major: info.version.major,
            minor: info.version.minor,
        },
        Distribution::OpenSearch => Flavour::OpenSearch {
            major: info.version.major,
            minor: info.version.minor,
        },
    }
}

/// `PUT /<index>` with the alerts index settings Kibana's template gives
/// (those every supported server knows) and `mappings`; the response
/// status and body.
async fn create_alerts_index(
    cluster: &Cluster,
    index: &str,
    mappings: &Value,
    fields_limit: usize,
) -> (u16, Value) {
    let body = json!({
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "index.mapping.ignore_malformed": true,
            "index.mapping.total_fields.limit": fields_limit
        },
        "mappings": mappings
    });
    let raw = cluster
        .send_raw(
            Method::Put,
            &format!("/{index}"),
            &[],
            Some(serde_json::to_vec(&body).unwrap()),
            Some("application/json"),
        )
        .await
        .expect("create index request");
    let value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
    (raw.status, value)
}

async fn index_doc(cluster: &Cluster, index: &str, doc: &Value) -> (u16, Value) {
    let raw = cluster
        .send_raw(
            Method::Post,
            &format!("/{index}/_doc"),
            &[("refresh", "true")],
            Some(serde_json::to_vec(doc).unwrap()),
            Some("application/json"),
        )
        .await
        .expect("index request");
    let value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
    (raw.status, value)
}

#[tokio::test]
async fn the_server_accepts_the_alerts_mapping_and_counts_its_fields_as_we_do() {
    let Some(cluster) = connect_or_skip("the_server_accepts_the_alerts_mapping").await else {
        return;
    };
    let flavour = flavour(&cluster);
    let mappings = alerts_mappings(flavour);
    let fields = count_fields(&mappings);
    assert!(fields <= TOTAL_FIELDS_LIMIT, "{fields} fields");

    let index = unique_index("alerts-mapping");
    let (status, body) = create_alerts_index(&cluster, &index, &mappings, TOTAL_FIELDS_LIMIT).await;
    assert_eq!(status, 200, "{flavour:?}: {body}");

    let got = cluster
        .request_json(Method::Get, &format!("/{index}/_mapping"), &[], None)
        .await
        .expect("get mapping");
    let props = &got[&index]["mappings"]["properties"];
    assert_eq!(props["process"]["properties"]["pid"]["type"], "long");
    assert_eq!(
        props["threat"]["properties"]["enrichments"]["type"],
        "nested"
    );
    assert_eq!(
        props["signal"]["properties"]["rule"]["properties"]["id"],
        json!({"type": "alias", "path": "kibana.alert.rule.uuid"})
    );
    let parameters = &props["kibana"]["properties"]["alert"]["properties"]["rule"]["properties"]
        ["parameters"]["type"];
    match flavour {
        Flavour::Elasticsearch { .. } => assert_eq!(parameters, "flattened"),
        Flavour::OpenSearch { .. } => assert!(
            parameters == "flat_object" || parameters == "object",
            "{parameters}"
        ),
    }

    // Exactly `fields` fields: one fewer allowed is refused.
    let tight = unique_index("alerts-mapping-tight");
    let (status, body) = create_alerts_index(&cluster, &tight, &mappings, fields - 1).await;
    assert_eq!(status, 400, "limit {} accepted: {body}", fields - 1);
    assert!(body.to_string().contains("Limit of total fields"), "{body}");

    delete_indices(&cluster, &[&index, &tight]).await;
}

// Issue 10: `"host": "ws-1"` cannot be written into the alerts mapping (an
// object field given a string); cleaned as Kibana cleans it, the event is
// written.
#[tokio::test]
async fn an_odd_event_is_written_once_cleaned() {
    let Some(cluster) = connect_or_skip("an_odd_event_is_written_once_cleaned").await else {
        return;
    };
    let mappings = alerts_mappings(flavour(&cluster));
    let index = unique_index("alerts-odd-event");
    let (status, body) = create_alerts_index(&cluster, &index, &mappings, TOTAL_FIELDS_LIMIT).await;
    assert_eq!(status, 200, "{body}");

    let source = json!({
        "@timestamp": "2024-05-01T09:58:00.000Z",
        "host": "ws-1",
        "process": {"pid": "not-a-pid", "name": "powershell.exe"},
        "event": {"category": ["process"], "kind": "event"}
    });
    let (status, body) = index_doc(&cluster, &index, &source).await;
    assert_eq!(status, 400, "the raw event was accepted: {body}");

    let mut cleaned = clean_source(&source);
    cleaned.insert("event.kind".into(), json!("signal"));
    let (status, body) = index_doc(&cluster, &index, &Value::Object(cleaned)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(count(&cluster, &index).await, 1);

    delete_indices(&cluster, &[&index]).await;
}
