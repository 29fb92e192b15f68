//! Kibana's security alerts index, created and found the way Kibana does
//! (`reference/kibana-alerts-as-data.md` §1), so that Kibana started before
//! or after detectd works unchanged.
//!
//! Everyone writes through the alias `.alerts-security.alerts-<space>`,
//! whose write index is `.internal.alerts-security.alerts-<space>-000001`
//! (and its rollovers). Kibana creates that layout when it starts (the
//! `default` space) or when a space is first used, and never adopts an index
//! named like the alias: if one exists, Kibana's alert writing for the
//! space is broken until it is removed. So detectd writes with
//! `require_alias=true` (it can never create such an index by accident) and,
//! when the alias is missing, either creates Kibana's layout itself
//! ([`BootstrapMode::Create`]) or waits for Kibana ([`BootstrapMode::Wait`]).
//!
//! What detectd creates is what Kibana would find acceptable on its next
//! start (`createAliasStream` in Kibana's
//! `x-pack/platform/plugins/shared/alerting/server/alerts_service/lib/data_stream_adapter.ts`):
//! a backing index matching `.internal.alerts-security.alerts-<space>-*`
//! holding the alias as write index, with Kibana's settings and a mapping
//! Kibana's own `putMapping` accepts (the same field types; see
//! `alert::fieldmap`). Kibana then overwrites the index template and ILM
//! policy with its own (same content) and carries on.
//!
//! This module does not write alerts; the bulk writer calls it when the
//! alias is missing.

use std::collections::HashSet;
use std::sync::Mutex;

use elasticsearch::http::Method;
use serde_json::{json, Value};

use crate::cluster::{encode_path_part, snippet, Cluster, ClusterError, Distribution};

/// The alias prefix of Kibana's security alerts, one alias per space.
pub const ALERTS_ALIAS_PREFIX: &str = ".alerts-security.alerts-";
/// Kibana's ILM policy for every alerts-as-data index
/// (`alerts_service/default_lifecycle_policy.ts`).
pub const ILM_POLICY: &str = ".alerts-ilm-policy";
pub use crate::alert::fieldmap::TOTAL_FIELDS_LIMIT;

/// The names of one space's alerts layout (`getIndexTemplateAndPattern` in
/// Kibana's `alerts_service/resource_installer_utils.ts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertsLayout {
    space: String,
}

impl AlertsLayout {
    pub fn for_space(space: &str) -> AlertsLayout {
        AlertsLayout {
            space: space.to_string(),
        }
    }

    /// The layout whose alias is `alias`, if it is a Kibana alerts alias.
    pub fn from_alias(alias: &str) -> Option<AlertsLayout> {
        let space = alias.strip_prefix(ALERTS_ALIAS_PREFIX)?;
        let valid = !space.is_empty()
            && space
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        valid.then(|| AlertsLayout::for_space(space))
    }

    pub fn space(&self) -> &str {
        &self.space
    }

    /// `.alerts-security.alerts-<space>`: where alerts are written and read.
    pub fn alias(&self) -> String {
        format!("{ALERTS_ALIAS_PREFIX}{}", self.space)
    }

    /// `.internal.alerts-security.alerts-<space>-000001`.
    pub fn first_index(&self) -> String {
        format!(".internal.alerts-security.alerts-{}-000001", self.space)
    }

    /// The backing indices' pattern (and the index template's).
    pub fn backing_pattern(&self) -> String {
        format!(".internal.alerts-security.alerts-{}-*", self.space)
    }

    /// Backing indices reindexed by the 8→9 upgrade assistant.
    pub fn reindexed_pattern(&self) -> String {
        format!(
            ".reindexed-v8-internal.alerts-security.alerts-{}-*",
            self.space
        )
    }

    /// `.alerts-security.alerts-<space>-index-template`.
    pub fn template(&self) -> String {
        format!("{ALERTS_ALIAS_PREFIX}{}-index-template", self.space)
    }

    /// The legacy alias Kibana's template adds (`.siem-signals-<space>`).
    pub fn secondary_alias(&self) -> String {
        format!(".siem-signals-{}", self.space)
    }
}

/// What to do when the alerts alias is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapMode {
    /// Create Kibana's layout (the default: alerts are written even when
    /// Kibana never ran).
    Create,
    /// Write nothing and keep the windows until Kibana has created it.
    Wait,
}

