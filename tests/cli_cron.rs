//! Cron schedules as a user meets them at load: `detectd check` reports a
//! bad `cron` (or `cron` beside `interval`) with file:line:col and a caret,
//! and `detectd run` refuses a bad `[[schedule.cron]]` in its config.

use std::process::Command;

fn detectd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_detectd"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// A rule file whose line 7 is `schedule` (e.g. `cron = "..."`).
fn rule(schedule: &str) -> String {
    format!(
        "[rule]\nrule_id = \"x\"\nname = \"n\"\ndescription = \"d\"\ntype = \"eql\"\n\
         index = [\"logs-*\"]\n{schedule}\nseverity = \"medium\"\nrisk_score = 47\n\
         query = '''process where true'''\n"
    )
}

fn check(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cron.toml");
    std::fs::write(&path, text).unwrap();
    let out = detectd().arg("check").arg(&path).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        path.display().to_string(),
    )
}

#[test]
fn a_bad_cron_expression_is_reported_at_load_with_a_caret() {
    let (code, stdout, p) = check(&rule("cron = \"*/5 25 * * MON-FRI\""));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{p}:7:8: error: invalid `cron`: expected a cron expression of 5 fields"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("found `*/5 25 * * MON-FRI`"), "{stdout}");
    assert!(
        stdout.contains("7 | cron = \"*/5 25 * * MON-FRI\"\n  |        ^^^^^^^^^^^^^^^^^^^^\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("0 rules ok, 1 failed\n"), "{stdout}");
}

#[test]
fn cron_and_interval_together_are_refused() {
    let (code, stdout, p) = check(&rule("cron = \"5 * * * *\"\ninterval = \"5m\""));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{p}:8:12: error: expected either `interval` or `cron`, found both"
        )),
        "{stdout}"
    );
}

#[test]
fn an_unknown_timezone_and_a_date_that_never_comes_are_refused() {
    let (code, stdout, p) = check(&rule(
        "cron = \"0 9 * * MON-FRI\"\ncron_timezone = \"Europe/Berln\"",
    ));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{p}:8:17: error: invalid `cron_timezone`: expected an IANA timezone like \
             `Europe/Berlin` or `UTC`, found `Europe/Berln`"
        )),
        "{stdout}"
    );
    let (code, stdout, _) = check(&rule("cron = \"0 0 30 2 *\""));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("which matches no date"), "{stdout}");
}

#[test]
fn a_good_cron_rule_checks_clean() {
    let (code, stdout, _) = check(&rule(
        "cron = \"*/5 9-17 * * MON-FRI\"\ncron_timezone = \"Europe/Berlin\"",
    ));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.ends_with("1 rules ok, 0 failed\n"), "{stdout}");
}

#[test]
fn run_refuses_a_bad_cron_entry_in_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        "[[schedule.cron]]\ntags = [\"Business Hours\"]\nexpression = \"*/5 9-17 * *\"\n",
    )
    .unwrap();
    let out = detectd()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("detectd.toml:3:14: error: invalid schedule.cron entry 1:"),
        "{stderr}"
    );
}
