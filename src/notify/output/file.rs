//! NDJSON lines for scripts: the message with its rendered title and text,
//! one line per message, appended and synced.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use serde_json::Value;

pub fn line(message: &Value, key: &str, title: &str, text: &str) -> Value {
    let mut m = message.clone();
    if let Some(o) = m.as_object_mut() {
        o.insert("title".into(), Value::String(title.to_string()));
        o.insert("text".into(), Value::String(text.to_string()));
        o.insert("idempotency_key".into(), Value::String(key.to_string()));
    }
    m
}

/// Appends `line` and syncs it: a message counts as sent only once it is
/// on disk.
pub fn append(path: &Path, line: &Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(line)?;
    bytes.push(b'\n');
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(&bytes)?;
    f.sync_data()
}
