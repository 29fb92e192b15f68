//! Raw rule -> validated [`Rule`], collecting every error of the rule.
//!
//! Each field is checked independently and errors accumulate, so one run of
//! `detectd check` shows everything wrong with a file (like ruff), each error
//! at the span of the offending value, or at the table header when a field
//! is missing. The same checks serve a TOML file's `[rule]` table and a
//! line of a Kibana export read into the same shape (`export`); only the
//! identity (`identity`) and the parameters kept differ by origin.

use toml::Value;

use super::cron::{CronField, CRON_KEYS};
use super::datemath::{parse_duration, DateMath};
use super::error::{RuleError, RuleErrorKind};
use super::fields::{Fields, Format};
use super::identity::Identity;
use super::keys::{kibana_params, NOT_APPLIED, OTHER_KIBANA_TYPES, RUN_TYPES, UNSUPPORTED};
use super::position::StringMap;
use super::raw::{span_of, threat_entries, RawRuleFile, RawTable};
use super::rule::{
    BuildingBlockType, EqlRule, Metadata, QueryLanguage, QueryRule, Rule, RuleCommon, RuleKind,
    Schedule, Severity, Threat, DEFAULT_FROM, DEFAULT_INTERVAL, DEFAULT_MAX_SIGNALS, DEFAULT_TO,
    MAX_SIGNALS_LIMIT,
};
use crate::eql::{self, EqlError, Span};

/// Where Elasticsearch's anomaly detection jobs write their records
/// (Kibana's `mlAnomalySearch` reads `.ml-anomalies-*`).
pub const ML_ANOMALIES_INDEX: &str = ".ml-anomalies-*";

/// What loading one rule file gave.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadOutcome {
    /// A valid rule, with any warnings (unknown fields) found on the way.
    Loaded {
        rule: Box<Rule>,
        warnings: Vec<RuleError>,
    },
    /// A valid file for a rule type detectd does not run (`query`,
    /// `threshold`, ...): not an error, but nothing to schedule. In a Kibana
    /// export also the note for its exception lists or its connectors
    /// (`rule_id` and `name` `None`, see `export`).
    Skipped {
        rule_id: Option<String>,
        name: Option<String>,
        /// The Kibana rule type not supported yet (`threshold`, ...), when
        /// that is why; `None` for an export's notes.
        rule_type: Option<String>,
        reason: String,
    },
    /// Every error found, in file order (warnings included, see
    /// [`RuleError::is_warning`]).
    Failed(Vec<RuleError>),
}

/// Where a rule table came from, for what only one origin has.
pub(super) enum Origin {
    /// A TOML file, with its `[metadata] kibana_rule_id` (already checked).
    Toml { kibana_id: Option<String> },
    /// A line of a Kibana export: the identity is read from the rule itself.
    Export,
}

/// Loads a rule from the text of a detection-rules TOML file.
pub fn load_str(text: &str) -> LoadOutcome {
    let raw = match RawRuleFile::parse(text) {
        Ok(raw) => raw,
        Err(e) => return LoadOutcome::Failed(vec![e]),
    };
    let mut errors = Vec::new();
    let (metadata, kibana_id) = match &raw.metadata {
        Some(m) => validate_metadata(
            m.get_ref(),
            header_span(text, span_of(m)),
            text,
            &mut errors,
        ),
        None => (Metadata::default(), None),
    };
    let Some(rule_table) = &raw.rule else {
        errors.push(RuleError::new(
            RuleErrorKind::Missing,
            Span::new(0, 0),
            "missing table [rule]",
        ));
        return LoadOutcome::Failed(errors);
    };
    let table = rule_table.get_ref();
    let f = Fields {
        table,
        header: header_span(text, span_of(rule_table)),
        place: "[rule]",
        format: Format::Toml,
        text,
        threat_entries: if table.contains_key("threat") {
            threat_entries(text)
        } else {
            None
        },
        errors,
    };
    validate_rule(f, metadata, Origin::Toml { kibana_id })
}

