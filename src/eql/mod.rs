//! The EQL language, with no I/O: lexing, parsing (with spans and
//! diagnostics), semantic checks, lowering to compiled predicates, and the
//! event / sequence / sample matchers with Elasticsearch semantics.
//!
//! Data flow: `lexer` -> `parser` (syntax only, produces `ast`) -> `verify`
//! (semantic checks) -> `compile` (resolves fields against a `schema`, lowers
//! to an executable plan) -> `eval` (per event) -> `sequence` / `sample`
//! (stateful matchers) -> `search` (size, head/tail, result shape).

pub mod ast;
pub mod compile;
pub mod decode;
pub mod display;
pub mod error;
pub mod eval;
pub mod event;
pub mod functions;
pub mod lexer;
pub mod parser;
pub mod pattern;
pub mod pushdown;
pub mod sample;
pub mod schema;
pub mod search;
pub mod sequence;
pub mod span;
pub mod token;
pub mod value;
pub mod verify;

pub use error::{EqlError, ErrorKind};
pub use parser::parse;
pub use span::Span;
pub use verify::verify;
