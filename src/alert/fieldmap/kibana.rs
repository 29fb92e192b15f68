//! Which ECS fields the alerts mapping carries on an Elasticsearch cluster,
//! by the Kibana version that runs (or will run) beside it.
//!
//! Kibana, started after detectd created the alerts index, `PUT`s its own
//! version's mapping onto it
//! (`x-pack/platform/plugins/shared/alerting/server/alerts_service/lib/create_concrete_write_index.ts`,
//! `updateUnderlyingMapping`). Elasticsearch refuses the whole request when a
//! field cannot merge, and when the merged mapping has more fields than
//! `index.mapping.total_fields.limit` (2500, which Kibana sets on the index
//! just before). Kibana versions before 9.4 map ECS fields our ECS 9.3.0 map
//! lacks (the `nested` and `flattened` ECS fields and their children, fields
//! ECS later removed) and lack hundreds we have: the two together go past
//! the limit (about 2710 fields for Kibana 8.12 .. 9.3). So on a cluster
//! whose Kibana is older than our ECS data, the mapping keeps only the ECS
//! fields which that Kibana version maps alike; Kibana adds the others itself.
//!
//! `kibana/versions.json` says which ECS version and `ecsFieldMap` selection
//! ("candidates") each Kibana minor builds its mapping from (several where
//! the evidence does not settle it); `ecs_unshared.json` lists, per ECS field
//! of ours, the candidates that do not map it alike. Both are data made and
//! explained by `scripts/fieldmap/kibana_compat.py` and the README beside
//! this module; the test module `compat` checks the result against each
//! candidate's whole mapping. Kibana must run the same major.minor as
//! Elasticsearch, so the cluster's version names the Kibana version.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::{ecs, parse_file, FieldMap};

const VERSIONS_JSON: &str = include_str!("kibana/versions.json");
const UNSHARED_JSON: &str = include_str!("ecs_unshared.json");

/// One Kibana minor of `versions.json`: the ECS candidates its mapping may
/// be built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KibanaMinor {
    pub major: u32,
    pub minor: u32,
    pub candidates: Vec<String>,
}

/// The Kibana minors of `versions.json`, oldest first.
pub fn kibana_minors() -> &'static [KibanaMinor] {
    static LIST: OnceLock<Vec<KibanaMinor>> = OnceLock::new();
    LIST.get_or_init(|| {
        let file = parse_file(VERSIONS_JSON, "kibana/versions.json");
        let kibana = file
            .get("kibana")
            .and_then(Value::as_object)
            .expect("kibana/versions.json: `kibana` is an object");
        let mut list: Vec<KibanaMinor> = kibana
            .iter()
            .map(|(version, entry)| {
                let (major, minor) = parse_minor(version)
                    .unwrap_or_else(|| panic!("kibana/versions.json: bad version {version}"));
                let candidates = entry["candidates"]
                    .as_array()
                    .expect("kibana/versions.json: `candidates` is an array")
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                KibanaMinor {
                    major,
                    minor,
                    candidates,
                }
            })
            .collect();
        list.sort_by_key(|k| (k.major, k.minor));
        list
    })
}

fn parse_minor(version: &str) -> Option<(u32, u32)> {
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The Kibana minor a cluster of `major.minor` gets its mapping for: the
/// newest listed one not newer than the cluster. A cluster older than the
/// oldest listed (8.11) gets the oldest: its mapping is the smallest.
pub fn kibana_minor_for(major: u32, minor: u32) -> &'static KibanaMinor {
    let list = kibana_minors();
    list.iter()
        .rev()
        .find(|k| (k.major, k.minor) <= (major, minor))
        .unwrap_or(&list[0])
}

/// Per ECS field of ours that some candidate does not map alike: those
/// candidates.
fn unshared() -> &'static Map<String, Value> {
    static MAP: OnceLock<Map<String, Value>> = OnceLock::new();
    MAP.get_or_init(
        || match parse_file(UNSHARED_JSON, "ecs_unshared.json").remove("fields") {
            Some(Value::Object(fields)) => fields,
            _ => panic!("ecs_unshared.json: `fields` is an object"),
        },
    )
}

/// The ECS field map for an Elasticsearch cluster of `major.minor`: [`ecs`]
/// without the fields one of its Kibana minor's candidates does not map
/// alike.
pub fn ecs_for_cluster(major: u32, minor: u32) -> FieldMap {
    let candidates: HashSet<&str> = kibana_minor_for(major, minor)
        .candidates
        .iter()
        .map(String::as_str)
        .collect();
    let unshared = unshared();
    let fields = ecs()
        .iter()
        .filter(|field| {
            unshared
                .get(field.name)
                .and_then(Value::as_array)
                .is_none_or(|lacking| {
                    !lacking
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|c| candidates.contains(c))
                })
        })
        .map(|field| (field.name.to_string(), Value::Object(field.def.clone())))
        .collect();
    FieldMap::from_fields(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minors_are_listed_in_order_with_known_candidates() {
        let minors = kibana_minors();
        assert_eq!((minors[0].major, minors[0].minor), (8, 11));
        let file = parse_file(VERSIONS_JSON, "kibana/versions.json");
        let known = file["candidates"].as_object().unwrap();
        for k in minors {
            assert!(!k.candidates.is_empty(), "{k:?}");
            for c in &k.candidates {
                assert!(known.contains_key(c), "{k:?}: unknown candidate {c}");
            }
        }
        // every unshared entry names known candidates and fields of ours
        for (name, lacking) in unshared() {
            assert!(ecs().get(name).is_some(), "{name} is not in ecs.json");
            for c in lacking.as_array().unwrap() {
                assert!(known.contains_key(c.as_str().unwrap()), "{name}: {c}");
            }
        }
    }

    #[test]
    fn a_cluster_gets_the_newest_kibana_minor_not_newer_than_itself() {
        let at = |major, minor| {
            let k = kibana_minor_for(major, minor);
            (k.major, k.minor)
        };
        assert_eq!(at(7, 17), (8, 11));
        assert_eq!(at(8, 11), (8, 11));
        assert_eq!(at(8, 15), (8, 15));
        assert_eq!(at(9, 3), (9, 3));
        assert_eq!(at(9, 4), (9, 4));
        assert_eq!(at(9, 7), (9, 4));
        assert_eq!(at(10, 0), (9, 4));
    }

    #[test]
    fn newer_clusters_keep_more_ecs_fields_and_the_newest_keeps_all() {
        let n = |major, minor| ecs_for_cluster(major, minor).len();
        assert!(n(8, 11) < n(8, 15), "{} {}", n(8, 11), n(8, 15));
        assert!(n(8, 15) < n(9, 3));
        assert_eq!(n(9, 4), ecs().len());
        // ECS 9.3's entity fields are no Kibana 9.3's
        assert!(ecs_for_cluster(9, 3).get("entity.id").is_none());
        assert!(ecs_for_cluster(9, 4).get("entity.id").is_some());
        // a field every version maps is everywhere
        assert!(ecs_for_cluster(8, 11).get("process.pid").is_some());
    }
}
