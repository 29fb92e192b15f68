//! Helpers for the tests that drive the real `detectd` binary against a
//! cluster (`ELASTICSEARCH_URL`): whether there is one, free ports, polling,
//! signals, the daemon's HTTP endpoints and its JSON log lines.
//! Included with `#[path = "common/process.rs"] mod process;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// The cluster to test against; `None` after a notice when none is set,
/// a panic under `CI=true` (CI must not skip these tests).
pub fn cluster_url() -> Option<String> {
    match std::env::var("ELASTICSEARCH_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("ELASTICSEARCH_URL is not set and CI=true: expected a cluster")
        }
        _ => {
            eprintln!(
                "skipped: ELASTICSEARCH_URL is not set (scripts/test.sh starts osmem-server)"
            );
            None
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over loopback: status code and body, or `None` if nothing
/// answers (yet).
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_string()))
}

/// Polls `f` every 50 ms until it gives `Some`; gives up after `limit`.
pub fn until<T>(limit: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    until_every(limit, Duration::from_millis(50), f)
}

/// Polls `f` every `every` until it gives `Some`; gives up after `limit`.
pub fn until_every<T>(
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(every);
    }
    None
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0);
}

/// The JSON lines of a log file; anything else (a killed process may leave
/// half a line at the end) is skipped.
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    json_lines_of(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The JSON lines of a captured output.
pub fn json_lines_of(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A Kibana space of one test: its alerts go to `.alerts-security.alerts-<id>`,
/// which detectd's first write creates as Kibana's layout.
pub struct AlertsSpace {
    pub id: String,
}

impl AlertsSpace {
    pub fn new(id: impl Into<String>) -> AlertsSpace {
        AlertsSpace { id: id.into() }
    }

    /// Where the alerts are read (the alias).
    pub fn alias(&self) -> String {
        format!(".alerts-security.alerts-{}", self.id)
    }

    /// What to `DELETE` afterwards: the backing index (by name: wildcards
    /// skip hidden indices) and the space's index template.
    pub fn cleanup_paths(&self) -> [String; 2] {
        [
            format!("/.internal.alerts-security.alerts-{}-000001", self.id),
            format!(
                "/_index_template/.alerts-security.alerts-{}-index-template",
                self.id
            ),
        ]
    }
}
