//! detectd: runs Elastic Security EQL detection rules beside an Elasticsearch
//! or OpenSearch cluster.
//!
//! Modules follow the data flow: `rule` (load and validate rule files) ->
//! `source` (events in) -> `eql` (the language and matchers) -> alerts out
//! through `sink`. `config` holds settings, `cluster` the connection that
//! the Elasticsearch source and sink share.

pub mod alert;
pub mod cluster;
pub mod config;
pub mod coord;
pub mod daemon;
pub mod dead_letters;
pub mod diagnostic;
pub mod eql;
pub mod esql;
pub mod exceptions;
pub mod explain;
pub mod filter;
pub mod hunt;
pub mod kibana_filter;
pub mod kql;
pub mod notify;
pub mod offline;
pub mod querydsl;
pub mod rule;
pub mod ruletest;
pub mod runner;
pub mod schedule;
pub mod sink;
pub mod source;
pub mod state;
pub mod synth;
