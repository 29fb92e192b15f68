//! `bash scripts/demo.sh`, the README's first command, run from the
//! repository as a user would (with the test binary instead of a release
//! build): exit 0, exactly one founding-rule alert group printed (a shell
//! and its two building blocks; the look-alike raises none), and no process
//! it started left behind — also when it fails, and on Ctrl-C.
//!
//! The demo installs osmem-server with pip when it is missing; outside CI
//! the test skips with a notice when it is not installed (no network
//! needed), under `CI=true` it runs regardless.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn demo(args: &[&str], detectd: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("scripts/demo.sh")
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .env("DETECTD", detectd)
        // the demo must not use a cluster the environment points at
        .env_remove("ELASTICSEARCH_URL");
    cmd
}

/// Whether osmem-server can be started without installing it; panics in
/// CI, where the demo must run.
fn can_run() -> bool {
    let installed = Command::new("python3")
        .args(["-c", "import osmem_server"])
        .output()
        .is_ok_and(|o| o.status.success());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !installed && !ci {
        eprintln!("notice: osmem-server is not installed (scripts/test.sh installs it); skipping");
    }
    installed || ci
}

/// The pids the demo says it started (`(pid N)`).
fn started_pids(text: &str) -> Vec<i32> {
    text.lines()
        .filter_map(|l| l.split("(pid ").nth(1))
        .filter_map(|rest| rest.split(')').next())
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// Whether a process runs (a zombie, not yet reaped, does not count).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => true,
    }
}

fn assert_all_stopped(text: &str, expected: usize) {
    let pids = started_pids(text);
    assert_eq!(
        pids.len(),
        expected,
        "the demo names what it started:\n{text}"
    );
    for pid in pids {
        // a process the demo stopped may still be being reaped by init
        let gone = (0..100).any(|_| {
            let alive = alive(pid);
            if alive {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            !alive
        });
        assert!(gone, "pid {pid} still runs after the demo:\n{text}");
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_demo_prints_one_alert_group_and_stops_everything() {
    if !can_run() {
        return;
    }
    let out = demo(&[], env!("CARGO_BIN_EXE_detectd"))
        .output()
        .expect("bash runs");
    let all = text(&out);
    assert!(out.status.success(), "exit {:?}:\n{all}", out.status.code());
    let stdout = String::from_utf8_lossy(&out.stdout);
    // exactly one founding-rule alert group: one shell, two building blocks
    let shells: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("   shell "))
        .collect();
    assert_eq!(shells.len(), 1, "{stdout}");
    assert!(
        shells[0].contains("Outbound Scheduled Task Activity via PowerShell"),
        "{stdout}"
    );
    assert!(
        stdout.contains("   1 alert group for the demo host"),
        "{stdout}"
    );
    assert!(
        stdout.contains("building block 0") && stdout.contains("loads taskschd.dll"),
        "{stdout}"
    );
    assert!(
        stdout.contains("building block 1") && stdout.contains("connects to 10.0.0.5:135"),
        "{stdout}"
    );
    assert!(!stdout.contains("building block 2"), "{stdout}");
    // it says when the rule runs and how to look
    assert!(
        stdout.contains("rule scheduled: Outbound Scheduled Task Activity via PowerShell"),
        "{all}"
    );
    assert!(stdout.contains("rule run finished: succeeded"), "{stdout}");
    assert!(stdout.contains("curl -s 'http://127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("/.alerts-security.alerts-default/_search?q=host.id:demo-host-"),
        "{stdout}"
    );
    assert!(
        stdout.contains("== stopped everything the demo started"),
        "{stdout}"
    );
    // osmem-server and detectd
    assert_all_stopped(&stdout, 2);
}

#[test]
fn a_failing_demo_stops_the_server_it_started() {
    if !can_run() {
        return;
    }
    // a "detectd" that exits at once
    let out = demo(&[], "/bin/false").output().expect("bash runs");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("error: detectd exited"), "{all}");
    assert!(
        all.contains("== stopped everything the demo started"),
        "{all}"
    );
    assert_all_stopped(&all, 2);
}

#[test]
fn ctrl_c_stops_what_the_demo_keeps_running() {
    if !can_run() {
        return;
    }
    let mut child: Child = demo(&["--keep"], env!("CARGO_BIN_EXE_detectd"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let mut seen = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Ctrl-C stops them") {
            break;
        }
    }
    assert!(
        seen.contains("Ctrl-C stops them"),
        "the demo keeps running:\n{seen}"
    );
    let pids = started_pids(&seen);
    assert!(
        pids.iter().all(|p| alive(*p)),
        "still running before Ctrl-C: {pids:?}"
    );
    // SAFETY: signals the child bash, as a terminal's Ctrl-C would.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        seen.contains("== stopped everything the demo started"),
        "{seen}"
    );
    assert_all_stopped(&seen, 2);
}
