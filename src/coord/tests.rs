//! Several coordinators over one in-memory backend on tokio's paused
//! clock: sharing, fail-over, fencing, joining, a lost cluster and a
//! rolling upgrade, with the invariant that no two instances ever hold a
//! valid lease of the same rule at the same time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::memory::World;
use super::{Coordinator, Timing};
use crate::rule::{load_str, LoadOutcome, Rule};
use crate::state::{Checkpoint, StateError};

const TIMING: Timing = Timing {
    heartbeat: Duration::from_secs(10),
    lease: Duration::from_secs(30),
};

pub(crate) fn rule(i: usize, query: &str) -> Arc<Rule> {
    let text = format!(
        "[rule]\nauthor = [\"t\"]\ndescription = \"d\"\nfrom = \"now-6m\"\ninterval = \"5m\"\n\
         index = [\"x\"]\nlanguage = \"eql\"\nlicense = \"Apache-2.0\"\nname = \"r{i}\"\n\
         risk_score = 21\nrule_id = \"r{i:02}\"\nseverity = \"low\"\ntype = \"eql\"\n\
         query = '{query}'\n"
    );
    match load_str(&text) {
        LoadOutcome::Loaded { rule, .. } => Arc::new(*rule),
        other => panic!("rule {i}: {other:?}"),
    }
}

fn rules(n: usize) -> Vec<Arc<Rule>> {
    (0..n).map(|i| rule(i, "process where true")).collect()
}

/// No rule has a valid lease on two instances.
fn assert_exclusive(all: &[&Arc<Coordinator>], rules: &[Arc<Rule>]) {
    for r in rules {
        let holders: Vec<&str> = all
            .iter()
            .filter(|c| c.lease_valid(&r.rule_id))
            .map(|c| c.instance_id())
            .collect();
        assert!(holders.len() <= 1, "{}: held by {holders:?}", r.rule_id);
    }
}

fn held(c: &Coordinator, rules: &[Arc<Rule>]) -> usize {
    rules.iter().filter(|r| c.holds(&r.rule_id)).count()
}

/// One heartbeat period: every instance of `ticking` ticks, then the
/// clock moves on; the invariant is checked after each tick.
async fn heartbeat(ticking: &[&Arc<Coordinator>], all: &[&Arc<Coordinator>], rules: &[Arc<Rule>]) {
    for c in ticking {
        c.tick().await;
        assert_exclusive(all, rules);
    }
    tokio::time::advance(TIMING.heartbeat).await;
    assert_exclusive(all, rules);
}

async fn converged(cs: &[&Arc<Coordinator>], rules: &[Arc<Rule>]) -> usize {
    for round in 1..=6 {
        heartbeat(cs, cs, rules).await;
        let counts: Vec<usize> = cs.iter().map(|c| held(c, rules)).collect();
        if counts.iter().sum::<usize>() == rules.len() && counts.iter().all(|n| *n > 0) {
            return round;
        }
    }
    panic!("the leases were not shared out");
}

#[tokio::test(start_paused = true)]
async fn three_instances_hold_every_rule_once_between_them() {
    let w = World::new();
    let rules = rules(30);
    let (a, _) = w.instance("a", TIMING, &rules);
    let (b, _) = w.instance("b", TIMING, &rules);
    let (c, _) = w.instance("c", TIMING, &rules);
    let rounds = converged(&[&a, &b, &c], &rules).await;
    assert!(rounds <= 3, "{rounds} heartbeats");
    for r in &rules {
        let n = [&a, &b, &c].iter().filter(|x| x.holds(&r.rule_id)).count();
        assert_eq!(n, 1, "{}", r.rule_id);
    }
    // a run is allowed where the rule is held, and nowhere else
    let owner = [&a, &b, &c].into_iter().find(|x| x.holds("r00")).unwrap();
    let others: Vec<_> = [&a, &b, &c]
        .into_iter()
        .filter(|x| !Arc::ptr_eq(x, owner))
        .collect();
    assert!(owner.may_run("r00").is_some());
    assert!(others.iter().all(|x| x.may_run("r00").is_none()));
}

