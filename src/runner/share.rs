//! Shared scans: rules that run at the same time over overlapping indices
//! read each event once (issue "One scan, many rules").
//!
//! The daemon tells the [`ScanBoard`] which rules fire together (a
//! *cohort*: the rules of one interval, aligned on one grid, or of one cron
//! schedule, or every rule of `run --once`) and runs each of them with the
//! same `now`. The first run of a cohort at a `now` plans the window search
//! every member would send on time (its one window, its detector's
//! pushdown, projection and exact clauses; for a trailing missing-event
//! stage, from its checkpoint; for a tail, from where its carried matcher
//! ended), splits the members into groups
//! that can be one scan (same order; see `source::shared::shareable`) and
//! has the source read each group once ([`EventSource::fetch_shared`]).
//! Every run then asks for its window as always; a request equal to the one
//! planned for it is answered from the scan, anything else (a catch-up
//! window, a rule changed since, a scan that failed) is fetched alone.
//!
//! So sharing changes where events come from, never which: a member's
//! share is exactly what its own search selects (the cluster evaluates each
//! member's whole query as a named clause), in the same order, so its
//! windows, checkpoints, catch-up, caps, dedup and records keep their
//! meaning, and its alerts are the same set.
//!
//! Members whose search is their range, indices and pushdown alone (EQL
//! rules without filters or exceptions) are *selected locally* by default:
//! all of them that are ordered alike are one scan, which reads every event
//! of their time ranges and indices once and hands each to the members
//! whose pushdown passes it (`source::elasticsearch::local`). The cluster
//! then evaluates a clause per time range, not one per rule, and transfers
//! each event once: its cost grows with the events, not the rules. A scan
//! that reads more than [`LOCAL_WASTE_RATIO`] events for each one it keeps
//! (at least [`LOCAL_WASTE_MIN`]) costs more than named clauses would: the
//! cohort uses named clauses for the next [`ALONE_TICKS`] ticks.
//!
//! Groups are chosen by measured cost. A member whose events no other
//! member reads (a long look-back over its own indices), and many of them,
//! only makes the scan bigger: it fetches alone for a while, streaming its
//! window in bounded memory instead. A scan that would hold more than
//! `max_events` events stops; its members fetch alone this time, and the
//! largest of them fetch alone the next times. A cluster that refuses the
//! shared query as too large (`too_many_clauses`) gets groups half the
//! size from then on. Members that cannot share at all (reading through an
//! alias that routes searches) fetch alone for [`ALONE_TICKS`] ticks, the
//! rest of their group that one time.

mod fetch;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;

use super::detect::Detector;
use super::detect::Reach;
use super::run::tail::{tail_window, TailStates, TailTiming};
use super::run::{anchor, range_request, timing, window_search, RunnerSettings};
use crate::rule::Rule;
use crate::schedule::window::plan_windows;
use crate::source::shared::{MemberCount, ScanError, ScanOptions};
use crate::source::{EventSource, EventStream, FetchRequest, SharedScan};
use crate::state::StateStore;

pub(super) use fetch::SharedFetch;

/// A member whose exclusive events are at least this many, and nearly all
/// of its events, fetches alone (see the module doc).
const ALONE_EXCLUSIVE_EVENTS: u64 = 10_000;
/// How many cohort ticks a member chosen to fetch alone stays alone before
/// it is measured in a scan again.
const ALONE_TICKS: u32 = 12;

/// A locally selecting scan that reads more than this many events for each
/// event some member keeps reads mostly events nobody wants (see the
/// module doc) ...
const LOCAL_WASTE_RATIO: u64 = 10;
/// ... once it reads at least this many.
const LOCAL_WASTE_MIN: u64 = 10_000;

/// How old what an index pattern resolved to may be for a tail's scan (a
/// scan every few seconds would otherwise resolve every pattern every
/// time): an index created since is tailed once the answer is renewed, and
/// found by the scheduled windows, which always resolve afresh, as ever.
const TAIL_RESOLUTION_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Rules per scan by default (`[sharing] max_rules`): each page of a scan
/// evaluates every member's clause, and a cluster caps a query's clauses
/// (`indices.query.bool.max_clause_count`).
pub const DEFAULT_MAX_RULES: usize = 32;

