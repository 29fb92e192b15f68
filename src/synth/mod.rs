//! A deterministic generator of ECS-like endpoint events, for benchmarks,
//! demos and load tests.
//!
//! The stream mixes `process`, `file`, `network` and `library` events of a
//! fixed population of processes spread over hosts, one event every few
//! milliseconds, with a small share of "attack" pairs that the founding rule
//! (`sequence by host.id, process.entity_id with maxspan=5s [library where
//! dll.name : "taskschd.dll" ...] [network where ... destination.port == 135
//! ...]`) detects. The same seed always gives the same stream.
//!
//! [`kql_events`] makes, for a KQL query, documents that make its leaves
//! true: what the corpus tests run the KQL rules of the public corpus on.

pub mod kql_events;

use serde_json::{json, Value};

/// Shape of a generated stream.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    pub seed: u64,
    /// Distinct processes (`process.entity_id`).
    pub processes: u32,
    /// Distinct hosts the processes are spread over.
    pub hosts: u32,
    /// Epoch milliseconds of the first event.
    pub start_ms: i64,
    /// Mean gap between consecutive events, in milliseconds (0 = many per ms).
    pub mean_gap_ms: u32,
    /// Out of 10,000 events, how many start an attack pair.
    pub attacks_per_10k: u32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 42,
            processes: 5_000,
            hosts: 50,
            start_ms: 1_700_000_000_000,
            mean_gap_ms: 1,
            attacks_per_10k: 5,
        }
    }
}

/// An endless iterator of `_source` documents (take as many as needed).
pub struct Synth {
    cfg: SynthConfig,
    rng: SplitMix64,
    now_ms: i64,
    seq: u64,
    /// Network halves of attacks, by (due time, sequence), emitted when due.
    pending_attacks: std::collections::BTreeMap<(i64, u64), Value>,
}

const PROCESS_NAMES: &[&str] = &[
    "svchost.exe",
    "explorer.exe",
    "chrome.exe",
    "powershell.exe",
    "cmd.exe",
    "bash",
    "sshd",
    "python3",
    "msedge.exe",
    "rundll32.exe",
];
const DLLS: &[&str] = &[
    "kernel32.dll",
    "ntdll.dll",
    "user32.dll",
    "advapi32.dll",
    "ws2_32.dll",
    "taskschd.dll",
    "crypt32.dll",
];
const PORTS: &[u16] = &[443, 80, 53, 135, 445, 22, 3389, 8080];
const ACTIONS: &[&str] = &["start", "end", "creation", "modification", "deletion"];

impl Synth {
    pub fn new(cfg: SynthConfig) -> Self {
        let rng = SplitMix64(cfg.seed);
        let now_ms = cfg.start_ms;
        Synth {
            cfg,
            rng,
            now_ms,
            seq: 0,
            pending_attacks: Default::default(),
        }
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.rng.next() % xs.len() as u64) as usize]
    }

    fn process_ids(&mut self) -> (u32, u32) {
        let proc = (self.rng.next() % u64::from(self.cfg.processes.max(1))) as u32;
        let host = proc % self.cfg.hosts.max(1);
        (proc, host)
    }

    fn base(&mut self, category: &str, proc: u32, host: u32, name: &str) -> Value {
        self.seq += 1;
        json!({
            "@timestamp": iso_millis(self.now_ms),
            "event": { "category": category, "sequence": self.seq, "kind": "event",
                       "action": ACTIONS[(self.seq % ACTIONS.len() as u64) as usize] },
            "host": { "id": format!("host-{host:04}"), "name": format!("ws-{host:04}"),
                      "os": { "type": if host % 3 == 0 { "linux" } else { "windows" } } },
            "process": { "entity_id": format!("proc-{proc:06}"), "pid": 1000 + proc,
                         "name": name, "executable": format!("C:\\Windows\\System32\\{name}"),
                         "args": [name, "-arg", format!("{}", proc % 17)] },
            "user": { "name": format!("user{}", proc % 97) },
        })
    }

    fn next_event(&mut self) -> Value {
        let gap = if self.cfg.mean_gap_ms == 0 {
            u64::from(self.rng.next() % 4 == 0)
        } else {
            self.rng.next() % (2 * u64::from(self.cfg.mean_gap_ms) + 1)
        };
        let next_ms = self.now_ms + gap as i64;
        // A pending attack half due before the next regular event goes
        // first, so the stream stays in time order.
        if let Some(entry) = self.pending_attacks.first_entry() {
            if entry.key().0 <= next_ms {
                self.now_ms = self.now_ms.max(entry.key().0);
                return entry.remove();
            }
        }
        self.now_ms = next_ms;
        let (proc, host) = self.process_ids();
        let name = *self.pick(PROCESS_NAMES);

        let attack = self.rng.next() % 10_000 < u64::from(self.cfg.attacks_per_10k);
        if attack {
            let mut lib = self.base("library", proc, host, "powershell.exe");
            lib["host"]["os"]["type"] = json!("windows");
            lib["dll"] =
                json!({ "name": "taskschd.dll", "path": "C:\\Windows\\System32\\taskschd.dll" });
            let mut net = lib.clone();
            let due = self.now_ms + 1 + (self.rng.next() % 4000) as i64;
            self.seq += 1;
            net["@timestamp"] = json!(iso_millis(due));
            net["event"]["category"] = json!("network");
            net["event"]["sequence"] = json!(self.seq);
            net.as_object_mut().expect("object").remove("dll");
            net["destination"] = json!({ "port": 135, "address": "10.0.0.5", "ip": "10.0.0.5" });
            net["source"] = json!({ "port": 50_000, "ip": "10.0.0.9" });
            self.pending_attacks.insert((due, self.seq), net);
            return lib;
        }

        match self.rng.next() % 4 {
            0 => {
                let mut ev = self.base("process", proc, host, name);
                ev["process"]["parent"] = json!({ "name": "explorer.exe", "pid": 4 });
                ev
            }
            1 => {
                let mut ev = self.base("file", proc, host, name);
                let n = self.rng.next() % 1000;
                ev["file"] = json!({ "path": format!("C:\\Users\\user\\AppData\\file{n}.tmp"),
                                     "name": format!("file{n}.tmp"), "extension": "tmp" });
                ev
            }
            2 => {
                let mut ev = self.base("network", proc, host, name);
                let port = *self.pick(PORTS);
                let last = self.rng.next() % 250 + 1;
                // loopback now and then, so the founding rule's exclusion is exercised
                let ip = if last % 10 == 0 {
                    "127.0.0.1".to_string()
                } else {
                    format!("10.1.{}.{last}", host % 250)
                };
                ev["destination"] = json!({ "port": port, "address": ip, "ip": ip });
                ev["source"] = json!({ "port": 40_000 + (self.seq % 20_000), "ip": "10.0.0.9" });
                ev
            }
            _ => {
                let mut ev = self.base("library", proc, host, name);
                let dll = *self.pick(DLLS);
                ev["dll"] = json!({ "name": dll, "path": format!("C:\\Windows\\System32\\{dll}") });
                ev
            }
        }
    }
}

