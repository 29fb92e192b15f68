//! Rule leases against the cluster at ELASTICSEARCH_URL (skipped without
//! one, outside CI): the fence at the store, and what coordination costs in
//! requests (see `src/coord`).

#[path = "common/es.rs"]
mod es;
#[path = "common/process.rs"]
mod process;

use std::time::Duration;

use chrono::Utc;
use detectd::sink::elasticsearch::{install_templates, IndexNames};
use elasticsearch::http::Method;
use es::Es;
use process::cluster_url;

/// The fence itself, at the store: a lease taken over moves the rule's
/// state document on, and the old holder's checkpoint and renewal are
/// refused by version, whatever the clocks say.
/// detectd's indices under names of their own (`it-<what>-state-<tag>`,
/// ...), with their templates installed.
fn fresh_indices(es: &Es, what: &str) -> IndexNames {
    let tag = format!(
        "{}-{}",
        std::process::id(),
        Utc::now().timestamp_millis() % 1_000_000
    );
    let names = IndexNames {
        state: format!("it-{what}-state-{tag}"),
        executions: format!("it-{what}-exec-{tag}"),
        dead_letters: format!("it-{what}-dead-{tag}"),
    };
    es.rt
        .block_on(install_templates(&es.cluster, &names))
        .unwrap();
    names
}

#[test]
fn a_checkpoint_under_a_lease_taken_over_is_refused() {
    use detectd::state::{
        Checkpoint, ClusterStateStore, LeaseDoc, LeaseOutcome, LeaseWrite, StateError, StateStore,
    };
    let Some(url) = cluster_url() else { return };
    let es = Es::connect(&url);
    let names = fresh_indices(&es, "fence");
    let store = ClusterStateStore::new(es.cluster.clone(), &names);
    let now = Utc::now();
    let lease = |owner: &str, epoch: u64| LeaseDoc {
        owner: owner.into(),
        epoch,
        expires_at: now,
    };
    let write = |w: LeaseWrite| es.rt.block_on(store.write_leases(&[w])).unwrap().remove(0);
    let LeaseOutcome::Written(x_version) = write(LeaseWrite {
        rule_id: "r".into(),
        lease: lease("x", 1),
        version: None,
    }) else {
        panic!("x could not take a new rule's lease")
    };
    // a second create of the same document loses
    let again = write(LeaseWrite {
        rule_id: "r".into(),
        lease: lease("z", 1),
        version: None,
    });
    assert_eq!(again, LeaseOutcome::Conflict);
    // y takes the (expired) lease from the version it read
    let stored = es.rt.block_on(store.leases(&["r".to_string()])).unwrap();
    assert_eq!(stored[0].lease, Some(lease("x", 1)));
    assert_eq!(stored[0].version, Some(x_version));
    let LeaseOutcome::Written(y_version) = write(LeaseWrite {
        rule_id: "r".into(),
        lease: lease("y", 2),
        version: stored[0].version,
    }) else {
        panic!("y could not take the lease")
    };
    let checkpoint = |by: i64| Checkpoint {
        rule_id: "r".into(),
        covered_until: now + chrono::Duration::seconds(by),
        updated_at: now,
        pending: None,
        threshold_history: Vec::new(),
    };
    // x, resumed, can neither commit nor renew
    let refused =
        es.rt
            .block_on(store.save_checkpoint_fenced(&checkpoint(1), &lease("x", 1), x_version));
    assert!(
        matches!(refused, Err(StateError::LeaseLost { .. })),
        "{refused:?}"
    );
    let renewal = write(LeaseWrite {
        rule_id: "r".into(),
        lease: lease("x", 1),
        version: Some(x_version),
    });
    assert_eq!(renewal, LeaseOutcome::Conflict);
    // y commits, and the checkpoint read back is y's
    es.rt
        .block_on(store.save_checkpoint_fenced(&checkpoint(2), &lease("y", 2), y_version))
        .unwrap();
    let read = es.rt.block_on(store.checkpoint("r")).unwrap().unwrap();
    assert_eq!(read.covered_until, checkpoint(2).covered_until);
    let stored = es.rt.block_on(store.leases(&["r".to_string()])).unwrap();
    assert_eq!(stored[0].lease, Some(lease("y", 2)));
    es.request(Method::Delete, &format!("/{}", names.state), None);
}

