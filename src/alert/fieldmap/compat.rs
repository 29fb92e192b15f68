//! Tests: every Kibana version detectd claims (8.11 .. 9.x) accepts, with
//! its own `PUT <index>/_mapping`, the alerts mapping detectd creates for a
//! cluster of that version, and so does every later Kibana (an upgrade).
//!
//! The Kibana mappings are data (`kibana/<candidate>.json`, made by
//! `scripts/fieldmap/kibana_compat.py gen`): per candidate of
//! `kibana/versions.json`, the signature of every field of the composed
//! mapping, i.e. its type (`object` / `nested` for objects), the mapping
//! parameters Elasticsearch cannot update and its multi-fields' types. The
//! rules are Elasticsearch's merge of a put-mapping into an index mapping
//! (`FieldMapper.Parameter`: a parameter declared not updateable must be
//! equal, defaults included; `ignore_above`, `ignore_malformed`, `meta`, an
//! alias's `path` (`FieldAliasMapper.merge` takes the new one) and an
//! object's `dynamic` may change; an object never merges with a leaf, nor an
//! `object` with a `nested`; multi-fields merge by name), and
//! `index.mapping.total_fields.limit`, which counts the merged mapping.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::kibana::kibana_minors;
use super::mapping::{alerts_mappings, count_fields, Flavour, TOTAL_FIELDS_LIMIT};
use super::parse_file;

const CANDIDATES: [(&str, &str); 7] = [
    ("ecs-8.6.1-s811", include_str!("kibana/ecs-8.6.1-s811.json")),
    (
        "ecs-8.10.0-nested",
        include_str!("kibana/ecs-8.10.0-nested.json"),
    ),
    (
        "ecs-8.11.0-nested",
        include_str!("kibana/ecs-8.11.0-nested.json"),
    ),
    (
        "ecs-9.0.0-nested",
        include_str!("kibana/ecs-9.0.0-nested.json"),
    ),
    (
        "ecs-9.2.0-nested",
        include_str!("kibana/ecs-9.2.0-nested.json"),
    ),
    (
        "ecs-9.3.0-nested",
        include_str!("kibana/ecs-9.3.0-nested.json"),
    ),
    ("ecs-9.3.0-main", include_str!("kibana/ecs-9.3.0-main.json")),
];

/// Parameters a put-mapping cannot change, in the order signatures list
/// them, with Elasticsearch's default when a mapping omits them.
const IMMUTABLE: [(&str, &str); 11] = [
    ("index", "true"),
    ("doc_values", "true"),
    ("store", "false"),
    ("scaling_factor", "null"),
    ("format", "null"),
    ("null_value", "null"),
    ("normalizer", "null"),
    ("index_options", "null"),
    ("norms", "null"),
    ("locale", "null"),
    ("enabled", "true"),
];

struct Candidate {
    name: &'static str,
    total_fields: usize,
    fields: BTreeMap<String, String>,
}

fn candidate(name: &str) -> Candidate {
    let (name, text) = CANDIDATES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no data for candidate {name}"));
    let mut file = parse_file(text, name);
    let total_fields = file["_source"]["total_fields"].as_u64().unwrap() as usize;
    let fields = match file.remove("fields") {
        Some(Value::Object(fields)) => fields
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
            .collect(),
        _ => panic!("{name}: `fields` is an object"),
    };
    Candidate {
        name,
        total_fields,
        fields,
    }
}

fn is_object(def: &Map<String, Value>) -> bool {
    matches!(
        def.get("type").and_then(Value::as_str),
        None | Some("object" | "nested")
    )
}

/// The signature of one field definition, as `kibana_compat.py` writes it.
fn signature(def: &Map<String, Value>) -> String {
    let mut parts = vec![def
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_string()];
    for (param, _) in IMMUTABLE {
        if let Some(value) = def.get(param) {
            parts.push(format!("{param}={value}"));
        }
    }
    let subs: BTreeMap<&String, &Value> = def
        .get("fields")
        .and_then(Value::as_object)
        .map(|f| f.iter().collect())
        .unwrap_or_default();
    for (sub, sub_def) in subs {
        parts.push(format!(
            "fields.{sub}={}",
            sub_def["type"].as_str().unwrap_or("")
        ));
    }
    parts.join(" ")
}

