use super::cluster::{Auth, Secret, ENV_PASSWORD, ENV_URL, ENV_USERNAME};
use super::*;

fn with_file(text: &str, env: ClusterSettings, flags: Overrides) -> Result<Settings, ConfigErrors> {
    Settings::from_layers(
        Some((PathBuf::from("detectd.toml"), text.to_string())),
        env,
        flags,
    )
}

fn env(pairs: &[(&str, &str)]) -> ClusterSettings {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ClusterSettings::from_env_with(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
}

#[test]
fn example_file_parses_and_equals_the_defaults() {
    let text = include_str!("../../detectd.example.toml");
    let from_example = with_file(text, ClusterSettings::default(), Overrides::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(from_example, Settings::defaults());
}

#[test]
fn example_file_sets_every_setting() {
    // Every key a RawConfig knows appears in the example, so it documents
    // every setting (commented-out keys count: they have no default).
    let text = include_str!("../../detectd.example.toml");
    for key in [
        "rules =",
        "space_id =",
        "urls =",
        "api_key =",
        "username =",
        "password =",
        "ca_cert =",
        "verify_tls =",
        "request_timeout_secs =",
        "max_rules =",
        "select_locally =",
        "max_events =",
        "every =",
        "lag =",
        "gzip =",
        "alerts =",
        "dead_letters =",
        "bootstrap =",
        "version =",
        "public_base_url =",
        "state =",
        "executions =",
        "concurrency =",
        "first_run =",
        "catch_up_horizon =",
        "health_check_interval =",
        "backend =",
        "path",
        "listen =",
        "format =",
        "level =",
        "id =",
        "heartbeat =",
        "lease =",
    ] {
        assert!(text.contains(key), "the example does not document {key}");
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let s = Settings::defaults();
    assert_eq!(s.rules, vec![PathBuf::from("rules")]);
    assert_eq!(s.indices.alerts, ".alerts-security.alerts-default");
    assert_eq!(s.space_id, "default");
    assert_eq!(s.concurrency, 4);
    assert_eq!(s.first_run, FirstRun::Spread);
    assert_eq!(s.catch_up_horizon, Duration::from_secs(24 * 3600));
    assert_eq!(s.state, StateBackend::Cluster);
    assert_eq!(s.listen.to_string(), "127.0.0.1:9108");
    assert_eq!(s.log_format, LogFormat::Human);
    assert_eq!(s.cluster.urls[0].as_str(), "http://localhost:9200/");
}

#[test]
fn precedence_is_file_then_env_then_flags() {
    let file = r#"
rules = ["from-file"]
exceptions = ["lists-from-file"]
[elasticsearch]
urls = ["http://file:9200"]
username = "file-user"
password = "file-pass"
request_timeout_secs = 7
[server]
listen = "127.0.0.1:1111"
[log]
format = "json"
"#;
    // file alone
    let s = with_file(file, ClusterSettings::default(), Overrides::default()).unwrap();
    assert_eq!(s.rules, vec![PathBuf::from("from-file")]);
    assert_eq!(s.exceptions, vec![PathBuf::from("lists-from-file")]);
    assert_eq!(s.cluster.urls[0].host_str(), Some("file"));
    assert_eq!(s.listen.port(), 1111);
    assert_eq!(s.log_format, LogFormat::Json);

    // env beats the file, field by field
    let e = env(&[(ENV_URL, "http://env:9200"), (ENV_PASSWORD, "env-pass")]);
    let s = with_file(file, e.clone(), Overrides::default()).unwrap();
    assert_eq!(s.cluster.urls[0].host_str(), Some("env"));
    assert_eq!(
        s.cluster.auth,
        Auth::Basic {
            username: "file-user".into(),
            password: Secret::new("env-pass")
        }
    );
    assert_eq!(s.cluster.request_timeout, Duration::from_secs(7));

    // flags beat both
    let flags = Overrides {
        rules: Some(vec![PathBuf::from("from-flag")]),
        exceptions: Some(vec![PathBuf::from("lists-from-flag")]),
        listen: Some("127.0.0.1:2222".into()),
        log_format: Some("human".into()),
        cluster: ClusterSettings {
            urls: Some(vec!["http://flag:9200".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    let s = with_file(file, e, flags).unwrap();
    assert_eq!(s.rules, vec![PathBuf::from("from-flag")]);
    assert_eq!(s.exceptions, vec![PathBuf::from("lists-from-flag")]);
    assert_eq!(s.cluster.urls[0].host_str(), Some("flag"));
    assert_eq!(s.listen.port(), 2222);
    assert_eq!(s.log_format, LogFormat::Human);
}

#[test]
fn errors_point_into_the_file_and_all_are_reported() {
    let file =
        "[schedule]\nconcurrency = 0\ncatch_up_horizon = \"soon\"\n[log]\nformat = \"xml\"\n";
    let err = with_file(file, ClusterSettings::default(), Overrides::default()).unwrap_err();
    assert_eq!(err.errors.len(), 3, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("detectd.toml:2:15: error: invalid concurrency 0"),
        "{text}"
    );
    assert!(
        text.contains("detectd.toml:3:20: error: invalid catch_up_horizon"),
        "{text}"
    );
    assert!(
        text.contains("detectd.toml:5:10: error: invalid log format \"xml\""),
        "{text}"
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_errors_with_a_position() {
    let err = with_file(
        "[schedule]\nconcurency = 3\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("detectd.toml:2:1: error: unknown field `concurency`"),
        "{text}"
    );

    let err = with_file(
        "[server]\nlisten = 9108\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("detectd.toml:2:10"), "{err}");
}

#[test]
fn cluster_errors_point_at_the_elasticsearch_table() {
    let err = with_file(
        "[elasticsearch]\nurls = [\"ftp://x\"]\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("detectd.toml:"), "{text}");
    assert!(text.contains("scheme `ftp`"), "{text}");
    // from the environment only: no position, still an error
    let err = Settings::from_layers(
        None,
        env(&[(ENV_URL, "http://x"), (ENV_USERNAME, "u")]),
        Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("config: error:"), "{err}");
}

#[test]
fn state_file_backend_and_its_path() {
    let s = with_file(
        "[state]\nbackend = \"file\"\npath = \"/var/lib/detectd/state\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        s.state,
        StateBackend::File(PathBuf::from("/var/lib/detectd/state"))
    );
    let err = with_file(
        "[state]\npath = \"x.json\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("detectd.toml:2:8"), "{err}");
}

#[test]
fn bad_index_names_and_flags_are_errors() {
    let err = with_file(
        "[indices]\nstate = \"State\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("expected lower case"), "{err}");
    let err = Settings::from_layers(
        None,
        ClusterSettings::default(),
        Overrides {
            listen: Some("nowhere".into()),
            concurrency: Some(0),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(err.errors.len(), 2, "{err}");
}

#[test]
fn debug_of_settings_never_shows_secrets() {
    let s = Settings::from_layers(
        None,
        env(&[
            (ENV_URL, "http://x:9200"),
            (ENV_USERNAME, "elastic"),
            (ENV_PASSWORD, "s3cret-pw"),
        ]),
        Overrides::default(),
    )
    .unwrap();
    assert!(!format!("{s:?}").contains("s3cret-pw"));
}

#[test]
fn the_docker_config_is_valid() {
    let s = with_file(
        include_str!("../../docker/detectd.toml"),
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.listen.to_string(), "0.0.0.0:9108");
    assert_eq!(s.cluster.urls[0].as_str(), "http://elasticsearch:9200/");
    assert_eq!(s.rules, vec![PathBuf::from("/etc/detectd/rules")]);
}

#[test]
fn the_alerts_index_follows_the_space_and_cannot_disagree_with_it() {
    let s = with_file(
        "space_id = \"team-a\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.indices.alerts, ".alerts-security.alerts-team-a");
    // naming the space's own alias is allowed (older configs did)
    let s = with_file(
        "space_id = \"team-a\"\n[indices]\nalerts = \".alerts-security.alerts-team-a\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.indices.alerts, ".alerts-security.alerts-team-a");
    // any other index is refused with the fix, pointing at the value
    let err = with_file(
        "space_id = \"team-a\"\n[indices]\nalerts = \".alerts-security.alerts-default\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("detectd.toml:3:10"), "{err}");
    assert!(err.contains("does not match space_id \"team-a\""), "{err}");
    assert!(err.contains("remove indices.alerts"), "{err}");
}

#[test]
fn alerts_bootstrap_and_kibana_settings() {
    let s = Settings::defaults();
    assert_eq!(s.alerts_bootstrap, BootstrapMode::Create);
    assert_eq!(s.kibana, KibanaSettings::default());
    assert_eq!(s.indices.dead_letters, "detectd-dead-letters");
    let s = with_file(
        "[alerts]\nbootstrap = \"wait\"\n[kibana]\nversion = \"8.15.3\"\npublic_base_url = \"https://kibana.example.com/\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.alerts_bootstrap, BootstrapMode::Wait);
    assert_eq!(s.kibana.version.as_deref(), Some("8.15.3"));
    assert_eq!(
        s.kibana.public_base_url.as_deref(),
        Some("https://kibana.example.com"),
        "the trailing slash is dropped, as Kibana's addSpaceIdToPath does"
    );
    let err = with_file(
        "[alerts]\nbootstrap = \"later\"\n[kibana]\nversion = \"eight\"\npublic_base_url = \"kibana:5601\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(err.errors.len(), 3, "{err}");
    let text = err.to_string();
    assert!(text.contains("expected \"create\" or \"wait\""), "{text}");
    assert!(text.contains("invalid kibana.version \"eight\""), "{text}");
    assert!(
        text.contains("expected an http:// or https:// url"),
        "{text}"
    );
}

#[test]
fn the_docker_kibana_config_is_valid() {
    let s = with_file(
        include_str!("../../docker/detectd-kibana.toml"),
        env(&[(ENV_USERNAME, "elastic"), (ENV_PASSWORD, "detectd-demo")]),
        Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.cluster.urls[0].as_str(),
        "http://elasticsearch-secure:9200/"
    );
    assert_eq!(s.indices.alerts, ".alerts-security.alerts-default");
    assert_eq!(
        s.kibana.public_base_url.as_deref(),
        Some("http://localhost:5601")
    );
    assert_eq!(s.alerts_bootstrap, BootstrapMode::Create);
}

#[test]
fn first_run_is_spread_or_now_and_startup_jitter_is_its_old_name() {
    let first_run = |text: &str| {
        with_file(text, ClusterSettings::default(), Overrides::default()).map(|s| s.first_run)
    };
    assert_eq!(
        first_run("[schedule]\nfirst_run = \"now\"\n"),
        Ok(FirstRun::Now)
    );
    assert_eq!(
        first_run("[schedule]\nfirst_run = \"spread\"\n"),
        Ok(FirstRun::Spread)
    );
    assert_eq!(
        first_run("[schedule]\nstartup_jitter = false\n"),
        Ok(FirstRun::Now)
    );
    assert_eq!(
        first_run("[schedule]\nstartup_jitter = true\n"),
        Ok(FirstRun::Spread)
    );
    let e = first_run("[schedule]\nfirst_run = \"later\"\n").unwrap_err();
    assert_eq!(
        e.errors[0].message,
        "invalid schedule.first_run \"later\": expected \"spread\" or \"now\""
    );
    let both = "[schedule]\nfirst_run = \"now\"\nstartup_jitter = true\n";
    let e = first_run(both).unwrap_err();
    assert!(
        e.errors[0].message.contains("both set") && e.to_string().contains("detectd.toml:3:"),
        "{e}"
    );
}

#[test]
fn instance_settings_default_to_a_heartbeat_of_10_s_and_a_lease_of_30_s() {
    let s = Settings::defaults();
    assert_eq!(s.instance, InstanceSettings::default());
    assert_eq!(s.instance.id, None);
    assert_eq!(s.instance.heartbeat, Duration::from_secs(10));
    assert_eq!(s.instance.lease, Duration::from_secs(30));
    let s = with_file(
        "[instance]\nid = \"host-1.dc\"\nheartbeat = \"2s\"\nlease = \"5s\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.instance.id.as_deref(), Some("host-1.dc"));
    assert_eq!(s.instance.heartbeat, Duration::from_secs(2));
    assert_eq!(s.instance.lease, Duration::from_secs(5));
}

#[test]
fn a_lease_shorter_than_two_heartbeats_and_a_bad_instance_id_are_errors() {
    let e = with_file(
        "[instance]\nid = \"a b\"\nheartbeat = \"10s\"\nlease = \"15s\"\n",
        ClusterSettings::default(),
        Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("invalid instance.id \"a b\""), "{e}");
    assert!(
        e.contains("instance.lease 15 s is less than twice instance.heartbeat 10 s"),
        "{e}"
    );
}
