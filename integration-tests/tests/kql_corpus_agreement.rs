//! Every KQL query of the detection-rules corpus, on documents made from
//! its own literals, selects the same documents on the cluster as in the
//! local evaluator.
//!
//! The index mapping is built from the corpus's field names with ECS-style
//! type guesses (no mapping ships with the corpus): dates, IPs, ports and
//! counts by name, text and wildcard fields by name, keyword otherwise, and
//! the nested groups the queries use as `nested`. For each query: one
//! document per leaf holding that leaf's value, one holding every leaf's
//! value (several values of one field as an array), and one with none; all
//! tagged with the query's number. Documents the cluster rejects (a value
//! that does not fit the guessed type) are left out on both sides.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use detectd::filter::{compile, EvalOptions, FieldTypes};
use detectd::kql::{self, KqlOptions, LitValue, Literal, Node, Part, RangeOp};
use detectd_integration_tests::*;
use elasticsearch::http::Method;
use serde_json::{json, Map, Value};

fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/detection-rules-other");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("detection-rules corpus missing at {}", dir.display());
    }
    eprintln!("notice: skipping, {} not found", dir.display());
    None
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().and_then(|e| e.to_str()) == Some("toml") {
            out.push(p);
        }
    }
}

fn corpus_queries(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    toml_files(dir, &mut files);
    let mut out = Vec::new();
    for f in files {
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let Some(rule) = doc.get("rule") else {
            continue;
        };
        if rule.get("language").and_then(|l| l.as_str()) == Some("kuery") {
            out.extend(
                rule.get("query")
                    .and_then(|q| q.as_str())
                    .map(str::to_string),
            );
        }
        out.extend(
            rule.get("threat_query")
                .and_then(|q| q.as_str())
                .map(str::to_string),
        );
    }
    out
}

/// An ECS-style type for a field name (the same guesses as the corpus
/// translation test).
fn ecs_guess(name: &str) -> &'static str {
    let last = name.rsplit('.').next().unwrap_or(name);
    if name == "@timestamp"
        || matches!(last, "created" | "start" | "end" | "ingested" | "timestamp")
        || last.ends_with("_time")
    {
        "date"
    } else if last == "ip" || last.ends_with("_ip") {
        "ip"
    } else if matches!(
        last,
        "port"
            | "pid"
            | "ppid"
            | "bytes"
            | "packets"
            | "exit_code"
            | "size"
            | "count"
            | "sequence"
            | "severity"
            | "uid_int"
    ) {
        "long"
    } else if name == "message"
        || last == "text"
        || last.ends_with("_text")
        || name == "error.message"
    {
        "match_only_text"
    } else if matches!(
        name,
        "process.command_line"
            | "process.parent.command_line"
            | "url.full"
            | "url.original"
            | "registry.data.strings"
    ) {
        "wildcard"
    } else {
        "keyword"
    }
}

/// A leaf of a query: the field (nested groups prefixed) and the value to
/// put in a document so that it holds.
struct Leaf {
    field: Option<String>,
    value: Option<Literal>,
    op: Option<RangeOp>,
}

fn leaves(node: &Node, prefix: Option<&str>, out: &mut Vec<Leaf>, nested: &mut BTreeSet<String>) {
    let full = |l: &Literal| -> Option<String> {
        if l.value == LitValue::Null {
            return None;
        }
        let name = l.to_plain_string();
        Some(match prefix {
            Some(p) => format!("{p}.{name}"),
            None => name,
        })
    };
    match node {
        Node::Or { clauses, .. } | Node::And { clauses, .. } => {
            clauses.iter().for_each(|c| leaves(c, prefix, out, nested))
        }
        Node::Not { inner, .. } => leaves(inner, prefix, out, nested),
        Node::Nested { path, query, .. } => {
            let p = full(path).unwrap_or_default();
            nested.insert(p.clone());
            leaves(query, Some(&p), out, nested)
        }
        Node::Is { field, value, .. } => out.push(Leaf {
            field: full(field),
            value: Some(value.clone()),
            op: None,
        }),
        Node::Range {
            field, op, value, ..
        } => out.push(Leaf {
            field: full(field),
            value: Some(value.clone()),
            op: Some(*op),
        }),
        Node::Exists { field, .. } => out.push(Leaf {
            field: full(field),
            value: None,
            op: None,
        }),
    }
}

