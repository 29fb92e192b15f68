//! The tests file of a rule (`<rule>.tests.toml`, see the module doc of
//! `ruletest` for the format): read, checked and turned into [`Case`]s
//! once, every error with its position in the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic;
use crate::eql::Span;

pub use crate::rule::check::{is_tests_path, TESTS_SUFFIX};

/// The tests file of `rule_file` (`foo.toml` or `foo.ndjson` ->
/// `foo.tests.toml`).
pub fn tests_path(rule_file: &Path) -> PathBuf {
    let stem = rule_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    rule_file.with_file_name(format!("{stem}{TESTS_SUFFIX}"))
}

/// The rule file a tests file is for: `foo.toml`, else `foo.ndjson` when
/// that exists.
pub fn rule_path(tests_file: &Path) -> PathBuf {
    let name = tests_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(TESTS_SUFFIX).unwrap_or(&name);
    let toml = tests_file.with_file_name(format!("{stem}.toml"));
    let ndjson = tests_file.with_file_name(format!("{stem}.ndjson"));
    if !toml.exists() && ndjson.exists() {
        ndjson
    } else {
        toml
    }
}

/// The tests of one rule file.
#[derive(Clone, Debug)]
pub struct TestsFile {
    pub path: PathBuf,
    /// The whole file, for excerpts and positions.
    pub text: Arc<str>,
    pub cases: Vec<Case>,
}

/// One test case: events in, the alerts expected out.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// Where the case is written (its `[[case]]` table).
    pub span: Span,
    /// The rule it tests, in a file of several rules (a Kibana export).
    pub rule_id: Option<String>,
    /// The alerts' time and what date math in queries is relative to.
    pub now: Option<DateTime<Utc>>,
    pub events: Events,
    /// A mapping for the events (`--mapping` of `hunt`), resolved.
    pub mapping: Option<PathBuf>,
    pub expect: Expect,
}

/// Where a case's events are.
#[derive(Clone, Debug, PartialEq)]
pub enum Events {
    /// NDJSON written in the tests file (`events = '''...'''`).
    Inline(String),
    /// An NDJSON file (`events_file`), resolved against the tests file.
    File(PathBuf),
}

/// What a case expects. Matches are lists of events by line number: an
/// event alert is one line, a sequence its events in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expect {
    /// Exactly these matches, in any order.
    pub alerts: Option<Vec<Vec<u64>>>,
    /// This many matches.
    pub alert_count: Option<usize>,
    /// Lines that must be in no alert.
    pub not_alerting: Vec<u64>,
}

impl Expect {
    /// Every line named.
    pub fn lines(&self) -> impl Iterator<Item = u64> + '_ {
        self.alerts
            .iter()
            .flatten()
            .flatten()
            .copied()
            .chain(self.not_alerting.iter().copied())
    }
}

/// A tests file that cannot be used, with where and why.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecError {
    pub path: PathBuf,
    pub text: Arc<str>,
    /// `None` when the file could not be read.
    pub span: Option<Span>,
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.path.display().to_string();
        match self.span {
            Some(span) => f.write_str(&diagnostic::render(&name, &self.text, span, &self.message)),
            None => writeln!(f, "{name}: error: {}", self.message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rule_id: Option<String>,
    now: Option<Spanned<String>>,
    mapping: Option<Spanned<String>>,
    #[serde(default)]
    case: Vec<Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Spanned<String>,
    rule_id: Option<String>,
    now: Option<Spanned<String>>,
    events: Option<Spanned<String>>,
    events_file: Option<Spanned<String>>,
    mapping: Option<Spanned<String>>,
    alerts: Option<Spanned<Vec<RawMatch>>>,
    alert_count: Option<usize>,
    not_alerting: Option<Spanned<Vec<u64>>>,
}

/// One expected match: a line, or a sequence's lines.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawMatch {
    One(u64),
    Many(Vec<u64>),
}

