//! Two daemons over one in-memory cluster on tokio's paused clock: each
//! rule runs on one of them at a time, both get rules, and when one shuts
//! down the other runs everything.

use std::collections::BTreeMap;

use super::tests::{options, t0, write_rule, Call, Fake, Handle, Reachable};
use super::*;
use crate::coord::memory::World;
use crate::coord::Timing;

const MIN: Duration = Duration::from_secs(60);

const TIMING: Timing = Timing {
    heartbeat: Duration::from_secs(10),
    lease: Duration::from_secs(30),
};

fn daemon(
    world: &World,
    id: &str,
    dir: &std::path::Path,
    fake: &Arc<Fake>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Outcome>,
) {
    let (coord, _) = world.instance(id, TIMING, &[]);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (signals, _reload) = Signals::new(async move {
        let _ = stop_rx.await;
    });
    let daemon = Daemon::new(
        options(dir, 4, true),
        Handle(fake.clone()),
        Reachable,
        TokioClock::starting_at(t0()),
    )
    .with_coordinator(coord);
    (stop_tx, tokio::spawn(daemon.run(Mode::Daemon, signals)))
}

#[tokio::test(start_paused = true)]
async fn two_daemons_share_the_rules_and_one_runs_them_all_once_the_other_stops() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..12).map(|i| format!("r{i:02}")).collect();
    for id in &ids {
        write_rule(dir.path(), id, "1m");
    }
    let world = World::new();
    // both fakes count from the same start
    let (fa, fb) = (Fake::new(&[]), Fake::new(&[]));
    let (stop_a, task_a) = daemon(&world, "a", dir.path(), &fa);
    let (stop_b, task_b) = daemon(&world, "b", dir.path(), &fb);
    tokio::time::sleep(6 * MIN).await;
    stop_b.send(()).unwrap();
    task_b.await.unwrap();
    let stopped = fb.calls().iter().map(|c| c.end).max().unwrap();
    tokio::time::sleep(6 * MIN).await;
    stop_a.send(()).unwrap();
    task_a.await.unwrap();

    let (a, b) = (fa.calls(), fb.calls());
    assert!(
        !a.is_empty() && !b.is_empty(),
        "a ran {}, b ran {}",
        a.len(),
        b.len()
    );
    let mut by_rule: BTreeMap<&str, Vec<(&Call, &str)>> = BTreeMap::new();
    for (calls, who) in [(&a, "a"), (&b, "b")] {
        for c in calls.iter() {
            by_rule
                .entry(c.rule_id.as_str())
                .or_default()
                .push((c, who));
        }
    }
    for id in &ids {
        let mut runs = by_rule.remove(id.as_str()).unwrap_or_default();
        runs.sort_by_key(|(c, _)| c.start);
        // one instance at a time, about once an interval
        for pair in runs.windows(2) {
            assert!(
                pair[1].0.start >= pair[0].0.end,
                "{id}: {} and {} overlap",
                pair[0].1,
                pair[1].1
            );
        }
        let n = runs.len();
        assert!((9..=13).contains(&n), "{id} ran {n} times in 12 minutes");
        // after b left, a runs the rule within an interval and a heartbeat
        let first_after = runs
            .iter()
            .find(|(c, _)| c.start > stopped)
            .unwrap_or_else(|| panic!("{id}: no run after b stopped"));
        assert_eq!(first_after.1, "a");
        assert!(
            first_after.0.start <= stopped + MIN + TIMING.heartbeat,
            "{id}: first run on a {:?} after b stopped",
            first_after.0.start - stopped
        );
    }
    assert_eq!(fa.overlaps.load(Ordering::SeqCst), 0);
}
