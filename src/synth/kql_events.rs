//! Documents made from a KQL query's own literals, for tests that run many
//! queries without data of their own (the corpus agreement test against
//! the cluster, `hunt` over the corpus's query rules).
//!
//! Per query: one document per leaf holding that leaf's value, one holding
//! every leaf's value (several values of one field as an array), a
//! witness meant to match (every clause of an `and`, the first of an `or`,
//! nothing under a `not`), and one with none. A leaf's value is made to fit
//! the field's type: ECS-style guesses by field name ([`ecs_guess`]) when
//! no mapping is known, as the public corpus ships none. Negated leaves get
//! their value in the other documents, so some of them are meant not to
//! match.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::filter::pattern::Pattern;
use crate::filter::FieldTypes;
use crate::kql::{self, LitValue, Literal, Node, Part, RangeOp};

/// An ECS-style type for a field name: dates, IPs, ports and counts by
/// name, text and wildcard fields by name, keyword otherwise.
pub fn ecs_guess(name: &str) -> &'static str {
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
            | "file.path.caseless"
    ) {
        "wildcard"
    } else {
        "keyword"
    }
}

/// A leaf of a query: the field (nested groups prefixed; `None` for free
/// text) and the literal that makes it true.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub field: Option<String>,
    value: Option<Literal>,
    op: Option<RangeOp>,
}

impl Leaf {
    /// Whether the generator may fail to make this leaf true: a field-name
    /// pattern (the mapping may hold no field it matches) or a range on a
    /// field guessed `keyword` (`> 0.98` compares as text there).
    pub fn is_guesswork(&self) -> bool {
        match &self.field {
            Some(f) => f.contains('*') || (self.op.is_some() && ecs_guess(f) == "keyword"),
            None => false,
        }
    }
}

/// The leaves of a query, and the nested paths it uses.
#[derive(Clone, Debug, Default)]
pub struct QueryLeaves {
    pub leaves: Vec<Leaf>,
    pub nested: BTreeSet<String>,
    /// Which leaves the witness holds (indices into `leaves`).
    witness: Vec<usize>,
}

impl QueryLeaves {
    pub fn of(node: &Node) -> QueryLeaves {
        let mut out = QueryLeaves::default();
        collect(node, None, &mut out.leaves, &mut out.nested);
        let mut next = 0;
        witness(node, true, &mut next, &mut out.witness);
        out
    }

    /// The fields named (not field-name patterns) with their guessed types.
    pub fn guessed_types(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.leaves
            .iter()
            .filter_map(|l| l.field.as_deref())
            .filter(|f| !f.contains('*'))
            .map(|f| (f, ecs_guess(f)))
    }

