//! The validated rule: every setting typed, defaults applied, the query
//! parsed. Built only by [`super::validate`], so a `Rule` cannot be invalid.
//!
//! `Rule { common, kind }`: the part every rule type shares, and the part
//! of its type (DESIGN.md "Rule types"); each kind has its detector in the
//! runner, everything else is shared.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::datemath::DateMath;
use crate::eql::ast;
use crate::eql::compile::CompileOptions;
use crate::schedule::cron::CronSchedule;

/// Kibana's defaults for absent scheduling fields
/// (`common_attributes.schema.yaml`, `DEFAULT_MAX_SIGNALS`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_FROM: &str = "now-6m";
pub const DEFAULT_TO: &str = "now";
pub const DEFAULT_MAX_SIGNALS: u32 = 100;
/// Upper bound for `max_signals`: Kibana's `xpack.alerting.rules.run.alerts.max`
/// defaults to 1000 (Elastic Cloud allows no more since 8.5), and the
/// detection-rules tests cap `max_signals` at 1000.
pub const MAX_SIGNALS_LIMIT: u32 = 1000;

/// A detection rule ready to schedule: what every rule type has
/// ([`RuleCommon`], reachable directly through `Deref`) and what its type
/// adds ([`RuleKind`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub common: RuleCommon,
    pub kind: RuleKind,
}

impl std::ops::Deref for Rule {
    type Target = RuleCommon;

    fn deref(&self) -> &RuleCommon {
        &self.common
    }
}

impl std::ops::DerefMut for Rule {
    fn deref_mut(&mut self) -> &mut RuleCommon {
        &mut self.common
    }
}

impl Rule {
    /// The EQL part of an EQL rule.
    pub fn eql(&self) -> Option<&EqlRule> {
        match &self.kind {
            RuleKind::Eql(e) => Some(e),
            _ => None,
        }
    }

    pub fn eql_mut(&mut self) -> Option<&mut EqlRule> {
        match &mut self.kind {
            RuleKind::Eql(e) => Some(e),
            _ => None,
        }
    }

    /// Kibana's name of the rule's type (`eql`, `query`, `saved_query`,
    /// `threshold`).
    pub fn rule_type(&self) -> &'static str {
        match &self.kind {
            RuleKind::Eql(_) => "eql",
            RuleKind::Query(q) if q.saved_id.is_some() => "saved_query",
            RuleKind::Query(_) => "query",
            RuleKind::Threshold(_) => "threshold",
            RuleKind::NewTerms(_) => "new_terms",
            RuleKind::ThreatMatch(_) => "threat_match",
            RuleKind::Esql(_) => "esql",
            RuleKind::MachineLearning(_) => "machine_learning",
        }
    }

    /// What cluster the rule needs beyond reading indices, when it needs
    /// more: ES|QL and machine learning are Elasticsearch's alone.
    pub fn needs(&self) -> Option<&'static str> {
        match &self.kind {
            RuleKind::Esql(_) => Some(NEEDS_ESQL),
            RuleKind::MachineLearning(_) => Some(NEEDS_ML),
            _ => None,
        }
    }

    /// The query text as written (EQL, KQL or Lucene).
    pub fn query_text(&self) -> &str {
        match &self.kind {
            RuleKind::Eql(e) => &e.text,
            RuleKind::Query(q) => &q.text,
            RuleKind::Threshold(t) => &t.query.text,
            RuleKind::Esql(e) => &e.text,
            RuleKind::MachineLearning(_) => "",
            RuleKind::ThreatMatch(t) => &t.query.text,
            RuleKind::NewTerms(n) => &n.query.text,
        }
    }
}

