//! Black-box `detectd check`: exit codes, diagnostics and the summary line.

use std::path::Path;
use std::process::Command;

fn detectd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_detectd"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn shipped_rules_check_clean() {
    let out = detectd().args(["check", "rules"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.ends_with(" rules ok, 0 failed\n"), "{stdout}");
}

#[test]
fn default_folder_is_rules() {
    let out = detectd().arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.ends_with(" rules ok, 0 failed\n"), "{stdout}");
}

#[test]
fn broken_rule_exits_1_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "[rule]\nrule_id = \"x\"\nname = \"n\"\ndescription = \"d\"\ntype = \"eql\"\n\
         index = [\"logs-*\"]\ninterval = \"5x\"\nseverity = \"medium\"\nrisk_score = 470\n\
         query = '''process where true'''\n",
    )
    .unwrap();
    let out = detectd().arg("check").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let p = path.display();
    assert!(
        stdout.contains(&format!("{p}:7:12: error: invalid `interval`")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{p}:9:14: error: expected `risk_score` between 0 and 100, found 470"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("9 | risk_score = 470\n  |              ^^^\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("0 rules ok, 1 failed\n"), "{stdout}");
}

#[test]
fn missing_path_fails() {
    let missing = Path::new("/nonexistent/detectd-rules");
    let out = detectd().arg("check").arg(missing).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("/nonexistent/detectd-rules: error: cannot read rule file"),
        "{stdout}"
    );
    assert!(stdout.ends_with("0 rules ok, 1 failed\n"), "{stdout}");
}
