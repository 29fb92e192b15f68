//! `threat.enrichments` of an indicator match alert, as Kibana writes them
//! (`indicator_match/threat_mapping/enrich_signal_threat_matches.ts`,
//! `validate_complete_threat_matches.ts`): the event's source gets, after
//! the enrichments it already has (kept, an object made a one-item list),
//! one enrichment per indicator and mapping entry it matched:
//!
//! `{indicator, feed, matched: {atomic, field, id, index, type}}`
//!
//! - `indicator`: the indicator document's value at `threat_indicator_path`,
//!   its first item when a list, `{}` when absent (or not an object);
//! - `feed`: `{name: threat.feed.name}` of the indicator document, `{}`
//!   without one (`FEED_NAME_PATH`);
//! - `matched.atomic`: the event's value of the entry's `field` as the
//!   event has it (a list stays a list); `field`: that event field; `id`,
//!   `index`: the indicator document's; `type`: `indicator_match_rule`.
//!
//! An indicator counts only through a mapping all of whose entries it
//! matches (Kibana's `validateCompleteThreatMatches`), and then gives one
//! enrichment per entry. Enrichments are ordered by indicator (in the order
//! the indicator search returned them), then mapping, then entry; an
//! (indicator, entry) pair that two mappings share gives one enrichment,
//! as Kibana's set of matched queries does. At most 200 per event
//! (`MAX_NUMBER_OF_SIGNAL_MATCHES`). The alert is then built from the
//! enriched source as any event alert (the id recipe of a query rule's
//! event alert: the enrichments do not change it).

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::doc::get_path;
use crate::eql::pushdown::field_values;
use crate::rule::ThreatMapping;

/// `ENRICHMENT_TYPES.IndicatorMatchRule` (security_solution
/// `common/cti/constants.ts`).
pub const ENRICHMENT_TYPE: &str = "indicator_match_rule";
/// `FEED_NAME_PATH`.
pub const FEED_NAME_PATH: &str = "threat.feed.name";
/// Most enrichments one event gets.
pub const MAX_ENRICHMENTS: usize = 200;

/// An indicator document the event matched by `mapping` (an index into the
/// rule's `threat_mapping`).
#[derive(Clone, Copy, Debug)]
pub struct IndicatorHit<'a> {
    pub index: &'a str,
    pub id: &'a str,
    pub source: &'a Value,
    pub mapping: usize,
}