/// Every field of a `mappings` object (objects included) by dotted path.
fn signatures(mappings: &Value) -> BTreeMap<String, String> {
    fn walk(props: &Map<String, Value>, prefix: &str, out: &mut BTreeMap<String, String>) {
        for (name, def) in props {
            let Value::Object(def) = def else { continue };
            let path = format!("{prefix}{name}");
            out.insert(path.clone(), signature(def));
            if is_object(def) {
                if let Some(Value::Object(children)) = def.get("properties") {
                    walk(children, &format!("{path}."), out);
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Some(Value::Object(props)) = mappings.get("properties") {
        walk(props, "", &mut out);
    }
    out
}

struct Sig<'a> {
    kind: &'a str,
    params: BTreeMap<&'a str, &'a str>,
    multi: BTreeMap<&'a str, &'a str>,
}

fn parse_sig(sig: &str) -> Sig<'_> {
    let mut parts = sig.split(' ');
    let kind = parts.next().unwrap_or("");
    let mut params = BTreeMap::new();
    let mut multi = BTreeMap::new();
    for part in parts {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        match key.strip_prefix("fields.") {
            Some(sub) => multi.insert(sub, value),
            None => params.insert(key, value),
        };
    }
    Sig {
        kind,
        params,
        multi,
    }
}

fn is_object_kind(kind: &str) -> bool {
    matches!(kind, "object" | "nested")
}

/// Why putting `theirs` onto an index mapped with `ours` fails for this
/// field, if it does.
fn conflict(ours: &str, theirs: &str) -> Option<String> {
    let (a, b) = (parse_sig(ours), parse_sig(theirs));
    if is_object_kind(a.kind) != is_object_kind(b.kind) {
        return Some(format!("object vs leaf: {} / {}", a.kind, b.kind));
    }
    if a.kind != b.kind {
        return Some(format!("type {} / {}", a.kind, b.kind));
    }
    for (param, default) in IMMUTABLE {
        let x = a.params.get(param).copied().unwrap_or(default);
        let y = b.params.get(param).copied().unwrap_or(default);
        if x != y {
            return Some(format!("{param} {x} / {y}"));
        }
    }
    for (sub, ty) in &a.multi {
        if let Some(other) = b.multi.get(sub) {
            if ty != other {
                return Some(format!("multi-field {sub} {ty} / {other}"));
            }
        }
    }
    None
}

/// The fields of `ours` that `theirs` cannot merge into.
fn conflicts(ours: &BTreeMap<String, String>, theirs: &Candidate) -> Vec<String> {
    theirs
        .fields
        .iter()
        .filter_map(|(path, sig)| {
            let mine = ours.get(path)?;
            conflict(mine, sig).map(|why| format!("{path}: {why}"))
        })
        .collect()
}

/// The field count of the merged mapping (every path, and every
/// multi-field of either side).
fn merged_field_count(ours: &BTreeMap<String, String>, theirs: &Candidate) -> usize {
    let paths: BTreeSet<&String> = ours.keys().chain(theirs.fields.keys()).collect();
    paths
        .into_iter()
        .map(|path| {
            let mut subs = BTreeSet::new();
            for sig in [ours.get(path), theirs.fields.get(path)]
                .into_iter()
                .flatten()
            {
                subs.extend(parse_sig(sig).multi.into_keys());
            }
            1 + subs.len()
        })
        .sum()
}

fn es(major: u32, minor: u32) -> Flavour {
    Flavour::Elasticsearch { major, minor }
}

#[test]
fn every_claimed_kibana_version_accepts_our_mapping_now_and_after_upgrades() {
    let minors = kibana_minors();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (i, k) in minors.iter().enumerate() {
        let ours = signatures(&alerts_mappings(es(k.major, k.minor)));
        for later in &minors[i..] {
            for name in &later.candidates {
                let theirs = candidate(name);
                checked += 1;
                for c in conflicts(&ours, &theirs) {
                    failures.push(format!(
                        "cluster {}.{} vs Kibana {}.{} ({}): {c}",
                        k.major, k.minor, later.major, later.minor, theirs.name
                    ));
                }
                // Kibana sets the limit on the index before it puts its
                // mapping: the merged mapping must fit it, unless it is
                // that Kibana's own (then Kibana itself is over it).
                if later == k {
                    let merged = merged_field_count(&ours, &theirs);
                    if merged > TOTAL_FIELDS_LIMIT.max(theirs.total_fields) {
                        failures.push(format!(
                            "cluster {}.{} vs {}: {merged} fields merged, Kibana's own {}",
                            k.major, k.minor, theirs.name, theirs.total_fields
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > minors.len(), "{checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_newest_candidate_is_exactly_our_full_mapping() {
    // The Python composition that made the data and the Rust one agree.
    let ours = signatures(&alerts_mappings(es(9, 4)));
    let theirs = candidate("ecs-9.3.0-main");
    assert_eq!(ours, theirs.fields);
    assert_eq!(
        theirs.total_fields,
        count_fields(&alerts_mappings(es(9, 4)))
    );
}

#[test]
fn our_mapping_never_adds_ecs_fields_a_kibana_of_the_cluster_lacks() {
    for k in kibana_minors() {
        let ours = signatures(&alerts_mappings(es(k.major, k.minor)));
        for name in &k.candidates {
            let theirs = candidate(name);
            let extra: Vec<&String> = ours
                .keys()
                .filter(|p| !theirs.fields.contains_key(*p))
                .collect();
            assert!(
                extra.is_empty(),
                "{}.{} / {name}: {extra:?}",
                k.major,
                k.minor
            );
        }
    }
}

// --- the conflicts found, one test each -----------------------------------

/// ECS maps `*.x509.public_key_exponent` with `index: false, doc_values:
/// false`; had a Kibana version carried the two parameters into its
/// `ecsFieldMap` (a stored pre-8.8 `ecs_field_map.ts` does), its put-mapping
/// could not merge with our plain `long`. None does: Kibana's 8.8.0
/// alerts-index archive
/// (`x-pack/test/functional/es_archives/security_solution/alerts/8.8.0/mappings.json`)
/// and every later `ecs_field_map.ts` map a plain `long`, as we do.
#[test]
fn x509_public_key_exponent_is_a_plain_long_for_every_kibana() {
    let carried = "long index=false doc_values=false";
    assert!(conflict("long", carried).is_some());
    for (name, _) in CANDIDATES {
        let theirs = candidate(name);
        assert_eq!(
            theirs.fields["tls.server.x509.public_key_exponent"], "long",
            "{name}"
        );
    }
    for k in kibana_minors() {
        let ours = signatures(&alerts_mappings(es(k.major, k.minor)));
        assert_eq!(ours["tls.server.x509.public_key_exponent"], "long");
    }
}

/// Kibana 8.12 .. 9.3 map the ECS `nested` and `flattened` fields and their
/// children, which our ECS 9.3.0 map leaves out, and lack the ECS fields of
/// 9.1 .. 9.3: the full mapping merged with theirs passes the 2500-field
/// limit, and Kibana's put-mapping is refused. For such a cluster only the
/// ECS fields its Kibana maps alike are kept.
#[test]
fn older_kibana_with_nested_ecs_fields_would_overflow_the_field_limit() {
    let full = signatures(&alerts_mappings(es(9, 4)));
    for name in ["ecs-8.10.0-nested", "ecs-8.11.0-nested", "ecs-9.0.0-nested"] {
        let theirs = candidate(name);
        assert!(theirs.total_fields <= TOTAL_FIELDS_LIMIT, "{name}");
        let merged = merged_field_count(&full, &theirs);
        assert!(merged > TOTAL_FIELDS_LIMIT, "{name}: {merged}");
        assert!(conflicts(&full, &theirs).is_empty(), "{name}");
    }
    for (major, minor) in [(8, 15), (9, 0), (9, 3)] {
        let m = alerts_mappings(es(major, minor));
        let ours = signatures(&m);
        assert!(count_fields(&m) < count_fields(&alerts_mappings(es(9, 4))));
        assert!(!ours.contains_key("entity.id"), "{major}.{minor}");
        assert_eq!(ours["process.pid"], "long");
        // Kibana's own fields stay, whatever the version
        assert_eq!(ours["kibana.alert.rule.parameters"], "flattened");
        assert_eq!(ours["threat.enrichments"], "nested");
        assert_eq!(ours["signal.rule.id"], "alias");
    }
}

// --- the merge rules ------------------------------------------------------

#[test]
fn conflict_rules_follow_elasticsearchs_merge() {
    // type, and objects against leaves or nested
    assert!(conflict("keyword", "wildcard").is_some());
    assert!(conflict("object", "keyword").is_some());
    assert!(conflict("nested", "object").is_some());
    assert!(conflict("object", "object").is_none());
    // immutable parameters, defaults included
    assert!(conflict("long", "long index=false").is_some());
    assert!(conflict("long doc_values=true", "long").is_none());
    assert!(conflict(
        "scaled_float scaling_factor=1000",
        "scaled_float scaling_factor=100"
    )
    .is_some());
    assert!(conflict("date", "date format=\"epoch_millis\"").is_some());
    // multi-fields: same name must keep its type; new or missing ones merge
    assert!(conflict(
        "keyword fields.text=match_only_text",
        "keyword fields.text=text"
    )
    .is_some());
    assert!(conflict("keyword fields.text=match_only_text", "keyword").is_none());
    assert!(conflict("keyword", "keyword fields.caseless=keyword").is_none());
    // an alias may point elsewhere (not part of the signature)
    assert!(conflict("alias", "alias").is_none());
}

#[test]
fn signatures_leave_out_updatable_parameters() {
    let m = serde_json::json!({"properties": {
        "a": {"type": "keyword", "ignore_above": 1024, "fields": {"t": {"type": "text"}}},
        "b": {"type": "long", "index": false, "doc_values": false},
        "o": {"type": "object", "enabled": false, "dynamic": false},
        "d": {"type": "date", "ignore_malformed": false},
        "p": {"properties": {"q": {"type": "alias", "path": "a"}}}
    }});
    let s = signatures(&m);
    assert_eq!(s["a"], "keyword fields.t=text");
    assert_eq!(s["b"], "long index=false doc_values=false");
    assert_eq!(s["o"], "object enabled=false");
    assert_eq!(s["d"], "date");
    assert_eq!(s["p"], "object");
    assert_eq!(s["p.q"], "alias");
    let theirs = Candidate {
        name: "t",
        total_fields: 0,
        fields: [("a".to_string(), "keyword fields.u=text".to_string())].into(),
    };
    // a, a.t, a.u, b, o, d, p, p.q
    assert_eq!(merged_field_count(&s, &theirs), 8);
}
