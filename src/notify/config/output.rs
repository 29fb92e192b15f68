//! Validating one `[[outputs]]` table: its kind's settings, its secrets
//! (inline, `*_env` or `*_file`) and its templates, checked at load.

use std::path::PathBuf;

use toml::Spanned;

use super::{
    name_of, sp, EmailSettings, OutputKind, OutputSettings, RawOutput, SmtpTls, PAGERDUTY_URL,
};
use crate::config::cluster::Secret;
use crate::config::ConfigError;
use crate::eql::Span;
use crate::notify::template::{self, TemplateError, Templates};

/// A secret given inline, from an environment variable or from a file:
/// exactly one of the three.
fn secret(
    what: &str,
    inline: Option<Spanned<String>>,
    from_env: Option<Spanned<String>>,
    from_file: Option<Spanned<PathBuf>>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
    missing_span: Option<Span>,
) -> Option<Secret> {
    let given = usize::from(inline.is_some())
        + usize::from(from_env.is_some())
        + usize::from(from_file.is_some());
    if given > 1 {
        let span = from_env
            .as_ref()
            .and_then(sp)
            .or(from_file.as_ref().and_then(sp));
        errors.push(ConfigError {
            span,
            message: format!("{what}, {what}_env and {what}_file: expected only one of them"),
        });
        return None;
    }
    if let Some(v) = inline {
        return Some(Secret::new(v.into_inner()));
    }
    if let Some(var) = from_env {
        return match env(var.get_ref()) {
            Some(value) if !value.trim().is_empty() => Some(Secret::new(value.trim())),
            _ => {
                errors.push(ConfigError {
                    span: sp(&var),
                    message: format!(
                        "{what}_env: expected the environment variable {} to be set, found it unset or empty",
                        var.get_ref()
                    ),
                });
                None
            }
        };
    }
    if let Some(path) = from_file {
        return match std::fs::read_to_string(path.get_ref()) {
            Ok(value) if !value.trim().is_empty() => Some(Secret::new(value.trim())),
            Ok(_) => {
                errors.push(ConfigError {
                    span: sp(&path),
                    message: format!(
                        "{what}_file {}: expected the secret, found an empty file",
                        path.get_ref().display()
                    ),
                });
                None
            }
            Err(e) => {
                errors.push(ConfigError {
                    span: sp(&path),
                    message: format!(
                        "{what}_file {}: cannot read it: {e}",
                        path.get_ref().display()
                    ),
                });
                None
            }
        };
    }
    errors.push(ConfigError {
        span: missing_span,
        message: format!("expected {what}, {what}_env or {what}_file"),
    });
    None
}

fn url_secret(
    raw: &mut RawOutput,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
    span: Option<Span>,
) -> Option<Secret> {
    let url_span = raw.url.as_ref().and_then(sp);
    let url = secret(
        "url",
        raw.url.take(),
        raw.url_env.take(),
        raw.url_file.take(),
        env,
        errors,
        span,
    )?;
    let text = url.expose();
    if text.starts_with("http://") || text.starts_with("https://") {
        Some(url)
    } else {
        // Never the value: it may carry a token.
        errors.push(ConfigError {
            span: url_span.or(span),
            message: "invalid url: expected an http:// or https:// url".to_string(),
        });
        None
    }
}

/// Rejects keys the kind does not take, so a misplaced key is not
/// silently ignored.
fn unused(raw: &RawOutput, kind: &str, errors: &mut Vec<ConfigError>) {
    let keys: [(&str, Option<Span>); 9] = [
        ("method", raw.method.as_ref().and_then(sp)),
        ("headers", raw.headers.as_ref().and_then(sp)),
        ("headers_env", raw.headers_env.as_ref().and_then(sp)),
        ("routing_key", raw.routing_key.as_ref().and_then(sp)),
        ("routing_key_env", raw.routing_key_env.as_ref().and_then(sp)),
        (
            "routing_key_file",
            raw.routing_key_file.as_ref().and_then(sp),
        ),
        ("path", raw.path.as_ref().and_then(sp)),
        ("url", raw.url.as_ref().and_then(sp)),
        ("body", raw.body.as_ref().and_then(sp)),
    ];
    for (key, span) in keys {
        if span.is_some() {
            errors.push(ConfigError {
                span,
                message: format!("`{key}` is not a setting of {kind} outputs"),
            });
        }
    }
    for (key, span) in [
        ("url_env", raw.url_env.as_ref().and_then(sp)),
        ("url_file", raw.url_file.as_ref().and_then(sp)),
        ("host", raw.host.as_ref().and_then(sp)),
        ("port", raw.port.as_ref().and_then(sp)),
        ("tls", raw.tls.as_ref().and_then(sp)),
        ("username", raw.username.as_ref().and_then(sp)),
        ("password", raw.password.as_ref().and_then(sp)),
        ("password_env", raw.password_env.as_ref().and_then(sp)),
        ("password_file", raw.password_file.as_ref().and_then(sp)),
        ("from", raw.from.as_ref().and_then(sp)),
        ("to", raw.to.as_ref().and_then(sp)),
    ] {
        if span.is_some() {
            errors.push(ConfigError {
                span,
                message: format!("`{key}` is not a setting of {kind} outputs"),
            });
        }
    }
}

