//! Several instances of detectd over one cluster: who is there
//! ([`membership`]), which instance runs which rule ([`assign`]), the
//! leases that make it so ([`lease`], stored by `state::lease`) and the
//! task that keeps them ([`Coordinator`]). No other coordination service:
//! heartbeats and leases are documents, written with optimistic
//! concurrency, as Kibana's Task Manager does
//! (`reference/kibana-rule-types.md` §6).
//!
//! With the local state backend there is one instance, and [`lock`] makes
//! sure of it.

pub mod assign;
pub mod backend;
pub mod coordinator;
pub mod lease;
pub mod lock;
pub mod membership;
pub mod status;

#[cfg(test)]
pub(crate) mod memory;
#[cfg(test)]
pub(crate) mod tests;

pub use backend::{Backend, ClusterBackend};
pub use coordinator::{CoordView, Coordinator, RunPermit, Timing, WallClock};
pub use lock::{LockError, StateDirLock};
