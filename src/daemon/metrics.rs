//! Every Prometheus metric detectd exports, defined in this one place, and
//! the one function that turns an [`ExecutionRecord`] into metric updates.
//!
//! Labels are bounded: a rule id and a run status, never an event or alert
//! id. Counters are registered without the `_total` suffix because the
//! OpenMetrics encoder appends it.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::runner::{ExecutionRecord, RunStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub rule_id: String,
    pub status: StatusLabel,
}

/// The run status as a label value, spelled like Kibana's statuses.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StatusLabel {
    succeeded,
    partial_failure,
    failed,
}

impl From<RunStatus> for StatusLabel {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Succeeded => StatusLabel::succeeded,
            RunStatus::PartialFailure => StatusLabel::partial_failure,
            RunStatus::Failed => StatusLabel::failed,
        }
    }
}

/// A notification output's name (bounded: the outputs of the config).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutputLabels {
    pub output: String,
}

type PerRule = Family<RuleLabels, Counter>;
type PerOutput = Family<OutputLabels, Counter>;

fn duration_histogram() -> Histogram {
    // 50 ms .. ~7 min: a quick event rule up to a long catch-up run.
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

/// The registry and a handle on each metric.
pub struct Metrics {
    registry: Registry,
    runs: Family<RunLabels, Counter>,
    run_duration: Family<RuleLabels, Histogram, fn() -> Histogram>,
    alerts_created: PerRule,
    alerts_duplicate: PerRule,
    alerts_capped: PerRule,
    alerts_failed: PerRule,
    alerts_dead_lettered: PerRule,
    events_fetched: PerRule,
    failures: PerRule,
    gap_seconds: Family<RuleLabels, Gauge<f64, AtomicU64>>,
    rules_loaded: Gauge,
    start_delay: Histogram,
    notifications_sent: PerOutput,
    notifications_failed: PerOutput,
    notifications_given_up: PerOutput,
    notifications_pending: Family<OutputLabels, Gauge>,
    instances_live: Gauge,
    rules_assigned: Gauge,
    leases_held: Gauge,
    leases_lost: Counter,
    coordination_requests: Counter,
    scans: Arc<crate::runner::ScanStats>,
    tails: Family<TailLabels, Counter>,
    tail_alerts: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TailLabels {
    status: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let runs = Family::<RunLabels, Counter>::default();
        let run_duration = Family::<RuleLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let alerts_created = PerRule::default();
        let alerts_duplicate = PerRule::default();
        let alerts_capped = PerRule::default();
        let alerts_failed = PerRule::default();
        let alerts_dead_lettered = PerRule::default();
        let events_fetched = PerRule::default();
        let failures = PerRule::default();
        let gap_seconds = Family::<RuleLabels, Gauge<f64, AtomicU64>>::default();
        let rules_loaded = Gauge::default();
        // 1 ms .. ~4 min: waiting for a permit, up to a whole missed interval.
        let start_delay = Histogram::new(exponential_buckets(0.001, 4.0, 10));

        let notifications_sent = PerOutput::default();
        let notifications_failed = PerOutput::default();
        let notifications_given_up = PerOutput::default();
        let notifications_pending = Family::<OutputLabels, Gauge>::default();
        registry.register(
            "detectd_notifications_sent",
            "Notifications an output acknowledged",
            notifications_sent.clone(),
        );
        registry.register(
            "detectd_notification_failures",
            "Notification attempts that failed and will be retried",
            notifications_failed.clone(),
        );
        registry.register(
            "detectd_notifications_given_up",
            "Notifications given up (refused, or not delivered within notify.give_up_after)",
            notifications_given_up.clone(),
        );
        registry.register(
            "detectd_notifications_pending",
            "Notifications waiting for their window's checkpoint or their next attempt",
            notifications_pending.clone(),
        );
        registry.register(
            "detectd_rule_runs",
            "Rule runs, by rule and run status",
            runs.clone(),
        );
        registry.register(
            "detectd_rule_run_duration_seconds",
            "Wall time of one rule run (all its windows, writes and checkpoint)",
            run_duration.clone(),
        );
        registry.register(
            "detectd_alerts_created",
            "Alert documents written",
            alerts_created.clone(),
        );
        registry.register(
            "detectd_alerts_duplicate",
            "Alerts not written because their id already existed",
            alerts_duplicate.clone(),
        );
        registry.register(
            "detectd_alerts_capped",
            "New alerts not written because of max_signals (left for the next run)",
            alerts_capped.clone(),
        );
        registry.register(
            "detectd_alerts_failed",
            "Alerts the cluster refused to index",
            alerts_failed.clone(),
        );
        registry.register(
            "detectd_alerts_dead_lettered",
            "Alerts the cluster refused as invalid, kept as dead letters (detectd dead-letters replay)",
            alerts_dead_lettered.clone(),
        );
        registry.register(
            "detectd_events_fetched",
            "Source events read from the cluster",
            events_fetched.clone(),
        );
        registry.register(
            "detectd_rule_failures",
            "Rule runs that failed (the checkpoint did not move)",
            failures.clone(),
        );
        registry.register(
            "detectd_rule_gap_seconds",
            "Length of the time not searched by the rule's last run (beyond the catch-up horizon)",
            gap_seconds.clone(),
        );
        registry.register(
            "detectd_rules_loaded",
            "Rules loaded and scheduled",
            rules_loaded.clone(),
        );
        registry.register(
            "detectd_run_start_delay_seconds",
            "How late runs started after their scheduled time (waiting for a concurrency permit or an overrunning previous run)",
            start_delay.clone(),
        );
        let instances_live = Gauge::default();
        let rules_assigned = Gauge::default();
        let leases_held = Gauge::default();
        let leases_lost = Counter::default();
        let coordination_requests = Counter::default();
        registry.register(
            "detectd_instances_live",
            "Instances seen within the lease time at the last heartbeat (this one included)",
            instances_live.clone(),
        );
        registry.register(
            "detectd_instance_rules_assigned",
            "Rules the last heartbeat assigned to this instance",
            rules_assigned.clone(),
        );
        registry.register(
            "detectd_instance_leases_held",
            "Rule leases this instance holds and that are valid",
            leases_held.clone(),
        );
        registry.register(
            "detectd_instance_leases_lost",
            "Rule leases taken from this instance by another one (a refused renewal or checkpoint)",
            leases_lost.clone(),
        );
        registry.register(
            "detectd_coordination_requests",
            "Cluster requests spent on heartbeats, membership and leases",
            coordination_requests.clone(),
        );
        let scans = Arc::new(crate::runner::ScanStats::default());
        for (name, help, counter) in [
            (
                "detectd_shared_scans",
                "Shared scans run: one search (paged) for the windows of several rules",
                &scans.scans,
            ),
            (
                "detectd_shared_scan_rules",
                "Rules read by shared scans (rules per scan: this / detectd_shared_scans_total)",
                &scans.members,
            ),
            (
                "detectd_shared_scan_events_read",
                "Events shared scans read, each once per scan",
                &scans.events_read,
            ),
            (
                "detectd_shared_scan_rule_events",
                "Events the rules of shared scans would have fetched alone",
                &scans.member_events,
            ),
            (
                "detectd_shared_scan_windows_served",
                "Rule windows answered from a shared scan",
                &scans.served,
            ),
            (
                "detectd_shared_scans_failed",
                "Shared scans given up (too large, refused, failed): their rules fetched alone",
                &scans.failed,
            ),
        ] {
            registry.register(name, help, counter.clone());
        }
        let tails = Family::<TailLabels, Counter>::default();
        let tail_alerts = Counter::default();
        registry.register(
            "detectd_tails",
            "Near-real-time tails run, by status",
            tails.clone(),
        );
        registry.register(
            "detectd_tail_alerts_created",
            "Alerts created by near-real-time tails (earlier than their scheduled run would have)",
            tail_alerts.clone(),
        );
        Metrics {
            scans,
            tails,
            tail_alerts,
            instances_live,
            rules_assigned,
            leases_held,
            leases_lost,
            coordination_requests,
            registry,
            runs,
            run_duration,
            alerts_created,
            alerts_duplicate,
            alerts_capped,
            alerts_failed,
            alerts_dead_lettered,
            events_fetched,
            failures,
            gap_seconds,
            rules_loaded,
            start_delay,
            notifications_sent,
            notifications_failed,
            notifications_given_up,
            notifications_pending,
        }
    }

    /// Records one pass of the notification worker.
    pub fn observe_delivery(&self, report: &crate::notify::TickReport) {
        let label = |o: &String| OutputLabels { output: o.clone() };
        for (o, n) in &report.sent {
            self.notifications_sent.get_or_create(&label(o)).inc_by(*n);
        }
        for (o, n) in &report.failed {
            self.notifications_failed
                .get_or_create(&label(o))
                .inc_by(*n);
        }
        for (o, n) in &report.given_up {
            self.notifications_given_up
                .get_or_create(&label(o))
                .inc_by(*n);
        }
        for (o, n) in &report.pending {
            self.notifications_pending
                .get_or_create(&label(o))
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Records one near-real-time tail.
    pub fn observe_tail(&self, record: &ExecutionRecord) {
        let status = match record.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::PartialFailure => "partial failure",
            RunStatus::Failed => "failed",
        };
        self.tails.get_or_create(&TailLabels { status }).inc();
        self.tail_alerts.inc_by(record.alerts_created);
    }

    /// Records how late a run started after its scheduled time.
    pub fn observe_start_delay(&self, delay: Duration) {
        self.start_delay.observe(delay.as_secs_f64());
    }

    /// Records one finished run. `took` is the wall time the daemon measured
    /// around it.
    pub fn observe(&self, record: &ExecutionRecord, took: Duration) {
        let rule = RuleLabels {
            rule_id: record.rule_id.clone(),
        };
        self.runs
            .get_or_create(&RunLabels {
                rule_id: record.rule_id.clone(),
                status: record.status.into(),
            })
            .inc();
        self.run_duration
            .get_or_create(&rule)
            .observe(took.as_secs_f64());
        self.alerts_created
            .get_or_create(&rule)
            .inc_by(record.alerts_created);
        self.alerts_duplicate
            .get_or_create(&rule)
            .inc_by(record.alerts_duplicate);
        self.alerts_capped
            .get_or_create(&rule)
            .inc_by(record.alerts_capped);
        self.alerts_failed
            .get_or_create(&rule)
            .inc_by(record.alerts_failed);
        self.alerts_dead_lettered
            .get_or_create(&rule)
            .inc_by(record.alerts_dead_lettered);
        self.events_fetched
            .get_or_create(&rule)
            .inc_by(record.events_fetched);
        if record.status == RunStatus::Failed {
            self.failures.get_or_create(&rule).inc();
        }
        let gap = record
            .gap
            .map(|g| (g.end - g.start).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.gap_seconds.get_or_create(&rule).set(gap);
    }

    /// What the last heartbeat saw (see `coord`).
    pub fn observe_instance(&self, view: &crate::coord::CoordView) {
        self.instances_live.set(view.live_instances.len() as i64);
        self.rules_assigned.set(view.rules_assigned as i64);
        self.leases_held.set(view.leases_valid as i64);
        let lost = view.leases_lost.saturating_sub(self.leases_lost.get());
        self.leases_lost.inc_by(lost);
        let requests = view
            .requests
            .saturating_sub(self.coordination_requests.get());
        self.coordination_requests.inc_by(requests);
    }

    pub fn set_rules_loaded(&self, n: usize) {
        self.rules_loaded.set(n as i64);
    }

    /// Forgets the series of a rule that is no longer loaded, so /metrics
    /// does not grow with every rule ever seen.
    pub fn forget_rule(&self, rule_id: &str) {
        let rule = RuleLabels {
            rule_id: rule_id.to_string(),
        };
        self.run_duration.remove(&rule);
        for family in [
            &self.alerts_created,
            &self.alerts_duplicate,
            &self.alerts_capped,
            &self.alerts_failed,
            &self.alerts_dead_lettered,
            &self.events_fetched,
            &self.failures,
        ] {
            family.remove(&rule);
        }
        self.gap_seconds.remove(&rule);
        for status in [
            StatusLabel::succeeded,
            StatusLabel::partial_failure,
            StatusLabel::failed,
        ] {
            self.runs.remove(&RunLabels {
                rule_id: rule_id.to_string(),
                status,
            });
        }
    }

    /// The counters shared scans keep (`runner::share`), registered here.
    pub fn scan_stats(&self) -> Arc<crate::runner::ScanStats> {
        self.scans.clone()
    }

    /// The Prometheus / OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::runner::record::WindowRange;
    use chrono::{TimeZone, Utc};

    pub(crate) fn record(rule_id: &str, status: RunStatus) -> ExecutionRecord {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
        ExecutionRecord {
            rule_id: rule_id.into(),
            rule_name: "R".into(),
            execution_id: "e".into(),
            status,
            started_at: t,
            finished_at: t,
            windows: vec![],
            events_fetched: 10,
            events_skipped: 0,
            alerts_created: 3,
            alerts_duplicate: 2,
            alerts_capped: 1,
            alerts_failed: 0,
            alerts_dead_lettered: 1,
            alerts_suppressed: 0,
            search_duration_ms: 1,
            index_duration_ms: 1,
            warnings: vec![],
            gap: Some(WindowRange {
                start: t - chrono::Duration::seconds(90),
                end: t,
            }),
            error: None,
        }
    }

    #[test]
    fn shared_scan_counters_are_the_boards() {
        let m = Metrics::new();
        let stats = m.scan_stats();
        stats.scans.inc_by(2);
        stats.members.inc_by(64);
        stats.events_read.inc_by(1_000);
        stats.member_events.inc_by(19_000);
        stats.served.inc_by(63);
        stats.failed.inc();
        let text = m.encode();
        for line in [
            "detectd_shared_scans_total 2",
            "detectd_shared_scan_rules_total 64",
            "detectd_shared_scan_events_read_total 1000",
            "detectd_shared_scan_rule_events_total 19000",
            "detectd_shared_scan_windows_served_total 63",
            "detectd_shared_scans_failed_total 1",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn the_instances_view_becomes_gauges_and_counters() {
        let m = Metrics::new();
        let mut view = crate::coord::CoordView {
            instance_id: "i1".into(),
            live_instances: vec!["i1".into(), "i2".into(), "i3".into()],
            rules_assigned: 5,
            leases_valid: 4,
            leases_lost: 2,
            requests: 30,
            ..Default::default()
        };
        m.observe_instance(&view);
        view.requests = 33;
        m.observe_instance(&view);
        let text = m.encode();
        for line in [
            "detectd_instances_live 3",
            "detectd_instance_rules_assigned 5",
            "detectd_instance_leases_held 4",
            "detectd_instance_leases_lost_total 2",
            "detectd_coordination_requests_total 33",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn a_record_updates_every_metric_once() {
        let m = Metrics::new();
        m.observe(
            &record("r1", RunStatus::PartialFailure),
            Duration::from_millis(120),
        );
        m.observe(&record("r1", RunStatus::Failed), Duration::from_millis(80));
        m.set_rules_loaded(7);
        m.observe_start_delay(Duration::from_millis(2500));
        let text = m.encode();
        for line in [
            "detectd_rule_runs_total{rule_id=\"r1\",status=\"partial_failure\"} 1",
            "detectd_rule_runs_total{rule_id=\"r1\",status=\"failed\"} 1",
            "detectd_alerts_created_total{rule_id=\"r1\"} 6",
            "detectd_alerts_duplicate_total{rule_id=\"r1\"} 4",
            "detectd_alerts_capped_total{rule_id=\"r1\"} 2",
            "detectd_alerts_dead_lettered_total{rule_id=\"r1\"} 2",
            "detectd_events_fetched_total{rule_id=\"r1\"} 20",
            "detectd_rule_failures_total{rule_id=\"r1\"} 1",
            "detectd_rule_gap_seconds{rule_id=\"r1\"} 90.0",
            "detectd_rule_run_duration_seconds_count{rule_id=\"r1\"} 2",
            "detectd_rules_loaded 7",
            "detectd_run_start_delay_seconds_sum 2.5",
            "detectd_run_start_delay_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        m.forget_rule("r1");
        assert!(!m.encode().contains("rule_id=\"r1\""));
    }

    #[test]
    fn delivery_counts_by_output_and_a_pending_gauge_that_comes_down() {
        let m = Metrics::new();
        let mut report = crate::notify::TickReport::default();
        report.sent.insert("hook".into(), 3);
        report.failed.insert("pager".into(), 2);
        report.pending.insert("pager".into(), 5);
        report.pending.insert("hook".into(), 0);
        m.observe_delivery(&report);
        m.observe_delivery(&report);
        let text = m.encode();
        assert!(
            text.contains("detectd_notifications_sent_total{output=\"hook\"} 6"),
            "{text}"
        );
        assert!(
            text.contains("detectd_notification_failures_total{output=\"pager\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("detectd_notifications_pending{output=\"pager\"} 5"),
            "{text}"
        );
        report.pending.insert("pager".into(), 0);
        m.observe_delivery(&report);
        assert!(m
            .encode()
            .contains("detectd_notifications_pending{output=\"pager\"} 0"));
    }
}
