//! Alerts printed as NDJSON, one `{"_index", "_id", "_source"}` per line:
//! what `detectd hunt` writes to standard output, the documents `detectd
//! run` would index, in the order the runner writes them (per match: the
//! event alert, or the shell and then its building blocks).
//!
//! Like the cluster sink, an id already printed to an index is a duplicate
//! and is not printed again, and [`AlertSink::existing_ids`] answers from
//! what was printed, so the runner's dedup works within one process.
//! Nothing is read back from the writer.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use serde_json::json;

use super::{AlertSink, ItemFailure, SinkError, WriteReport};
use crate::alert::Alert;

#[derive(Debug)]
struct State<W> {
    out: W,
    /// index -> ids printed.
    printed: HashMap<String, HashSet<String>>,
    /// The first write error; after it nothing more is printed.
    error: Option<io::Error>,
}

/// Prints alerts to `W`.
#[derive(Debug)]
pub struct NdjsonSink<W> {
    state: Mutex<State<W>>,
}

impl<W: Write + Send> NdjsonSink<W> {
    pub fn new(out: W) -> NdjsonSink<W> {
        NdjsonSink {
            state: Mutex::new(State {
                out,
                printed: HashMap::new(),
                error: None,
            }),
        }
    }

    /// Alert documents printed so far.
    pub fn printed(&self) -> usize {
        self.lock().printed.values().map(HashSet::len).sum()
    }

    /// The error that stopped the output, if any (taken: asked once).
    pub fn take_error(&self) -> Option<io::Error> {
        self.lock().error.take()
    }

    /// Flushes the writer.
    pub fn flush(&self) -> io::Result<()> {
        self.lock().out.flush()
    }

    /// Flushes the writer and gives it back.
    pub fn into_inner(self) -> io::Result<W> {
        let mut state = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        state.out.flush()?;
        Ok(state.out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<W>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<W: Write + Send> AlertSink for NdjsonSink<W> {
    async fn write(&self, index: &str, alerts: &[Alert]) -> Result<WriteReport, SinkError> {
        let mut state = self.lock();
        let State {
            out,
            printed,
            error,
        } = &mut *state;
        let printed = printed.entry(index.to_string()).or_default();
        let mut report = WriteReport::default();
        for a in alerts {
            if printed.contains(&a.id) {
                report.duplicates.push(a.id.clone());
                continue;
            }
            // After a write error nothing more is printed: every later
            // alert fails with it (status 0: no answer, not a refusal).
            if error.is_none() {
                let line = json!({"_index": index, "_id": a.id, "_source": a.source});
                let written = serde_json::to_writer(&mut *out, &line)
                    .map_err(io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                match written {
                    Ok(()) => {
                        printed.insert(a.id.clone());
                        report.created.push(a.id.clone());
                        continue;
                    }
                    Err(e) => *error = Some(e),
                }
            }
            report.failed.push(ItemFailure {
                index: index.to_string(),
                id: a.id.clone(),
                status: 0,
                reason: format!(
                    "cannot write the alerts: {}",
                    error.as_ref().map(ToString::to_string).unwrap_or_default()
                ),
            });
        }
        Ok(report)
    }

    async fn existing_ids(
        &self,
        index: &str,
        ids: &[String],
    ) -> Result<HashSet<String>, SinkError> {
        let state = self.lock();
        Ok(state
            .printed
            .get(index)
            .map_or_else(HashSet::new, |printed| {
                ids.iter()
                    .filter(|id| printed.contains(*id))
                    .cloned()
                    .collect()
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn alert(id: &str) -> Alert {
        Alert {
            id: id.into(),
            source: json!({"kibana.alert.uuid": id}),
        }
    }

    #[tokio::test]
    async fn prints_each_id_once_and_knows_what_it_printed() {
        let sink = NdjsonSink::new(Vec::new());
        let r = sink
            .write("alerts", &[alert("a"), alert("b")])
            .await
            .unwrap();
        assert_eq!(r.created, ["a", "b"]);
        let r = sink
            .write("alerts", &[alert("b"), alert("c")])
            .await
            .unwrap();
        assert_eq!(
            (r.created, r.duplicates),
            (vec!["c".into()], vec!["b".into()])
        );
        let ids = ["a".to_string(), "x".to_string(), "c".to_string()];
        let existing = sink.existing_ids("alerts", &ids).await.unwrap();
        assert_eq!(existing, HashSet::from(["a".to_string(), "c".to_string()]));
        assert!(sink.existing_ids("other", &ids).await.unwrap().is_empty());
        assert_eq!(sink.printed(), 3);
        let out = String::from_utf8(sink.into_inner().unwrap()).unwrap();
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[2],
            json!({"_index": "alerts", "_id": "c", "_source": {"kibana.alert.uuid": "c"}})
        );
        assert_eq!(lines.len(), 3);
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_write_error_fails_the_alerts_and_is_kept_for_the_caller() {
        let sink = NdjsonSink::new(Broken);
        let r = sink
            .write("alerts", &[alert("a"), alert("b")])
            .await
            .unwrap();
        assert!(r.created.is_empty());
        assert_eq!(r.failed.len(), 2);
        assert_eq!(
            r.failed[1].to_string(),
            "alert b in alerts: status 0: cannot write the alerts: pipe closed"
        );
        assert!(
            !r.failed[0].is_invalid_document(),
            "retryable, not dead letters"
        );
        assert_eq!(
            sink.take_error().map(|e| e.kind()),
            Some(io::ErrorKind::BrokenPipe)
        );
        assert_eq!(sink.printed(), 0);
    }
}
