//! Which live instance owns which rule: pure, so every instance computes
//! the same answer from the same view, and tests need no cluster.
//!
//! Kibana deals 256 task partitions round-robin over the sorted live nodes
//! (`x-pack/platform/plugins/shared/task_manager/server/lib/
//! assign_pod_partitions.ts`). detectd uses rendezvous hashing instead:
//! each rule goes to the eligible instance with the highest
//! `hash(instance id, rule id)`. The spread is as even, and when an
//! instance joins or leaves only the rules it gains or had move (about
//! 1/n of them), so a join does not reshuffle every lease.
//!
//! Rolling upgrades (instances with different rule sets): the rule set
//! loaded most recently (greatest `rules_loaded_at`, then instance id) is
//! the authority. A rule runs iff the authority has it, at the
//! authority's revision (its fingerprint), and only on the instances that
//! have that same revision loaded. So an old instance never runs a rule
//! the new rule set changed or removed, the two versions never alternate
//! (the authority only changes when someone loads rules again), and a rule
//! new in the latest rule set runs on the new instances only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::rule::Rule;

/// Rule id -> fingerprint of the loaded revision.
pub type RuleFingerprints = BTreeMap<String, String>;

/// One live instance as assignment sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// When its rule set was (re)loaded.
    pub rules_loaded_at: DateTime<Utc>,
    /// Its rules; `None` while its rule set document is not known (then it
    /// is given no rules).
    pub rules: Option<Arc<RuleFingerprints>>,
}

/// What decides whether two instances run the same revision of a rule:
/// its id, Kibana's version and revision, its schedule and its parameters
/// as written (the query, index, filters...). Stable across processes
/// (no hash map order, no addresses).
pub fn fingerprint(rule: &Rule) -> String {
    let mut h = Sha256::new();
    let parameters = toml::to_string(&rule.parameters).unwrap_or_default();
    for part in [
        rule.rule_id.as_str(),
        &format!("{:?}", rule.version),
        &rule.revision.to_string(),
        &format!("{:?}", rule.schedule),
        &rule.enabled.to_string(),
        &parameters,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize()[..8])
}

