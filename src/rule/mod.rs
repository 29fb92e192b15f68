//! Loading and validating rule files into `Rule`s: detection-rules TOML
//! files, and Kibana rule exports (NDJSON, one rule per line).
//!
//! `raw` reads a TOML file as written (values with spans), `raw_json` one
//! export line into the same shape, `export` sorts an export's lines (rules,
//! summary, exception lists, connectors), `validate` turns a rule table into
//! a [`Rule`] once (defaults applied, schedule parsed, query parsed and
//! verified) or into every error of the rule, whichever file it came from;
//! `identity` reads what ties a rule to its Kibana rule object, `keys` knows
//! the rule keys, `position` maps EQL error spans from the query into the
//! file, and `check` walks files and folders for `detectd check` and the
//! daemon. Compiling the query against a field schema is not done here;
//! that belongs to the run pipeline.

mod actions;
pub mod check;
mod constraints;
mod cron;
pub mod datemath;
pub mod error;
mod esql;
pub mod export;
mod fields;
mod identity;
pub mod keys;
pub mod lists;
mod ml;
mod new_terms;
mod overrides;
pub mod position;
pub mod raw;
mod raw_json;
#[allow(clippy::module_inception)]
pub mod rule;
mod suppression;
mod threat;
mod threshold;
pub mod validate;

pub use actions::RuleAction;
pub use check::{
    check_paths, check_paths_with, load_export_file, load_file, load_paths, load_rules_file,
    render_errors, CheckSummary, FileOutcome, TypeCounts,
};
pub use datemath::{parse_duration, DateMath, TimeError};
pub use error::{RuleError, RuleErrorKind};
pub use export::{load_export_str, ExportEntry};
pub use identity::is_uuid;
pub use keys::KIBANA_PARAMS;
pub use lists::{load_with_lists, LoadedRules};
pub use rule::{
    BuildingBlockType, EqlRule, EsqlRule, Metadata, MlRule, NewTermsRule, QueryLanguage, QueryRule,
    Rule, RuleCommon, RuleKind, Schedule, Severity, Technique, Threat, ThreatMapping,
    ThreatMappingEntry, ThreatMatchRule, ThreatRef, ThresholdCardinality, ThresholdRule,
    DEFAULT_MAX_SIGNALS, MAX_SIGNALS_LIMIT, NEEDS_ESQL, NEEDS_ML,
};
pub use suppression::Suppression;
pub use validate::{load_str, LoadOutcome};

#[cfg(test)]
mod cluster_only_tests;
#[cfg(test)]
mod export_tests;
#[cfg(test)]
mod kind_tests;
#[cfg(test)]
mod new_terms_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod threat_tests;
#[cfg(test)]
mod threshold_tests;