/// Counters of shared scans, for `/metrics` (registered there by
/// `daemon::metrics`; the handles share their values).
#[derive(Debug, Default)]
pub struct ScanStats {
    /// Scans run (one search each, paged).
    pub scans: Counter,
    /// Rules planned into those scans (rules per scan = this ÷ scans).
    pub members: Counter,
    /// Events the scans read: each event once per scan.
    pub events_read: Counter,
    /// Events the members would have fetched alone (the sum of their
    /// shares): what sharing saved is this minus `events_read`.
    pub member_events: Counter,
    /// Window fetches answered from a scan.
    pub served: Counter,
    /// Scans given up (too large, refused, failed): their members fetched
    /// alone.
    pub failed: Counter,
}

/// The shared scans of a daemon (or of one `run --once`).
#[derive(Debug)]
pub struct ScanBoard {
    max_events: usize,
    max_rules: usize,
    /// Whether members without exact clauses are selected locally.
    select_locally: bool,
    /// Per rule id, the cohort of its scheduled runs.
    cohorts: std::sync::Mutex<HashMap<String, Arc<Cohort>>>,
    /// Per rule id, the cohort of its near-real-time tails.
    tails: std::sync::Mutex<HashMap<String, Arc<Cohort>>>,
    stats: Arc<ScanStats>,
}

#[derive(Debug)]
struct Cohort {
    rules: Vec<Arc<Rule>>,
    /// Tails plan their tail window; others their on-time window.
    tail: Option<TailTiming>,
    tick: tokio::sync::Mutex<Tick>,
}

impl Cohort {
    fn new(rules: Vec<Arc<Rule>>, tail: Option<TailTiming>, max_rules: usize) -> Arc<Cohort> {
        Arc::new(Cohort {
            rules,
            tail,
            tick: tokio::sync::Mutex::new(Tick {
                max_members: max_rules,
                ..Tick::default()
            }),
        })
    }
}

/// A cohort's current scans and what was measured of earlier ones.
#[derive(Debug, Default)]
struct Tick {
    now: Option<DateTime<Utc>>,
    /// Per rule id, the scan planned for it this tick and its place there,
    /// until its run takes its share.
    planned: HashMap<String, (Arc<Group>, usize)>,
    /// Members fetching alone, and for how many more ticks.
    alone: HashMap<String, u32>,
    /// Members per scan (lowered when a cluster refuses a query as too large).
    max_members: usize,
    /// Ticks left during which no member is selected locally (after a
    /// locally selecting scan read mostly events nobody kept).
    named_only: u32,
}

/// One scan of a tick: its members' planned requests (their exact clauses
/// left out: closures, the same for the same rule at the same `now`), read
/// when the first of them asks, dropped when the last has taken its share.
#[derive(Debug)]
struct Group {
    members: Vec<(Arc<Rule>, FetchRequest)>,
    /// Whether its members are selected locally (see the module doc).
    local: bool,
    scan: tokio::sync::OnceCell<Option<Arc<SharedScan>>>,
}

impl ScanBoard {
    /// A board whose scans hold at most `max_events` events each, counted
    /// in `stats`.
    pub fn new(max_events: usize, stats: Arc<ScanStats>) -> ScanBoard {
        ScanBoard {
            max_events,
            max_rules: DEFAULT_MAX_RULES,
            select_locally: true,
            cohorts: std::sync::Mutex::default(),
            tails: std::sync::Mutex::default(),
            stats,
        }
    }

    /// The board with at most `n` rules per scan.
    pub fn with_max_rules(mut self, n: usize) -> ScanBoard {
        self.max_rules = n.max(1);
        self
    }

    /// The board with local selection on or off (`[sharing]
    /// select_locally`): off, every member is a named clause.
    pub fn with_local_selection(mut self, on: bool) -> ScanBoard {
        self.select_locally = on;
        self
    }