/// The event's source with its new enrichments, or `None` when no hit
/// really matches (every entry of its mapping compared on the documents).
pub fn enrich(
    event: &Value,
    hits: &[IndicatorHit<'_>],
    mappings: &[ThreatMapping],
    indicator_path: &str,
) -> Option<Value> {
    let mut new: Vec<Value> = Vec::new();
    // (indicator index, id, entry field, entry value) already enriched
    let mut seen: Vec<(&str, &str, &str, &str)> = Vec::new();
    for hit in hits {
        let Some(mapping) = mappings.get(hit.mapping) else {
            continue;
        };
        if !agrees(mapping, event, hit.source) {
            continue;
        }
        for entry in &mapping.entries {
            let key = (
                hit.index,
                hit.id,
                entry.field.as_str(),
                entry.value.as_str(),
            );
            if seen.contains(&key) || new.len() >= MAX_ENRICHMENTS {
                continue;
            }
            seen.push(key);
            new.push(enrichment(event, hit, &entry.field, indicator_path));
        }
    }
    if new.is_empty() {
        return None;
    }
    let mut source = event.clone();
    let existing: Vec<Value> = match get_path(event, "threat.enrichments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(one) => vec![one.clone()],
    };
    let obj = source.as_object_mut()?;
    // A `threat` that is not an object (Kibana fails the whole batch on
    // it) is replaced: ECS has an object there, so the alert would drop
    // that value anyway.
    let mut threat = match obj.get("threat") {
        Some(Value::Object(t)) => t.clone(),
        _ => Map::new(),
    };
    let mut all = existing;
    all.extend(new);
    threat.insert("enrichments".into(), Value::Array(all));
    // the flat spelling was read into `existing`
    obj.remove("threat.enrichments");
    obj.insert("threat".into(), Value::Object(threat));
    Some(source)
}

/// A value as the join compares it; `None` for objects and nulls.
pub fn atom(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

/// The distinct values of `field` in `doc`, as compared.
pub fn atoms<'a>(doc: &'a Value, field: &str) -> Vec<Cow<'a, str>> {
    let mut out: Vec<Cow<'a, str>> = Vec::new();
    for v in field_values(doc, field) {
        if let Some(a) = atom(v) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// Whether `event` and `indicator` really agree on every entry of
/// `mapping` (some value in common per entry): the check behind a
/// candidate, on the documents.
pub fn agrees(mapping: &ThreatMapping, event: &Value, indicator: &Value) -> bool {
    mapping.entries.iter().all(|e| {
        let theirs = atoms(indicator, &e.value);
        atoms(event, &e.field).iter().any(|a| theirs.contains(a))
    })
}

fn enrichment(event: &Value, hit: &IndicatorHit<'_>, field: &str, indicator_path: &str) -> Value {
    let indicator = match get_path(hit.source, indicator_path) {
        Some(Value::Object(o)) => Value::Object(o.clone()),
        Some(Value::Array(items)) => match items.first() {
            Some(Value::Object(o)) => Value::Object(o.clone()),
            _ => json!({}),
        },
        _ => json!({}),
    };
    let mut feed = Map::new();
    match get_path(hit.source, FEED_NAME_PATH) {
        Some(Value::String(s)) if !s.is_empty() => {
            feed.insert("name".into(), json!(s));
        }
        _ => {}
    }
    let mut matched = Map::new();
    if let Some(atomic) = get_path(event, field) {
        matched.insert("atomic".into(), atomic.clone());
    }
    matched.insert("field".into(), json!(field));
    matched.insert("id".into(), json!(hit.id));
    matched.insert("index".into(), json!(hit.index));
    matched.insert("type".into(), json!(ENRICHMENT_TYPE));
    json!({"indicator": indicator, "feed": feed, "matched": matched})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::ThreatMappingEntry;

    fn mapping(pairs: &[(&str, &str)]) -> ThreatMapping {
        ThreatMapping {
            entries: pairs
                .iter()
                .map(|(f, v)| ThreatMappingEntry {
                    field: f.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn kibanas_shape_existing_enrichments_kept_and_order() {
        let mappings = vec![
            mapping(&[("source.ip", "threat.indicator.ip")]),
            mapping(&[
                ("host.name", "threat.indicator.host"),
                ("source.ip", "threat.indicator.ip"),
            ]),
        ];
        let event = json!({
            "source": {"ip": ["10.0.0.1", "10.0.0.2"]},
            "host": {"name": "ws1"},
            "threat": {"framework": "MITRE", "enrichments": {"existing": 1}}
        });
        let a = json!({"threat": {"indicator": {"ip": "10.0.0.2", "host": "ws1", "type": "ipv4-addr"},
                        "feed": {"name": "AbuseCH"}}});
        let b = json!({"threat": {"indicator": [{"ip": "10.0.0.1"}, {"ip": "x"}]}});
        let hits = [
            IndicatorHit {
                index: "ti-a",
                id: "a",
                source: &a,
                mapping: 0,
            },
            IndicatorHit {
                index: "ti-a",
                id: "a",
                source: &a,
                mapping: 1,
            },
            IndicatorHit {
                index: "ti-b",
                id: "b",
                source: &b,
                mapping: 0,
            },
            // b has no host: mapping 2 is not complete for it
            IndicatorHit {
                index: "ti-b",
                id: "b",
                source: &b,
                mapping: 1,
            },
        ];
        let out = enrich(&event, &hits, &mappings, "threat.indicator").unwrap();
        let atomic = json!(["10.0.0.1", "10.0.0.2"]);
        let ind_a = json!({"ip": "10.0.0.2", "host": "ws1", "type": "ipv4-addr"});
        assert_eq!(
            out["threat"],
            json!({"framework": "MITRE", "enrichments": [
                {"existing": 1},
                {"indicator": ind_a, "feed": {"name": "AbuseCH"},
                 "matched": {"atomic": atomic, "field": "source.ip", "id": "a", "index": "ti-a", "type": "indicator_match_rule"}},
                // the shared entry (source.ip) is not repeated for mapping 2
                {"indicator": ind_a, "feed": {"name": "AbuseCH"},
                 "matched": {"atomic": "ws1", "field": "host.name", "id": "a", "index": "ti-a", "type": "indicator_match_rule"}},
                {"indicator": {"ip": "10.0.0.1"}, "feed": {},
                 "matched": {"atomic": atomic, "field": "source.ip", "id": "b", "index": "ti-b", "type": "indicator_match_rule"}},
            ]})
        );
    }

    #[test]
    fn a_candidate_that_does_not_match_on_the_documents_gives_nothing() {
        let mappings = vec![mapping(&[("source.ip", "threat.indicator.ip")])];
        let event = json!({"source": {"ip": "10.0.0.1"}});
        let other = json!({"threat": {"indicator": {"ip": "10.9.9.9"}}});
        let hits = [IndicatorHit {
            index: "ti",
            id: "x",
            source: &other,
            mapping: 0,
        }];
        assert_eq!(enrich(&event, &hits, &mappings, "threat.indicator"), None);
        // an indicator path that is absent gives `{}`; custom paths work
        let custom = json!({"vuln": {"id": "CVE-1"}, "ti": {"ip": "10.0.0.1"}});
        let mappings = vec![mapping(&[("source.ip", "ti.ip")])];
        let hits = [IndicatorHit {
            index: "ti",
            id: "x",
            source: &custom,
            mapping: 0,
        }];
        let out = enrich(&event, &hits, &mappings, "rapid7.tc.vulnerability").unwrap();
        assert_eq!(out["threat"]["enrichments"][0]["indicator"], json!({}));
        let out = enrich(&event, &hits, &mappings, "vuln").unwrap();
        assert_eq!(
            out["threat"]["enrichments"][0]["indicator"],
            json!({"id": "CVE-1"})
        );
    }
}
