//! Message templates: Jinja syntax through `minijinja`, over the message
//! of `message` (`rule`, `alert`, `alerts`, `count`, `key`, `kibana_url`).
//!
//! Each output has a `title` and a `text` (defaults below, good for every
//! kind), and a webhook may have a whole `body`, which must render to JSON.
//! Missing fields render empty (a rule without `user.name` is common), but
//! syntax errors and unknown filters are errors, found by [`check`] at load.

use std::fmt;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use super::config::OutputKind;
use super::message;

/// The default one-line title: the rule, and how many alerts a summary has.
pub const DEFAULT_TITLE: &str = "{{ rule.name }}{% if count > 1 %} ({{ count }} alerts){% endif %}";

/// PagerDuty's default summary: an incident list shows the host at once.
pub const DEFAULT_PAGERDUTY_TITLE: &str =
    "{{ rule.name }}{% if alert.host %} on {{ alert.host }}{% endif %}\
{% if count > 1 %} ({{ count }} alerts){% endif %}";

/// Email's default subject: tagged and with the severity, for mail filters.
pub const DEFAULT_EMAIL_TITLE: &str = "[detectd] {{ alert.severity }}: {{ rule.name }}\
{% if count > 1 %} ({{ count }} alerts){% endif %}";

/// The default text: each alert's reason, severity, host and user, the
/// events of a sequence one per line, and the Kibana link when known.
pub const DEFAULT_TEXT: &str = "\
{% for a in alerts %}{{ a.reason }}
Severity {{ a.severity }}, risk score {{ a.risk_score }}\
{% if a.host %}, host {{ a.host }}{% endif %}{% if a.user %}, user {{ a.user }}{% endif %}
{% if a.events|length > 1 %}{% for e in a.events %}  {{ loop.index }}. {{ e.timestamp }} \
{{ e.category }} {{ e.action }}{% if e.process %} {{ e.process }}{% endif %}\
{% if e.host %} on {{ e.host }}{% endif %}
{% endfor %}{% endif %}{% if a.url %}{{ a.url }}
{% endif %}{% endfor %}{% if count > alerts|length %}and {{ count - alerts|length }} more
{% endif %}";

/// The template sources of one output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Templates {
    pub title: String,
    pub text: String,
    /// `webhook` only: the whole request body (JSON). `None`: the message
    /// itself as JSON, with the rendered title and text.
    pub body: Option<String>,
}

impl Templates {
    /// The sources written, with the kind's defaults for the rest.
    pub fn for_kind(
        kind: &OutputKind,
        title: Option<String>,
        text: Option<String>,
        body: Option<String>,
    ) -> Templates {
        let default_title = match kind {
            OutputKind::PagerDuty { .. } => DEFAULT_PAGERDUTY_TITLE,
            OutputKind::Email(_) => DEFAULT_EMAIL_TITLE,
            _ => DEFAULT_TITLE,
        };
        Templates {
            title: title.unwrap_or_else(|| default_title.to_string()),
            text: text.unwrap_or_else(|| DEFAULT_TEXT.to_string()),
            body,
        }
    }
}

/// A template that does not compile or render.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct TemplateError {
    /// `title`, `text` or `body`.
    pub template: &'static str,
    /// Line in the template, from 1.
    pub line: usize,
    pub detail: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "template `{}`, line {}: {}",
            self.template, self.line, self.detail
        )
    }
}

/// An output's templates, compiled once.
#[derive(Debug)]
pub struct Compiled {
    env: Environment<'static>,
    has_body: bool,
}

fn error(template: &'static str, e: &minijinja::Error) -> TemplateError {
    // The kind's text alone: minijinja's Display adds the template name
    // and line, which the diagnostic already shows.
    let mut detail = e.kind().to_string();
    if let Some(d) = e.detail() {
        detail = format!("{detail}: {d}");
    }
    TemplateError {
        template,
        line: e.line().unwrap_or(1),
        detail,
    }
}

