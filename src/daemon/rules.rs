//! The set of rules the daemon runs, (re)loaded from the rules folders.
//!
//! Broken files are logged with file:line:col and a caret (the rule
//! module's rendering) and skipped; rules of other types are logged as
//! skipped. On a reload (SIGHUP) a file that was good before and is broken
//! now keeps its previous version running: a typo saved into a rule must
//! not silently switch the detection off.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::cron::CronOverrides;
use crate::rule::{load_with_lists, render_errors, LoadOutcome, Rule};

/// Where a rule came from: its file, and for a Kibana export (several
/// rules per file) its line.
type Origin = (PathBuf, Option<usize>);

/// Loaded rules by where they came from.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    by_path: BTreeMap<Origin, Arc<Rule>>,
}

/// Counts of one (re)load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Rules loaded from their file as it is now.
    pub loaded: usize,
    /// Valid files of rule types detectd does not run.
    pub skipped: usize,
    /// The skipped rules of Kibana types not supported yet, by type.
    pub not_supported: crate::rule::TypeCounts,
    /// Files with errors.
    pub failed: usize,
    /// Broken files whose previous version stays loaded.
    pub kept_previous: usize,
    /// Exception lists loaded, and problems in exception files.
    pub exception_lists: usize,
    pub exception_file_errors: usize,
    /// Valid rules the cluster cannot run (ES|QL or ML on OpenSearch).
    pub not_runnable_here: usize,
}

impl RuleSet {
    /// Loads every rule under `paths` with its exception lists (from
    /// `exceptions` and the rule exports) and the cron schedules `cron`
    /// gives them; `previous` is the set running now (empty on start-up).
    /// A rule whose `[[rule.actions]]` name an output not in `outputs` (the
    /// configured ones) is refused like a broken file. Logs every
    /// diagnostic.
    pub fn load(
        paths: &[PathBuf],
        exceptions: &[PathBuf],
        cron: &CronOverrides,
        outputs: &BTreeSet<String>,
        previous: &RuleSet,
    ) -> (RuleSet, LoadReport) {
        let mut set = RuleSet::default();
        let mut report = LoadReport::default();
        let mut kept = Vec::new();
        let loaded = load_with_lists(paths, exceptions, chrono::Utc::now());
        for e in &loaded.list_errors {
            tracing::error!(error = %e, "exception file is invalid");
        }
        report.exception_lists = loaded.lists;
        report.exception_file_errors = loaded.list_errors.len();
        for file in loaded.files {
            let path = file.location();
            let origin: Origin = (file.path.clone(), file.line);
            let unknown = match &file.outcome {
                LoadOutcome::Loaded { rule, .. } => unknown_outputs(rule, outputs),
                _ => None,
            };
            match &file.outcome {
                LoadOutcome::Loaded { rule, .. } if unknown.is_some() => {
                    report.failed += 1;
                    let keeps = keep_previous(previous, origin, &mut kept);
                    tracing::error!(
                        path = %path,
                        rule_id = %rule.rule_id,
                        unknown_outputs = ?unknown.unwrap_or_default(),
                        keeps_previous_version = keeps,
                        "rule actions name outputs that detectd.toml does not define ([[outputs]] name = ...)"
                    );
                }
                LoadOutcome::Loaded { rule, warnings } => {
                    if !warnings.is_empty() {
                        tracing::warn!(
                            path = %path,
                            diagnostics = %render_errors(&file, warnings),
                            "rule file has warnings"
                        );
                    }
                    report.loaded += 1;
                    let mut rule = (**rule).clone();
                    cron.apply(&mut rule);
                    set.by_path.insert(origin, Arc::new(rule));
                }
                LoadOutcome::Skipped {
                    rule_id,
                    reason,
                    rule_type,
                    ..
                } => {
                    report.skipped += 1;
                    if let Some(t) = rule_type {
                        report.not_supported.add(t);
                    }
                    tracing::info!(
                        path = %path,
                        rule_id = rule_id.as_deref(),
                        reason = %reason,
                        "rule skipped"
                    );
                }
                LoadOutcome::Failed(errors) => {
                    report.failed += 1;
                    let keeps = keep_previous(previous, origin, &mut kept);
                    tracing::error!(
                        path = %path,
                        diagnostics = %render_errors(&file, errors),
                        keeps_previous_version = keeps,
                        "rule file is invalid"
                    );
                }
            }
        }
        // A kept rule yields to a valid file that now has its rule_id.
        let ids: HashSet<String> = set.by_path.values().map(|r| r.rule_id.clone()).collect();
        for (path, rule) in kept {
            if ids.contains(&rule.rule_id) {
                continue;
            }
            report.kept_previous += 1;
            set.by_path.insert(path, rule);
        }
        (set, report)
    }

    /// Takes out the rules `server` cannot run (ES|QL and machine learning
    /// need Elasticsearch), each logged with the reason; how many.
    pub fn drop_unrunnable(&mut self, server: &crate::cluster::ServerInfo) -> usize {
        let mut dropped = 0;
        self.by_path.retain(|(path, _), rule| {
            let Some(reason) = unrunnable(rule, server) else {
                return true;
            };
            dropped += 1;
            tracing::error!(
                path = %path.display(),
                rule_id = %rule.rule_id,
                reason = %reason,
                "rule not runnable on this cluster: not scheduled"
            );
            false
        });
        dropped
    }

    /// The rules to schedule (loaded and enabled), in file order.
    pub fn enabled(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.by_path.values().filter(|r| r.enabled)
    }

    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}

/// A file that cannot be loaded now keeps the rule it had in `previous`
/// running (added to `kept`); whether it had one.
fn keep_previous(previous: &RuleSet, origin: Origin, kept: &mut Vec<(Origin, Arc<Rule>)>) -> bool {
    match previous.by_path.get(&origin) {
        Some(old) => {
            kept.push((origin, old.clone()));
            true
        }
        None => false,
    }
}

