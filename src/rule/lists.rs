//! Finding each rule's exception lists: the lists are loaded from the
//! exception folders (`exceptions` in the config, `--exceptions`) and from
//! the Kibana rule exports being loaded (an export made with its exception
//! lists carries them), then every loaded rule's `exceptions_list` is
//! resolved against them. A rule whose lists cannot all be found, or that
//! uses an item detectd cannot apply, fails to load with the reason; the
//! other rules are not affected. Kibana runs such a rule without the
//! missing lists; detectd does not guess which alerts the team meant to
//! exclude.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::check::{key_span, load_paths, FileOutcome};
use super::error::{RuleError, RuleErrorKind};
use super::validate::LoadOutcome;
use crate::eql::Span;
use crate::exceptions::{ExceptionStore, LoadError};

/// Rules loaded with their exception lists.
#[derive(Debug)]
pub struct LoadedRules {
    pub files: Vec<FileOutcome>,
    /// Problems in the exception files (a list with one is not used).
    pub list_errors: Vec<LoadError>,
    /// Exception lists loaded.
    pub lists: usize,
}

/// Loads the rules under `paths` and resolves their exception lists from
/// `exceptions` (folders or files) and the rule exports. `now` decides
/// which items have expired (an item of a value list is an error whatever
/// the time).
pub fn load_with_lists(
    paths: &[PathBuf],
    exceptions: &[PathBuf],
    now: DateTime<Utc>,
) -> LoadedRules {
    let mut files = load_paths(paths);
    let (store, list_errors) = {
        let exports: Vec<(&std::path::Path, &str)> = exports(&files);
        ExceptionStore::load(exceptions, exports)
    };
    resolve(&mut files, &store, !exceptions.is_empty(), now);
    LoadedRules {
        files,
        list_errors,
        lists: store.len(),
    }
}

/// Every Kibana export among the files, once.
fn exports(files: &[FileOutcome]) -> Vec<(&std::path::Path, &str)> {
    let mut out: Vec<(&std::path::Path, &str)> = Vec::new();
    for f in files.iter().filter(|f| f.line.is_some()) {
        if out.last().is_none_or(|(p, _)| *p != f.path.as_path()) {
            out.push((f.path.as_path(), &f.text));
        }
    }
    out
}

