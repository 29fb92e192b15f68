//! The vocabulary of a rule's keys: which ones Kibana knows, which an
//! export adds, which Kibana keeps in the rule's params, which detectd
//! refuses, and the warning for a key nobody knows.

use super::error::RuleErrorKind;
use super::fields::{Fields, Format};
use super::raw::span_of;

/// Kibana EQL-rule settings that change which events alert; detectd does not
/// implement them, so a rule using them is refused rather than run wrongly.
pub(super) const UNSUPPORTED: &[&str] = &["data_view_id"];

/// Kibana settings detectd accepts but does not apply yet: the rule runs,
/// with a warning that says what is left out.
pub(super) const NOT_APPLIED: &[(&str, &str)] = &[];

/// The Kibana rule types detectd runs.
pub(super) const RUN_TYPES: &[&str] = &[
    "eql",
    "query",
    "saved_query",
    "threshold",
    "threat_match",
    "new_terms",
    "esql",
    "machine_learning",
];

/// Kibana's other detection rule types (the rule schema's `type` enum):
/// valid files, noted as not supported yet. Every type of Kibana's rule
/// schema runs now; the list stays for a type Kibana adds.
pub(super) const OTHER_KIBANA_TYPES: &[&str] = &[];

/// Every `[rule]` key of a Kibana EQL or query rule (the public rule API's
/// snake_case parameters) and of the detection-rules TOML format; anything
/// else is most likely a typo and draws a warning.
const KNOWN_RULE_FIELDS: &[&str] = &[
    "actions",
    "alert_suppression",
    "anomaly_threshold",
    "author",
    "building_block_type",
    "concurrent_searches",
    // detectd's cron schedule (`rule::cron`), not Kibana's
    "cron",
    "cron_timezone",
    "data_view_id",
    "description",
    "enabled",
    "event_category_override",
    "exceptions_list",
    "false_positives",
    "filters",
    "from",
    "index",
    "interval",
    "investigation_fields",
    "items_per_search",
    "language",
    "license",
    "machine_learning_job_id",
    "max_signals",
    "meta",
    "name",
    "namespace",
    "new_terms",
    "note",
    "output_index",
    "query",
    "references",
    "related_integrations",
    "required_fields",
    "response_actions",
    "risk_score",
    "risk_score_mapping",
    "rule_id",
    "rule_name_override",
    "saved_id",
    "setup",
    "severity",
    "severity_mapping",
    "tags",
    "threat",
    "threat_filters",
    "threat_index",
    "threat_indicator_path",
    "threat_language",
    "threat_mapping",
    "threat_query",
    "threshold",
    "throttle",
    "tiebreaker_field",
    "timeline_id",
    "timeline_title",
    "timestamp_field",
    "timestamp_override",
    "timestamp_override_fallback_disabled",
    "to",
    "type",
    "version",
];

/// Keys only a rule as Kibana returns it has (the rule schema's
/// `ResponseFields` and the saved-object resolve attributes,
/// `common/api/detection_engine/model/rule_schema/rule_schemas.schema.yaml`):
/// known in an export, unknown in a TOML `[rule]`.
const EXPORT_ONLY_FIELDS: &[&str] = &[
    "alias_purpose",
    "alias_target_id",
    "created_at",
    "created_by",
    "execution_summary",
    "history_window_start",
    "id",
    "immutable",
    "new_terms_fields",
    "outcome",
    "revision",
    "rule_source",
    "updated_at",
    "updated_by",
];

/// The keys Kibana keeps in an EQL rule's params, which its alerts carry as
/// `kibana.alert.rule.parameters`: `commonParamsCamelToSnake` without
/// `output_index` (removed in `buildAlertFields`) plus the `eql` case of
/// `typeSpecificCamelToSnake` (`rule_types/factories/utils/build_alert.ts`,
/// `rule_management/normalization/rule_converters.ts` and
/// `.../converters/common_params_camel_to_snake.ts` in the security_solution
/// server). The rule object's own attributes (`id`, `name`, `tags`,
/// `enabled`, `interval`, `actions`, `throttle`, `revision`, `created_*`,
/// `updated_*`, `execution_summary`) are not params.
pub const KIBANA_PARAMS: &[&str] = &[
    // common params
    "description",
    "risk_score",
    "severity",
    "building_block_type",
    "namespace",
    "note",
    "license",
    "timeline_id",
    "timeline_title",
    "meta",
    "rule_name_override",
    "timestamp_override",
    "timestamp_override_fallback_disabled",
    "investigation_fields",
    "author",
    "false_positives",
    "from",
    "rule_id",
    "max_signals",
    "risk_score_mapping",
    "severity_mapping",
    "threat",
    "to",
    "references",
    "version",
    "exceptions_list",
    "immutable",
    "rule_source",
    "related_integrations",
    "required_fields",
    "response_actions",
    "setup",
    // eql and query params (`typeSpecificCamelToSnake`)
    "type",
    "language",
    "index",
    "data_view_id",
    "query",
    "filters",
    "saved_id",
    "timestamp_field",
    "event_category_override",
    "tiebreaker_field",
    "alert_suppression",
    // threshold params (`typeSpecificCamelToSnake`, `threshold` case)
    "threshold",
    // machine_learning params (`machine_learning` case)
    "anomaly_threshold",
    "machine_learning_job_id",
    // threat_match params (`typeSpecificCamelToSnake`, `threat_match` case)
    "threat_filters",
    "threat_query",
    "threat_mapping",
    "threat_language",
    "threat_index",
    "threat_indicator_path",
    "concurrent_searches",
    "items_per_search",
    // new_terms params (`typeSpecificCamelToSnake`, `new_terms` case)
    "new_terms_fields",
    "history_window_start",
];

/// Keys people put in a TOML `[rule]` for a Kibana rule's saved-object id,
/// which belongs in `[metadata]`.
const MISPLACED_KIBANA_ID: &[&str] = &["id", "kibana_rule_id", "kibana_id"];

impl Fields<'_> {
    /// A warning for every key that is neither a Kibana rule key nor a
    /// detection-rules one (in an export also the response-only keys).
    pub(super) fn unknown_fields(&mut self) {
        let known = |key: &str| {
            KNOWN_RULE_FIELDS.contains(&key)
                || (self.format == Format::Json && EXPORT_ONLY_FIELDS.contains(&key))
        };
        let mut found = Vec::new();
        for (key, value) in self.table {
            if known(key) {
                continue;
            }
            let hint = if self.format == Format::Toml && MISPLACED_KIBANA_ID.contains(&key.as_str())
            {
                " (a Kibana rule's saved-object id goes in [metadata] as `kibana_rule_id`)"
                    .to_string()
            } else {
                closest(key, KNOWN_RULE_FIELDS)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default()
            };
            found.push((
                span_of(value),
                format!("unknown field `{key}` in {} is ignored{hint}", self.place),
            ));
        }
        for (span, message) in found {
            self.error(RuleErrorKind::UnknownField, span, message);
        }
    }
}

/// The key/value pairs of `table` that Kibana keeps in params.
pub(super) fn kibana_params(table: &super::raw::RawTable) -> toml::Table {
    table
        .iter()
        .filter(|(k, _)| KIBANA_PARAMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.get_ref().clone()))
        .collect()
}

/// The known name closest to `key` if it is plausibly a typo of it: at most
/// 2 edits, and at most one edit per 4 characters (so `foo` suggests nothing).
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let len = key.chars().count();
    known
        .iter()
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, _)| *d <= 2 && d * 4 <= len)
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
