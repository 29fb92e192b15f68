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
//! Not here: alerts about detectd itself, several instances
//! sharing one outbox (each entry is sent by whichever worker reads it).

pub mod config;
pub mod deliver;
pub mod message;
pub mod outbox;
pub mod output;
pub mod route;
pub mod template;

pub use config::{NotifySettings, OutputKind, OutputSettings, RouteMode, RouteSettings};
pub use deliver::{Deliverer, DeliveryStats, TickReport};
pub use message::Group;
pub use outbox::{enqueue, EnqueueReport};
pub use output::{DeliveryError, Output};
pub use route::Router;
