//! A timeless request (an indicator list, `hunt --indicators`) read as a
//! stream: the lines are in file order anyway (no sort), so a reader thread
//! hands them on a page at a time through a bounded channel, and a million
//! indicators never sit in memory at once — the join keeps only their keys.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{open, parse_line, read_failed, EventsInput};
use crate::source::files::{for_each_line, LineError};
use crate::source::select::{Selector, Verdict};
use crate::source::{Document, EventStream, FetchRequest, Mappings, SourceError};

/// Documents per page handed to the consumer.
const PAGE: usize = 1_000;

/// Streams the lines of `inputs` (`(name, input)`) that `request` selects.
pub(super) fn stream(
    inputs: Vec<(String, EventsInput)>,
    mappings: Arc<Mappings>,
    request: FetchRequest,
    now: DateTime<Utc>,
) -> Result<EventStream, SourceError> {
    // A request the selector refuses is an error now, not in the thread.
    Selector::new(&request, &mappings, now)?;
    let (tx, rx) = mpsc::channel(2);
    let stream_mappings = mappings.clone();
    std::thread::spawn(move || {
        let Ok(selector) = Selector::new(&request, &mappings, now) else {
            return;
        };
        let mut page: Vec<Document> = Vec::with_capacity(PAGE);
        for (name, input) in &inputs {
            let reader = match open(input) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(read_failed(input, e)));
                    return;
                }
            };
            let read = for_each_line::<()>(reader, &mut |line, _, bytes| {
                let Ok(source) = parse_line(bytes) else {
                    return Ok(());
                };
                if let Verdict::Selected(_) = selector.judge(name, &source) {
                    let source = selector.project(&source).unwrap_or(source);
                    page.push(Document {
                        index: name.clone(),
                        id: line.to_string(),
                        source,
                    });
                    if page.len() == PAGE {
                        let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE));
                        // the consumer is gone: stop reading
                        tx.blocking_send(Ok(full)).map_err(|_| ())?;
                    }
                }
                Ok(())
            });
            match read {
                Ok(()) => {}
                Err(LineError::Io(e)) => {
                    let _ = tx.blocking_send(Err(read_failed(input, e)));
                    return;
                }
                Err(LineError::Callback(())) => return,
            }
        }
        if !page.is_empty() && tx.blocking_send(Ok(page)).is_err() {
            return;
        }
        // the end marker
        let _ = tx.blocking_send(Ok(Vec::new()));
    });
    Ok(EventStream::from_channel(Vec::new(), rx).with_mappings(stream_mappings))
}

#[cfg(test)]
mod tests {
    use crate::source::ndjson::{EventsInput, NdjsonSource};
    use crate::source::{EventSource, FetchRequest, TimeRange};
    use chrono::{TimeZone, Utc};
    use serde_json::json;
    use std::sync::Arc;

    /// An indicator list: every selected line whatever its time (or none),
    /// in file order, projected, across pages, bad lines left out.
    #[tokio::test]
    async fn a_timeless_request_streams_every_selected_line_in_file_order() {
        let mut lines: Vec<String> = (0..2_500)
            .map(|i| {
                let mut d = json!({"ti": {"ip": format!("10.0.{}.{}", i / 256, i % 256)}, "x": i});
                if i % 2 == 0 {
                    d["@timestamp"] = json!("2001-01-01T00:00:00Z");
                }
                d.to_string()
            })
            .collect();
        lines.insert(3, "not json".into());
        let text = lines.join("\n") + "\n";
        let source = NdjsonSource::open(
            vec![EventsInput::Text {
                name: "ti.ndjson".into(),
                text: Arc::from(text.into_bytes()),
            }],
            |_| {},
        )
        .unwrap();
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let mut request =
            FetchRequest::new(vec!["anything".into()], TimeRange { from: at, to: at });
        request.timeless = true;
        request.source_fields = Some(vec!["ti.ip".into()]);
        let docs = source
            .fetch(request)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(docs.len(), 2_500);
        assert_eq!(docs[0].id, "1");
        // line 4 is the bad one: the next document is line 5
        assert_eq!(docs[3].id, "5");
        // projected as every projection is: dotted keys
        assert_eq!(docs[2_499].source, json!({"ti.ip": "10.0.9.195"}));
    }
}