/// The checks every rule gets, whatever file it came from: `f` holds the
/// rule's table and any errors found before (in `[metadata]`).
pub(super) fn validate_rule(mut f: Fields<'_>, metadata: Metadata, origin: Origin) -> LoadOutcome {
    let rule_type = f.required_string("type");
    if let Some(t) = &rule_type {
        // Only Kibana's own types are skipped: a misspelt `eql` ("eqll",
        // "EQL") skipped with a note would pass `detectd check` and then
        // silently never run.
        if !RUN_TYPES.contains(&t.as_str()) && !OTHER_KIBANA_TYPES.contains(&t.as_str()) {
            if let Some((_, span)) = f.get("type") {
                let others = if OTHER_KIBANA_TYPES.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (or a Kibana rule type not supported yet: {})",
                        OTHER_KIBANA_TYPES.join(", ")
                    )
                };
                f.error(
                    RuleErrorKind::Value,
                    span,
                    format!(
                        "expected `type` {}{others}, found {t:?}",
                        RUN_TYPES.join(", ")
                    ),
                );
            }
        } else if !RUN_TYPES.contains(&t.as_str()) {
            let rule_id = f.string("rule_id");
            let name = f.string("name");
            return LoadOutcome::Skipped {
                rule_id,
                name,
                rule_type: Some(t.clone()),
                reason: format!("not supported yet: {t}"),
            };
        }
    }

    let rule_id = f.required_string("rule_id");
    let name = f.required_string("name");
    let description = f.required_string("description");
    let enabled = f.bool("enabled").unwrap_or(true);
    let kind = match rule_type.as_deref() {
        Some("query") | Some("saved_query") => {
            f.query_kind(rule_type.as_deref() == Some("saved_query"))
        }
        Some("threshold") => f.threshold_kind(),
        Some("esql") => f.esql_kind(),
        Some("machine_learning") => f.ml_kind(),
        Some("threat_match") => f.threat_match_kind(),
        Some("new_terms") => f.new_terms_kind(),
        _ => f.eql_kind(),
    };
    // ES|QL rules read the indices after FROM; ML rules read anomaly
    // records: neither has Kibana's `index`.
    let index = match &kind {
        Some(RuleKind::Esql(e)) => e.shape.indices.clone(),
        Some(RuleKind::MachineLearning(_)) => vec![ML_ANOMALIES_INDEX.to_string()],
        _ if matches!(rule_type.as_deref(), Some("esql" | "machine_learning")) => Vec::new(),
        _ => f.index(),
    };
    let schedule = f.schedule();
    if let (Some(RuleKind::NewTerms(n)), Some(s)) = (&kind, &schedule) {
        f.check_history_before_from(n, s.from);
    }
    let max_signals = f.max_signals();
    let severity = f.severity();
    let risk_score = f.risk_score();
    let timestamp_override = f.non_empty_string("timestamp_override");
    let timestamp_override_fallback_disabled = f
        .bool("timestamp_override_fallback_disabled")
        .unwrap_or(false);
    let overrides = f.overrides();
    let filters = f.filters();
    let exceptions_list = f.exceptions_list();
    let building_block_type = f.building_block_type();
    let tags = f.string_list("tags");
    let threat = f.threat();
    let author = f.string_list("author");
    let license = f.string("license");
    let references = f.string_list("references");
    let false_positives = f.string_list("false_positives");
    let note = f.string("note");
    let setup = f.string("setup");
    let version = f.version();
    let actions = f.actions();
    let alert_suppression = f.alert_suppression(rule_type.as_deref() == Some("threshold"));
    let identity = match origin {
        Origin::Toml { kibana_id } => Identity {
            kibana_id,
            ..Identity::default()
        },
        Origin::Export => f.export_identity(),
    };
    f.unsupported();
    f.unknown_fields();

    let parameters: toml::Table = match f.format {
        // Actions are the rule object's, not its params (as in Kibana).
        Format::Toml => f
            .table
            .iter()
            .filter(|(k, _)| k.as_str() != "actions" && !CRON_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect(),
        // An export holds the whole rule object; Kibana's alerts carry
        // only its params.
        Format::Json => kibana_params(f.table),
    };
    let mut errors = f.errors;
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    if errors.iter().any(|e| !e.is_warning()) {
        return LoadOutcome::Failed(errors);
    }
    let warnings = errors;
    // With no errors, every required field is present: each `None` below
    // would have pushed an error above.
    match (
        rule_id,
        name,
        description,
        kind,
        schedule,
        severity,
        risk_score,
    ) {
        (
            Some(rule_id),
            Some(name),
            Some(description),
            Some(kind),
            Some(schedule),
            Some(severity),
            Some(risk_score),
        ) => LoadOutcome::Loaded {
            rule: Box::new(Rule {
                kind,
                common: RuleCommon {
                    rule_id,
                    name,
                    enabled,
                    description,
                    index,
                    schedule,
                    max_signals,
                    severity,
                    risk_score,
                    timestamp_override,
                    timestamp_override_fallback_disabled,
                    overrides,
                    filters,
                    exceptions_list,
                    exceptions: Default::default(),
                    building_block_type,
                    tags,
                    threat,
                    author,
                    license,
                    references,
                    false_positives,
                    note,
                    setup,
                    version,
                    kibana_id: identity.kibana_id,
                    revision: identity.revision,
                    created_at: identity.created_at,
                    created_by: identity.created_by,
                    updated_at: identity.updated_at,
                    updated_by: identity.updated_by,
                    metadata,
                    actions,
                    alert_suppression,
                    parameters,
                },
            }),
            warnings,
        },
        _ => LoadOutcome::Failed(vec![RuleError::new(
            RuleErrorKind::Missing,
            Span::new(0, 0),
            "incomplete rule (internal: a required field was dropped without an error)",
        )]),
    }
}