impl Compiled {
    pub fn new(t: &Templates) -> Result<Compiled, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_keep_trailing_newline(true);
        env.add_template_owned("title", t.title.clone())
            .map_err(|e| error("title", &e))?;
        env.add_template_owned("text", t.text.clone())
            .map_err(|e| error("text", &e))?;
        if let Some(body) = &t.body {
            env.add_template_owned("body", body.clone())
                .map_err(|e| error("body", &e))?;
        }
        Ok(Compiled {
            env,
            has_body: t.body.is_some(),
        })
    }

    pub fn render(&self, name: &'static str, message: &Value) -> Result<String, TemplateError> {
        let t = self.env.get_template(name).map_err(|e| error(name, &e))?;
        t.render(message).map_err(|e| error(name, &e))
    }

    /// The title and text, trimmed.
    pub fn title_text(&self, message: &Value) -> Result<(String, String), TemplateError> {
        Ok((
            self.render("title", message)?.trim().to_string(),
            self.render("text", message)?.trim().to_string(),
        ))
    }

    /// The webhook body template's JSON, `None` without one.
    pub fn body(&self, message: &Value) -> Result<Option<Value>, TemplateError> {
        if !self.has_body {
            return Ok(None);
        }
        let text = self.render("body", message)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| TemplateError {
                template: "body",
                line: e.line(),
                detail: format!("expected the body to render to JSON, found an error: {e}"),
            })
    }
}

/// Compiles the templates and renders them against the sample message, so
/// every error a template can have with well-formed data shows at load.
pub fn check(t: &Templates, _kind: &OutputKind) -> Result<(), TemplateError> {
    let compiled = Compiled::new(t)?;
    let sample = message::sample("check");
    compiled.title_text(&sample)?;
    compiled.body(&sample)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cluster::Secret;

    fn slack() -> OutputKind {
        OutputKind::Slack {
            url: Secret::new("https://hooks.example/x"),
        }
    }

    #[test]
    fn the_defaults_show_the_reason_the_host_and_each_event_of_a_sequence() {
        let c = Compiled::new(&Templates::for_kind(&slack(), None, None, None)).unwrap();
        let (title, text) = c.title_text(&message::sample("k")).unwrap();
        assert_eq!(title, "detectd sample rule");
        assert!(text.contains("sample reason"), "{text}");
        assert!(text.contains("host ws-1"), "{text}");
        assert!(
            text.contains("1. 2024-05-01T09:55:00Z library load powershell.exe"),
            "{text}"
        );
        assert!(text.contains("2. 2024-05-01T09:55:02Z network"), "{text}");
    }

    #[test]
    fn a_syntax_error_names_its_template_and_line() {
        let t = Templates::for_kind(&slack(), None, Some("fine\n{{ rule.name\n".into()), None);
        let e = check(&t, &slack()).unwrap_err();
        assert_eq!((e.template, e.line), ("text", 2), "{e}");
        assert!(
            e.to_string()
                .starts_with("template `text`, line 2: syntax error"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_filter_is_found_at_check_not_at_the_first_alert() {
        let t = Templates::for_kind(&slack(), Some("{{ rule.name|shout }}".into()), None, None);
        let e = check(&t, &slack()).unwrap_err();
        assert_eq!(e.template, "title");
        assert!(e.detail.contains("unknown filter"), "{e}");
    }

    #[test]
    fn a_body_must_render_to_json() {
        let hook = OutputKind::File { path: "x".into() };
        let bad = Templates::for_kind(
            &hook,
            None,
            None,
            Some("{\"rule\": {{ rule.name }}}".into()),
        );
        let e = check(&bad, &hook).unwrap_err();
        assert_eq!(e.template, "body");
        assert!(
            e.detail.contains("expected the body to render to JSON"),
            "{e}"
        );
        let good = Templates::for_kind(
            &hook,
            None,
            None,
            Some("{\"rule\": {{ rule.name|tojson }}, \"n\": {{ count }}}".into()),
        );
        let c = Compiled::new(&good).unwrap();
        assert_eq!(
            c.body(&message::sample("k")).unwrap(),
            Some(serde_json::json!({"rule": "detectd sample rule", "n": 1}))
        );
    }

    #[test]
    fn pagerduty_and_email_have_titles_of_their_own() {
        let sample = message::sample("k");
        let title = |kind: &OutputKind| {
            Compiled::new(&Templates::for_kind(kind, None, None, None))
                .unwrap()
                .title_text(&sample)
                .unwrap()
                .0
        };
        let pd = OutputKind::PagerDuty {
            url: "https://x".into(),
            routing_key: Secret::new("k"),
        };
        assert_eq!(title(&pd), "detectd sample rule on ws-1");
        let email = OutputKind::Email(crate::notify::config::EmailSettings {
            host: "h".into(),
            port: 25,
            tls: crate::notify::config::SmtpTls::None,
            username: None,
            password: None,
            from: "a@b.c".into(),
            to: vec!["d@e.f".into()],
        });
        assert_eq!(title(&email), "[detectd] high: detectd sample rule");
        assert_eq!(title(&slack()), "detectd sample rule");
    }
}
