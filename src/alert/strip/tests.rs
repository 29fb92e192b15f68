//! The cases of Kibana's `traverse_and_mutate_doc.test.ts`, read as a
//! specification (same inputs, same expected document and removed list),
//! and the ones of detectd's issue 10.

use serde_json::{json, Value};

use super::*;

/// `traverseAndMutateDoc(input)` as `(result, removed [(path, value)])`.
fn run(input: Value) -> (Value, Vec<(String, Value)>) {
    let out = strip_non_ecs(&input);
    let removed = out.removed.into_iter().map(|r| (r.path, r.value)).collect();
    (Value::Object(out.doc), removed)
}

fn removed(items: &[(&str, Value)]) -> Vec<(String, Value)> {
    items
        .iter()
        .map(|(p, v)| (p.to_string(), v.clone()))
        .collect()
}

fn assert_kept(input: Value) {
    let (result, gone) = run(input.clone());
    assert_eq!(result, input);
    assert_eq!(gone, vec![]);
}

#[test]
fn keeps_ecs_compliant_fields() {
    assert_kept(
        json!({"client": {"nat": {"port": "3000", "ip": "127.0.0.2"}, "ip": ["127.0.0.1"]}}),
    );
}

#[test]
fn strips_an_object_where_ecs_has_a_leaf() {
    let (result, gone) = run(json!({
        "agent": {"name": {"first": "test-1", "second": "test-2"}, "type": "filebeat"}
    }));
    assert_eq!(result, json!({"agent": {"type": "filebeat"}}));
    assert_eq!(
        gone,
        removed(&[("agent.name", json!({"first": "test-1", "second": "test-2"}))])
    );
}

#[test]
fn strips_a_keyword_where_ecs_has_an_object() {
    let (result, gone) = run(json!({"agent": "test", "message": "test message"}));
    assert_eq!(result, json!({"message": "test message"}));
    assert_eq!(gone, removed(&[("agent", json!("test"))]));
    // `device` is an object only through its children
    let (result, gone) = run(json!({"device": "test", "message": "test message"}));
    assert_eq!(result, json!({"message": "test message"}));
    assert_eq!(gone, removed(&[("device", json!("test"))]));
}

#[test]
fn keeps_arrays_of_objects_where_an_object_is_expected() {
    assert_kept(
        json!({"agent": [{"name": "agent-1"}, {"name": "agent-2"}], "message": "test message"}),
    );
}

#[test]
fn strips_conflicting_fields_in_arrays_of_objects() {
    let (result, gone) = run(json!({
        "agent": [{"name": "agent-1", "type": {"conflict": "conflict"}}, {"name": "agent-2"}],
        "message": "test message"
    }));
    assert_eq!(
        result,
        json!({"agent": [{"name": "agent-1"}, {"name": "agent-2"}], "message": "test message"})
    );
    assert_eq!(
        gone,
        removed(&[("agent.type", json!({"conflict": "conflict"}))])
    );
}

#[test]
fn strips_each_conflicting_element_of_an_array() {
    let (result, gone) = run(json!({"agent": ["agent-1", "agent-2"], "message": "test message"}));
    assert_eq!(result, json!({"message": "test message"}));
    assert_eq!(
        gone,
        removed(&[("agent", json!("agent-1")), ("agent", json!("agent-2"))])
    );
    let (result, gone) = run(json!({
        "agent": {"name": [{"conflict": "agent-1"}, {"conflict": "agent-2"}], "type": "filebeat"},
        "message": "test message"
    }));
    assert_eq!(
        result,
        json!({"agent": {"type": "filebeat"}, "message": "test message"})
    );
    assert_eq!(
        gone,
        removed(&[
            ("agent.name", json!({"conflict": "agent-1"})),
            ("agent.name", json!({"conflict": "agent-2"}))
        ])
    );
}

#[test]
fn drops_objects_left_empty_in_arrays() {
    let (result, gone) = run(json!({
        "agent": [{"name": {"conflict": "agent-1"}}, {"name": "test"}],
        "message": "test message"
    }));
    assert_eq!(
        result,
        json!({"agent": [{"name": "test"}], "message": "test message"})
    );
    assert_eq!(
        gone,
        removed(&[("agent.name", json!({"conflict": "agent-1"}))])
    );
}