#[tokio::test(start_paused = true)]
async fn a_dead_instances_rules_move_once_its_lease_has_run_out() {
    let w = World::new();
    let rules = rules(30);
    let (a, _) = w.instance("a", TIMING, &rules);
    let (b, _) = w.instance("b", TIMING, &rules);
    let (c, _) = w.instance("c", TIMING, &rules);
    converged(&[&a, &b, &c], &rules).await;
    let of_c: Vec<String> = rules
        .iter()
        .filter(|r| c.holds(&r.rule_id))
        .map(|r| r.rule_id.clone())
        .collect();
    assert!(!of_c.is_empty());
    // c dies: it ticks no more (its leases still look valid to itself
    // until they run out, which the invariant checks against a and b)
    let died = tokio::time::Instant::now();
    let mut moved = None;
    for _ in 0..10 {
        heartbeat(&[&a, &b], &[&a, &b, &c], &rules).await;
        if of_c.iter().all(|id| a.holds(id) || b.holds(id)) {
            moved = Some(died.elapsed());
            break;
        }
    }
    let moved = moved.expect("c's rules did not move");
    // not before c's lease ran out, within a lease and two heartbeats
    assert!(moved >= TIMING.lease, "moved after {moved:?}");
    assert!(
        moved <= TIMING.lease + 2 * TIMING.heartbeat,
        "moved after {moved:?}"
    );
    assert_eq!(held(&a, &rules) + held(&b, &rules), rules.len());
}

#[tokio::test(start_paused = true)]
async fn a_paused_instance_cannot_commit_once_its_lease_is_taken() {
    let w = World::new();
    let rules = rules(20);
    let (a, _) = w.instance("a", TIMING, &rules);
    let (b, _) = w.instance("b", TIMING, &rules);
    converged(&[&a, &b], &rules).await;
    let id = rules
        .iter()
        .map(|r| r.rule_id.clone())
        .find(|id| b.holds(id))
        .unwrap();
    // b starts a run, then stops (SIGSTOP) past its lease; a goes on
    let permit = b.may_run(&id).unwrap();
    for _ in 0..5 {
        heartbeat(&[&a], &[&a, &b], &rules).await;
    }
    assert!(a.holds(&id), "a took the rule of the paused b");
    let checkpoint = |s: i64| Checkpoint {
        rule_id: id.clone(),
        covered_until: w.base + chrono::Duration::seconds(s),
        updated_at: w.base,
        pending: None,
        threshold_history: Vec::new(),
    };
    // b resumes: its commit is refused, a's goes through
    let refused = b.save_checkpoint(&checkpoint(1)).await;
    assert!(
        matches!(refused, Err(StateError::LeaseLost { .. })),
        "{refused:?}"
    );
    drop(permit);
    a.save_checkpoint(&checkpoint(2)).await.unwrap();
    let stored = w.cluster.lock().unwrap().docs[&id].checkpoint;
    assert_eq!(stored, Some(checkpoint(2).covered_until));
    // b rejoins and gets its share back, without two holders at any time
    converged(&[&a, &b], &rules).await;
}

#[tokio::test(start_paused = true)]
async fn a_joining_instance_takes_its_share_once_the_runs_in_flight_are_over() {
    let w = World::new();
    let rules = rules(40);
    let (a, _) = w.instance("a", TIMING, &rules);
    converged(&[&a], &rules).await;
    // a run in flight on every rule of a
    let permits: Vec<_> = rules
        .iter()
        .map(|r| a.may_run(&r.rule_id).unwrap())
        .collect();
    let (d, _) = w.instance("d", TIMING, &rules);
    for _ in 0..3 {
        heartbeat(&[&a, &d], &[&a, &d], &rules).await;
    }
    // d is assigned its share but waits: a keeps (and renews) the leases
    // its runs use, so they can commit
    let of_d: Vec<String> = rules
        .iter()
        .filter(|r| d.owner(&r.rule_id).as_deref() == Some("d"))
        .map(|r| r.rule_id.clone())
        .collect();
    assert!(!of_d.is_empty());
    assert_eq!(held(&d, &rules), 0);
    assert!(of_d.iter().all(|id| a.lease_valid(id)));
    drop(permits);
    let rounds = converged(&[&a, &d], &rules).await;
    assert!(rounds <= 2, "{rounds} heartbeats after the runs ended");
    assert!(of_d.iter().all(|id| d.holds(id)));
}

