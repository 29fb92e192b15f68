//! detectd: runs Elastic Security EQL detection rules beside an Elasticsearch
//! or OpenSearch cluster.
//!
//! Modules follow the data flow: `rule` (load and validate rule files) ->
//! `source` (events in) -> `eql` (the language and matchers) -> alerts out.

pub mod alert;
pub mod diagnostic;
pub mod eql;
pub mod offline;
pub mod rule;
pub mod schedule;
pub mod source;
pub mod synth;