/// Resolves the lists of every loaded rule that has an `exceptions_list`;
/// `configured` says whether any exception folder was given (for the
/// hint of the error).
fn resolve(
    files: &mut [FileOutcome],
    store: &ExceptionStore,
    configured: bool,
    now: DateTime<Utc>,
) {
    for file in files.iter_mut() {
        let LoadOutcome::Loaded { rule, .. } = &mut file.outcome else {
            continue;
        };
        if rule.exceptions_list.is_empty() {
            continue;
        }
        let problem = match store.resolve(&rule.exceptions_list) {
            Ok(lists) => match lists.build(now) {
                Ok(_) => {
                    rule.exceptions = Arc::new(lists);
                    continue;
                }
                Err(e) => e.to_string(),
            },
            Err(e) if configured => e.to_string(),
            Err(e) => format!(
                "{e} (no exception folder is configured: set `exceptions` in the config or \
                 pass --exceptions DIR)"
            ),
        };
        let span = key_span(file, "exceptions_list").unwrap_or(Span::new(0, 0));
        file.outcome = LoadOutcome::Failed(vec![RuleError::new(
            RuleErrorKind::Exceptions,
            span,
            problem,
        )]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Rule;

    const EXPORT: &str = include_str!("../../tests/fixtures/kibana_export.ndjson");

    fn rule_file(dir: &std::path::Path, name: &str, lists: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "[rule]\nrule_id = \"{name}\"\nname = \"n\"\ndescription = \"d\"\ntype = \"query\"\n\
                 index = [\"logs-*\"]\nseverity = \"low\"\nrisk_score = 21\nquery = 'a:b'\n{lists}"
            ),
        )
        .unwrap();
        path
    }

    fn list_ref(list_id: &str) -> String {
        format!(
            "[[rule.exceptions_list]]\nid = \"x\"\nlist_id = \"{list_id}\"\n\
             namespace_type = \"single\"\ntype = \"detection\"\n"
        )
    }

    fn loaded(files: &[FileOutcome]) -> Vec<&Rule> {
        files
            .iter()
            .filter_map(|f| match &f.outcome {
                LoadOutcome::Loaded { rule, .. } => Some(rule.as_ref()),
                _ => None,
            })
            .collect()
    }

    fn failures(files: &[FileOutcome]) -> Vec<String> {
        files
            .iter()
            .filter_map(|f| match &f.outcome {
                LoadOutcome::Failed(e) => Some(format!("{}: {}", f.location(), e[0].message)),
                _ => None,
            })
            .collect()
    }

    /// A Kibana export made with its exception lists is self-contained.
    #[test]
    fn an_export_carries_the_lists_its_rules_use() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("export.ndjson"), EXPORT).unwrap();
        let got = load_with_lists(&[dir.path().to_path_buf()], &[], Utc::now());
        assert!(got.list_errors.is_empty(), "{:?}", got.list_errors);
        assert_eq!(got.lists, 1);
        let rules = loaded(&got.files);
        let admin = rules
            .iter()
            .find(|r| r.rule_id == "soc-admin-logon")
            .expect("the query rule loads");
        let items: Vec<_> = admin.exceptions.items().collect();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].item_id.as_deref(), Some("soc-build-01"));
    }

    #[test]
    fn lists_come_from_the_exception_folders() {
        let rules = tempfile::tempdir().unwrap();
        rule_file(rules.path(), "uses.toml", &list_ref("admin-tools"));
        rule_file(rules.path(), "plain.toml", "");
        let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exceptions");
        let got = load_with_lists(&[rules.path().to_path_buf()], &[folder], Utc::now());
        assert!(
            failures(&got.files).is_empty(),
            "{:?}",
            failures(&got.files)
        );
        let rules = loaded(&got.files);
        assert_eq!(rules.len(), 2);
        let uses = rules.iter().find(|r| r.rule_id == "uses.toml").unwrap();
        assert!(!uses.exceptions.is_empty());
        let plain = rules.iter().find(|r| r.rule_id == "plain.toml").unwrap();
        assert!(plain.exceptions.is_empty());
    }

    /// A missing list fails its rule only, with the list named and, when no
    /// folder is configured, how to configure one.
    #[test]
    fn a_missing_list_fails_its_rule_and_the_others_load() {
        let rules = tempfile::tempdir().unwrap();
        rule_file(rules.path(), "missing.toml", &list_ref("nowhere"));
        rule_file(rules.path(), "plain.toml", "");
        let got = load_with_lists(&[rules.path().to_path_buf()], &[], Utc::now());
        let failed = failures(&got.files);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(failed[0].contains("missing.toml"), "{failed:?}");
        assert!(
            failed[0].ends_with(
                "missing.toml: exception list not found in the exception lists folder: \
                 `nowhere` (single) (no exception folder is configured: set `exceptions` in \
                 the config or pass --exceptions DIR)"
            ),
            "{failed:?}"
        );
        assert_eq!(loaded(&got.files).len(), 1);
        let span_file = got
            .files
            .iter()
            .find(|f| matches!(f.outcome, LoadOutcome::Failed(_)))
            .unwrap();
        let LoadOutcome::Failed(errors) = &span_file.outcome else {
            unreachable!()
        };
        let at = &span_file.text[errors[0].span.range()];
        assert!(at.starts_with("[[rule.exceptions_list]]"), "{at:?}");
    }

    /// A value-list entry cannot be applied yet: the rule fails to load
    /// rather than run without the entry.
    #[test]
    fn a_value_list_entry_fails_the_rule_at_load() {
        let rules = tempfile::tempdir().unwrap();
        rule_file(rules.path(), "uses.toml", &list_ref("with-value-list"));
        let lists = tempfile::tempdir().unwrap();
        std::fs::write(
            lists.path().join("lists.ndjson"),
            concat!(
                r#"{"list_id":"with-value-list","namespace_type":"single","type":"detection","name":"v","description":"d"}"#,
                "\n",
                r#"{"item_id":"i1","list_id":"with-value-list","namespace_type":"single","type":"simple","name":"i","description":"d","entries":[{"field":"source.ip","operator":"included","type":"list","list":{"id":"bad-ips","type":"ip"}}]}"#,
                "\n"
            ),
        )
        .unwrap();
        let got = load_with_lists(
            &[rules.path().to_path_buf()],
            &[lists.path().to_path_buf()],
            Utc::now(),
        );
        assert!(got.list_errors.is_empty(), "{:?}", got.list_errors);
        let failed = failures(&got.files);
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert!(
            failed[0].contains("value-list entries are not supported yet"),
            "{failed:?}"
        );
    }
}
