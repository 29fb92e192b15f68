//! Notifications: alert groups reach people and tools through outputs
//! (webhook, Slack, Teams, PagerDuty, email, an NDJSON file), none lost,
//! none repeated that a receiver cannot recognise.
//!
//! The flow follows the data: `config` (the `[[outputs]]`, `[[routes]]`
//! and `[notify]` tables, validated once) -> `route` (which route takes a
//! group) -> `message` (what a template sees) -> `outbox` (a run adds its
//! messages to the state store's outbox before it writes the window's
//! alerts and commits its checkpoint) -> `deliver` (a worker sends what the
//! checkpoints have committed, retries, records) -> `output` (one request
//! per kind) with `template` rendering the text.
//!
//! Beside them, `incident` and `watch`: alerts about detectd itself (a
//! rule failing, a gap, a message given up) through the same outbox.
//!
//! Not here: several instances
//! sharing one outbox (each entry is sent by whichever worker reads it).

pub mod config;
pub mod deliver;
pub mod incident;
pub mod message;
pub mod outbox;
pub mod output;
pub mod route;
pub mod template;
pub mod watch;

pub use config::{NotifySettings, OutputKind, OutputSettings, RouteKind, RouteMode, RouteSettings};
pub use deliver::{Deliverer, DeliveryStats, TickReport};
pub use incident::{announce, Incident};
pub use message::Group;
pub use outbox::{enqueue, EnqueueReport};
pub use output::{DeliveryError, Output};
pub use route::Router;
pub use watch::Watch;
