//! `detectd notify test`: a sample message through a configured output.

#[path = "common/receiver.rs"]
mod receiver;

use std::process::Command;

use receiver::Receiver;

fn detectd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_detectd"))
}

#[tokio::test]
async fn notify_test_sends_a_sample_to_the_output_and_says_so() {
    let r = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        format!(
            "[[outputs]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"{}\"\n",
            r.url("/slack")
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        detectd()
            .args(["notify", "test", "--output", "chat", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("sent a sample message to output \"chat\" (slack)"),
        "{stderr}"
    );
    let got = r.delivered();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body["blocks"][0]["text"]["text"],
        "detectd sample rule"
    );
    let key = got[0].headers.get("idempotency-key").unwrap();
    assert!(key.starts_with("test/"), "{key}");
}

#[test]
fn notify_test_of_an_unknown_output_or_a_broken_template_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        "[[outputs]]\nname = \"lines\"\nkind = \"file\"\npath = \"x.ndjson\"\n",
    )
    .unwrap();
    let out = detectd()
        .args(["notify", "test", "--output", "nope", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no output named \"nope\": expected one of [lines]"),
        "{stderr}"
    );

    std::fs::write(
        &config,
        "[[outputs]]\nname = \"lines\"\nkind = \"file\"\npath = \"x.ndjson\"\ntext = '''\nfine\n{{ alert.host + }}\n'''\n",
    )
    .unwrap();
    let out = detectd()
        .args(["notify", "test", "--output", "lines", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("detectd.toml:7:1: error: template `text`, line 2: syntax error"),
        "{stderr}"
    );
    eprintln!("{stderr}");
}

#[test]
fn notify_test_of_an_unreachable_output_is_exit_1_without_the_url() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("detectd.toml");
    std::fs::write(
        &config,
        "[[outputs]]\nname = \"hook\"\nkind = \"webhook\"\nurl_env = \"DETECTD_TEST_HOOK_URL\"\n",
    )
    .unwrap();
    let out = detectd()
        .args(["notify", "test", "--output", "hook", "--config"])
        .arg(&config)
        .env(
            "DETECTD_TEST_HOOK_URL",
            format!("http://{addr}/x?token=cli-s3cret"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("output \"hook\" (webhook): POST failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
