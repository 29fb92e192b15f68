//! A `machine_learning` rule's part: the anomaly-detection jobs it reads
//! (`machine_learning_job_id`, a string or a list, as Kibana's rule schema
//! has it) and the `anomaly_threshold` (0–100) a record's score must reach.
//! The jobs run in Elasticsearch; the rule reads their anomaly records.

use toml::Value;

use super::error::RuleErrorKind;
use super::fields::Fields;
use super::rule::{MlRule, RuleKind};

impl Fields<'_> {
    /// A machine-learning rule's part, every problem reported.
    pub(super) fn ml_kind(&mut self) -> Option<RuleKind> {
        let jobs = match self.get("machine_learning_job_id") {
            None => {
                self.missing("machine_learning_job_id");
                None
            }
            Some((Value::String(s), _)) if !s.trim().is_empty() => Some(vec![s.clone()]),
            Some((Value::Array(_), span)) => {
                let jobs = self.string_list("machine_learning_job_id");
                if jobs.is_empty() || jobs.iter().any(|j| j.trim().is_empty()) {
                    self.error(
                        RuleErrorKind::Value,
                        span,
                        "expected job ids in `machine_learning_job_id`, found an empty one or none"
                            .to_string(),
                    );
                    None
                } else {
                    Some(jobs)
                }
            }
            Some((other, span)) => {
                self.wrong_type(
                    "machine_learning_job_id",
                    "a job id or a list of them",
                    other,
                    span,
                );
                None
            }
        };
        let threshold = match self.integer("anomaly_threshold") {
            Some((v, _)) if (0..=100).contains(&v) => u32::try_from(v).ok(),
            Some((v, span)) => {
                self.error(
                    RuleErrorKind::Value,
                    span,
                    format!("expected `anomaly_threshold` between 0 and 100, found {v}"),
                );
                None
            }
            None => {
                if !self.table.contains_key("anomaly_threshold") {
                    self.missing("anomaly_threshold");
                }
                None
            }
        };
        Some(RuleKind::MachineLearning(MlRule {
            job_ids: jobs?,
            anomaly_threshold: threshold?,
        }))
    }
}
