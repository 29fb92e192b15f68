//! Microsoft Teams through a Workflows webhook ("When a Teams webhook
//! request is received"): a message with one Adaptive Card attachment, the
//! shape the "Post card in a chat or channel" action takes.

use serde_json::{json, Value};

pub fn body(message: &Value, title: &str, text: &str) -> Value {
    let alert = &message["alert"];
    let fact = |label: &str, v: &Value| {
        let shown = match v {
            Value::String(s) => s.clone(),
            Value::Null => "-".to_string(),
            other => other.to_string(),
        };
        json!({"title": label, "value": shown})
    };
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true},
            {"type": "FactSet", "facts": [
                fact("Severity", &alert["severity"]),
                fact("Risk score", &alert["risk_score"]),
                fact("Host", &alert["host"]),
                fact("User", &alert["user"]),
            ]},
            {"type": "TextBlock", "text": text, "wrap": true},
            {"type": "TextBlock", "text": format!("detectd · {}", message["idempotency_key"].as_str().unwrap_or("")),
             "isSubtle": true, "size": "Small", "wrap": true},
        ],
    });
    if let Some(url) = message["kibana_url"].as_str() {
        card["actions"] =
            json!([{"type": "Action.OpenUrl", "title": "Open in Kibana", "url": url}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}