/// The outputs `rule`'s actions name that are not in `outputs`, if any.
fn unknown_outputs(rule: &Rule, outputs: &BTreeSet<String>) -> Option<Vec<String>> {
    let unknown: BTreeSet<&String> = rule
        .actions
        .iter()
        .flat_map(|a| &a.outputs)
        .filter(|o| !outputs.contains(*o))
        .collect();
    (!unknown.is_empty()).then(|| unknown.into_iter().cloned().collect())
}

/// Why `server` cannot run `rule`, if it cannot.
pub fn unrunnable(rule: &Rule, server: &crate::cluster::ServerInfo) -> Option<String> {
    use crate::rule::RuleKind;
    use crate::source::elasticsearch::{esql_missing, ml_missing};
    match &rule.kind {
        RuleKind::Esql(_) => esql_missing(server),
        RuleKind::MachineLearning(_) => ml_missing(server),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esql_and_ml_rules_are_not_scheduled_on_opensearch_and_are_on_elasticsearch() {
        use crate::cluster::{Distribution, ServerInfo, Version};
        let dir = tempfile::tempdir().unwrap();
        for name in ["esql_by_id.toml", "ml.toml"] {
            std::fs::copy(
                format!("tests/fixtures/cluster_only/{name}"),
                dir.path().join(name),
            )
            .unwrap();
        }
        std::fs::copy(
            "rules/execution_scheduled_task_powershell.toml",
            dir.path().join("eql.toml"),
        )
        .unwrap();
        let load = || {
            RuleSet::load(
                &[dir.path().to_path_buf()],
                &[],
                &CronOverrides::default(),
                &BTreeSet::new(),
                &RuleSet::default(),
            )
            .0
        };
        let server = |distribution, major, minor| ServerInfo {
            distribution,
            version: Version::new(major, minor),
            cluster_name: "c".into(),
        };
        let mut set = load();
        assert_eq!(set.len(), 3);
        let dropped = set.drop_unrunnable(&server(Distribution::OpenSearch, 2, 19));
        assert_eq!(dropped, 2);
        let left: Vec<&str> = set.enabled().map(|r| r.rule_type()).collect();
        assert_eq!(left, ["eql"]);

        let mut set = load();
        assert_eq!(
            set.drop_unrunnable(&server(Distribution::Elasticsearch, 8, 15)),
            0
        );
        // ES|QL arrived in 8.11; machine learning has no such bound.
        let mut set2 = load();
        assert_eq!(
            set2.drop_unrunnable(&server(Distribution::Elasticsearch, 8, 9)),
            1
        );
        let reason = unrunnable(
            set.enabled().find(|r| r.rule_type() == "esql").unwrap(),
            &server(Distribution::OpenSearch, 2, 19),
        )
        .unwrap();
        assert!(reason.contains("OpenSearch 2.19"), "{reason}");
        assert!(reason.contains("8.11"), "{reason}");
    }

    /// Regression: rules were kept by file, so the rules of one Kibana
    /// export overwrote each other and only its last (a disabled one) was
    /// left.
    #[test]
    fn every_rule_of_an_export_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("export.ndjson"),
            include_str!("../../tests/fixtures/kibana_export.ndjson"),
        )
        .unwrap();
        let (set, report) = RuleSet::load(
            &[dir.path().to_path_buf()],
            &[],
            &CronOverrides::default(),
            &BTreeSet::new(),
            &RuleSet::default(),
        );
        assert_eq!(report.failed, 0, "{report:?}");
        let names: Vec<&str> = set.by_path.values().map(|r| r.name.as_str()).collect();
        assert_eq!(report.loaded, names.len());
        assert!(names.len() >= 3, "{names:?}");
        assert!(set.enabled().count() >= 2, "{names:?}");
        assert!(set
            .by_path
            .keys()
            .all(|(path, line)| path.ends_with("export.ndjson") && line.is_some()));
    }

    #[test]
    fn a_rule_whose_actions_name_an_unknown_output_is_refused_and_a_reload_keeps_its_previous_version(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let founding = include_str!("../../rules/execution_scheduled_task_powershell.toml");
        let at = founding.find("[[rule.threat]]").unwrap();
        let with_output = |name: &str| {
            let mut text = founding.to_string();
            text.insert_str(at, &format!("[[rule.actions]]\noutputs = [\"{name}\"]\n\n"));
            text
        };
        let file = dir.path().join("rule.toml");
        let outputs: BTreeSet<String> = ["hook".to_string()].into();
        let paths = [dir.path().to_path_buf()];

        std::fs::write(&file, with_output("slack")).unwrap();
        let (set, report) = RuleSet::load(
            &paths,
            &[],
            &CronOverrides::default(),
            &outputs,
            &RuleSet::default(),
        );
        assert_eq!((report.loaded, report.failed), (0, 1), "{report:?}");
        assert!(set.is_empty());

        std::fs::write(&file, with_output("hook")).unwrap();
        let (set, report) = RuleSet::load(
            &paths,
            &[],
            &CronOverrides::default(),
            &outputs,
            &RuleSet::default(),
        );
        assert_eq!((report.loaded, report.failed), (1, 0), "{report:?}");

        // a reload that now names an unknown output keeps the running version
        std::fs::write(&file, with_output("slack")).unwrap();
        let (again, report) = RuleSet::load(&paths, &[], &CronOverrides::default(), &outputs, &set);
        assert_eq!((report.failed, report.kept_previous), (1, 1), "{report:?}");
        let kept: Vec<_> = again.enabled().collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].actions[0].outputs, ["hook"]);
    }
}