pub(super) fn output(
    mut raw: RawOutput,
    text: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<OutputSettings> {
    let kind_span = raw.kind.as_ref().and_then(sp);
    let table_span = raw.name.as_ref().and_then(sp).or(kind_span);
    let name = name_of(raw.name.take(), "output", kind_span, errors);
    let Some(kind_text) = raw.kind.take() else {
        errors.push(ConfigError {
            span: table_span,
            message: "output without `kind`: expected \"webhook\", \"slack\", \"teams\", \"pagerduty\", \"email\" or \"file\"".into(),
        });
        return None;
    };
    let kind = match kind_text.get_ref().as_str() {
        "webhook" => {
            let url = url_secret(&mut raw, env, errors, kind_span);
            let method = match raw.method.take() {
                None => "POST".to_string(),
                Some(m) => {
                    let upper = m.get_ref().to_ascii_uppercase();
                    if matches!(upper.as_str(), "POST" | "PUT" | "PATCH") {
                        upper
                    } else {
                        errors.push(ConfigError {
                            span: sp(&m),
                            message: format!(
                                "invalid method {:?}: expected \"POST\", \"PUT\" or \"PATCH\"",
                                m.get_ref()
                            ),
                        });
                        "POST".into()
                    }
                }
            };
            let mut headers = Vec::new();
            if let Some(h) = raw.headers.take() {
                let span = sp(&h);
                for (k, v) in h.into_inner() {
                    if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        errors.push(ConfigError {
                            span,
                            message: format!("invalid header name {k:?}: expected a token"),
                        });
                    }
                    headers.push((k, Secret::new(v)));
                }
            }
            if let Some(h) = raw.headers_env.take() {
                let span = sp(&h);
                for (k, var) in h.into_inner() {
                    match env(&var) {
                        Some(v) if !v.is_empty() => headers.push((k, Secret::new(v))),
                        _ => errors.push(ConfigError {
                            span,
                            message: format!(
                                "headers_env.{k}: expected the environment variable {var} to be set, found it unset or empty"
                            ),
                        }),
                    }
                }
            }
            unused(&raw, "webhook", errors);
            OutputKind::Webhook {
                url: url?,
                method,
                headers,
            }
        }
        "slack" | "teams" => {
            let url = url_secret(&mut raw, env, errors, kind_span);
            unused(&raw, kind_text.get_ref(), errors);
            if kind_text.get_ref() == "slack" {
                OutputKind::Slack { url: url? }
            } else {
                OutputKind::Teams { url: url? }
            }
        }
        "pagerduty" => {
            let key = secret(
                "routing_key",
                raw.routing_key.take(),
                raw.routing_key_env.take(),
                raw.routing_key_file.take(),
                env,
                errors,
                kind_span,
            );
            // The URL is PagerDuty's unless set (a proxy, a test receiver).
            let url = match raw.url.take() {
                None => PAGERDUTY_URL.to_string(),
                Some(u)
                    if u.get_ref().starts_with("http://")
                        || u.get_ref().starts_with("https://") =>
                {
                    u.into_inner()
                }
                Some(u) => {
                    errors.push(ConfigError {
                        span: sp(&u),
                        message: format!(
                            "invalid url {:?}: expected an http:// or https:// url",
                            u.get_ref()
                        ),
                    });
                    PAGERDUTY_URL.into()
                }
            };
            unused(&raw, "pagerduty", errors);
            OutputKind::PagerDuty {
                url,
                routing_key: key?,
            }
        }
        "file" => {
            let Some(path) = raw.path.take() else {
                errors.push(ConfigError {
                    span: kind_span,
                    message: "file output without `path`: expected the NDJSON file to append to"
                        .into(),
                });
                return None;
            };
            unused(&raw, "file", errors);
            OutputKind::File {
                path: path.into_inner(),
            }
        }
        "email" => {
            let email = email(&mut raw, env, errors, kind_span);
            unused(&raw, "email", errors);
            OutputKind::Email(email?)
        }
        other => {
            errors.push(ConfigError {
                span: kind_span,
                message: format!(
                    "invalid output kind {other:?}: expected \"webhook\", \"slack\", \"teams\", \"pagerduty\", \"email\" or \"file\""
                ),
            });
            return None;
        }
    };
    let templates = Templates::for_kind(
        &kind,
        raw.title.as_ref().map(|t| t.get_ref().clone()),
        raw.text.as_ref().map(|t| t.get_ref().clone()),
        raw.body.as_ref().map(|t| t.get_ref().clone()),
    );
    // Compiled and rendered once against a sample: a syntax error, an
    // unknown filter or a body that is not JSON shows now, with its place.
    if let Err(e) = template::check(&templates, &kind) {
        let value = match e.template {
            "title" => raw.title.as_ref(),
            "text" => raw.text.as_ref(),
            _ => raw.body.as_ref(),
        };
        errors.push(template_error(&e, value, text, kind_span));
    }
    Some(OutputSettings {
        name: name?,
        kind,
        templates,
    })
}

