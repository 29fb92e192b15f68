//! Exception lists end to end from files: the fixtures of
//! `tests/fixtures/exceptions/` (a Kibana exception-list export with two
//! lists and detection-rules' exceptions TOML) loaded from their folder,
//! resolved for a rule, built at two times, and evaluated on events the way
//! the runner will: the exception filter's tree for searches, the
//! per-event matcher for sequences.

use std::path::PathBuf;

use chrono::{DateTime, TimeZone, Utc};
use detectd::exceptions::{ExceptionStore, ListKey, NamespaceType, RuleExceptions};
use detectd::filter::{compile, EvalOptions, FieldTypes};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exceptions")
}

fn store() -> ExceptionStore {
    let (store, errors) = ExceptionStore::load_dir(&fixtures());
    assert!(errors.is_empty(), "{errors:?}");
    store
}

fn rule_exceptions() -> RuleExceptions {
    store()
        .resolve_json(&json!([
            {"id": "6f1c2a3e-1d7b-4b52-9a3e-2b8f7c1d0e11", "list_id": "admin-tools",
             "namespace_type": "single", "type": "detection"},
            {"id": "endpoint_list", "list_id": "endpoint_list", "namespace_type": "agnostic",
             "type": "endpoint"},
            {"id": "x", "list_id": "lateral-movement-tuning", "namespace_type": "single",
             "type": "detection"},
        ]))
        .unwrap()
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
}

fn types() -> FieldTypes {
    let mut t = FieldTypes::default();
    for f in [
        "process.parent.name",
        "user.name",
        "user.domain",
        "host.os.type",
        "host.name",
        "file.path",
        "process.executable",
        "event.module",
        "process.Ext.code_signature.subject_name",
    ] {
        t = t.with(f, &["keyword"]);
    }
    t.with("source.ip", &["ip"])
        .with("process.code_signature.trusted", &["boolean"])
        .with("process.Ext.code_signature", &["nested"])
        .with("process.Ext.code_signature.trusted", &["boolean"])
}

#[test]
fn the_fixture_folder_loads() {
    let s = store();
    let count = |id: &str, ns| {
        s.get(&ListKey {
            list_id: id.into(),
            namespace_type: ns,
        })
        .map(|l| l.items.len())
    };
    assert_eq!(s.len(), 3);
    assert_eq!(count("admin-tools", NamespaceType::Single), Some(3));
    assert_eq!(count("endpoint_list", NamespaceType::Agnostic), Some(1));
    assert_eq!(
        count("lateral-movement-tuning", NamespaceType::Single),
        Some(2)
    );
    // The namespace is part of the key.
    assert_eq!(count("endpoint_list", NamespaceType::Single), None);
    let toml_item = &s
        .get(&ListKey {
            list_id: "lateral-movement-tuning".into(),
            namespace_type: NamespaceType::Single,
        })
        .unwrap()
        .items[1];
    assert_eq!(toml_item.expire_time, Some(at(2099, 1, 1)));
    assert_eq!(toml_item.origin.line, 40);
}

#[test]
fn expired_items_drop_out_by_the_run_time() {
    let r = rule_exceptions();
    let before = r.build(at(2024, 5, 15)).unwrap().unwrap();
    assert_eq!((before.items, before.expired), (6, 0));
    let after = r.build(at(2024, 7, 1)).unwrap().unwrap();
    assert_eq!((after.items, after.expired), (5, 1));
    // The os_types item: one clause per OS and field.
    let should = after.query()["bool"]["should"].as_array().unwrap();
    assert_eq!(should.len(), 2 + 1 + 4 + 1 + 1);
}

/// Whether each event is excluded by an exception (the matcher), checked
/// against the search tree (which keeps exactly the others).
fn excluded(now: DateTime<Utc>, events: &[Value]) -> Vec<bool> {
    let f = rule_exceptions().build(now).unwrap().unwrap();
    let types = types();
    let opts = EvalOptions::default();
    let m = f.matcher(&types, &opts, now).unwrap();
    let keep = compile(&f.to_filter(), &types, &opts).unwrap();
    events
        .iter()
        .map(|e| {
            let hit = m.matches(e);
            assert_eq!(keep.matches(e, now), !hit, "{e}");
            hit
        })
        .collect()
}

#[test]
fn each_item_excludes_its_events_and_only_those() {
    let sccm = |os: &str, user: &str| {
        json!({"process": {"parent": {"name": "CcmExec.exe"}}, "user": {"name": user},
               "host": {"os": {"type": os}}})
    };
    let veeam = |trusted: Option<bool>| {
        let mut e = json!({"file": {"path": "C:\\Program Files\\Veeam\\job.ps1"}});
        if let Some(t) = trusted {
            e["process"] = json!({"code_signature": {"trusted": t}});
        }
        e
    };
    let agent = |sigs: Value, os: &str| {
        json!({"process": {"Ext": {"code_signature": sigs}}, "event": {"module": "endpoint"},
               "host": {"os": {"type": os}}})
    };
    let events = [
        sccm("windows", "svc_deploy"),
        sccm("linux", "svc_deploy"),
        sccm("windows", "alice"),
        veeam(None),
        veeam(Some(true)),
        json!({"source": {"ip": "10.20.30.40"}}),
        agent(
            json!([{"subject_name": "Example Corp", "trusted": true}]),
            "macos",
        ),
        agent(
            json!([{"subject_name": "Example Corp", "trusted": false},
                     {"subject_name": "Other", "trusted": true}]),
            "macos",
        ),
        agent(
            json!([{"subject_name": "Example Corp", "trusted": true}]),
            "linux",
        ),
        json!({"host": {"name": "jump02"}, "process": {"executable": "C:\\Windows\\System32\\schtasks.exe"}}),
        json!({"host": {"name": "jump03"}, "process": {"executable": "C:\\Windows\\System32\\schtasks.exe"}}),
        json!({"user": {"name": "svc_migrate", "domain": "CORP"}}),
        json!({"user": {"name": "svc_migrate", "domain": "EXTERNAL"}}),
        json!({}),
    ];
    assert_eq!(
        excluded(at(2024, 5, 15), &events),
        [
            true, false, false, // SCCM: Windows hosts, listed users only
            true, false, // Veeam: only when the signature field is absent
            true,  // red team, before it expired
            true, false, false, // agent: one signature object, listed OS
            true, false, // jump hosts
            true, false, // migration account, not from EXTERNAL
            false,
        ]
    );
    // After 2024-06-01 the red-team item no longer applies.
    assert_eq!(excluded(at(2024, 7, 1), &events[5..6]), [false]);
}

#[test]
fn a_rule_with_an_unknown_list_is_refused() {
    let err = store()
        .resolve_json(&json!([
            {"id": "a", "list_id": "admin-tools", "namespace_type": "agnostic", "type": "detection"},
            {"id": "b", "list_id": "nope", "namespace_type": "single", "type": "detection"},
        ]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exception lists not found in the exception lists folder: `admin-tools` (agnostic), `nope` (single)"
    );
    let err = store()
        .resolve_json(&json!([{"id": "a", "namespace_type": "single"}]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exceptions_list[0]: expected `list_id`, found none"
    );
    // No lists: nothing to build.
    let none = store().resolve_json(&json!([])).unwrap();
    assert!(none.is_empty());
    assert!(none.build(Utc::now()).unwrap().is_none());
}