#[test]
fn dot_notation_through_a_leaf_is_stripped() {
    let (result, gone) =
        run(json!({"agent.name.conflict": "some-value", "message": "test message"}));
    assert_eq!(result, json!({"message": "test message"}));
    assert_eq!(
        gone,
        removed(&[("agent.name.conflict", json!("some-value"))])
    );

    let (result, gone) = run(json!({"agent.name.text": ["1"], "message": "test message"}));
    assert_eq!(result, json!({"message": "test message"}));
    assert_eq!(gone, removed(&[("agent.name.text", json!("1"))]));

    // an empty array goes, but is not reported
    let (result, gone) = run(json!({"agent.name.text": [], "message": "test message"}));
    assert_eq!(result, json!({"message": "test message"}));
    assert_eq!(gone, vec![]);
}

#[test]
fn valid_dot_notation_is_kept() {
    assert_kept(
        json!({"agent.name": "some name", "agent.build.original": "v10", "message": "test message"}),
    );
}

#[test]
fn non_ecs_fields_are_kept() {
    assert_kept(json!({"non_ecs_object": {"field1": "value1"}, "message": "test message"}));
    assert_kept(json!({
        "agent": {"non_ecs_object": {"field1": "value1"}, "non_ecs_field": "value2"},
        "message": "test message"
    }));
}

#[test]
fn ip_fields() {
    assert_kept(json!({"source": {"ip": "192.168.0.0", "name": "test source"}}));
    let (result, gone) = run(json!({"source": {"ip": "invalid-ip", "name": "test source"}}));
    assert_eq!(result, json!({"source": {"name": "test source"}}));
    assert_eq!(gone, removed(&[("source.ip", json!("invalid-ip"))]));
}

#[test]
fn nested_fields_take_objects_only() {
    let (result, gone) = run(json!({
        "threat": {"enrichments": ["non-valid-threat-1", "non-valid-threat-2"], "indicator.port": 443}
    }));
    assert_eq!(result, json!({"threat": {"indicator.port": 443}}));
    assert_eq!(
        gone,
        removed(&[
            ("threat.enrichments", json!("non-valid-threat-1")),
            ("threat.enrichments", json!("non-valid-threat-2"))
        ])
    );
    assert_kept(json!({"threat": {"enrichments": [{"indicator.as.number": 5}]}}));
}

#[test]
fn date_fields() {
    let (result, gone) = run(json!({"event": {"created": true, "category": "start"}}));
    assert_eq!(
        result,
        json!({"event": {"category": "start"}, "kibana.alert.original_event.category": "start"})
    );
    assert_eq!(gone, removed(&[("event.created", json!(true))]));

    let (result, gone) =
        run(json!({"event": {"created": "2020-12-12", "end": [2345562, "2022-10-12"]}}));
    assert_eq!(
        result,
        json!({
            "event": {"created": "2020-12-12", "end": [2345562, "2022-10-12"]},
            "kibana.alert.original_event.created": "2020-12-12",
            "kibana.alert.original_event.end": [2345562, "2022-10-12"]
        })
    );
    assert_eq!(gone, vec![]);
}

#[test]
fn long_fields() {
    let (result, gone) = run(json!({"client": {"bytes": "non-valid"}}));
    assert_eq!(result, json!({}));
    assert_eq!(gone, removed(&[("client.bytes", json!("non-valid"))]));
    let (result, gone) = run(json!({"client": {"bytes": "24 "}}));
    assert_eq!(result, json!({}));
    assert_eq!(gone, removed(&[("client.bytes", json!("24 "))]));
    // a number in a string is a long for Kibana
    assert_kept(json!({"client": {"bytes": "24"}}));
}

#[test]
fn numeric_fields() {
    let (result, gone) = run(json!({"user.risk.calculated_score": "non-valid"}));
    assert_eq!(result, json!({}));
    assert_eq!(
        gone,
        removed(&[("user.risk.calculated_score", json!("non-valid"))])
    );
    let (result, gone) = run(json!({"host": {"cpu.usage": "non-valid"}}));
    assert_eq!(result, json!({}));
    assert_eq!(gone, removed(&[("host.cpu.usage", json!("non-valid"))]));
    assert_kept(json!({"user.risk.calculated_score": "24 "}));
    assert_kept(json!({"host.cpu.usage": "24 "}));
    assert_kept(json!({"host": {"cpu.usage": "1234"}}));
    assert_kept(json!({"user.risk.calculated_score": [458.3333, "45.3", 10, 0, -667.23]}));
}