/// The hash of a whole rule set: equal sets, equal hashes.
pub fn rules_hash(rules: &RuleFingerprints) -> String {
    let mut h = Sha256::new();
    for (id, fp) in rules {
        h.update(id.as_bytes());
        h.update([0]);
        h.update(fp.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize()[..12])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The rendezvous weight of `rule_id` on `instance`.
fn weight(instance: &str, rule_id: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(instance.as_bytes());
    h.update([0]);
    h.update(rule_id.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// The instance whose rule set rules (see the module doc).
pub fn authority(live: &[Candidate]) -> Option<&Candidate> {
    live.iter()
        .filter(|c| c.rules.is_some())
        .max_by(|a, b| (a.rules_loaded_at, &a.id).cmp(&(b.rules_loaded_at, &b.id)))
}

/// The owner of every rule that runs, by rule id.
pub fn assign(live: &[Candidate]) -> HashMap<String, String> {
    let mut owners = HashMap::new();
    let Some(authority) = authority(live) else {
        return owners;
    };
    let Some(rules) = &authority.rules else {
        return owners;
    };
    for (rule_id, fp) in rules.iter() {
        let owner = live
            .iter()
            .filter(|c| c.rules.as_ref().is_some_and(|r| r.get(rule_id) == Some(fp)))
            .max_by(|a, b| (weight(&a.id, rule_id), &a.id).cmp(&(weight(&b.id, rule_id), &b.id)));
        if let Some(owner) = owner {
            owners.insert(rule_id.clone(), owner.id.clone());
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(n: usize, rev: &str) -> Arc<RuleFingerprints> {
        Arc::new(
            (0..n)
                .map(|i| (format!("rule-{i:04}"), rev.to_string()))
                .collect(),
        )
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    fn member(id: &str, loaded: i64, r: &Arc<RuleFingerprints>) -> Candidate {
        Candidate {
            id: id.into(),
            rules_loaded_at: at(loaded),
            rules: Some(r.clone()),
        }
    }

    fn count(owners: &HashMap<String, String>, id: &str) -> usize {
        owners.values().filter(|o| *o == id).count()
    }

    #[test]
    fn every_rule_has_one_owner_and_the_spread_is_even() {
        let r = rules(1000, "a");
        let live = [
            member("i1", 0, &r),
            member("i2", 1, &r),
            member("i3", 2, &r),
        ];
        let owners = assign(&live);
        assert_eq!(owners.len(), 1000);
        for id in ["i1", "i2", "i3"] {
            let n = count(&owners, id);
            assert!((280..=390).contains(&n), "{id} owns {n} of 1000");
        }
    }

    #[test]
    fn the_order_of_the_view_does_not_matter() {
        let r = rules(200, "a");
        let a = [
            member("i1", 0, &r),
            member("i2", 1, &r),
            member("i3", 2, &r),
        ];
        let b = [
            member("i3", 2, &r),
            member("i1", 0, &r),
            member("i2", 1, &r),
        ];
        assert_eq!(assign(&a), assign(&b));
    }

    #[test]
    fn a_joining_instance_takes_only_its_share_and_a_leaving_one_gives_only_its_own() {
        let r = rules(1000, "a");
        let three = [
            member("i1", 0, &r),
            member("i2", 0, &r),
            member("i3", 0, &r),
        ];
        let four = [
            member("i1", 0, &r),
            member("i2", 0, &r),
            member("i3", 0, &r),
            member("i4", 0, &r),
        ];
        let before = assign(&three);
        let after = assign(&four);
        let moved: Vec<_> = before.keys().filter(|k| before[*k] != after[*k]).collect();
        // every rule that moved went to the new instance
        assert!(moved.iter().all(|k| after[*k] == "i4"));
        assert_eq!(moved.len(), count(&after, "i4"));
        assert!((200..=300).contains(&moved.len()), "{} moved", moved.len());
        // i4 leaves again: exactly its rules go back where they were
        assert_eq!(assign(&three), before);
    }

    #[test]
    fn in_a_rolling_upgrade_the_newest_rule_set_decides_and_versions_never_alternate() {
        let old = Arc::new(RuleFingerprints::from([
            ("kept".to_string(), "v1".to_string()),
            ("changed".to_string(), "v1".to_string()),
            ("removed".to_string(), "v1".to_string()),
        ]));
        let new = Arc::new(RuleFingerprints::from([
            ("kept".to_string(), "v1".to_string()),
            ("changed".to_string(), "v2".to_string()),
            ("added".to_string(), "v1".to_string()),
        ]));
        let live = [
            member("old-a", 0, &old),
            member("old-b", 0, &old),
            member("new-a", 100, &new),
        ];
        let owners = assign(&live);
        // only the new instance has the new revision, or the new rule
        assert_eq!(owners["changed"], "new-a");
        assert_eq!(owners["added"], "new-a");
        // the rule the new set dropped no longer runs anywhere
        assert!(!owners.contains_key("removed"));
        // an unchanged rule may stay on any instance
        assert!(owners.contains_key("kept"));
        // the same view a heartbeat later gives the same owners
        assert_eq!(assign(&live), owners);
    }

    #[test]
    fn an_instance_whose_rule_set_is_unknown_gets_nothing() {
        let r = rules(50, "a");
        let live = [
            member("i1", 0, &r),
            Candidate {
                id: "i2".into(),
                rules_loaded_at: at(5),
                rules: None,
            },
        ];
        let owners = assign(&live);
        assert_eq!(count(&owners, "i1"), 50);
    }

    #[test]
    fn nobody_live_owns_nothing() {
        assert!(assign(&[]).is_empty());
    }

    #[test]
    fn the_rules_hash_follows_the_fingerprints() {
        let a = rules(3, "a");
        let b = rules(3, "b");
        assert_eq!(rules_hash(&a), rules_hash(&rules(3, "a")));
        assert_ne!(rules_hash(&a), rules_hash(&b));
    }
}