/// A template's error at its line in the config file: the line of a
/// multi-line string (`'''` or `"""`) the error names, else the value.
fn template_error(
    e: &TemplateError,
    value: Option<&Spanned<String>>,
    text: Option<&str>,
    fallback: Option<Span>,
) -> ConfigError {
    let span = match (value, text) {
        (Some(v), Some(text)) => {
            let r = v.span();
            let raw = text.get(r.start..r.end).unwrap_or("");
            let mut start = r.start;
            if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
                start += 3;
                // TOML drops a newline right after the opening quotes.
                if text[start..].starts_with("\r\n") {
                    start += 2;
                } else if text[start..].starts_with('\n') {
                    start += 1;
                }
                for _ in 1..e.line.max(1) {
                    match text[start..r.end].find('\n') {
                        Some(i) => start += i + 1,
                        None => break,
                    }
                }
                let end = text[start..r.end].find('\n').map_or(r.end, |i| start + i);
                Some(Span::new(start, end.max(start + 1)))
            } else {
                Some(Span::new(r.start, r.end))
            }
        }
        (Some(v), None) => sp(v),
        (None, _) => fallback,
    };
    ConfigError {
        span,
        message: format!("{e}"),
    }
}

/// An email output's server, login and addresses.
fn email(
    raw: &mut RawOutput,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
    kind_span: Option<Span>,
) -> Option<EmailSettings> {
    let mut ok = true;
    let mut fail = |span: Option<Span>, message: String| {
        errors.push(ConfigError { span, message });
        ok = false;
    };
    let host = match raw.host.take() {
        Some(h) if !h.get_ref().trim().is_empty() => h.into_inner(),
        Some(h) => {
            fail(
                sp(&h),
                "invalid host: expected the SMTP server's name".into(),
            );
            String::new()
        }
        None => {
            fail(
                kind_span,
                "email output without `host`: expected the SMTP server's name".into(),
            );
            String::new()
        }
    };
    let tls = match raw.tls.take() {
        None => SmtpTls::StartTls,
        Some(t) => match t.get_ref().as_str() {
            "starttls" => SmtpTls::StartTls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                fail(
                    sp(&t),
                    format!("invalid tls {other:?}: expected \"starttls\", \"tls\" or \"none\""),
                );
                SmtpTls::StartTls
            }
        },
    };
    let port = match raw.port.take() {
        None => match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        },
        Some(p) => match u16::try_from(*p.get_ref()) {
            Ok(v) if v > 0 => v,
            _ => {
                fail(
                    sp(&p),
                    format!("invalid port {}: expected 1 to 65535", p.get_ref()),
                );
                0
            }
        },
    };
    let mailbox = |text: &str| text.parse::<lettre::message::Mailbox>().is_ok();
    let from = match raw.from.take() {
        Some(f) if mailbox(f.get_ref()) => f.into_inner(),
        Some(f) => {
            fail(
                sp(&f),
                format!(
                    "invalid from {:?}: expected an address like \"SOC <soc@example.com>\"",
                    f.get_ref()
                ),
            );
            String::new()
        }
        None => {
            fail(
                kind_span,
                "email output without `from`: expected the sender's address".into(),
            );
            String::new()
        }
    };
    let to = match raw.to.take() {
        Some(t) if !t.get_ref().is_empty() => {
            for a in t.get_ref().iter().filter(|a| !mailbox(a)) {
                fail(
                    sp(&t),
                    format!(
                        "invalid address {a:?} in to: expected an address like \"soc@example.com\""
                    ),
                );
            }
            t.into_inner()
        }
        _ => {
            fail(
                kind_span,
                "email output without `to`: expected at least one recipient".into(),
            );
            Vec::new()
        }
    };
    let username = raw.username.take().map(Spanned::into_inner);
    let has_password =
        raw.password.is_some() || raw.password_env.is_some() || raw.password_file.is_some();
    let password = if username.is_some() || has_password {
        let p = secret(
            "password",
            raw.password.take(),
            raw.password_env.take(),
            raw.password_file.take(),
            env,
            errors,
            kind_span,
        );
        if p.is_none() {
            ok = false;
        }
        if username.is_none() {
            errors.push(ConfigError {
                span: kind_span,
                message: "email output with a password but no `username`: expected both".into(),
            });
            ok = false;
        }
        p
    } else {
        None
    };
    ok.then_some(EmailSettings {
        host,
        port,
        tls,
        username,
        password,
        from,
        to,
    })
}