#[test]
fn boolean_fields() {
    let (result, gone) = run(json!({
        "dll.code_signature.trusted": ["conflict", "true", 5, "False", "ee", "True"]
    }));
    assert_eq!(result, json!({"dll.code_signature.trusted": ["true"]}));
    let path = "dll.code_signature.trusted";
    assert_eq!(
        gone,
        removed(&[
            (path, json!("conflict")),
            (path, json!(5)),
            (path, json!("False")),
            (path, json!("ee")),
            (path, json!("True"))
        ])
    );
    let (result, gone) = run(json!({"dll.code_signature.trusted": "True"}));
    assert_eq!(result, json!({}));
    assert_eq!(gone, removed(&[(path, json!("True"))]));
    assert_kept(json!({"dll.code_signature.trusted": ["true", "false", true, false, ""]}));
    assert_kept(json!({"dll.code_signature.trusted": [[true, false], ""]}));
}

#[test]
fn geo_points_are_not_checked() {
    assert_kept(json!({"client.location.geo": "invalid geo_point"}));
    assert_kept(json!({"client.geo.location": [0, 90]}));
    assert_kept(json!({"client.geo.location": {"type": "Point", "coordinates": [-88.34, 20.12]}}));
    assert_kept(json!({"client.geo.location": "POINT (-71.34 41.12)"}));
    assert_kept(json!({"client": {"geo": {"location": {"lat": 41.12, "lon": -71.34}}}}));
}

#[test]
fn banned_top_level_fields() {
    let (result, gone) = run(json!({"kibana": "test-value", "non_ecs_field": "value"}));
    assert_eq!(result, json!({"non_ecs_field": "value"}));
    assert_eq!(gone, removed(&[("kibana", json!("test-value"))]));
    let (result, gone) = run(json!({"kibana.test": "test-value", "non_ecs_field": "value"}));
    assert_eq!(result, json!({"non_ecs_field": "value"}));
    assert_eq!(gone, removed(&[("kibana.test", json!("test-value"))]));
    assert_kept(json!({"kibana_test_prefix": "test-value", "non_ecs_field": "value"}));
    // signal and threshold_result too, but only at the top level
    let (result, gone) =
        run(json!({"signal": {"x": 1}, "threshold_result": {}, "a": {"kibana": 1}}));
    assert_eq!(result, json!({"a": {"kibana": 1}}));
    assert_eq!(gone.len(), 2);
}

#[test]
fn event_fields_are_copied_to_original_event() {
    let (result, gone) = run(json!({"event": {"action": "test"}}));
    assert_eq!(
        result,
        json!({"event": {"action": "test"}, "kibana.alert.original_event.action": "test"})
    );
    assert_eq!(gone, vec![]);
    let (result, _) = run(json!({"event": {"action": "test", "field2": "test2"}}));
    assert_eq!(
        result,
        json!({
            "event": {"action": "test", "field2": "test2"},
            "kibana.alert.original_event.action": "test",
            "kibana.alert.original_event.field2": "test2"
        })
    );
    let (result, _) = run(json!({"event.action": "test"}));
    assert_eq!(
        result,
        json!({"event.action": "test", "kibana.alert.original_event.action": "test"})
    );
    let (result, _) = run(json!({"event.action": "test", "event.field2": "test2"}));
    assert_eq!(
        result,
        json!({
            "event.action": "test",
            "event.field2": "test2",
            "kibana.alert.original_event.action": "test",
            "kibana.alert.original_event.field2": "test2"
        })
    );
    let (result, _) = run(json!({"event": {"field.subfield": "test", "field2.subfield": "test2"}}));
    assert_eq!(
        result,
        json!({
            "event": {"field.subfield": "test", "field2.subfield": "test2"},
            "kibana.alert.original_event.field.subfield": "test",
            "kibana.alert.original_event.field2.subfield": "test2"
        })
    );
    let (result, _) = run(json!({"event.field": {"subfield": "test", "subfield2": "test2"}}));
    assert_eq!(
        result,
        json!({
            "event.field": {"subfield": "test", "subfield2": "test2"},
            "kibana.alert.original_event.field.subfield": "test",
            "kibana.alert.original_event.field.subfield2": "test2"
        })
    );
    assert_kept(json!({"top_field.event.action": "test"}));
    let (result, _) = run(json!({"event": {"event": "test"}}));
    assert_eq!(
        result,
        json!({"event": {"event": "test"}, "kibana.alert.original_event.event": "test"})
    );
    let (result, _) = run(json!({"event": {"field": {"subfield": "test", "subfield2": "test2"}}}));
    assert_eq!(
        result,
        json!({
            "event": {"field": {"subfield": "test", "subfield2": "test2"}},
            "kibana.alert.original_event.field.subfield": "test",
            "kibana.alert.original_event.field.subfield2": "test2"
        })
    );
}