#[tokio::test(start_paused = true)]
async fn an_instance_cut_off_from_the_cluster_stops_running_when_its_leases_run_out() {
    let w = World::new();
    let rules = rules(20);
    let (a, a_down) = w.instance("a", TIMING, &rules);
    let (b, _) = w.instance("b", TIMING, &rules);
    converged(&[&a, &b], &rules).await;
    let mine = held(&a, &rules);
    assert!(mine > 0);
    a_down.store(true, Ordering::SeqCst);
    let cut = tokio::time::Instant::now();
    // a keeps ticking: each tick fails (a warning), nothing panics
    while held(&a, &rules) > 0 {
        heartbeat(&[&a, &b], &[&a, &b], &rules).await;
        assert!(
            cut.elapsed() <= TIMING.lease,
            "a still runs rules after its lease"
        );
    }
    for _ in 0..3 {
        heartbeat(&[&a, &b], &[&a, &b], &rules).await;
    }
    assert_eq!(held(&b, &rules), rules.len(), "b took a's rules");
    // back: a rejoins and takes its share again
    a_down.store(false, Ordering::SeqCst);
    converged(&[&a, &b], &rules).await;
}

#[tokio::test(start_paused = true)]
async fn in_a_rolling_upgrade_the_newest_rule_set_decides_without_flip_flop() {
    let w = World::new();
    let old = rules(10);
    let (a, _) = w.instance("a", TIMING, &old);
    let (b, _) = w.instance("b", TIMING, &old);
    converged(&[&a, &b], &old).await;
    // the new version changes r00's query and drops r09
    let mut new = rules(9);
    new[0] = rule(0, "process where process.name == \"x.exe\"");
    let (n, _) = w.instance("n", TIMING, &new);
    let all: Vec<Arc<Rule>> = old.iter().chain(new.iter().take(1)).cloned().collect();
    let mut owners_over_time = Vec::new();
    for _ in 0..6 {
        heartbeat(&[&a, &b, &n], &[&a, &b, &n], &all).await;
        owners_over_time.push(n.owner("r00"));
    }
    // r00 runs on the new instance only, r09 nowhere
    assert!(n.holds("r00"));
    assert!(!a.holds("r00") && !b.holds("r00"));
    assert!([&a, &b, &n].iter().all(|c| !c.holds("r09")));
    assert_eq!(a.owner("r09"), None);
    // once the view settled the owner never changed again
    assert!(owners_over_time
        .iter()
        .skip(1)
        .all(|o| o.as_deref() == Some("n")));
    // the unchanged rules are spread over all three
    let counts: Vec<usize> = [&a, &b, &n].iter().map(|c| held(c, &new)).collect();
    assert_eq!(counts.iter().sum::<usize>(), new.len(), "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn one_live_instance_is_leader_and_the_next_takes_over_when_it_dies() {
    let w = World::new();
    let rules = rules(6);
    let (a, _) = w.instance("a", TIMING, &rules);
    let (b, _) = w.instance("b", TIMING, &rules);
    let (c, _) = w.instance("c", TIMING, &rules);
    converged(&[&a, &b, &c], &rules).await;
    let leaders = |cs: &[&Arc<Coordinator>]| -> Vec<String> {
        cs.iter()
            .filter(|c| c.is_leader())
            .map(|c| c.instance_id().to_string())
            .collect()
    };
    assert_eq!(leaders(&[&a, &b, &c]), ["a"]);
    // a dies: once its heartbeat is older than a lease, b leads
    for _ in 0..5 {
        heartbeat(&[&b, &c], &[&a, &b, &c], &rules).await;
    }
    assert_eq!(leaders(&[&b, &c]), ["b"]);
}
