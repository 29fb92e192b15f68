//! Loading and validating rule files (detection-rules TOML) into `Rule`s.
//!
//! `raw` reads the file as written (values with spans), `validate` turns it
//! into a [`Rule`] once (defaults applied, schedule parsed, query parsed and
//! verified) or into every error of the file, `position` maps EQL error
//! spans from the query into the file, and `check` walks files and folders
//! for `detectd check` and the daemon. Compiling the query against a field
//! schema is not done here; that belongs to the run pipeline.

pub mod check;
pub mod datemath;
pub mod error;
mod fields;
pub mod position;
pub mod raw;
#[allow(clippy::module_inception)]
pub mod rule;
pub mod validate;

pub use check::{check_paths, load_file, load_paths, render_errors, CheckSummary, FileOutcome};
pub use datemath::{parse_duration, DateMath, TimeError};
pub use error::{RuleError, RuleErrorKind};
pub use rule::{
    BuildingBlockType, Metadata, Rule, Schedule, Severity, Technique, Threat, ThreatRef,
    DEFAULT_MAX_SIGNALS, MAX_SIGNALS_LIMIT,
};
pub use validate::{load_str, LoadOutcome};

#[cfg(test)]
mod tests;