#[test]
fn data_stream_fields_are_copied_to_original_data_stream() {
    let (result, _) =
        run(json!({"data_stream": {"dataset": "endpoint.events.process", "type": "logs"}}));
    assert_eq!(
        result,
        json!({
            "data_stream": {"dataset": "endpoint.events.process", "type": "logs"},
            "kibana.alert.original_data_stream.dataset": "endpoint.events.process",
            "kibana.alert.original_data_stream.type": "logs"
        })
    );
}

// detectd issue 10: an odd event must still yield an alert.
#[test]
fn a_host_string_and_a_non_numeric_pid_are_removed_and_listed() {
    let source = json!({
        "@timestamp": "2024-05-01T09:58:00.000Z",
        "host": "ws-1",
        "process": {"pid": "not-a-pid", "name": "powershell.exe", "args": ["-enc", "x"]},
        "user": {"name": "alice"},
        "event": {"category": ["process"], "kind": "event"},
        "custom": {"anything": "goes"}
    });
    let out = strip_non_ecs(&source);
    assert_eq!(out.removed_paths(), vec!["host", "process.pid"]);
    assert_eq!(out.removed[0].value, json!("ws-1"));
    assert_eq!(out.removed[1].value, json!("not-a-pid"));
    assert_eq!(
        Value::Object(out.doc),
        json!({
            "@timestamp": "2024-05-01T09:58:00.000Z",
            "process": {"name": "powershell.exe", "args": ["-enc", "x"]},
            "user": {"name": "alice"},
            "event": {"category": ["process"], "kind": "event"},
            "custom": {"anything": "goes"},
            "kibana.alert.original_event.category": ["process"],
            "kibana.alert.original_event.kind": "event"
        })
    );
}

#[test]
fn nulls_fail_typed_ecs_fields_only() {
    let (result, gone) = run(json!({"process": {"pid": null, "name": null}, "other": null}));
    assert_eq!(result, json!({"process": {"name": null}, "other": null}));
    assert_eq!(gone, removed(&[("process.pid", Value::Null)]));
}

#[test]
fn prototype_names_count_as_ecs_objects_as_in_kibana() {
    let (result, gone) = run(json!({"constructor": "x", "toString": {"a": 1}}));
    assert_eq!(result, json!({"toString": {"a": 1}}));
    assert_eq!(gone, removed(&[("constructor", json!("x"))]));
}

#[test]
fn a_source_that_is_not_an_object_gives_an_empty_document() {
    let out = strip_non_ecs(&json!(["not", "an", "object"]));
    assert!(out.doc.is_empty());
    assert!(out.removed.is_empty());
}

#[test]
fn event_kind_removal_follows_robust_set() {
    // nested: removed, the event object stays (empty)
    let mut doc = json!({"event": {"kind": "event"}})
        .as_object()
        .unwrap()
        .clone();
    remove_event_kind(&mut doc);
    assert_eq!(Value::Object(doc), json!({"event": {}}));
    // dotted without an event object: removed
    let mut doc = json!({"event.kind": "event", "a": 1})
        .as_object()
        .unwrap()
        .clone();
    remove_event_kind(&mut doc);
    assert_eq!(Value::Object(doc), json!({"a": 1}));
    // dotted beside an event object: the nested one goes, the dotted one
    // stays for the alert's own `event.kind` to overwrite
    let mut doc = json!({"event.kind": "x", "event": {"kind": "y", "category": "c"}})
        .as_object()
        .unwrap()
        .clone();
    remove_event_kind(&mut doc);
    assert_eq!(
        Value::Object(doc),
        json!({"event.kind": "x", "event": {"category": "c"}})
    );
    // nothing to remove
    let mut doc = json!({"event": {"category": "c"}})
        .as_object()
        .unwrap()
        .clone();
    remove_event_kind(&mut doc);
    assert_eq!(Value::Object(doc), json!({"event": {"category": "c"}}));
}