impl BootstrapMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BootstrapMode::Create => "create",
            BootstrapMode::Wait => "wait",
        }
    }
}

/// How detectd creates the layout: the mode, the Kibana version stamped in
/// `_meta`, and the mapping (Kibana's field types for the cluster's
/// distribution and version; `alert::fieldmap::alerts_mappings`).
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapSpec {
    pub mode: BootstrapMode,
    pub kibana_version: String,
    /// A `mappings` object: `properties` (and `dynamic`); `_meta` is set here.
    pub mappings: Value,
}

/// What the cluster holds under the alias name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// An alias; `write_index` when one of its indices is marked as such,
    /// or the only index behind it (Elasticsearch writes to a single-index
    /// alias without the flag).
    Alias {
        indices: Vec<String>,
        write_index: Option<String>,
    },
    /// A data stream (Kibana's serverless layout): written as is.
    DataStream,
    /// A concrete index named like the alias.
    Squatter,
    Missing,
}

impl BootstrapSpec {
    /// Kibana's layout for this cluster: `kibana.version` as configured or
    /// as a Kibana beside the cluster would have it, and the mapping Kibana
    /// gives the alerts index on the cluster's distribution, with only the
    /// ECS fields the Kibana of the cluster's version maps alike (so that
    /// Kibana's own later put-mapping is accepted:
    /// `alert::fieldmap::kibana`).
    pub fn for_cluster(
        server: &crate::cluster::ServerInfo,
        mode: BootstrapMode,
        kibana_version: Option<&str>,
    ) -> BootstrapSpec {
        use crate::alert::fieldmap::{alerts_mappings, Flavour};
        let flavour = match server.distribution {
            Distribution::Elasticsearch => Flavour::Elasticsearch {
                major: server.version.major,
                minor: server.version.minor,
            },
            Distribution::OpenSearch => Flavour::OpenSearch {
                major: server.version.major,
                minor: server.version.minor,
            },
        };
        BootstrapSpec {
            mode,
            kibana_version: crate::alert::kibana_version(kibana_version, server),
            mappings: alerts_mappings(flavour),
        }
    }
}

