//! Settings: raw, mergeable layers (config file, environment, flags) and the
//! validated settings built from them.

pub mod cluster;
