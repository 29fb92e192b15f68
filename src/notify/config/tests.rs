//! Tests of the notification settings: as read from a whole config file
//! (errors rendered with file:line:col), secrets from a fake environment.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::file::RawConfig;
use crate::config::ConfigErrors;

/// Validates the notification part of `text` with `vars` as environment.
fn load(text: &str, vars: &[(&str, &str)]) -> Result<NotifySettings, String> {
    let raw = RawConfig::parse(text).map_err(|e| e.message)?;
    let mut errors = Vec::new();
    let env = |k: &str| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    let s = validate(
        raw.notify,
        raw.outputs,
        raw.routes,
        Some(text),
        &env,
        &mut errors,
    );
    if errors.is_empty() {
        Ok(s)
    } else {
        Err(ConfigErrors {
            file: Some((PathBuf::from("detectd.toml"), text.to_string())),
            errors,
        }
        .to_string())
    }
}

const ALL: &str = r#"
[notify]
retry_initial = "2s"
give_up_after = "1h"

[[outputs]]
name = "hook"
kind = "webhook"
url_env = "HOOK_URL"
method = "put"
headers = { "X-Team" = "soc" }
headers_env = { Authorization = "HOOK_AUTH" }

[[outputs]]
name = "chat"
kind = "slack"
url = "https://hooks.slack.example/services/T/B/inline-token"

[[outputs]]
name = "pager"
kind = "pagerduty"
routing_key_env = "PD_KEY"

[[outputs]]
name = "lines"
kind = "file"
path = "/tmp/detectd-notifications.ndjson"

[[routes]]
name = "urgent"
outputs = ["pager", "chat"]
min_severity = "high"
min_risk_score = 70
rule_types = ["eql"]
throttle = "30m"
group_by = ["host.name"]

[[routes]]
name = "everything"
outputs = ["hook", "lines"]
mode = "summary"
"#;

const VARS: &[(&str, &str)] = &[
    ("HOOK_URL", "https://soar.example/hook?token=url-s3cret"),
    ("HOOK_AUTH", "Bearer header-s3cret"),
    ("PD_KEY", "routing-s3cret"),
];

#[test]
fn every_kind_and_route_setting_is_read() {
    let s = load(ALL, VARS).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.delivery.retry_initial, Duration::from_secs(2));
    assert_eq!(s.delivery.give_up_after, Duration::from_secs(3600));
    assert_eq!(s.delivery.timeout, DEFAULT_TIMEOUT);
    let kinds: Vec<&str> = s.outputs.iter().map(|o| o.kind.name()).collect();
    assert_eq!(kinds, ["webhook", "slack", "pagerduty", "file"]);
    match &s.output("hook").unwrap().kind {
        OutputKind::Webhook {
            url,
            method,
            headers,
        } => {
            assert_eq!(url.expose(), "https://soar.example/hook?token=url-s3cret");
            assert_eq!(method, "PUT");
            let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(names, ["X-Team", "Authorization"]);
        }
        other => panic!("{other:?}"),
    }
    match &s.output("pager").unwrap().kind {
        OutputKind::PagerDuty { url, routing_key } => {
            assert_eq!(url, PAGERDUTY_URL);
            assert_eq!(routing_key.expose(), "routing-s3cret");
        }
        other => panic!("{other:?}"),
    }
    let urgent = &s.routes[0];
    assert_eq!(urgent.min_severity, Some(Severity::High));
    assert_eq!(urgent.min_risk_score, Some(70));
    assert_eq!(urgent.throttle, Some(Duration::from_secs(1800)));
    assert_eq!(urgent.mode, RouteMode::Group);
    assert_eq!(s.routes[1].mode, RouteMode::Summary);
}

