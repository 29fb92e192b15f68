//! Outputs: what a message becomes for each kind (a pure function per
//! kind, so body shapes are tested without a network), and sending it.
//!
//! Every request carries the message's idempotency key: an
//! `Idempotency-Key` header on HTTP kinds, and in the body where the
//! receiver has a place for it (PagerDuty's `dedup_key`, a webhook's
//! `idempotency_key`, the file line's `idempotency_key`). Errors never show
//! a URL or a header value: either may hold a token.

pub mod email;
pub mod file;
pub mod pagerduty;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::config::{OutputKind, OutputSettings};
use super::template::{Compiled, TemplateError};
use crate::config::cluster::Secret;

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error("the message is not valid JSON: {0}")]
    Message(String),
    #[error("{method} answered {status}: expected a 2xx status")]
    Status { method: String, status: u16 },
    #[error("{method} failed: {reason}")]
    Transport { method: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("appending to {path}: {reason}")]
    File { path: String, reason: String },
    #[error("SMTP: {reason}")]
    Smtp { permanent: bool, reason: String },
}

impl DeliveryError {
    /// Whether another attempt cannot succeed: the receiver refused the
    /// request itself (a 4xx other than 408 and 429), or the template
    /// cannot render this message.
    pub fn is_permanent(&self) -> bool {
        match self {
            DeliveryError::Status { status, .. } => {
                (400..500).contains(status) && *status != 408 && *status != 429
            }
            DeliveryError::Template(_) | DeliveryError::Message(_) => true,
            // a 5xx reply: the server refused the mail itself
            DeliveryError::Smtp { permanent, .. } => *permanent,
            _ => false,
        }
    }
}

/// What one message becomes for one output.
#[derive(Debug, PartialEq)]
pub enum Request {
    Http {
        method: String,
        url: Secret,
        headers: Vec<(String, Secret)>,
        body: Value,
    },
    /// One NDJSON line.
    Line { path: PathBuf, line: Value },
    /// One mail: subject, plain text, `Message-ID` from the key.
    Mail {
        subject: String,
        text: String,
        key: String,
    },
}

/// A configured output, its templates compiled.
#[derive(Debug)]
pub struct Output {
    pub name: String,
    kind: OutputKind,
    templates: Compiled,
    client: reqwest::Client,
    timeout: Duration,
    /// Appends of one file output, one at a time (lines never interleave).
    file: tokio::sync::Mutex<()>,
}

impl Output {
    /// The output of `settings`; its templates were checked at load, so
    /// an error here is a bug or a changed template.
    pub fn new(settings: &OutputSettings, timeout: Duration) -> Result<Output, DeliveryError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("detectd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DeliveryError::Transport {
                method: "building the HTTP client".into(),
                reason: e.without_url().to_string(),
            })?;
        Ok(Output {
            name: settings.name.clone(),
            kind: settings.kind.clone(),
            templates: Compiled::new(&settings.templates)?,
            client,
            timeout,
            file: tokio::sync::Mutex::new(()),
        })
    }

    pub fn kind(&self) -> &OutputKind {
        &self.kind
    }

    /// The request of `message` (its JSON text as stored in the outbox).
    pub fn request(&self, message: &Value) -> Result<Request, DeliveryError> {
        let key = message
            .get("idempotency_key")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (title, text) = self.templates.title_text(message)?;
        let key_header = || vec![("Idempotency-Key".to_string(), Secret::new(key.clone()))];
        Ok(match &self.kind {
            OutputKind::Webhook {
                url,
                method,
                headers,
            } => {
                let mut all = key_header();
                all.extend(headers.iter().cloned());
                Request::Http {
                    method: method.clone(),
                    url: url.clone(),
                    headers: all,
                    body: webhook::body(&self.templates, message, &key, &title, &text)?,
                }
            }
            OutputKind::Slack { url } => Request::Http {
                method: "POST".into(),
                url: url.clone(),
                headers: key_header(),
                body: slack::body(message, &title, &text),
            },
            OutputKind::Teams { url } => Request::Http {
                method: "POST".into(),
                url: url.clone(),
                headers: key_header(),
                body: teams::body(message, &title, &text),
            },
            OutputKind::PagerDuty { url, routing_key } => Request::Http {
                method: "POST".into(),
                url: Secret::new(url.clone()),
                headers: key_header(),
                body: pagerduty::body(message, &key, routing_key, &title, &text),
            },
            OutputKind::File { path } => Request::Line {
                path: path.clone(),
                line: file::line(message, &key, &title, &text),
            },
            OutputKind::Email(_) => Request::Mail {
                subject: title,
                text,
                key,
            },
        })
    }

    /// Sends `message` once.
    pub async fn send(&self, message: &Value) -> Result<(), DeliveryError> {
        match self.request(message)? {
            Request::Http {
                method,
                url,
                headers,
                body,
            } => {
                let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
                    DeliveryError::Transport {
                        method: method.clone(),
                        reason: "not an HTTP method".into(),
                    }
                })?;
                let mut req = self.client.request(m, url.expose()).json(&body);
                for (k, v) in &headers {
                    req = req.header(k.as_str(), v.expose());
                }
                let sent = tokio::time::timeout(self.timeout, req.send()).await;
                let response = match sent {
                    Err(_) => return Err(DeliveryError::Timeout(self.timeout)),
                    Ok(Err(e)) if e.is_timeout() => {
                        return Err(DeliveryError::Timeout(self.timeout))
                    }
                    Ok(Err(e)) => {
                        return Err(DeliveryError::Transport {
                            method,
                            reason: error_chain(&e.without_url()),
                        })
                    }
                    Ok(Ok(r)) => r,
                };
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    Ok(())
                } else {
                    // The body is left out: a receiver may echo a key.
                    Err(DeliveryError::Status { method, status })
                }
            }
            Request::Mail { subject, text, key } => {
                let OutputKind::Email(settings) = &self.kind else {
                    return Err(DeliveryError::Message(
                        "a mail for an output that sends none".into(),
                    ));
                };
                let mail = email::mail(settings, &key, &subject, &text)?;
                email::send(settings, mail, self.timeout).await
            }
            Request::Line { path, line } => {
                let _guard = self.file.lock().await;
                file::append(&path, &line).map_err(|e| DeliveryError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// An error and its causes, `: `-joined (reqwest's top line alone says
/// only "error sending request").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