impl Iterator for Synth {
    type Item = Value;

    fn next(&mut self) -> Option<Value> {
        Some(self.next_event())
    }
}

/// The library half of the founding rule's attack: `process` on `host`
/// (process `entity`) loads taskschd.dll at `at` (an ISO timestamp). With
/// [`founding_network`], the fixture of the runner's tests.
pub fn founding_library(at: &str, host: &str, entity: &str, process: &str) -> Value {
    json!({
        "@timestamp": at,
        "event": {"category": "library", "kind": "event", "action": "load", "module": "endpoint"},
        "host": {"id": host, "name": format!("ws-{host}")},
        "process": {"name": process, "entity_id": entity, "pid": 4242},
        "dll": {"name": "taskschd.dll", "path": "C:\\Windows\\System32\\taskschd.dll"},
        "user": {"name": "alice"}
    })
}

/// The network half: the same process connects to `address:port` at `at`.
pub fn founding_network(
    at: &str,
    host: &str,
    entity: &str,
    process: &str,
    address: &str,
    port: u16,
) -> Value {
    json!({
        "@timestamp": at,
        "event": {"category": "network", "kind": "event", "action": "connection_attempted", "module": "endpoint"},
        "host": {"id": host, "name": format!("ws-{host}")},
        "process": {"name": process, "entity_id": entity, "pid": 4242},
        "destination": {"address": address, "ip": address, "port": port},
        "source": {"ip": "10.0.0.9", "port": 50123},
        "user": {"name": "alice"}
    })
}

/// `2023-11-14T22:13:20.000Z` for epoch milliseconds.
pub fn iso_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// splitmix64: small, fast, and good enough for test data (not for secrets).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_time_never_goes_back() {
        let a: Vec<_> = Synth::new(SynthConfig::default()).take(2000).collect();
        let b: Vec<_> = Synth::new(SynthConfig::default()).take(2000).collect();
        assert_eq!(a, b);
        let times: Vec<String> = a
            .iter()
            .map(|e| e["@timestamp"].as_str().unwrap().to_string())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "timestamps must not decrease"
        );
    }

    #[test]
    fn stream_contains_attack_pairs_and_all_categories() {
        let cfg = SynthConfig {
            attacks_per_10k: 100,
            ..SynthConfig::default()
        };
        let evs: Vec<_> = Synth::new(cfg).take(5000).collect();
        for cat in ["process", "file", "network", "library"] {
            assert!(evs.iter().any(|e| e["event"]["category"] == cat), "{cat}");
        }
        let attacks = evs
            .iter()
            .filter(|e| e["event"]["category"] == "network" && e["destination"]["port"] == 135)
            .filter(|e| e["destination"]["address"] == "10.0.0.5")
            .count();
        assert!(attacks >= 10, "only {attacks} attack network events");
    }
}
