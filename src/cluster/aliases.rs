//! What an alias does to a search of it (`GET /_alias/<names>`): the
//! filter it applies to each of its indices.
//!
//! A search of a filtered alias returns only the documents of each index
//! that match the alias's filter for that index — unless the same search
//! also names the index itself (or through an alias without a filter):
//! then that index is searched whole. A shared scan, which searches the
//! union of its members' targets, uses these filters to give each member
//! exactly the documents its own search would have returned
//! (`source::elasticsearch::shared`).

use std::collections::HashMap;

use elasticsearch::http::Method;
use serde_json::Value;

use super::{encode_path_part, Cluster, ClusterError};

/// What searching an alias does to one of its indices.
#[derive(Clone, Debug, PartialEq)]
pub enum AliasLink {
    /// The index is searched whole.
    Whole,
    /// Only its documents matching this query are searched.
    Filtered(Value),
    /// Only some of its shards are searched (`search_routing`): no query
    /// says which documents that leaves.
    Routed,
}

/// (alias, index) → what searching the alias does to the index.
pub type AliasLinks = HashMap<(String, String), AliasLink>;

impl Cluster {
    /// How each of `aliases` links to its indices. An alias that no longer
    /// exists has no links.
    pub async fn alias_links(&self, aliases: &[String]) -> Result<AliasLinks, ClusterError> {
        if aliases.is_empty() {
            return Ok(AliasLinks::new());
        }
        let path = format!("/_alias/{}", encode_path_part(&aliases.join(",")));
        match self.request_json(Method::Get, &path, &[], None).await {
            Ok(body) => Ok(links_from_body(&body)),
            // Some aliases missing: a 404 with the others' links.
            Err(ClusterError::Status { status: 404, .. }) => Ok(AliasLinks::new()),
            Err(e) => Err(e),
        }
    }
}

/// Reads a `GET /_alias` answer: `{index: {aliases: {alias: {filter, …}}}}`.
pub fn links_from_body(body: &Value) -> AliasLinks {
    let mut out = AliasLinks::new();
    let Some(indices) = body.as_object() else {
        return out;
    };
    for (index, entry) in indices {
        let Some(aliases) = entry.get("aliases").and_then(Value::as_object) else {
            continue;
        };
        for (alias, spec) in aliases {
            let link = if spec.get("search_routing").is_some() || spec.get("routing").is_some() {
                AliasLink::Routed
            } else {
                match spec.get("filter") {
                    Some(filter) if !filter.is_null() => AliasLink::Filtered(filter.clone()),
                    _ => AliasLink::Whole,
                }
            };
            out.insert((alias.clone(), index.clone()), link);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_say_which_indices_an_alias_filters_or_routes() {
        // the shape of `GET /_alias/tenant-a,all` on Elasticsearch and OpenSearch
        let body = json!({
            "logs-1": {"aliases": {
                "tenant-a": {"filter": {"term": {"tenant": "a"}}},
                "all": {}
            }},
            "logs-2": {"aliases": {"tenant-a": {"search_routing": "1", "index_routing": "1"}}},
            "logs-3": {"aliases": {}}
        });
        let links = links_from_body(&body);
        let link = |a: &str, i: &str| links.get(&(a.to_string(), i.to_string())).cloned();
        assert_eq!(
            link("tenant-a", "logs-1"),
            Some(AliasLink::Filtered(json!({"term": {"tenant": "a"}})))
        );
        assert_eq!(link("all", "logs-1"), Some(AliasLink::Whole));
        assert_eq!(link("tenant-a", "logs-2"), Some(AliasLink::Routed));
        assert_eq!(links.len(), 3);
        assert!(links_from_body(&json!([])).is_empty());
    }
}