/// A concrete value of the field's type that makes the leaf true.
fn leaf_value(ty: &str, leaf: &Leaf, now: chrono::DateTime<Utc>) -> Option<Value> {
    let text = match leaf.value.as_ref().map(|l| &l.value) {
        None => None,
        Some(LitValue::Wildcard(parts)) if parts.as_slice() == [Part::Star] => None,
        Some(LitValue::Wildcard(parts)) => Some(
            parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.as_str(),
                    Part::Star => "",
                })
                .collect::<String>(),
        ),
        Some(LitValue::Null) => return None,
        Some(_) => leaf.value.as_ref().map(|l| l.to_plain_string()),
    };
    let shift = |n: i64| match leaf.op {
        Some(RangeOp::Gt) => n + 1,
        Some(RangeOp::Lt) => n - 1,
        _ => n,
    };
    Some(match ty {
        "long" => json!(shift(text.and_then(|t| t.parse::<i64>().ok()).unwrap_or(1))),
        "ip" => {
            let t = text.unwrap_or_default();
            let addr = t.split('/').next().unwrap_or("");
            if addr.parse::<std::net::IpAddr>().is_ok() {
                json!(addr)
            } else {
                json!("10.0.0.1")
            }
        }
        "date" => {
            let t = text.unwrap_or_default();
            if t.starts_with("now") || t.is_empty() {
                json!(iso(now - Duration::hours(1)))
            } else {
                json!(t)
            }
        }
        _ => json!(text.unwrap_or_else(|| "x".to_string())),
    })
}

/// Puts `value` at a dotted path, adding it to an array when the path
/// already holds a value; under a nested path the object is an array
/// element.
fn put(doc: &mut Map<String, Value>, path: &str, value: Value, nested: &BTreeSet<String>) {
    let mut cur = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, key) in parts.iter().enumerate() {
        let so_far = parts[..=i].join(".");
        if i + 1 == parts.len() {
            match cur.get_mut(*key) {
                Some(Value::Array(a)) => a.push(value),
                Some(old) if !old.is_object() => {
                    let prev = old.take();
                    *old = json!([prev, value]);
                }
                Some(_) => {}
                None => {
                    cur.insert(key.to_string(), value);
                }
            }
            return;
        }
        let entry = cur.entry(key.to_string()).or_insert_with(|| {
            if nested.contains(&so_far) {
                json!([{}])
            } else {
                json!({})
            }
        });
        let obj = match entry {
            Value::Array(a) => a.last_mut().and_then(Value::as_object_mut),
            Value::Object(o) => Some(o),
            _ => None,
        };
        let Some(obj) = obj else { return };
        cur = obj;
    }
}

/// The mapping for the guessed types: a name that is both a leaf and a
/// parent keeps its children as multi-fields.
fn build_mapping(types: &BTreeMap<String, &'static str>, nested: &BTreeSet<String>) -> Value {
    let mut props = Map::new();
    for (name, ty) in types {
        let parts: Vec<&str> = name.split('.').collect();
        let mut cur = &mut props;
        for (i, key) in parts.iter().enumerate() {
            let so_far = parts[..=i].join(".");
            if i + 1 == parts.len() {
                cur.entry(key.to_string()).or_insert(json!({"type": ty}));
                break;
            }
            let entry = cur.entry(key.to_string()).or_insert_with(|| {
                if nested.contains(&so_far) {
                    json!({"type": "nested", "properties": {}})
                } else {
                    json!({"properties": {}})
                }
            });
            let is_leaf = entry.get("properties").is_none();
            let sub = if is_leaf { "fields" } else { "properties" };
            if is_leaf {
                entry
                    .as_object_mut()
                    .unwrap()
                    .entry("fields")
                    .or_insert_with(|| json!({}));
                // multi-fields are one level deep: the rest of the name is the key
                let rest = parts[i + 1..].join(".");
                entry["fields"][rest] = json!({"type": ty});
                break;
            }
            cur = entry[sub].as_object_mut().unwrap();
        }
    }
    props.insert("qid".into(), json!({"type": "keyword"}));
    json!({"dynamic": false, "properties": props})
}