    /// The rules that fire together, cohort by cohort (replacing the
    /// previous cohorts; scans already read are dropped).
    pub fn set_cohorts(&self, cohorts: Vec<Vec<Arc<Rule>>>) {
        let mut map = HashMap::new();
        for rules in cohorts {
            let cohort = Cohort::new(rules, None, self.max_rules);
            for rule in &cohort.rules {
                map.insert(rule.rule_id.clone(), cohort.clone());
            }
        }
        *self.cohorts.lock().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// The rules that tail together (`runner::run::tail`), replacing the
    /// previous ones.
    pub fn set_tail_cohort(&self, rules: Vec<Arc<Rule>>, timing: TailTiming) {
        let cohort = Cohort::new(rules, Some(timing), self.max_rules);
        let map = cohort
            .rules
            .iter()
            .map(|r| (r.rule_id.clone(), cohort.clone()))
            .collect();
        *self.tails.lock().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// `rule`'s events for `request` from its cohort's scan at `now` (run
    /// first if this is the first ask of that tick); `None` when the
    /// request was not planned into a scan: the caller fetches alone.
    pub(super) async fn take<S: EventSource, T: StateStore>(
        &self,
        (source, state, tails): (&S, &T, &TailStates),
        settings: &RunnerSettings,
        (rule, now, tail): (&Rule, DateTime<Utc>, bool),
        request: &FetchRequest,
    ) -> Option<EventStream> {
        let cohorts = if tail { &self.tails } else { &self.cohorts };
        let cohort = cohorts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&rule.rule_id)
            .cloned()?;
        let (group, member) = {
            let mut tick = cohort.tick.lock().await;
            if tick.now.is_some_and(|t| t > now) {
                return None; // a late run of an earlier tick: the scans moved on
            }
            if tick.now != Some(now) {
                plan(
                    &cohort,
                    &mut tick,
                    (state, tails),
                    settings,
                    now,
                    self.select_locally,
                )
                .await;
            }
            tick.planned.remove(&rule.rule_id)?
        };
        let (planned_rule, planned) = &group.members[member];
        if **planned_rule != *rule || !same_request(planned, request) {
            tracing::debug!(rule_id = %rule.rule_id, "the window is not the one planned: fetched alone");
            return None;
        }
        let scan = group
            .scan
            .get_or_init(|| self.read(&cohort, &group, source))
            .await
            .clone()?;
        self.stats.served.inc();
        scan.stream(member)
    }

    /// Reads one planned scan; `None` when it could not be read (its
    /// members fetch alone), and what was measured goes to the cohort.
    async fn read<S: EventSource>(
        &self,
        cohort: &Cohort,
        group: &Group,
        source: &S,
    ) -> Option<Arc<SharedScan>> {
        let requests: Vec<FetchRequest> = group.members.iter().map(|(_, r)| r.clone()).collect();
        let n = requests.len();
        let options = ScanOptions {
            max_events: self.max_events,
            resolved_within: match cohort.tail {
                Some(_) => TAIL_RESOLUTION_AGE,
                None => std::time::Duration::ZERO,
            },
            select_locally: group.local,
        };
        let outcome = source.fetch_shared(&requests, options).await;
        let mut tick = cohort.tick.lock().await;
        match outcome {
            Ok(Some(scan)) => {
                self.measure(&mut tick, group, &scan);
                Some(Arc::new(scan))
            }
            Ok(None) => None, // this source does not share
            Err(ScanError::TooLarge { limit, seen }) => {
                self.stats.failed.inc();
                let alone = largest_until_half(&group.members, &seen, limit);
                tracing::warn!(
                    rules = n,
                    limit,
                    fetching_alone_next = alone.len(),
                    "a shared scan grew past its event limit; its rules fetch alone this time"
                );
                for id in alone {
                    tick.alone.insert(id, ALONE_TICKS);
                }
                None
            }
            Err(ScanError::Refused(reason)) => {
                self.stats.failed.inc();
                tick.max_members = (n / 2).max(1);
                tracing::warn!(rules = n, next_size = tick.max_members, reason = %reason, "the cluster refused or timed out a shared scan; its rules fetch alone this time, and scans are smaller from now on");
                None
            }
            Err(ScanError::Unshareable { members, reason }) => {
                // the others share again at the next tick, without them
                self.stats.failed.inc();
                let ids: Vec<&str> = members
                    .iter()
                    .filter_map(|&m| group.members.get(m))
                    .map(|(rule, _)| rule.rule_id.as_str())
                    .collect();
                tracing::warn!(
                    rules = ?ids,
                    ticks = ALONE_TICKS,
                    reason = %reason,
                    "rules cannot share a scan; they fetch alone for a while, the rest of the scan this time"
                );
                for id in ids {
                    tick.alone.insert(id.to_string(), ALONE_TICKS);
                }
                None
            }
            Err(ScanError::Source(e)) => {
                // each member's own fetch meets the problem again and
                // reports it in its own record
                self.stats.failed.inc();
                tracing::warn!(rules = n, error = %e, "a shared scan failed; its rules fetch alone");
                None
            }
        }
    }

    /// Counts a scan, marks members better off alone, and turns local
    /// selection off for a while when it read mostly what nobody kept.
    fn measure(&self, tick: &mut Tick, group: &Group, scan: &SharedScan) {
        let members = &group.members;
        let counts = scan.counts();
        let wanted: u64 = counts.iter().map(|c| c.events).sum();
        let s = &self.stats;
        s.scans.inc();
        s.members.inc_by(members.len() as u64);
        s.events_read.inc_by(scan.read);
        s.member_events.inc_by(wanted);
        tracing::debug!(
            rules = members.len(),
            events_read = scan.read,
            events_kept = scan.events.len(),
            member_events = wanted,
            local = group.local,
            "shared scan read"
        );
        if group.local && wasteful(scan.read, scan.events.len() as u64) {
            tick.named_only = ALONE_TICKS;
            tracing::info!(
                rules = members.len(),
                events_read = scan.read,
                events_kept = scan.events.len(),
                ticks = ALONE_TICKS,
                "a shared scan read mostly events no rule selects; its rules use named clauses for a while"
            );
        }
        for (i, c) in counts.iter().enumerate() {
            if better_alone(c) {
                tick.alone.insert(members[i].0.rule_id.clone(), ALONE_TICKS);
            }
        }
    }
}

/// Plans a cohort's scans at `now`: each member's on-time (or tail)
/// request, in groups; nothing is read yet.
async fn plan(
    cohort: &Cohort,
    tick: &mut Tick,
    (state, tails): (&impl StateStore, &TailStates),
    settings: &RunnerSettings,
    now: DateTime<Utc>,
    select_locally: bool,
) {
    tick.now = Some(now);
    tick.planned.clear();
    tick.alone.retain(|_, ticks| {
        *ticks = ticks.saturating_sub(1);
        *ticks > 0
    });
    let local = select_locally && tick.named_only == 0;
    tick.named_only = tick.named_only.saturating_sub(1);
    let mut planned: Vec<(Arc<Rule>, FetchRequest)> = Vec::new();
    for rule in &cohort.rules {
        if tick.alone.contains_key(&rule.rule_id) {
            continue;
        }
        if let Some(request) =
            planned_request(rule, (state, tails), settings, now, cohort.tail).await
        {
            planned.push((rule.clone(), request));
        }
    }
    for (members, local) in groups(planned, tick.max_members, local) {
        if members.len() < 2 {
            continue; // one rule alone reads the same as its own fetch
        }
        let group = Arc::new(Group {
            members,
            local,
            scan: tokio::sync::OnceCell::new(),
        });
        for (i, (rule, _)) in group.members.iter().enumerate() {
            tick.planned
                .insert(rule.rule_id.clone(), (group.clone(), i));
        }
    }
}

/// The search `rule` sends at `now`: for the last window of a scheduled
/// run, or, for a tail (`tail`), for the tail's window (see
/// `runner::run::tail`); `None` for rules whose detectors do not read a
/// window's events with one fetch.
///
/// A scheduled run is taken to be on time (its checkpoint one interval
/// back), without asking the state store: that decides only how far back
/// a window offers matches, and only for a trailing missing-event stage
/// (`Reach::undecided`), whose first run offers more than later ones. Only
/// those rules' checkpoints are read here, so that their first runs (and
/// late ones) are planned as they are asked.
async fn planned_request(
    rule: &Rule,
    (state, tails): (&impl StateStore, &TailStates),
    settings: &RunnerSettings,
    now: DateTime<Utc>,
    tail: Option<TailTiming>,
) -> Option<FetchRequest> {
    let detector = Detector::new(rule, settings, now).ok()?;
    if !detector.reads_one_stream() {
        return None;
    }
    let reach = detector.reach();
    let request = match tail {
        Some(timing) => {
            let window = tail_window(timing, now);
            // a tail going on from a carried matcher reads its window only
            let reach = if detector.carries() && tails.warm(rule, window) {
                Reach::NONE
            } else {
                reach
            };
            range_request(rule, settings, window, reach)
        }
        None => {
            let timing = timing(rule, settings, now);
            let end = anchor(rule, now);
            let on_time = Some(end - timing.interval);
            let covered = if reach.undecided > chrono::TimeDelta::zero() {
                match state.checkpoint(&rule.rule_id).await {
                    Ok(checkpoint) => checkpoint.map(|c| c.covered_until),
                    // its run meets the problem and reports it
                    Err(_) => on_time,
                }
            } else {
                on_time
            };
            let windows = plan_windows(timing, covered, end).windows;
            let (last, before) = windows.split_last()?;
            // as the run sends it: after the window before, or the checkpoint
            let previous_end = before.last().map(|w| w.end).or(covered);
            window_search(rule, settings, reach, *last, previous_end).request
        }
    };
    Some(detector.request(request))
}

/// What orders a scan's events: the timestamp and tiebreaker fields.
type OrderKey = (String, Option<String>);

/// A rule planned into a scan, with its request.
type Member = (Arc<Rule>, FetchRequest);

/// The members split into scans: by order (a scan has one sort); with
/// `local`, those without an exact clause in one scan selecting locally
/// (`true`), the others at most `max_members` per scan of named clauses.
fn groups(
    planned: Vec<(Arc<Rule>, FetchRequest)>,
    max_members: usize,
    local: bool,
) -> Vec<(Vec<Member>, bool)> {
    let mut by_order: Vec<(OrderKey, Vec<Member>)> = Vec::new();
    for (rule, request) in planned {
        if crate::source::shared::shareable(&[&request]).is_err() {
            continue;
        }
        let key = (
            request.timestamp_field.clone(),
            request.tiebreaker_field.clone(),
        );
        match by_order.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push((rule, request)),
            None => by_order.push((key, vec![(rule, request)])),
        }
    }
    let mut out = Vec::new();
    for (_, mut members) in by_order {
        // alike rules (same indices, similar pushdown: the same categories
        // first) in the same scan, so that what they read overlaps
        members.sort_by_cached_key(|(rule, request)| {
            (
                request.indices.clone(),
                format!("{:?}", request.filter),
                rule.rule_id.clone(),
            )
        });
        if local {
            let (selected, named): (Vec<Member>, Vec<Member>) =
                members.into_iter().partition(|(_, r)| r.exact.is_none());
            out.push((selected, true));
            members = named;
        }
        while members.len() > max_members {
            let rest = members.split_off(max_members);
            out.push((members, false));
            members = rest;
        }
        out.push((members, false));
    }
    out
}

