//! ES|QL and machine-learning rules at load: their shape, what they need
//! of the cluster, and the errors of a broken one.

use super::*;

fn rule(extra: &str) -> String {
    format!(
        "[rule]\nrule_id = \"r-1\"\nname = \"Rule\"\ndescription = \"d\"\n\
         severity = \"low\"\nrisk_score = 21\n{extra}"
    )
}

fn loaded(text: &str) -> Rule {
    match load_str(text) {
        LoadOutcome::Loaded { rule, warnings } => {
            assert!(warnings.is_empty(), "{warnings:?}");
            *rule
        }
        other => panic!("expected a loaded rule, got {other:?}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match load_str(text) {
        LoadOutcome::Failed(errors) => errors.into_iter().map(|e| e.message).collect(),
        other => panic!("expected errors, got {other:?}"),
    }
}

#[test]
fn the_fixture_rules_load_with_their_shape_and_needs() {
    let by_id = loaded(include_str!(
        "../../tests/fixtures/cluster_only/esql_by_id.toml"
    ));
    let RuleKind::Esql(e) = &by_id.kind else {
        panic!("{:?}", by_id.kind)
    };
    assert!(e.shape.has_id());
    assert_eq!(by_id.index, ["logs-endpoint.events.process-*"]);
    assert_eq!(by_id.rule_type(), "esql");
    assert_eq!(by_id.needs(), Some(NEEDS_ESQL));

    let stats = loaded(include_str!(
        "../../tests/fixtures/cluster_only/esql_stats.toml"
    ));
    let RuleKind::Esql(e) = &stats.kind else {
        panic!()
    };
    assert!(e.shape.aggregating);
    assert_eq!(e.shape.group_by, ["user.name", "host.name"]);

    let ml = loaded(include_str!("../../tests/fixtures/cluster_only/ml.toml"));
    let RuleKind::MachineLearning(m) = &ml.kind else {
        panic!()
    };
    assert_eq!(m.job_ids, ["v3_rare_process_by_host", "v3_rare_parent"]);
    assert_eq!(m.anomaly_threshold, 75);
    assert_eq!(ml.index, [".ml-anomalies-*"]);
    assert_eq!(ml.needs(), Some(NEEDS_ML));
    assert_eq!(ml.rule_type(), "machine_learning");
}

#[test]
fn a_single_job_id_string_is_a_list_of_one() {
    let ml = loaded(&rule(
        "type = \"machine_learning\"\nanomaly_threshold = 50\nmachine_learning_job_id = \"j\"\n",
    ));
    let RuleKind::MachineLearning(m) = &ml.kind else {
        panic!()
    };
    assert_eq!(m.job_ids, ["j"]);
}

#[test]
fn broken_esql_and_ml_rules_say_why() {
    let e = errors(&rule(
        "type = \"esql\"\nlanguage = \"esql\"\nquery = \"row a = 1\"\n",
    ));
    assert!(e.iter().any(|m| m.contains("start with FROM")), "{e:?}");
    let e = errors(&rule(
        "type = \"esql\"\nlanguage = \"kuery\"\nindex = [\"a\"]\nquery = \"from a\"\n",
    ));
    assert!(
        e.iter().any(|m| m.contains("expected language \"esql\"")),
        "{e:?}"
    );
    assert!(e.iter().any(|m| m.contains("remove `index`")), "{e:?}");
    let e = errors(&rule("type = \"esql\"\nlanguage = \"esql\"\n"));
    assert!(e.iter().any(|m| m.contains("query")), "{e:?}");
    let e = errors(&rule(
        "type = \"machine_learning\"\nanomaly_threshold = 101\nmachine_learning_job_id = []\n",
    ));
    assert!(e.iter().any(|m| m.contains("between 0 and 100")), "{e:?}");
    assert!(e.iter().any(|m| m.contains("job ids")), "{e:?}");
    let e = errors(&rule("type = \"machine_learning\"\n"));
    assert!(e.iter().any(|m| m.contains("anomaly_threshold")), "{e:?}");
    assert!(
        e.iter().any(|m| m.contains("machine_learning_job_id")),
        "{e:?}"
    );
}