/// What a rule's type adds to the common part. Kibana's other types
/// (`new_terms`, `esql`, ...) are not rules yet: loading them gives a
/// note ("not supported yet"), not a half-working rule.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleKind {
    Eql(EqlRule),
    /// `query` and `saved_query` rules: KQL or Lucene.
    Query(QueryRule),
    /// `threshold` rules: a query's events counted per group of values.
    Threshold(ThresholdRule),
    /// `esql` rules: a query Elasticsearch runs (see `rule::esql`).
    Esql(EsqlRule),
    /// `machine_learning` rules: anomaly records of ML jobs.
    MachineLearning(MlRule),
    /// `threat_match` (indicator match) rules: events joined with an
    /// indicator list (see `rule::threat`).
    ThreatMatch(ThreatMatchRule),
    /// `new_terms` rules: a query's events whose tuple of values of up to 3
    /// fields was not seen in the history.
    NewTerms(NewTermsRule),
}

/// What an `esql` rule needs of the cluster.
pub const NEEDS_ESQL: &str = "Elasticsearch 8.11 or later (ES|QL)";

/// What a `machine_learning` rule needs of the cluster.
pub const NEEDS_ML: &str = "Elasticsearch with machine learning (anomaly detection jobs)";

/// An `esql` rule: the query as written and its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct EsqlRule {
    pub text: String,
    pub shape: crate::esql::Shape,
}

/// A `machine_learning` rule: the jobs whose anomaly records it reads and
/// the score a record must reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlRule {
    pub job_ids: Vec<String>,
    pub anomaly_threshold: u32,
}

/// A `threat_match` rule: the events of its query (KQL or Lucene, as a
/// query rule's) that match an indicator of `threat_index` by one of the
/// `threat_mapping`s.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreatMatchRule {
    pub query: QueryRule,
    /// Index patterns of the indicators.
    pub threat_index: Vec<String>,
    /// `threat_query` in `threat_language` (KQL by default): which
    /// indicator documents are loaded.
    pub threat_query: QueryRule,
    /// `threat_filters`: Kibana filters on the indicator documents.
    pub threat_filters: Vec<crate::kibana_filter::KibanaFilter>,
    /// OR over the mappings; each is an AND over its entries.
    pub threat_mapping: Vec<ThreatMapping>,
    /// `threat_indicator_path`: where an indicator document keeps the
    /// indicator object an enrichment copies (`threat.indicator` by default).
    pub indicator_path: String,
}

/// One `[[rule.threat_mapping]]`: every entry must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreatMapping {
    pub entries: Vec<ThreatMappingEntry>,
}

/// `{field, value, type = "mapping"}`: the event's `field` equals the
/// indicator's `value` field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreatMappingEntry {
    pub field: String,
    pub value: String,
}

/// A `new_terms` rule: its query (KQL or Lucene, as a query rule's) and
/// `[rule.new_terms]` (see `rule::new_terms`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewTermsRule {
    pub query: QueryRule,
    /// The fields whose tuple of values is watched (1 to 3), in order.
    pub fields: Vec<String>,
    /// Where the history starts, relative to the end of each window
    /// (Kibana parses it with `forceNow` = the window's `to`).
    pub history_window_start: DateMath,
}

/// A `threshold` rule: its query (KQL or Lucene, as a query rule's) and
/// `[rule.threshold]` (see `rule::threshold`).
#[derive(Clone, Debug, PartialEq)]
pub struct ThresholdRule {
    pub query: QueryRule,
    /// The fields events are grouped by (0 to 3; none: one group).
    pub fields: Vec<String>,
    /// The count a group must reach (`>=`), at least 1.
    pub value: u64,
    /// At most one: the distinct values of `field` a group must reach.
    pub cardinality: Vec<ThresholdCardinality>,
}

/// One `[[rule.threshold.cardinality]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThresholdCardinality {
    pub field: String,
    pub value: u64,
}

/// An EQL rule's query and the fields it orders and categorises by.
#[derive(Clone, Debug, PartialEq)]
pub struct EqlRule {
    /// The query text as the file decoded it.
    pub text: String,
    /// The parsed query; compiling it against a field schema happens later.
    pub query: ast::Query,
    /// Field that orders events (ES `timestamp_field`, default `@timestamp`).
    pub timestamp_field: Option<String>,
    pub event_category_override: Option<String>,
    pub tiebreaker_field: Option<String>,
}

