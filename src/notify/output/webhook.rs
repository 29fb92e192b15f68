//! A generic webhook: the `body` template's JSON, or the message itself
//! with its rendered `title` and `text`. An object body always carries
//! `idempotency_key`, so a receiver can drop a repeat whatever the
//! template says.

use serde_json::Value;

use super::DeliveryError;
use crate::notify::template::Compiled;

pub fn body(
    templates: &Compiled,
    message: &Value,
    key: &str,
    title: &str,
    text: &str,
) -> Result<Value, DeliveryError> {
    let mut body = match templates.body(message)? {
        Some(b) => b,
        None => {
            let mut m = message.clone();
            if let Some(o) = m.as_object_mut() {
                o.insert("title".into(), Value::String(title.to_string()));
                o.insert("text".into(), Value::String(text.to_string()));
            }
            m
        }
    };
    if let Some(o) = body.as_object_mut() {
        o.entry("idempotency_key")
            .or_insert_with(|| Value::String(key.to_string()));
    }
    Ok(body)
}
