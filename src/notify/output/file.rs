//! NDJSON lines for scripts: the message with its rendered title and text,
//! one line per message, appended and synced.
//!
//! A process killed in the middle of an append leaves the file ending in
//! part of a line. That message was never acknowledged, so it is sent
//! again; the next append first cuts the partial line off, so readers only
//! ever find whole lines once detectd is back.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
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
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    cut_partial_line(&mut f)?;
    f.write_all(&bytes)?;
    f.sync_data()
}

/// Truncates the file after its last newline if it does not end with one.
fn cut_partial_line(f: &mut File) -> std::io::Result<()> {
    const CHUNK: u64 = 64 * 1024;
    let len = f.metadata()?.len();
    let mut end = len;
    let mut buf = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        buf.resize((end - start) as usize, 0);
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep == len {
                return Ok(());
            }
            return truncate(f, keep);
        }
        end = start;
    }
    if len > 0 {
        truncate(f, 0)?;
    }
    Ok(())
}

fn truncate(f: &File, keep: u64) -> std::io::Result<()> {
    tracing::warn!(
        kept_bytes = keep,
        "the notification file ended in part of a line (a crash during an append): cut off, \
         its message is sent again"
    );
    f.set_len(keep)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_partial_last_line_is_cut_off_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out").join("n.ndjson");
        append(&path, &json!({"n": 1})).unwrap();
        // a crash in the middle of the second append
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"n": 2, "pad": "xxxx"#).unwrap();
        append(&path, &json!({"n": 2})).unwrap();
        append(&path, &json!({"n": 3})).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
        // a file holding nothing but part of a line, longer than one chunk
        std::fs::write(&path, "x".repeat(200_000)).unwrap();
        append(&path, &json!({"n": 4})).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":4}\n");
    }
}