impl EqlRule {
    /// Whether alerts are built as sequence groups (shell + building blocks).
    /// Kibana decides by the query text starting with `sequence`
    /// (`isEqlSequenceQuery`); the parsed body says the same.
    pub fn is_sequence(&self) -> bool {
        matches!(self.query.body, ast::QueryBody::Sequence(_))
    }

    /// The fields the query reads time, order and category from: the
    /// rule's overrides, Elasticsearch's EQL defaults otherwise.
    pub fn compile_options(&self) -> CompileOptions {
        let defaults = CompileOptions::default();
        CompileOptions {
            timestamp_field: self
                .timestamp_field
                .clone()
                .unwrap_or(defaults.timestamp_field),
            tiebreaker_field: self.tiebreaker_field.clone(),
            event_category_field: self
                .event_category_override
                .clone()
                .unwrap_or(defaults.event_category_field),
        }
    }
}

/// A `query` or `saved_query` rule.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryRule {
    pub language: QueryLanguage,
    /// The query text as the file decoded it (empty matches everything, as
    /// in Kibana).
    pub text: String,
    /// A `saved_query` rule's saved search in Kibana. detectd cannot read
    /// Kibana's saved objects: the rule's own `query` is what runs.
    pub saved_id: Option<String>,
}

/// The language of a query rule, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryLanguage {
    /// KQL (`language = "kuery"`).
    Kql(crate::kql::Node),
    /// Lucene query syntax (`language = "lucene"`), as Kibana sends it.
    Lucene,
}

/// What every rule has, whatever its type.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleCommon {
    pub rule_id: String,
    pub name: String,
    /// `enabled = false` (as in a Kibana export) keeps the rule loaded but
    /// unscheduled; absent means enabled, since a file in the rules folder is
    /// there to run.
    pub enabled: bool,
    pub description: String,
    pub index: Vec<String>,
    pub schedule: Schedule,
    pub max_signals: u32,
    pub severity: Severity,
    pub risk_score: u8,
    /// Field for the time-range filter (Kibana falls back to `@timestamp`
    /// unless `timestamp_override_fallback_disabled`).
    pub timestamp_override: Option<String>,
    pub timestamp_override_fallback_disabled: bool,
    /// `severity_mapping`, `risk_score_mapping`, `rule_name_override`:
    /// values an event alert takes from its event.
    pub overrides: crate::alert::overrides::Overrides,
    /// Kibana `filters`: what every event must (or, negated, must not)
    /// match, for every rule type.
    pub filters: Vec<crate::kibana_filter::KibanaFilter>,
    /// `exceptions_list` as written: which exception lists apply.
    pub exceptions_list: Vec<crate::exceptions::ListRef>,
    /// Those lists, found in the loaded exception lists ([`super::lists`]);
    /// empty until then.
    pub exceptions: std::sync::Arc<crate::exceptions::RuleExceptions>,
    pub building_block_type: Option<BuildingBlockType>,
    pub tags: Vec<String>,
    pub threat: Vec<Threat>,
    pub author: Vec<String>,
    pub license: Option<String>,
    pub references: Vec<String>,
    pub false_positives: Vec<String>,
    pub note: Option<String>,
    pub setup: Option<String>,
    pub version: Option<u32>,
    /// The id of the rule's saved object in Kibana: an export's `id`, or a
    /// TOML file's `[metadata] kibana_rule_id`. Kibana hashes it into alert
    /// ids and writes it as `kibana.alert.rule.uuid`; see [`RuleCommon::uuid`].
    pub kibana_id: Option<String>,
    /// Kibana's `revision` of the rule object (0 when created or installed,
    /// +1 on each change of its parameters); 0 for TOML rules.
    pub revision: u64,
    /// When and by whom the Kibana rule object was created and last
    /// changed, as an export states them (RFC 3339 timestamps, user names);
    /// `None` for TOML rules. Alerts copy them to `kibana.alert.rule.*`.
    pub created_at: Option<String>,
    pub created_by: Option<String>,
    pub updated_at: Option<String>,
    pub updated_by: Option<String>,
    pub metadata: Metadata,
    /// `[[rule.actions]]`: notifications the rule asks for itself
    /// (see `rule::actions`).
    pub actions: Vec<super::RuleAction>,
    /// `[rule.alert_suppression]` (see `rule::suppression`).
    pub alert_suppression: Option<super::Suppression>,
    /// The rule's parameters for `kibana.alert.rule.parameters`. From a
    /// TOML file: the `[rule]` table as written. From a Kibana export: the
    /// keys Kibana keeps in the rule's params (see `keys::KIBANA_PARAMS`),
    /// without the rule object's own attributes (`id`, `name`, `tags`,
    /// `interval`, `enabled`, `actions`, `revision`, `created_*`, ...).
    /// JSON `null`s are left out (TOML has no null).
    pub parameters: toml::Table,
}