#[test]
fn debug_of_the_settings_never_shows_a_secret() {
    let s = load(ALL, VARS).unwrap();
    let shown = format!("{s:?}");
    for secret in [
        "url-s3cret",
        "header-s3cret",
        "routing-s3cret",
        "inline-token",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn a_missing_secret_is_an_error_at_its_key_and_never_shows_a_value() {
    let e = load(ALL, &[("HOOK_AUTH", "Bearer header-s3cret")]).unwrap_err();
    assert!(
        e.contains("detectd.toml:9:11: error: url_env: expected the environment variable HOOK_URL to be set"),
        "{e}"
    );
    assert!(
        e.contains("routing_key_env: expected the environment variable PD_KEY"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn a_url_that_is_not_http_is_refused_without_echoing_it() {
    let text = "[[outputs]]\nname = \"c\"\nkind = \"teams\"\nurl_env = \"U\"\n";
    let e = load(text, &[("U", "ftp://x/token-s3cret")]).unwrap_err();
    assert!(
        e.contains("invalid url: expected an http:// or https:// url"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn secrets_are_read_from_files_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pd-key");
    std::fs::write(&path, "file-key\n").unwrap();
    let text = format!(
        "[[outputs]]\nname = \"p\"\nkind = \"pagerduty\"\nrouting_key_file = {:?}\n",
        path.display().to_string()
    );
    let s = load(&text, &[]).unwrap_or_else(|e| panic!("{e}"));
    match &s.outputs[0].kind {
        OutputKind::PagerDuty { routing_key, .. } => {
            assert_eq!(routing_key.expose(), "file-key")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_template_error_points_at_its_line_in_the_file() {
    let text = "[[outputs]]\nname = \"c\"\nkind = \"file\"\npath = \"x\"\ntext = '''\n{{ alert.reason }}\n{% for e in alert.events %}\n{{ e.host + }}\n{% endfor %}\n'''\n";
    let e = load(text, &[]).unwrap_err();
    // the template's third line is the file's eighth
    assert!(
        e.starts_with("detectd.toml:8:1: error: template `text`, line 3: syntax error"),
        "{e}"
    );
}

#[test]
fn an_unknown_filter_in_a_one_line_template_points_at_the_value() {
    let text = "[[outputs]]\nname = \"c\"\nkind = \"file\"\npath = \"x\"\ntitle = \"{{ rule.name|loud }}\"\n";
    let e = load(text, &[]).unwrap_err();
    assert!(
        e.starts_with("detectd.toml:5:9: error: template `title`, line 1: unknown filter"),
        "{e}"
    );
}

#[test]
fn routes_name_defined_outputs_and_well_formed_conditions() {
    let text = r#"
[[outputs]]
name = "lines"
kind = "file"
path = "x"

[[routes]]
name = "r"
outputs = ["lines", "nowhere"]
min_severity = "urgent"
min_risk_score = 101
mode = "each"
throttle = "soon"
rule_types = ["sigma"]
"#;
    let e = load(text, &[]).unwrap_err();
    for expected in [
        "route output \"nowhere\" is not defined",
        "invalid min_severity \"urgent\"",
        "invalid min_risk_score 101: expected 0 to 100",
        "invalid mode \"each\": expected \"group\" or \"summary\"",
        "invalid throttle",
        "invalid rule type \"sigma\"",
    ] {
        assert!(e.contains(expected), "{expected} not in {e}");
    }
}

#[test]
fn keys_of_another_kind_and_unknown_keys_are_errors() {
    let e = load(
        "[[outputs]]\nname = \"c\"\nkind = \"slack\"\nurl = \"https://x\"\nrouting_key = \"k\"\n",
        &[],
    )
    .unwrap_err();
    assert!(
        e.contains("`routing_key` is not a setting of slack outputs"),
        "{e}"
    );
    let e = load(
        "[[outputs]]\nname = \"c\"\nkind = \"slack\"\nurl = \"https://x\"\nchannel = \"#soc\"\n",
        &[],
    )
    .unwrap_err();
    assert!(e.contains("unknown field `channel`"), "{e}");
}

#[test]
fn names_are_unique_and_usable_in_ids() {
    let e = load(
        "[[outputs]]\nname = \"a b\"\nkind = \"file\"\npath = \"x\"\n\n[[outputs]]\nname = \"f\"\nkind = \"file\"\npath = \"x\"\n\n[[outputs]]\nname = \"f\"\nkind = \"file\"\npath = \"y\"\n",
        &[],
    )
    .unwrap_err();
    assert!(e.contains("invalid output name \"a b\""), "{e}");
    assert!(e.contains("two outputs are named \"f\""), "{e}");
}

#[test]
fn email_takes_a_server_addresses_and_a_login_with_defaults_by_tls() {
    let text = "[[outputs]]\nname = \"m\"\nkind = \"email\"\nhost = \"smtp.example.com\"\nusername = \"detectd\"\npassword_env = \"SMTP_PW\"\nfrom = \"SOC <soc@example.com>\"\nto = [\"a@example.com\"]\n";
    let s = load(text, &[("SMTP_PW", "pw-s3cret")]).unwrap_or_else(|e| panic!("{e}"));
    match &s.outputs[0].kind {
        OutputKind::Email(e) => {
            assert_eq!((e.port, e.tls), (587, SmtpTls::StartTls));
            assert_eq!(e.password.as_ref().map(|p| p.expose()), Some("pw-s3cret"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{s:?}").contains("pw-s3cret"));
    let tls = load(
        "[[outputs]]\nname = \"m\"\nkind = \"email\"\nhost = \"h\"\ntls = \"tls\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n",
        &[],
    )
    .unwrap();
    match &tls.outputs[0].kind {
        OutputKind::Email(e) => assert_eq!(
            (e.port, e.tls, e.password.is_none()),
            (465, SmtpTls::Tls, true)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn email_errors_name_what_is_missing_or_malformed() {
    let e = load(
        "[[outputs]]\nname = \"m\"\nkind = \"email\"\ntls = \"ssl\"\nfrom = \"not an address\"\nto = [\"ok@example.com\", \"nope\"]\npassword = \"pw-s3cret\"\nurl = \"https://x\"\n",
        &[],
    )
    .unwrap_err();
    for expected in [
        "email output without `host`",
        "invalid tls \"ssl\": expected \"starttls\", \"tls\" or \"none\"",
        "invalid from \"not an address\"",
        "invalid address \"nope\" in to",
        "email output with a password but no `username`",
        "`url` is not a setting of email outputs",
    ] {
        assert!(e.contains(expected), "{expected} not in {e}");
    }
    assert!(!e.contains("pw-s3cret"), "{e}");
}

#[test]
fn detectd_routes_take_a_kind_events_and_a_failure_threshold() {
    let text = r#"
[notify]
rule_failures = 5

[[outputs]]
name = "lines"
kind = "file"
path = "x"

[[routes]]
name = "ops"
kind = "detectd"
events = ["rule_failing", "gap"]
outputs = ["lines"]

[[routes]]
name = "alerts"
outputs = ["lines"]
"#;
    let s = load(text, &[]).unwrap();
    assert_eq!(s.rule_failures, 5);
    assert_eq!(s.routes[0].kind, RouteKind::Detectd);
    assert_eq!(s.routes[0].events, ["rule_failing", "gap"]);
    assert_eq!(s.routes[1].kind, RouteKind::Alert);
    assert_eq!(
        load(
            "[[outputs]]\nname = \"l\"\nkind = \"file\"\npath = \"x\"\n",
            &[]
        )
        .unwrap()
        .rule_failures,
        DEFAULT_RULE_FAILURES
    );

    let bad = r#"
[notify]
rule_failures = 0

[[outputs]]
name = "lines"
kind = "file"
path = "x"

[[routes]]
name = "ops"
kind = "ops"
outputs = ["lines"]

[[routes]]
name = "ev"
events = ["rule_slow"]
outputs = ["lines"]
"#;
    let e = load(bad, &[]).unwrap_err();
    for expected in [
        "invalid notify.rule_failures 0: expected 1 or more",
        "invalid kind \"ops\": expected \"alert\" or \"detectd\"",
        "invalid event \"rule_slow\": expected one of rule_failing",
        "`events` without `kind = \"detectd\"`",
    ] {
        assert!(e.contains(expected), "{expected} not in {e}");
    }
}