/// Whether a locally selecting scan read more than [`LOCAL_WASTE_RATIO`]
/// events per event kept, and at least [`LOCAL_WASTE_MIN`].
fn wasteful(read: u64, kept: u64) -> bool {
    read >= LOCAL_WASTE_MIN && read > kept.saturating_mul(LOCAL_WASTE_RATIO)
}

/// A member that only adds events nobody else reads, many of them.
fn better_alone(c: &MemberCount) -> bool {
    c.exclusive >= ALONE_EXCLUSIVE_EVENTS && c.exclusive * 10 >= c.events * 9
}

/// After a scan stopped at `limit` events: the members that read the most,
/// largest first, until what the others read is at most half the limit.
fn largest_until_half(
    group: &[(Arc<Rule>, FetchRequest)],
    seen: &[u64],
    limit: usize,
) -> Vec<String> {
    let mut order: Vec<usize> = (0..group.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(seen.get(i).copied().unwrap_or(0)));
    let mut rest: u64 = seen.iter().sum();
    let mut out = Vec::new();
    for i in order {
        if rest <= limit as u64 / 2 {
            break;
        }
        rest = rest.saturating_sub(seen.get(i).copied().unwrap_or(0));
        out.push(group[i].0.rule_id.clone());
    }
    out
}

/// Whether a run's request is the one planned: equal but for their exact
/// clauses, which are closures (the same rule at the same `now` makes the
/// same clause).
fn same_request(planned: &FetchRequest, asked: &FetchRequest) -> bool {
    let strip = |r: &FetchRequest| FetchRequest {
        exact: None,
        ..r.clone()
    };
    strip(planned) == strip(asked)
}
