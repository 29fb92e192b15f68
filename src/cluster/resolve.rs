//! What index patterns resolve to (`_resolve/index`): the names a search
//! targets, and the concrete indices behind them, where documents and
//! mappings live (a data stream's backing indices, an alias's indices).

use elasticsearch::http::Method;
use serde_json::Value;

use super::{encode_path_part, snippet, Cluster, ClusterError};

impl Cluster {
    /// The concrete indices (and data streams, aliases) that the patterns
    /// match. Used before opening a point in time: OpenSearch fails to open
    /// one on a pattern that matches nothing.
    pub async fn resolve_indices(&self, patterns: &[String]) -> Result<Vec<String>, ClusterError> {
        Ok(self.resolve(patterns).await?.names)
    }

    /// What the patterns match (`_resolve/index`, open indices only): the
    /// names as listed (indices, aliases, data streams), and the concrete
    /// indices behind them (a data stream's backing indices, an alias's
    /// indices), which is where documents live and mappings are kept.
    pub async fn resolve(&self, patterns: &[String]) -> Result<Resolved, ClusterError> {
        let path = format!("/_resolve/index/{}", encode_path_part(&patterns.join(",")));
        let body = match self
            .request_json(Method::Get, &path, &[("expand_wildcards", "open")], None)
            .await
        {
            Ok(body) => body,
            // A concrete name that does not exist is a 404 on some versions.
            Err(ClusterError::Status { status: 404, .. }) => return Ok(Resolved::default()),
            Err(e) => return Err(e),
        };
        // Every version answers with an `indices` array (possibly empty);
        // anything else is not an answer about indices, and reading it as
        // "nothing matches" would skip the window with a mere warning.
        if !body.get("indices").is_some_and(Value::is_array) {
            return Err(ClusterError::BadResponse {
                method: "GET",
                path,
                reason: format!(
                    "expected an `indices` array, found {}",
                    snippet(body.to_string().as_bytes())
                ),
            });
        }
        Ok(Resolved::from_body(&body))
    }
}

/// What index patterns resolve to (see [`Cluster::resolve`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Indices, aliases and data streams, as `_resolve/index` lists them.
    pub names: Vec<String>,
    /// The concrete indices behind them, each once.
    pub concrete: Vec<ConcreteIndex>,
    /// The aliases among the names.
    pub aliases: Vec<String>,
    /// The concrete indices named as themselves or through a data stream,
    /// not only through an alias (whose filter a search applies to them
    /// only then: see [`super::aliases`]).
    pub direct: Vec<String>,
}

/// A concrete index a search may return documents from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcreteIndex {
    pub name: String,
    /// It may still receive documents (so its mapping may still grow): a
    /// plain index, or a data stream's write index (its last backing index).
    /// Older backing indices of a data stream only age.
    pub live: bool,
}

impl Resolved {
    /// Reads a `_resolve/index` answer.
    pub fn from_body(body: &Value) -> Resolved {
        let mut out = Resolved::default();
        let list = |key: &str| {
            body.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let name = |item: &Value| item.get("name").and_then(Value::as_str).map(str::to_string);
        let strings = |item: &Value, key: &str| -> Vec<String> {
            item.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        for key in ["indices", "aliases", "data_streams"] {
            out.names.extend(list(key).iter().filter_map(name));
        }
        let mut direct: Vec<String> = Vec::new();
        let mut aliases: Vec<String> = Vec::new();
        let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut add = |name: String, live: bool| match at.get(&name) {
            Some(&i) => out.concrete[i].live |= live,
            None => {
                at.insert(name.clone(), out.concrete.len());
                out.concrete.push(ConcreteIndex { name, live });
            }
        };
        for item in list("indices") {
            // a backing index named by a pattern is listed here too; its
            // data stream (below) says whether it is the write index
            if let Some(n) = name(&item) {
                let backing = item.get("data_stream").is_some();
                add(n.clone(), !backing);
                direct.push(n);
            }
        }
        for item in list("aliases") {
            aliases.extend(name(&item));
            for n in strings(&item, "indices") {
                add(n, true);
            }
        }
        for item in list("data_streams") {
            let backing = strings(&item, "backing_indices");
            let last = backing.len().saturating_sub(1);
            for (i, n) in backing.into_iter().enumerate() {
                add(n.clone(), i == last);
                direct.push(n);
            }
        }
        out.aliases = aliases;
        for n in direct {
            if !out.direct.contains(&n) {
                out.direct.push(n);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_lists_the_concrete_indices_and_which_still_grow() {
        // the shape of Elasticsearch's `_resolve/index` answer
        let body = serde_json::json!({
            "indices": [
                {"name": "winlogbeat-1", "attributes": ["open"]},
                {"name": "winlogbeat-2", "aliases": ["wlb"], "attributes": ["open"]}
            ],
            "aliases": [{"name": "wlb", "indices": ["winlogbeat-2", "old-1"]}],
            "data_streams": [{
                "name": "logs-endpoint.events.process-default",
                "backing_indices": [".ds-logs-x-000001", ".ds-logs-x-000002"],
                "timestamp_field": "@timestamp"
            }]
        });
        let r = Resolved::from_body(&body);
        assert_eq!(
            r.names,
            [
                "winlogbeat-1",
                "winlogbeat-2",
                "wlb",
                "logs-endpoint.events.process-default"
            ]
        );
        let concrete: Vec<(&str, bool)> = r
            .concrete
            .iter()
            .map(|c| (c.name.as_str(), c.live))
            .collect();
        assert_eq!(
            concrete,
            [
                ("winlogbeat-1", true),
                ("winlogbeat-2", true),
                ("old-1", true),
                (".ds-logs-x-000001", false),
                (".ds-logs-x-000002", true)
            ]
        );
        assert_eq!(r.aliases, ["wlb"]);
        // `old-1` only through the alias
        assert_eq!(
            r.direct,
            [
                "winlogbeat-1",
                "winlogbeat-2",
                ".ds-logs-x-000001",
                ".ds-logs-x-000002"
            ]
        );
        assert_eq!(
            Resolved::from_body(&serde_json::json!({"indices": []})),
            Resolved::default()
        );
    }
}