/// A rule's tail budget is a document of its own in the state index: it
/// reads back as written, leaves the rule's checkpoint and lease alone,
/// and a rule without one has none.
#[test]
fn a_tail_budget_is_kept_beside_the_rules_state_document() {
    use detectd::state::{Checkpoint, ClusterStateStore, StateStore, TailSpend};
    let Some(url) = cluster_url() else { return };
    let es = Es::connect(&url);
    let names = fresh_indices(&es, "tailbudget");
    let store = ClusterStateStore::new(es.cluster.clone(), &names);
    let now = Utc::now();
    let checkpoint = Checkpoint {
        rule_id: "r".into(),
        covered_until: now,
        updated_at: now,
        pending: None,
        threshold_history: Vec::new(),
    };
    es.rt.block_on(store.save_checkpoint(&checkpoint)).unwrap();
    // no state index document yet, and then none for another rule
    assert_eq!(es.rt.block_on(store.tail_spend("r")).unwrap(), None);
    let spend = |slot: i64, alerted: u64| TailSpend {
        rule_id: "r".into(),
        slot,
        alerted,
    };
    es.rt.block_on(store.save_tail_spend(&spend(5, 2))).unwrap();
    es.rt.block_on(store.save_tail_spend(&spend(6, 3))).unwrap();
    assert_eq!(
        es.rt.block_on(store.tail_spend("r")).unwrap(),
        Some(spend(6, 3))
    );
    assert_eq!(es.rt.block_on(store.tail_spend("other")).unwrap(), None);
    let read = es.rt.block_on(store.checkpoint("r")).unwrap().unwrap();
    assert_eq!(read.covered_until, checkpoint.covered_until);
    es.request(Method::Delete, &format!("/{}", names.state), None);
}

/// Coordination costs a fixed number of requests per heartbeat, however
/// many rules: three instances in this process over 1000 rules, counted.
/// Prints the figure for the default heartbeat (10 s).
#[test]
fn coordination_requests_per_minute_for_1000_rules_over_3_instances() {
    use detectd::coord::{Coordinator, Timing};
    use detectd::rule::{load_str, LoadOutcome};
    use detectd::state::ClusterStateStore;
    use std::sync::Arc;
    let Some(url) = cluster_url() else { return };
    let es = Es::connect(&url);
    let names = fresh_indices(&es, "coordcost");
    const N: usize = 1000;
    let rules: Vec<Arc<detectd::rule::Rule>> = (0..N)
        .map(|i| {
            let text = format!(
                "[rule]\nauthor = [\"t\"]\ndescription = \"d\"\nfrom = \"now-6m\"\n\
                 interval = \"5m\"\nindex = [\"x\"]\nlanguage = \"eql\"\nlicense = \"Apache-2.0\"\n\
                 name = \"r{i}\"\nrisk_score = 21\nrule_id = \"cost-{i:04}\"\nseverity = \"low\"\n\
                 type = \"eql\"\nquery = 'process where true'\n"
            );
            match load_str(&text) {
                LoadOutcome::Loaded { rule, .. } => Arc::new(*rule),
                other => panic!("rule {i}: {other:?}"),
            }
        })
        .collect();
    let timing = Timing {
        heartbeat: Duration::from_secs(10),
        lease: Duration::from_secs(30),
    };
    let coords: Vec<Arc<Coordinator>> = ["cost-a", "cost-b", "cost-c"]
        .iter()
        .map(|id| {
            let c = Arc::new(Coordinator::new(
                id.to_string(),
                timing,
                ClusterStateStore::new(es.cluster.clone(), &names),
                Arc::new(Utc::now),
            ));
            c.set_rules(rules.iter());
            c
        })
        .collect();
    // Until the leases are shared out: each holds its share.
    let mut rounds = 0;
    loop {
        for c in &coords {
            es.rt.block_on(c.tick());
        }
        rounds += 1;
        let held: Vec<usize> = coords.iter().map(|c| c.view().leases_valid).collect();
        if held.iter().sum::<usize>() == N && held.iter().all(|n| *n > N / 4) {
            eprintln!("leases shared out after {rounds} heartbeats each: {held:?}");
            break;
        }
        assert!(rounds < 10, "leases not shared out: {held:?}");
    }
    let before: Vec<u64> = coords.iter().map(|c| c.view().requests).collect();
    const TICKS: u64 = 5;
    for _ in 0..TICKS {
        for c in &coords {
            es.rt.block_on(c.tick());
        }
    }
    let per_tick: Vec<u64> = coords
        .iter()
        .zip(&before)
        .map(|(c, b)| (c.view().requests - b) / TICKS)
        .collect();
    // a heartbeat, a search of the instances, one bulk of renewals
    assert_eq!(per_tick, [3, 3, 3], "requests per heartbeat and instance");
    let per_minute: u64 = per_tick.iter().sum::<u64>() * 60 / timing.heartbeat.as_secs();
    eprintln!(
        "coordination of {N} rules over 3 instances: {per_tick:?} requests per heartbeat, \
         {per_minute} requests per minute at a {} s heartbeat",
        timing.heartbeat.as_secs()
    );
    for c in &coords {
        es.rt.block_on(c.leave());
    }
    for index in [names.state.clone(), format!("{}-instances", names.state)] {
        es.request(Method::Delete, &format!("/{index}"), None);
    }
}