/// A rule's query string and how to find an offset of it in the file.
struct QueryText {
    text: String,
    /// The whole value in the file.
    span: Span,
    map: Option<StringMap>,
}

impl QueryText {
    /// A span in the query as a span in the file. An error at the end of
    /// the query ("found end of query") points just after its last
    /// character rather than at the closing `'''` line that follows the
    /// query's trailing newline. If the token cannot be re-scanned (it
    /// always can for TOML the toml crate accepted and JSON serde_json
    /// accepted), the whole value.
    fn file_span(&self, at: Span) -> Span {
        let content_end = self.text.trim_end().len() as u32;
        let at = if at.start >= content_end {
            Span::new(content_end as usize, content_end as usize)
        } else {
            at
        };
        self.map.as_ref().map_or(self.span, |m| m.file_span(at))
    }
}

/// The span of a table's header line (`[rule]`), where missing-field errors
/// point. `Spanned` gives the table from its header to its last value.
fn header_span(text: &str, table: Span) -> Span {
    let start = (table.start as usize).min(text.len());
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let end = line_end.min(table.end.max(table.start) as usize).max(start);
    Span::new(start, text[..end].trim_end_matches('\r').len().max(start))
}

/// `[metadata]`, and the Kibana rule id it may name.
fn validate_metadata(
    table: &RawTable,
    header: Span,
    text: &str,
    errors: &mut Vec<RuleError>,
) -> (Metadata, Option<String>) {
    let mut f = Fields {
        table,
        header,
        place: "[metadata]",
        format: Format::Toml,
        text,
        threat_entries: None,
        errors: std::mem::take(errors),
    };
    // detection-rules writes `integration` as a list, but a few files have a
    // bare string (e.g. `integration = "endpoint"`); accept both.
    let integration = match f.table.get("integration") {
        Some(v) if v.get_ref().is_str() => {
            vec![v.get_ref().as_str().unwrap_or_default().to_string()]
        }
        Some(_) => f.string_list("integration"),
        None => Vec::new(),
    };
    let metadata = Metadata {
        creation_date: f.string("creation_date"),
        updated_date: f.string("updated_date"),
        maturity: f.string("maturity"),
        integration,
        min_stack_version: f.string("min_stack_version"),
        deprecation_date: f.string("deprecation_date"),
    };
    let kibana_id = f.kibana_rule_id();
    *errors = f.errors;
    (metadata, kibana_id)
}