    /// The query's documents for the field types `types` (a field-name
    /// pattern takes the first field of `types` it matches; leaves on no
    /// field go to `message`). `nested` are the nested paths of every
    /// query the documents go with (objects under them become arrays).
    pub fn documents(
        &self,
        types: &FieldTypes,
        nested: &BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> Vec<Map<String, Value>> {
        let mut docs = Vec::new();
        let mut all = Map::new();
        let mut witness = Map::new();
        for (i, l) in self.leaves.iter().enumerate() {
            let field = match &l.field {
                Some(f) if f.contains('*') => {
                    let pattern: String = match kql::parse_literal(f).map(|x| x.value) {
                        Ok(LitValue::Wildcard(parts)) => parts
                            .iter()
                            .map(|p| match p {
                                Part::Star => "*".to_string(),
                                Part::Text(t) => t.clone(),
                            })
                            .collect(),
                        _ => continue,
                    };
                    match types
                        .leaf_names()
                        .find(|n| Pattern::new(&pattern, false).matches(n))
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
            put(&mut one, &source, v.clone(), nested);
            docs.push(one);
            if self.witness.contains(&i) {
                put(&mut witness, &source, v.clone(), nested);
            }
            put(&mut all, &source, v, nested);
        }
        docs.push(all);
        docs.push(witness);
        docs.push(Map::new());
        docs
    }
}

fn collect(node: &Node, prefix: Option<&str>, out: &mut Vec<Leaf>, nested: &mut BTreeSet<String>) {
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
            clauses.iter().for_each(|c| collect(c, prefix, out, nested))
        }
        Node::Not { inner, .. } => collect(inner, prefix, out, nested),
        Node::Nested { path, query, .. } => {
            let p = full(path).unwrap_or_default();
            nested.insert(p.clone());
            collect(query, Some(&p), out, nested)
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

/// The leaves (numbered in the order of [`collect`]) a document holds to
/// make `node` true: all clauses of an `and`, the first of an `or`, none
/// under a `not` (a missing field makes a leaf false); `next` counts the
/// leaves walked.
fn witness(node: &Node, wanted: bool, next: &mut usize, out: &mut Vec<usize>) {
    match node {
        Node::And { clauses, .. } | Node::Or { clauses, .. } => {
            let first_only = matches!(node, Node::Or { .. });
            for (i, c) in clauses.iter().enumerate() {
                witness(c, wanted && (!first_only || i == 0), next, out);
            }
        }
        Node::Not { inner, .. } => witness(inner, false, next, out),
        Node::Nested { query, .. } => witness(query, wanted, next, out),
        Node::Is { .. } | Node::Range { .. } | Node::Exists { .. } => {
            if wanted {
                out.push(*next);
            }
            *next += 1;
        }
    }
}

/// A concrete value of the field's type that makes the leaf true.
fn leaf_value(ty: &str, leaf: &Leaf, now: DateTime<Utc>) -> Option<Value> {
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
                json!((now - Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Millis, true))
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
pub fn put(doc: &mut Map<String, Value>, path: &str, value: Value, nested: &BTreeSet<String>) {
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

/// The mapping (`{"properties": ...}`, `dynamic: false`) of `types`: a
/// name that is both a leaf and a parent keeps its children as
/// multi-fields; `nested` paths are `nested`.
pub fn mapping(types: &BTreeMap<String, &'static str>, nested: &BTreeSet<String>) -> Value {
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
            if entry.get("properties").is_none() {
                // A leaf that is also a parent: multi-fields are one level
                // deep, the rest of the name is the key.
                let Some(obj) = entry.as_object_mut() else {
                    break;
                };
                let fields = obj.entry("fields").or_insert_with(|| json!({}));
                fields[parts[i + 1..].join(".")] = json!({"type": ty});
                break;
            }
            match entry["properties"].as_object_mut() {
                Some(next) => cur = next,
                None => break,
            }
        }
    }
    json!({"dynamic": false, "properties": props})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_hold_each_leaf_then_all_then_none() {
        let node = kql::parse(
            "event.category:process and process.name:(cmd.exe or pwsh*) and not user.name:root \
             and destination.port > 1024",
        )
        .unwrap();
        let leaves = QueryLeaves::of(&node);
        let types: BTreeMap<String, &'static str> = leaves
            .guessed_types()
            .map(|(f, t)| (f.to_string(), t))
            .collect();
        assert_eq!(types["destination.port"], "long");
        let mapping = mapping(&types, &leaves.nested);
        let field_types = FieldTypes::from_mapping(&mapping);
        let docs = leaves.documents(&field_types, &leaves.nested, Utc::now());
        assert_eq!(docs.len(), 5 + 3);
        assert_eq!(
            Value::Object(docs[2].clone()),
            json!({"process": {"name": "pwsh"}})
        );
        assert_eq!(
            Value::Object(docs[4].clone()),
            json!({"destination": {"port": 1025}})
        );
        let all = Value::Object(docs[5].clone());
        assert_eq!(all["process"]["name"], json!(["cmd.exe", "pwsh"]));
        assert_eq!(all["user"]["name"], "root");
        // the witness: every `and` clause, the first `or` value, no `not`
        assert_eq!(
            Value::Object(docs[6].clone()),
            json!({"event": {"category": "process"}, "process": {"name": "cmd.exe"},
                   "destination": {"port": 1025}})
        );
        let filter = kql::lower(
            &node,
            Some(&field_types),
            &kql::KqlOptions::detection_rules(),
        )
        .unwrap();
        let matcher = crate::filter::eval::compile(
            &filter,
            &field_types,
            &crate::filter::eval::EvalOptions::default(),
        )
        .unwrap();
        let matching: Vec<usize> = (0..docs.len())
            .filter(|i| matcher.matches(&Value::Object(docs[*i].clone()), Utc::now()))
            .collect();
        assert_eq!(matching, [6], "only the witness matches the whole query");
        assert!(docs[7].is_empty());
    }

    #[test]
    fn nested_paths_become_arrays_of_objects() {
        let node = kql::parse("threat.enrichments: { indicator.type: ipv4-addr }").unwrap();
        let leaves = QueryLeaves::of(&node);
        assert!(leaves.nested.contains("threat.enrichments"));
        let mut doc = Map::new();
        put(
            &mut doc,
            "threat.enrichments.indicator.type",
            json!("ipv4-addr"),
            &leaves.nested,
        );
        assert_eq!(
            Value::Object(doc),
            json!({"threat": {"enrichments": [{"indicator": {"type": "ipv4-addr"}}]}})
        );
    }
}