#[tokio::test]
async fn corpus_kql_queries_agree_with_the_cluster() {
    let Some(dir) = corpus_dir() else { return };
    let Some(cluster) = connect_or_skip("corpus_kql_queries_agree_with_the_cluster").await else {
        return;
    };
    let queries = corpus_queries(&dir);
    let parsed: Vec<Node> = queries.iter().map(|q| kql::parse(q).unwrap()).collect();
    let mut guessed: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut nested = BTreeSet::new();
    let mut all_leaves = Vec::new();
    for n in &parsed {
        let mut ls = Vec::new();
        leaves(n, None, &mut ls, &mut nested);
        for l in &ls {
            if let Some(f) = &l.field {
                if !f.contains('*') {
                    guessed.insert(f.clone(), ecs_guess(f));
                }
            }
        }
        all_leaves.push(ls);
    }
    guessed.insert("@timestamp".into(), "date");
    guessed.insert("message".into(), "match_only_text");
    let index = unique_index("kql-corpus");
    create_index(&cluster, &index, build_mapping(&guessed, &nested)).await;
    let mapping = cluster
        .request_json(Method::Get, &format!("/{index}/_mapping"), &[], None)
        .await
        .unwrap();
    let types = FieldTypes::from_mapping(&mapping);
    let now = Utc::now();

    // documents per query
    let mut docs: Vec<(String, usize, Value)> = Vec::new();
    for (qi, ls) in all_leaves.iter().enumerate() {
        let mut all = Map::new();
        let mut n = 0;
        let mut add = |doc: Map<String, Value>, docs: &mut Vec<(String, usize, Value)>| {
            let mut d = doc;
            d.insert("qid".into(), json!(qi.to_string()));
            docs.push((format!("q{qi}-{n}"), qi, Value::Object(d)));
            n += 1;
        };
        for l in ls {
            let field = match &l.field {
                Some(f) if f.contains('*') => {
                    let parts: Vec<Part> = match kql::parse_literal(f).map(|x| x.value) {
                        Ok(LitValue::Wildcard(p)) => p,
                        _ => continue,
                    };
                    let pat: String = parts
                        .iter()
                        .map(|p| match p {
                            Part::Star => "*".to_string(),
                            Part::Text(t) => t.clone(),
                        })
                        .collect();
                    match types
                        .leaf_names()
                        .find(|n| detectd::filter::pattern::Pattern::new(&pat, false).matches(n))
                    {
                        Some(n) => n.to_string(),
                        None => continue,
                    }
                }
                Some(f) => f.clone(),
                None => "message".to_string(),
            };
            let ty = types.single_type(&field).unwrap_or("keyword");
            let Some(v) = leaf_value(ty, l, now) else {
                continue;
            };
            let source = types
                .get(&field)
                .map_or(field.clone(), |i| i.source_path.clone());
            let mut one = Map::new();
            put(&mut one, &source, v.clone(), &nested);
            add(one, &mut docs);
            put(&mut all, &source, v, &nested);
        }
        add(all, &mut docs);
        add(Map::new(), &mut docs);
    }

    // index, keeping what the cluster accepts
    let mut accepted: BTreeSet<String> = BTreeSet::new();
    for chunk in docs.chunks(1000) {
        let mut body = Vec::new();
        for (id, _, d) in chunk {
            body.extend(
                serde_json::to_vec(&json!({"index": {"_index": index, "_id": id}})).unwrap(),
            );
            body.push(b'\n');
            body.extend(serde_json::to_vec(d).unwrap());
            body.push(b'\n');
        }
        let raw = cluster
            .send_raw(
                Method::Post,
                "/_bulk",
                &[],
                Some(body),
                Some("application/x-ndjson"),
            )
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&raw.body).unwrap();
        for item in v["items"].as_array().into_iter().flatten() {
            let it = &item["index"];
            if it["status"].as_u64().is_some_and(|s| s < 300) {
                accepted.extend(it["_id"].as_str().map(str::to_string));
            }
        }
    }
    refresh(&cluster, &index).await;

    let opts = KqlOptions::detection_rules();
    let (mut agree, mut both_refused, mut selective) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for (qi, q) in queries.iter().enumerate() {
        let filter = kql::lower(&parsed[qi], Some(&types), &opts).unwrap();
        let body = json!({"size": 1000, "_source": false, "query": {"bool": {"filter": [
            kql::es_query(&filter), {"term": {"qid": qi.to_string()}}]}}});
        let on_cluster: Result<BTreeSet<String>, String> = cluster
            .request_json(Method::Post, &format!("/{index}/_search"), &[], Some(&body))
            .await
            .map(|v| {
                v["hits"]["hits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h["_id"].as_str().map(str::to_string))
                    .collect()
            })
            .map_err(|e| e.to_string());
        let mine: Vec<&(String, usize, Value)> = docs
            .iter()
            .filter(|(id, d_qi, _)| *d_qi == qi && accepted.contains(id))
            .collect();
        let local = compile(&filter, &types, &EvalOptions::default()).map(|m| {
            mine.iter()
                .filter(|(_, _, d)| m.matches(d, now))
                .map(|(id, _, _)| id.clone())
                .collect::<BTreeSet<_>>()
        });
        match (&on_cluster, &local) {
            (Ok(c), Ok(l)) if c == l => {
                agree += 1;
                if !c.is_empty() && c.len() < mine.len() {
                    selective += 1;
                }
            }
            (Err(_), Err(_)) => both_refused += 1,
            (c, l) => disagreements.push(format!("{q}\n    cluster: {c:?}\n    local: {l:?}")),
        }
    }
    eprintln!(
        "KQL corpus agreement: {} queries, {} documents ({} accepted): {agree} agree \
         ({selective} select some but not all of their documents), {both_refused} refused by both, {} disagree",
        queries.len(),
        docs.len(),
        accepted.len(),
        disagreements.len()
    );
    delete_indices(&cluster, &[&index]).await;
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