/// Rule-specific checks on top of the generic typed access in `fields`.
impl Fields<'_> {
    /// An EQL rule's part: its language, query (parsed and verified, errors
    /// moved from query offsets to file offsets) and ordering fields.
    fn eql_kind(&mut self) -> Option<RuleKind> {
        if let Some((language, span)) = self.string_spanned("language") {
            if language != "eql" {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("expected language \"eql\" for an eql rule, found {language:?}"),
                );
            }
        }
        let query = self.query_text();
        let timestamp_field = self.non_empty_string("timestamp_field");
        let event_category_override = self.non_empty_string("event_category_override");
        let tiebreaker_field = self.non_empty_string("tiebreaker_field");
        let query = query?;
        if query.text.trim().is_empty() {
            self.error(
                RuleErrorKind::Value,
                query.span,
                "expected an EQL query, found an empty string".to_string(),
            );
            return None;
        }
        let to_file = |e: EqlError| {
            RuleError::new(
                RuleErrorKind::Eql(e.kind),
                query.file_span(e.span),
                e.message,
            )
        };
        let parsed = match eql::parse(&query.text) {
            Ok(parsed) => {
                let problems = eql::verify(&parsed);
                if !problems.is_empty() {
                    self.errors.extend(problems.into_iter().map(to_file));
                    return None;
                }
                parsed
            }
            Err(e) => {
                self.errors.push(to_file(e));
                return None;
            }
        };
        Some(RuleKind::Eql(EqlRule {
            text: query.text,
            query: parsed,
            timestamp_field,
            event_category_override,
            tiebreaker_field,
        }))
    }

    /// A query rule's part: `kuery` (the default, as in Kibana) or
    /// `lucene`, the query (a KQL one parsed, errors at file offsets), and
    /// a `saved_query` rule's `saved_id`.
    fn query_kind(&mut self, saved: bool) -> Option<RuleKind> {
        let language = match self.string_spanned("language") {
            None => Some("kuery".to_string()),
            Some((l, _)) if l == "kuery" || l == "lucene" => Some(l),
            Some((l, span)) => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!(
                        "expected language \"kuery\" or \"lucene\" for a query rule, found {l:?}"
                    ),
                );
                None
            }
        };
        let saved_id = if saved {
            let id = self.required_string("saved_id");
            if id.is_some() && !self.table.contains_key("query") {
                // Kibana keeps the saved search's query in the rule (exports
                // and detection-rules files carry it); without it there is
                // nothing detectd can run.
                self.error(
                    RuleErrorKind::Missing,
                    self.header,
                    "a saved_query rule needs its `query` here: detectd cannot read the saved \
                     query from Kibana"
                        .to_string(),
                );
                return None;
            }
            id
        } else {
            None
        };
        let query = self.query_text()?;
        let language = language?;
        let language = if language == "lucene" {
            QueryLanguage::Lucene
        } else {
            match crate::kql::parse(&query.text) {
                Ok(node) => QueryLanguage::Kql(node),
                Err(e) => {
                    self.errors.push(RuleError::new(
                        RuleErrorKind::Kql,
                        query.file_span(e.span()),
                        format!("invalid KQL: {e}"),
                    ));
                    return None;
                }
            }
        };
        if saved && saved_id.is_none() {
            return None;
        }
        Some(RuleKind::Query(QueryRule {
            language,
            text: query.text,
            saved_id,
        }))
    }

    /// The part of a rule whose events are a query rule's (threshold,
    /// threat_match, new_terms): its query (KQL or Lucene) and what `part`
    /// reads of its own table. The table is checked even when the query is
    /// wrong, so every error of the file is reported at once.
    fn query_with<T>(&mut self, part: impl FnOnce(&mut Self, QueryRule) -> Option<T>) -> Option<T> {
        let query = match self.query_kind(false) {
            Some(RuleKind::Query(q)) => Some(q),
            _ => None,
        };
        let placeholder = QueryRule {
            language: QueryLanguage::Lucene,
            text: String::new(),
            saved_id: None,
        };
        let out = part(self, query.clone().unwrap_or(placeholder));
        query?;
        out
    }

    /// A threshold rule's part: `[rule.threshold]` (see `rule::threshold`).
    fn threshold_kind(&mut self) -> Option<RuleKind> {
        self.query_with(Self::threshold).map(RuleKind::Threshold)
    }

    /// A threat_match rule's part: the indicators and mappings (see
    /// `rule::threat`).
    fn threat_match_kind(&mut self) -> Option<RuleKind> {
        self.query_with(Self::threat_match)
            .map(RuleKind::ThreatMatch)
    }

    /// A new_terms rule's part: `[rule.new_terms]` (see `rule::new_terms`).
    fn new_terms_kind(&mut self) -> Option<RuleKind> {
        self.query_with(Self::new_terms).map(RuleKind::NewTerms)
    }

    /// The `query` string with what maps offsets in it to the file.
    fn query_text(&mut self) -> Option<QueryText> {
        let (text, span) = match self.get("query") {
            None => {
                self.missing("query");
                return None;
            }
            Some(_) => self.string_spanned("query")?,
        };
        let token = self.text.get(span.range()).unwrap_or("");
        let map = match self.format {
            Format::Toml => StringMap::scan(token, span.start as usize),
            Format::Json => StringMap::scan_json(token, span.start as usize),
        }
        .filter(|m| m.decoded() == text);
        Some(QueryText { text, span, map })
    }

    fn index(&mut self) -> Vec<String> {
        let Some((_, span)) = self.get("index") else {
            // Kibana would fall back to its default-index setting, which
            // detectd does not have.
            self.missing("index");
            return Vec::new();
        };
        let index = self.string_list("index");
        if self.get("index").is_some_and(|(v, _)| v.is_array()) {
            if index.is_empty() {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    "expected at least one index pattern in `index`, found none".to_string(),
                );
            } else if index.iter().any(|p| p.trim().is_empty()) {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    "expected index patterns in `index`, found an empty string".to_string(),
                );
            }
        }
        index
    }

    fn schedule(&mut self) -> Option<Schedule> {
        let mut ok = true;
        let cron = match self.cron() {
            CronField::Absent => None,
            CronField::Valid(c) => Some(c),
            CronField::Invalid => {
                ok = false;
                None
            }
        };
        let interval = match self.string_spanned("interval") {
            // a cron rule's interval is its shortest gap between fires
            Some((_, span)) if cron.is_some() => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    "expected either `interval` or `cron`, found both".to_string(),
                );
                None
            }
            None if cron.is_some() => cron.as_ref().map(|c| c.shortest_gap()),
            Some((s, span)) => match parse_duration(&s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.error(
                        RuleErrorKind::Value,
                        span,
                        format!("invalid `interval`: {e}"),
                    );
                    None
                }
            },
            None => {
                ok &= !self.table.contains_key("interval");
                Some(DEFAULT_INTERVAL)
            }
        };
        let mut date = |f: &mut Self, key: &str, default: &str| match f.string_spanned(key) {
            Some((s, span)) => match DateMath::parse(&s) {
                Ok(d) => Some((d, Some(span))),
                Err(e) => {
                    f.error(RuleErrorKind::Value, span, format!("invalid `{key}`: {e}"));
                    None
                }
            },
            None => {
                ok &= !f.table.contains_key(key);
                DateMath::parse(default).ok().map(|d| (d, None))
            }
        };
        let from = date(self, "from", DEFAULT_FROM);
        let to = date(self, "to", DEFAULT_TO);
        let (Some(interval), Some((from, from_span)), Some((to, _))) = (interval, from, to) else {
            return None;
        };
        if from.offset_ms() >= to.offset_ms() {
            let span = from_span.unwrap_or(self.header);
            self.error(
                RuleErrorKind::Value,
                span,
                format!("expected `from` before `to`, found from = \"{from}\" and to = \"{to}\""),
            );
            return None;
        }
        let from = match &cron {
            Some(cron) => self.cron_from(cron, from, from_span, to)?,
            None => from,
        };
        ok.then_some(Schedule {
            interval,
            from,
            to,
            cron,
        })
    }

    fn max_signals(&mut self) -> u32 {
        let Some((n, span)) = self.integer("max_signals") else {
            return DEFAULT_MAX_SIGNALS;
        };
        match u32::try_from(n) {
            Ok(n) if (1..=MAX_SIGNALS_LIMIT).contains(&n) => n,
            _ => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("expected `max_signals` between 1 and {MAX_SIGNALS_LIMIT}, found {n}"),
                );
                DEFAULT_MAX_SIGNALS
            }
        }
    }

    fn severity(&mut self) -> Option<Severity> {
        if !self.table.contains_key("severity") {
            self.missing("severity");
            return None;
        }
        let (s, span) = self.string_spanned("severity")?;
        let severity = Severity::parse(&s);
        if severity.is_none() {
            self.error(
                RuleErrorKind::Value,
                span,
                format!(
                    "expected severity \"low\", \"medium\", \"high\" or \"critical\", found {s:?}"
                ),
            );
        }
        severity
    }

    fn risk_score(&mut self) -> Option<u8> {
        if !self.table.contains_key("risk_score") {
            self.missing("risk_score");
            return None;
        }
        let (n, span) = self.integer("risk_score")?;
        match u8::try_from(n) {
            Ok(n) if n <= 100 => Some(n),
            _ => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("expected `risk_score` between 0 and 100, found {n}"),
                );
                None
            }
        }
    }

    fn building_block_type(&mut self) -> Option<BuildingBlockType> {
        let (s, span) = self.string_spanned("building_block_type")?;
        if s == "default" {
            Some(BuildingBlockType::Default)
        } else {
            self.error(
                RuleErrorKind::Value,
                span,
                format!("expected `building_block_type` \"default\", found {s:?}"),
            );
            None
        }
    }

    fn threat(&mut self) -> Vec<Threat> {
        let Some((value, span)) = self.get("threat") else {
            return Vec::new();
        };
        let entries = self
            .threat_entries
            .take()
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| (span_of(&e), e.into_inner()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !value.is_array() {
            let expected = match self.format {
                Format::Toml => "an array of tables ([[rule.threat]])",
                Format::Json => "an array of objects",
            };
            self.wrong_type("threat", expected, value, span);
            return Vec::new();
        }
        if entries.is_empty() {
            // Not an array of tables (or an empty array): type it as a whole.
            return match value.clone().try_into::<Vec<Threat>>() {
                Ok(threat) => threat,
                Err(e) => {
                    let message = e.message().trim().replace('\n', ": ");
                    self.error(
                        RuleErrorKind::Type,
                        span,
                        format!("invalid `threat` (MITRE ATT&CK mapping): {message}"),
                    );
                    Vec::new()
                }
            };
        }
        let mut threat = Vec::with_capacity(entries.len());
        for (i, (entry_span, entry)) in entries.into_iter().enumerate() {
            match entry.try_into::<Threat>() {
                Ok(t) => threat.push(t),
                Err(e) => {
                    let message = e.message().trim().replace('\n', ": ");
                    self.error(
                        RuleErrorKind::Type,
                        entry_span,
                        format!(
                            "invalid `threat` entry {} (MITRE ATT&CK mapping): {message}",
                            i + 1
                        ),
                    );
                }
            }
        }
        threat
    }

    fn version(&mut self) -> Option<u32> {
        let (n, span) = self.integer("version")?;
        match u32::try_from(n) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("expected a positive `version`, found {n}"),
                );
                None
            }
        }
    }

    fn unsupported(&mut self) {
        for key in UNSUPPORTED {
            if let Some(span) = self.non_empty(key) {
                self.error(
                    RuleErrorKind::Unsupported,
                    span,
                    format!("`{key}` is not supported by detectd"),
                );
            }
        }
        for (key, what) in NOT_APPLIED {
            if let Some(span) = self.non_empty(key) {
                self.error(
                    RuleErrorKind::NotApplied,
                    span,
                    format!("`{key}` is not applied by detectd yet: {what}"),
                );
            }
        }
    }

    /// Where `key` is set to something other than an empty value.
    fn non_empty(&self, key: &str) -> Option<Span> {
        let (value, span) = self.get(key)?;
        let empty = match value {
            Value::Array(a) => a.is_empty(),
            Value::Table(t) => t.is_empty(),
            Value::String(s) => s.is_empty(),
            _ => false,
        };
        (!empty).then_some(span)
    }
}