impl RuleCommon {
    /// The rule's id for Kibana: `kibana.alert.rule.uuid` and the rule part
    /// of alert ids. The Kibana saved-object id when known, else `rule_id`
    /// (then links from an alert to the rule page in Kibana do not resolve,
    /// see the README's "Rule identity").
    pub fn uuid(&self) -> &str {
        self.kibana_id.as_deref().unwrap_or(&self.rule_id)
    }
}

/// When and over what window a rule runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// How often the rule runs. For a cron rule, the shortest time between
    /// two of its fires ([`CronSchedule::shortest_gap`]): it plays the
    /// interval's part in catch-up, look-back and the alert's fields.
    pub interval: Duration,
    pub from: DateMath,
    pub to: DateMath,
    /// `[rule] cron` (or a `[[schedule.cron]]` entry of `detectd.toml`):
    /// the rule runs at these times instead of every `interval`.
    pub cron: Option<CronSchedule>,
}

impl Schedule {
    /// The length of one run's window, `to - from` (`now-9m`..`now` = 9 min).
    /// Validation guarantees `from` is before `to`.
    pub fn lookback(&self) -> Duration {
        let ms = self.to.offset_ms().saturating_sub(self.from.offset_ms());
        Duration::from_millis(ms.max(0) as u64)
    }

    /// Look-back beyond the interval, which overlaps the previous run.
    pub fn additional_lookback(&self) -> Duration {
        self.lookback().saturating_sub(self.interval)
    }

    /// The schedule with `cron` instead of its interval (a
    /// `[[schedule.cron]]` entry of the config applied to the rule). The
    /// additional look-back stays, and `from` moves with the new interval:
    /// Kibana's rule form keeps the two apart the same way ("Runs every"
    /// and "Additional look-back time", security_solution
    /// `rule_creation_ui/components/step_schedule_rule/schema.tsx`), so a
    /// corpus rule (`5m`, `now-9m`) on an hourly cron searches `now-64m`
    /// and its windows still meet.
    pub fn with_cron(&self, cron: CronSchedule) -> Schedule {
        let interval = cron.shortest_gap();
        let width = interval.saturating_add(self.additional_lookback());
        let width_ms = i64::try_from(width.as_millis()).unwrap_or(i64::MAX);
        Schedule {
            interval,
            from: DateMath::from_offset_ms(self.to.offset_ms().saturating_sub(width_ms)),
            to: self.to,
            cron: Some(cron),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kibana's only building-block type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuildingBlockType {
    Default,
}

/// One `[[rule.threat]]` entry (MITRE ATT&CK mapping).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threat {
    pub framework: String,
    pub tactic: ThreatRef,
    #[serde(default)]
    pub technique: Vec<Technique>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreatRef {
    pub id: String,
    pub name: String,
    pub reference: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Technique {
    pub id: String,
    pub name: String,
    pub reference: String,
    #[serde(default)]
    pub subtechnique: Vec<ThreatRef>,
}

/// `[metadata]`: detection-rules bookkeeping, not sent to Kibana.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub creation_date: Option<String>,
    pub updated_date: Option<String>,
    pub maturity: Option<String>,
    /// Written as a list, or (in some corpus files) as a bare string.
    pub integration: Vec<String>,
    pub min_stack_version: Option<String>,
    pub deprecation_date: Option<String>,
}