fn span_of<T>(s: &Spanned<T>) -> Span {
    let r = s.span();
    Span::new(r.start, r.end)
}

/// Reads and checks the tests file at `path`: every error found, in file
/// order (none when it is usable).
pub fn read(path: &Path) -> Result<TestsFile, Vec<SpecError>> {
    let text: Arc<str> = match std::fs::read_to_string(path) {
        Ok(t) => t.into(),
        Err(e) => {
            return Err(vec![SpecError {
                path: path.to_path_buf(),
                text: "".into(),
                span: None,
                message: format!("cannot read the tests file: {e}"),
            }])
        }
    };
    parse(path, text)
}

/// Checks the text of a tests file (`path` resolves `events_file` and
/// `mapping` and names the file in errors).
pub fn parse(path: &Path, text: Arc<str>) -> Result<TestsFile, Vec<SpecError>> {
    let error = |span: Option<Span>, message: String| SpecError {
        path: path.to_path_buf(),
        text: text.clone(),
        span,
        message,
    };
    let raw: RawFile = match toml::from_str(&text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().map(|r| Span::new(r.start, r.end));
            let message = e.message().trim_end().to_string();
            return Err(vec![error(span, message)]);
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    if raw.case.is_empty() {
        errors.push(error(
            Some(Span::new(0, 0)),
            "expected at least one [[case]], found none".to_string(),
        ));
    }
    let file_mapping = raw.mapping.as_ref().map(|m| dir.join(m.get_ref()));
    let parse_now =
        |now: &Spanned<String>, errors: &mut Vec<SpecError>| match DateTime::parse_from_rfc3339(
            now.get_ref(),
        ) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                errors.push(error(
                    Some(span_of(now)),
                    format!(
                        "expected an RFC 3339 time such as \"2024-05-01T10:00:00Z\", found {:?} \
                         ({e})",
                        now.get_ref()
                    ),
                ));
                None
            }
        };
    let file_now = raw.now.as_ref().and_then(|n| parse_now(n, &mut errors));
    let mut cases = Vec::new();
    let mut names: Vec<(String, Span)> = Vec::new();
    for spanned in raw.case {
        let span = span_of(&spanned);
        let c = spanned.into_inner();
        let now = match &c.now {
            None => file_now,
            Some(now) => parse_now(now, &mut errors),
        };
        let mut fail = |at: Span, message: String| errors.push(error(Some(at), message));
        let name = c.name.get_ref().trim().to_string();
        if name.is_empty() {
            fail(
                span_of(&c.name),
                "expected a case name, found an empty one".into(),
            );
        } else if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
            let line = crate::eql::span::line_col(&text, first.start as usize).line;
            fail(
                span_of(&c.name),
                format!("duplicate case name {name:?}: already used on line {line}"),
            );
        }
        names.push((name.clone(), span_of(&c.name)));
        let events = match (&c.events, &c.events_file) {
            (Some(e), None) => Some(Events::Inline(e.get_ref().clone())),
            (None, Some(f)) => Some(Events::File(dir.join(f.get_ref()))),
            (Some(_), Some(f)) => {
                fail(
                    span_of(f),
                    "expected either `events` or `events_file`, found both".into(),
                );
                None
            }
            (None, None) => {
                fail(
                    span,
                    "expected the case's events: `events` (NDJSON, one event per line) or \
                     `events_file` (a path), found neither"
                        .into(),
                );
                None
            }
        };
        let alerts: Option<Vec<Vec<u64>>> = c.alerts.as_ref().map(|a| {
            a.get_ref()
                .iter()
                .map(|m| match m {
                    RawMatch::One(line) => vec![*line],
                    RawMatch::Many(lines) => lines.clone(),
                })
                .collect()
        });
        if let (Some(list), Some(a)) = (&alerts, &c.alerts) {
            if list.iter().any(Vec::is_empty) {
                fail(
                    span_of(a),
                    "expected each alert as a line number or a list of line numbers, found \
                     an empty list"
                        .into(),
                );
            }
        }
        if let (Some(list), Some(count)) = (&alerts, c.alert_count) {
            if list.len() != count {
                fail(
                    span,
                    format!(
                        "`alert_count` says {count} but `alerts` lists {}: give one of them, \
                         or make them agree",
                        list.len()
                    ),
                );
            }
        }
        if alerts.is_none() && c.alert_count.is_none() && c.not_alerting.is_none() {
            fail(
                span,
                "expected what the case expects: `alerts`, `alert_count` or `not_alerting`, \
                 found none of them"
                    .into(),
            );
        }
        let not_alerting = c.not_alerting.as_ref().map(|n| n.get_ref().clone());
        let expect = Expect {
            alerts,
            alert_count: c.alert_count,
            not_alerting: not_alerting.unwrap_or_default(),
        };
        // Line numbers are checked against inline events here; against a
        // file when the case runs.
        if let Some(Events::Inline(text)) = &events {
            let count = text.lines().count() as u64;
            let blank = |l: u64| {
                text.lines()
                    .nth((l - 1) as usize)
                    .is_some_and(|s| s.trim().is_empty())
            };
            let at = c
                .alerts
                .as_ref()
                .map(span_of)
                .into_iter()
                .chain(c.not_alerting.as_ref().map(span_of));
            let at: Vec<Span> = at.collect();
            for line in expect.lines() {
                let message = if line == 0 || line > count {
                    format!("line {line} is not an event: the events have lines 1 to {count}")
                } else if blank(line) {
                    format!("line {line} is not an event: it is blank")
                } else {
                    continue;
                };
                fail(at.first().copied().unwrap_or(span), message);
                break;
            }
        }
        if let Some(events) = events {
            cases.push(Case {
                name,
                span,
                rule_id: c.rule_id.or_else(|| raw.rule_id.clone()),
                now,
                events,
                mapping: c
                    .mapping
                    .as_ref()
                    .map(|m| dir.join(m.get_ref()))
                    .or_else(|| file_mapping.clone()),
                expect,
            });
        }
    }
    // in file order, whatever order they were found in
    errors.sort_by_key(|e| e.span.map(|s| s.start));
    if errors.is_empty() {
        Ok(TestsFile {
            path: path.to_path_buf(),
            text,
            cases,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<TestsFile, Vec<SpecError>> {
        parse(Path::new("/r/foo.tests.toml"), text.into())
    }

    fn errors(text: &str) -> Vec<String> {
        parse_str(text)
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn paths_pair_rules_and_tests() {
        assert_eq!(
            tests_path(Path::new("rules/foo.toml")),
            Path::new("rules/foo.tests.toml")
        );
        assert_eq!(
            tests_path(Path::new("rules/export.ndjson")),
            Path::new("rules/export.tests.toml")
        );
        assert!(is_tests_path(Path::new("a/foo.tests.toml")));
        assert!(!is_tests_path(Path::new("a/foo.toml")));
        assert_eq!(
            rule_path(Path::new("/nonexistent/foo.tests.toml")),
            Path::new("/nonexistent/foo.toml")
        );
    }

    #[test]
    fn a_file_of_cases() {
        let f = parse_str(
            "rule_id = \"r\"\nmapping = \"m.json\"\nnow = \"2024-01-01T00:00:00Z\"\n\
             [[case]]\nname = \"attack\"\nnow = \"2024-05-01T10:00:00Z\"\n\
             events = '''\n{\"a\": 1}\n{\"a\": 2}\n\n{\"a\": 3}\n'''\n\
             alerts = [[1, 2], 4]\nnot_alerting = [1]\n\
             [[case]]\nname = \"quiet\"\nrule_id = \"other\"\nevents_file = \"e.ndjson\"\n\
             mapping = \"own.json\"\nalert_count = 0\n",
        )
        .unwrap();
        assert_eq!(f.cases.len(), 2);
        let a = &f.cases[0];
        assert_eq!(a.name, "attack");
        assert_eq!(a.rule_id.as_deref(), Some("r"));
        assert_eq!(a.expect.alerts, Some(vec![vec![1, 2], vec![4]]));
        assert_eq!(a.expect.not_alerting, [1]);
        assert_eq!(a.mapping.as_deref(), Some(Path::new("/r/m.json")));
        assert_eq!(a.now.unwrap().to_rfc3339(), "2024-05-01T10:00:00+00:00");
        assert!(matches!(&a.events, Events::Inline(t) if t.starts_with("{\"a\": 1}\n")));
        let q = &f.cases[1];
        assert_eq!(q.rule_id.as_deref(), Some("other"));
        assert_eq!(q.events, Events::File("/r/e.ndjson".into()));
        assert_eq!(q.mapping.as_deref(), Some(Path::new("/r/own.json")));
        assert_eq!(q.expect.alert_count, Some(0));
        assert_eq!(q.now.unwrap().to_rfc3339(), "2024-01-01T00:00:00+00:00");
    }

    #[test]
    fn every_mistake_is_reported_at_its_place() {
        let e = errors("[[case]]\nname = \"x\"\nevents = '''\n{}\n'''\nalert = []\n");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("/r/foo.tests.toml:6:1: error: unknown field `alert`"),
            "{e:?}"
        );
        let e = errors(
            "[[case]]\nname = \"a\"\nevents = '''\n{}\n'''\n\
             [[case]]\nname = \"a\"\nevents_file = \"f\"\nevents = \"{}\"\nalert_count = 1\n\
             [[case]]\nname = \"\"\nnow = \"yesterday\"\nnot_alerting = [1]\n\
             [[case]]\nname = \"lines\"\nevents = '''\n{}\n\n'''\nalerts = [[1, 2]]\n",
        );
        let want = [
            (
                "/r/foo.tests.toml:1:1: error: expected what the case expects",
                0,
            ),
            (
                "/r/foo.tests.toml:7:8: error: duplicate case name \"a\": already used on line 2",
                1,
            ),
            (
                "/r/foo.tests.toml:8:15: error: expected either `events` or `events_file`",
                2,
            ),
            (
                "/r/foo.tests.toml:11:1: error: expected the case's events",
                3,
            ),
            ("/r/foo.tests.toml:12:8: error: expected a case name", 4),
            (
                "/r/foo.tests.toml:13:7: error: expected an RFC 3339 time",
                5,
            ),
            (
                "/r/foo.tests.toml:21:10: error: line 2 is not an event: it is blank",
                6,
            ),
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for (prefix, i) in want {
            assert!(e[i].starts_with(prefix), "{i}: {}", e[i]);
        }
        let e = errors("");
        assert!(
            e[0].contains("expected at least one [[case]], found none"),
            "{e:?}"
        );
        let e = errors("[[case]]\nname = \"c\"\nevents = \"{}\"\nalerts = [3]\n");
        assert!(
            e[0].contains("line 3 is not an event: the events have lines 1 to 1"),
            "{e:?}"
        );
        let e = errors("[[case]]\nname = \"c\"\nevents = \"{}\"\nalerts = [1]\nalert_count = 2\n");
        assert!(
            e[0].contains("`alert_count` says 2 but `alerts` lists 1"),
            "{e:?}"
        );
        let e = errors("[[case]]\nname = \"c\"\nevents = \"{}\"\nalerts = [\"x\"]\n");
        assert!(e[0].starts_with("/r/foo.tests.toml:4:10: error: "), "{e:?}");
        let missing = read(Path::new("/nonexistent/x.tests.toml")).unwrap_err();
        assert!(
            missing[0]
                .to_string()
                .starts_with("/nonexistent/x.tests.toml: error: cannot read the tests file: "),
            "{missing:?}"
        );
    }
}
