//! ES|QL, as far as detectd needs to read it: detectd does not evaluate
//! ES|QL (Elasticsearch does, `_query/async`), but running a rule needs the
//! query's shape — the indices after `FROM`, its `METADATA` fields, whether
//! it aggregates (`STATS`), the columns a `STATS … BY` groups by, and the
//! fields `MV_EXPAND` multiplies rows by. [`Shape::read`] splits the query
//! into its commands (outside strings, comments and brackets) and reads
//! those few commands; everything else is Elasticsearch's to check.

mod shape;

pub use shape::{Shape, ShapeError};