/// What [`ensure`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// The alias was there with a write index: nothing done.
    Existing,
    DataStream,
    /// The alias had several indices and no write index; the last became
    /// it, as Kibana does (`setConcreteWriteIndex`).
    WriteIndexSet(String),
    /// Backing indices existed without the alias (it was removed); the
    /// alias was added back to the newest as its write index.
    AliasRestored(String),
    /// The layout was created: this index is the write index.
    Created(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AlertsIndexError {
    #[error(
        "a concrete index named `{alias}` exists where Kibana's alerts alias must be: Kibana cannot \
         create its alerts index for this space while it exists, and detectd will not write into it. \
         Fix: copy its documents out (POST _reindex into a temporary index), delete `{alias}`, start \
         detectd (or Kibana) to create the alias, then reindex the documents into `{alias}` \
         (README: \"The alerts index\")"
    )]
    Squatted { alias: String },
    #[error(
        "the alerts alias `{alias}` does not exist: waiting for Kibana to create it \
         (alerts.bootstrap = \"wait\"); nothing is written and the windows are kept"
    )]
    Waiting { alias: String },
    #[error(
        "`{alias}` is not a Kibana security alerts alias: expected `{ALERTS_ALIAS_PREFIX}<space id>`"
    )]
    NotAnAlertsAlias { alias: String },
    #[error(
        "`{index}` exists but is not the write index of `{alias}`: expected Kibana's layout \
         (create it from Kibana, or remove `{index}`)"
    )]
    NotWriteIndex { index: String, alias: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl AlertsIndexError {
    /// Whether the same call may succeed later without anyone fixing
    /// anything (the cluster was busy or unreachable).
    pub fn is_retryable(&self) -> bool {
        match self {
            AlertsIndexError::Cluster(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// What `name` is: alias, data stream, concrete index or nothing
/// (`GET /_resolve/index/<name>`).
pub async fn inspect(cluster: &Cluster, name: &str) -> Result<Found, ClusterError> {
    let path = format!("/_resolve/index/{}", encode_path_part(name));
    let body = match cluster
        .request_json(Method::Get, &path, &[("expand_wildcards", "all")], None)
        .await
    {
        Ok(body) => body,
        Err(ClusterError::Status { status: 404, .. }) => return Ok(Found::Missing),
        Err(e) => return Err(e),
    };
    let named = |key: &str| -> Result<Option<Value>, ClusterError> {
        let list =
            body.get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| ClusterError::BadResponse {
                    method: "GET",
                    path: path.clone(),
                    reason: format!(
                        "expected `indices`, `aliases` and `data_streams` arrays, found {}",
                        snippet(body.to_string().as_bytes())
                    ),
                })?;
        Ok(list
            .iter()
            .find(|item| item.get("name").and_then(Value::as_str) == Some(name))
            .cloned())
    };
    if let Some(alias) = named("aliases")? {
        let indices: Vec<String> = alias
            .get("indices")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let write_index = write_index(cluster, name, &indices).await?;
        return Ok(Found::Alias {
            indices,
            write_index,
        });
    }
    // OpenSearch has no `data_streams` key before 2.x on some builds; its
    // absence is not an error as long as the other two are there.
    if body.get("data_streams").is_some() && named("data_streams")?.is_some() {
        return Ok(Found::DataStream);
    }
    if named("indices")?.is_some() {
        return Ok(Found::Squatter);
    }
    Ok(Found::Missing)
}

/// The alias's write index (`GET /_alias/<alias>`).
async fn write_index(
    cluster: &Cluster,
    alias: &str,
    indices: &[String],
) -> Result<Option<String>, ClusterError> {
    let path = format!("/_alias/{}", encode_path_part(alias));
    let body = cluster.request_json(Method::Get, &path, &[], None).await?;
    let Some(map) = body.as_object() else {
        return Err(ClusterError::BadResponse {
            method: "GET",
            path,
            reason: format!(
                "expected an object of indices, found {}",
                snippet(body.to_string().as_bytes())
            ),
        });
    };
    // Every index behind the alias answers with its entry for it; anything
    // else is not an answer about this alias (and guessing would write
    // into the wrong index).
    let pointer = format!("/aliases/{}", pointer_escape(alias));
    if let Some(missing) = indices.iter().find(|i| {
        !map.get(*i)
            .and_then(|v| v.pointer(&pointer))
            .is_some_and(Value::is_object)
    }) {
        return Err(ClusterError::BadResponse {
            method: "GET",
            path,
            reason: format!(
                "expected `{missing}` with its entry for the alias, found {}",
                snippet(body.to_string().as_bytes())
            ),
        });
    }
    let flagged = map.iter().find(|(_, v)| {
        v.pointer(&format!(
            "/aliases/{}/is_write_index",
            pointer_escape(alias)
        ))
        .and_then(Value::as_bool)
            == Some(true)
    });
    if let Some((index, _)) = flagged {
        return Ok(Some(index.clone()));
    }
    // One index behind the alias and no flag saying otherwise: writes go
    // there (Elasticsearch's rule for single-index aliases).
    let explicitly_not = |index: &str| {
        map.get(index)
            .and_then(|v| {
                v.pointer(&format!(
                    "/aliases/{}/is_write_index",
                    pointer_escape(alias)
                ))
            })
            .and_then(Value::as_bool)
            == Some(false)
    };
    Ok(match indices {
        [only] if !explicitly_not(only) => Some(only.clone()),
        _ => None,
    })
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Makes sure alerts can be written through `layout`'s alias: finds it, or
/// repairs or creates Kibana's layout as `spec.mode` allows.
pub async fn ensure(
    cluster: &Cluster,
    layout: &AlertsLayout,
    spec: &BootstrapSpec,
) -> Result<Ensured, AlertsIndexError> {
    let alias = layout.alias();
    match inspect(cluster, &alias).await? {
        Found::DataStream => Ok(Ensured::DataStream),
        Found::Squatter => Err(AlertsIndexError::Squatted { alias }),
        Found::Alias {
            write_index: Some(_),
            ..
        } => Ok(Ensured::Existing),
        Found::Alias { mut indices, .. } => {
            if spec.mode == BootstrapMode::Wait {
                return Err(AlertsIndexError::Waiting { alias });
            }
            indices.sort();
            let last = indices.pop().ok_or_else(|| AlertsIndexError::Waiting {
                alias: alias.clone(),
            })?;
            set_write_index(cluster, &last, &alias, true).await?;
            tracing::warn!(index = %last, alias = %alias, "the alerts alias had no write index; made the newest backing index its write index, as Kibana does");
            Ok(Ensured::WriteIndexSet(last))
        }
        Found::Missing => {
            if spec.mode == BootstrapMode::Wait {
                return Err(AlertsIndexError::Waiting { alias });
            }
            if let Some(newest) = newest_backing_index(cluster, layout).await? {
                set_write_index(cluster, &newest, &alias, false).await?;
                tracing::warn!(index = %newest, alias = %alias, "the alerts alias was missing beside its backing index; added it back as the write index");
                return Ok(Ensured::AliasRestored(newest));
            }
            create_layout(cluster, layout, spec).await
        }
    }
}

/// The newest index matching the backing patterns, with or without the
/// alias (hidden indices included).
async fn newest_backing_index(
    cluster: &Cluster,
    layout: &AlertsLayout,
) -> Result<Option<String>, ClusterError> {
    let patterns = format!(
        "{},{}",
        layout.backing_pattern(),
        layout.reindexed_pattern()
    );
    let path = format!("/_resolve/index/{}", encode_path_part(&patterns));
    let body = match cluster
        .request_json(Method::Get, &path, &[("expand_wildcards", "all")], None)
        .await
    {
        Ok(body) => body,
        Err(ClusterError::Status { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(list) = body.get("indices").and_then(Value::as_array) else {
        return Err(ClusterError::BadResponse {
            method: "GET",
            path,
            reason: format!(
                "expected an `indices` array, found {}",
                snippet(body.to_string().as_bytes())
            ),
        });
    };
    let mut names: Vec<&str> = list
        .iter()
        .filter_map(|i| i.get("name").and_then(Value::as_str))
        .collect();
    // Kibana picks the last by name (`sortBy(concreteIndices, ['index'])`).
    names.sort_unstable();
    Ok(names.last().map(|s| s.to_string()))
}

/// `POST /_aliases`: `index` becomes the alias's write index (removing its
/// old entry first when it had one, as Kibana's `setConcreteWriteIndex`).
async fn set_write_index(
    cluster: &Cluster,
    index: &str,
    alias: &str,
    had_alias: bool,
) -> Result<(), ClusterError> {
    let mut actions = Vec::new();
    if had_alias {
        actions.push(json!({"remove": {"index": index, "alias": alias}}));
    }
    actions.push(json!({"add": {"index": index, "alias": alias, "is_write_index": true}}));
    cluster
        .request_json(
            Method::Post,
            "/_aliases",
            &[],
            Some(&json!({ "actions": actions })),
        )
        .await
        .map(|_| ())
}

/// The settings Kibana's index template gives a backing index
/// (`getIndexTemplate` in `alerts_service/lib/create_or_update_index_template.ts`).
/// OpenSearch has no ILM (its ISM is another API), so no lifecycle there.
pub fn index_settings(layout: &AlertsLayout, distribution: Distribution) -> Value {
    let mut settings = json!({
        "index.hidden": true,
        "index.auto_expand_replicas": "0-1",
        "index.mapping.ignore_malformed": true,
        "index.mapping.total_fields.limit": TOTAL_FIELDS_LIMIT,
    });
    if distribution == Distribution::Elasticsearch {
        settings["index.lifecycle.name"] = json!(ILM_POLICY);
        settings["index.lifecycle.rollover_alias"] = json!(layout.alias());
    }
    settings
}

/// The `mappings` of a backing index: the spec's with Kibana's `_meta`.
pub fn index_mappings(layout: &AlertsLayout, spec: &BootstrapSpec) -> Value {
    let mut mappings = match &spec.mappings {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    mappings.insert("dynamic".into(), json!(false));
    mappings.insert(
        "_meta".into(),
        json!({
            "kibana": { "version": spec.kibana_version },
            "managed": true,
            "namespace": layout.space(),
        }),
    );
    Value::Object(mappings)
}

/// Creates the ILM policy (Elasticsearch), the index template and the
/// first backing index with the alias as its write index.
async fn create_layout(
    cluster: &Cluster,
    layout: &AlertsLayout,
    spec: &BootstrapSpec,
) -> Result<Ensured, AlertsIndexError> {
    let distribution = cluster.info().distribution;
    if distribution == Distribution::Elasticsearch {
        ensure_ilm_policy(cluster).await?;
    }
    let settings = index_settings(layout, distribution);
    let mappings = index_mappings(layout, spec);
    install_template(cluster, layout, spec, &settings, &mappings).await?;

    let index = layout.first_index();
    let alias = layout.alias();
    let body = json!({
        "aliases": {
            alias.as_str(): { "is_write_index": true },
            layout.secondary_alias(): { "is_write_index": false },
        },
        "settings": settings,
        "mappings": mappings,
    });
    let path = format!("/{}", encode_path_part(&index));
    match cluster
        .request_json(Method::Put, &path, &[], Some(&body))
        .await
    {
        Ok(_) => {
            tracing::info!(index = %index, alias = %alias, "created Kibana's alerts index layout for the space");
            Ok(Ensured::Created(index))
        }
        // Someone (Kibana, another detectd) was quicker: fine when it made
        // the index the alias's write index, as Kibana checks too.
        Err(ClusterError::Status {
            status: 400,
            reason,
            ..
        }) if reason.contains("resource_already_exists_exception") => {
            match inspect(cluster, &alias).await? {
                Found::Alias {
                    write_index: Some(w),
                    ..
                } if w == index => Ok(Ensured::Existing),
                Found::Squatter => Err(AlertsIndexError::Squatted { alias }),
                _ => Err(AlertsIndexError::NotWriteIndex { index, alias }),
            }
        }
        Err(ClusterError::Status {
            status: 400,
            reason,
            ..
        }) if reason.contains("invalid_alias_name_exception") => {
            Err(AlertsIndexError::Squatted { alias })
        }
        Err(e) => Err(e.into()),
    }
}

/// Kibana's ILM policy, when it is not there yet (Kibana overwrites it with
/// the same content on start). Without the privilege to read or write it
/// the index is still created; ILM then reports the missing policy.
async fn ensure_ilm_policy(cluster: &Cluster) -> Result<(), ClusterError> {
    let path = format!("/_ilm/policy/{}", encode_path_part(ILM_POLICY));
    match cluster.request_json(Method::Get, &path, &[], None).await {
        Ok(_) => return Ok(()),
        Err(ClusterError::Status { status: 404, .. }) => {}
        Err(ClusterError::Status { status: 403, .. }) => {
            tracing::warn!(policy = ILM_POLICY, "no privilege to read the alerts ILM policy; creating the alerts index without checking it");
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    // `alerts_service/default_lifecycle_policy.ts`
    let policy = json!({
        "policy": {
            "_meta": { "managed": true },
            "phases": { "hot": { "actions": { "rollover": {
                "max_age": "30d",
                "max_primary_shard_size": "50gb"
            } } } }
        }
    });
    match cluster
        .request_json(Method::Put, &path, &[], Some(&policy))
        .await
    {
        Ok(_) => Ok(()),
        Err(ClusterError::Status { status: 403, .. }) => {
            tracing::warn!(policy = ILM_POLICY, "no privilege to create the alerts ILM policy; the alerts index will not roll over until Kibana creates it");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The index template for later backing indices (rollover), under Kibana's
/// name, only when none exists (`create=true`): Kibana's own template, if
/// any, stays, and Kibana replaces ours when it starts.
async fn install_template(
    cluster: &Cluster,
    layout: &AlertsLayout,
    spec: &BootstrapSpec,
    settings: &Value,
    mappings: &Value,
) -> Result<(), ClusterError> {
    let meta = json!({
        "kibana": { "version": spec.kibana_version },
        "managed": true,
        "namespace": layout.space(),
        "managed_by": "detectd",
    });
    let body = json!({
        "index_patterns": [layout.backing_pattern(), layout.reindexed_pattern()],
        // Kibana: the space id's length, so the longest matching space wins.
        "priority": layout.space().len(),
        "template": {
            "settings": settings,
            "mappings": mappings,
            "aliases": { layout.secondary_alias(): { "is_write_index": false } },
        },
        "_meta": meta,
    });
    let path = format!("/_index_template/{}", encode_path_part(&layout.template()));
    match cluster
        .request_json(Method::Put, &path, &[("create", "true")], Some(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(ClusterError::Status {
            status: 400,
            reason,
            ..
        }) if reason.contains("already exists") => Ok(()),
        Err(e) => Err(e),
    }
}

/// The alerts aliases known to be writable, so that finding them costs one
/// request per alias and process, not one per write. A write that finds the
/// alias gone forgets it and asks again.
#[derive(Debug)]
pub struct AlertsIndex {
    spec: BootstrapSpec,
    ready: Mutex<HashSet<String>>,
}

impl AlertsIndex {
    pub fn new(spec: BootstrapSpec) -> AlertsIndex {
        AlertsIndex {
            spec,
            ready: Mutex::new(HashSet::new()),
        }
    }

    pub fn spec(&self) -> &BootstrapSpec {
        &self.spec
    }

    /// Ok when alerts can be written through `alias` (found, repaired or
    /// created as the mode allows).
    pub async fn prepare(&self, cluster: &Cluster, alias: &str) -> Result<(), AlertsIndexError> {
        if self.is_ready(alias) {
            return Ok(());
        }
        let layout =
            AlertsLayout::from_alias(alias).ok_or_else(|| AlertsIndexError::NotAnAlertsAlias {
                alias: alias.to_string(),
            })?;
        let ensured = ensure(cluster, &layout, &self.spec).await?;
        tracing::debug!(alias, ?ensured, "alerts index ready");
        self.lock().insert(alias.to_string());
        Ok(())
    }

    /// The alias turned out to be gone: the next [`AlertsIndex::prepare`]
    /// looks again.
    pub fn forget(&self, alias: &str) {
        self.lock().remove(alias);
    }

    fn is_ready(&self, alias: &str) -> bool {
        self.lock().contains(alias)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_follow_kibana() {
        let l = AlertsLayout::for_space("default");
        assert_eq!(l.alias(), ".alerts-security.alerts-default");
        assert_eq!(
            l.first_index(),
            ".internal.alerts-security.alerts-default-000001"
        );
        assert_eq!(
            l.backing_pattern(),
            ".internal.alerts-security.alerts-default-*"
        );
        assert_eq!(
            l.reindexed_pattern(),
            ".reindexed-v8-internal.alerts-security.alerts-default-*"
        );
        assert_eq!(
            l.template(),
            ".alerts-security.alerts-default-index-template"
        );
        assert_eq!(l.secondary_alias(), ".siem-signals-default");
        // No pattern of the layout matches the alias name itself.
        assert!(!l.alias().starts_with(".internal"));
        assert_eq!(
            AlertsLayout::from_alias(".alerts-security.alerts-team_b-1"),
            Some(AlertsLayout::for_space("team_b-1"))
        );
        assert_eq!(AlertsLayout::from_alias("my-alerts"), None);
        assert_eq!(AlertsLayout::from_alias(".alerts-security.alerts-"), None);
        assert_eq!(AlertsLayout::from_alias(".alerts-security.alerts-A"), None);
    }

    #[test]
    fn settings_are_kibanas_with_lifecycle_on_elasticsearch_only() {
        let l = AlertsLayout::for_space("default");
        let es = index_settings(&l, Distribution::Elasticsearch);
        assert_eq!(es["index.hidden"], true);
        assert_eq!(es["index.mapping.ignore_malformed"], true);
        assert_eq!(es["index.mapping.total_fields.limit"], 2500);
        assert_eq!(es["index.auto_expand_replicas"], "0-1");
        assert_eq!(es["index.lifecycle.name"], ".alerts-ilm-policy");
        assert_eq!(
            es["index.lifecycle.rollover_alias"],
            ".alerts-security.alerts-default"
        );
        let os = index_settings(&l, Distribution::OpenSearch);
        assert!(os.get("index.lifecycle.name").is_none());
        let spec = BootstrapSpec {
            mode: BootstrapMode::Create,
            kibana_version: "8.15.3".into(),
            mappings: json!({"properties": {"a": {"type": "keyword"}}, "dynamic": true}),
        };
        let m = index_mappings(&l, &spec);
        assert_eq!(m["dynamic"], false, "never dynamic, whatever the spec says");
        assert_eq!(
            m["_meta"],
            json!({"kibana": {"version": "8.15.3"}, "managed": true, "namespace": "default"})
        );
        assert_eq!(m["properties"]["a"]["type"], "keyword");
    }
}
