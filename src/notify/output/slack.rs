//! Slack incoming webhooks: a Block Kit message (header, the text as
//! mrkdwn, the severity and host as fields, a button to Kibana), with the
//! plain `text` Slack shows in notifications and where blocks are not
//! rendered.

use serde_json::{json, Value};

/// Slack refuses a header over 150 characters and a section over 3000.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn body(message: &Value, title: &str, text: &str) -> Value {
    let alert = &message["alert"];
    let field = |label: &str, v: &Value| {
        let shown = match v {
            Value::String(s) => s.clone(),
            Value::Null => "-".to_string(),
            other => other.to_string(),
        };
        json!({"type": "mrkdwn", "text": format!("*{label}*\n{shown}")})
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(title, HEADER_MAX)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_MAX)}}),
        json!({"type": "section", "fields": [
            field("Severity", &alert["severity"]),
            field("Risk score", &alert["risk_score"]),
            field("Host", &alert["host"]),
            field("User", &alert["user"]),
        ]}),
    ];
    if let Some(url) = message["kibana_url"].as_str() {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button",
            "text": {"type": "plain_text", "text": "Open in Kibana"},
            "url": url,
        }]}));
    }
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": format!("detectd · {}", message["idempotency_key"].as_str().unwrap_or(""))}
    ]}));
    json!({ "text": format!("{title}\n{text}"), "blocks": blocks })
}
