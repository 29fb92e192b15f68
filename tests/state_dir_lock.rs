//! The local state backend is for one instance (`src/coord/lock.rs`).

#[path = "common/process.rs"]
mod process;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use process::*;

fn detectd_bin() -> PathBuf {
    std::env::var_os("DETECTD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_detectd")))
}

/// The local state backend runs one instance: a second `detectd run` on
/// the same state directory stops at once, saying why (no cluster needed:
/// the first one holds the directory while it waits for the cluster).
#[test]
fn a_second_instance_on_a_local_state_directory_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let cfg = root.path().join("detectd.toml");
    std::fs::write(
        &cfg,
        format!(
            "rules = [{:?}]\n[elasticsearch]\nurls = [\"http://127.0.0.1:1\"]\n\
             [state]\nbackend = \"file\"\npath = {:?}\n",
            root.path().display().to_string(),
            state.display().to_string()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut first = Command::new(detectd_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // serving /healthz: past the lock
    until(Duration::from_secs(30), || get(port, "/healthz"))
        .expect("the first instance serves /healthz");
    let second = Command::new(detectd_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    signal(&first, libc::SIGTERM);
    first.wait().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another detectd instance is using the state directory")
            && stderr.contains("one instance only"),
        "{stderr}"
    );
}
