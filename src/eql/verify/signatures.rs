//! What the checks know of each function: its parameters, their types and
//! whether it is case-aware (takes `~`), from Elasticsearch's EQL function
//! registry; and the statically known type of an expression.

/// The statically known type of an expression, independent of any mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ty {
    Bool,
    Int,
    Float,
    /// Some number: arithmetic, whose result may be an integer or a float.
    Number,
    String,
    Null,
    /// A field, or anything depending on one: the mapping decides.
    Unknown,
}

impl Ty {
    pub(super) fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Int => "integer",
            Ty::Float => "double",
            Ty::Number => "number",
            Ty::String => "string",
            Ty::Null => "null",
            Ty::Unknown => "unknown",
        }
    }

    /// Can a value of this type be used where `want` is required?
    pub(super) fn fits(self, want: Param) -> bool {
        match (self, want) {
            (Ty::Null | Ty::Unknown, _) | (_, Param::Any) => true,
            (Ty::String, Param::String) => true,
            (Ty::Int, Param::Int | Param::Number) => true,
            (Ty::Float | Ty::Number, Param::Number) => true,
            // Arithmetic on integers stays an integer; only a float is known not to be.
            (Ty::Number, Param::Int) => true,
            (Ty::Bool, Param::Bool) => true,
            _ => false,
        }
    }
}

/// The type a function parameter requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Param {
    Any,
    Bool,
    Int,
    Number,
    String,
    /// A string that must be a constant (cidrMatch's ranges).
    ConstString,
}

pub(super) struct Function {
    /// Lower-case name; Elasticsearch resolves function names case-insensitively.
    pub(super) name: &'static str,
    pub(super) min: usize,
    pub(super) max: Option<usize>,
    /// Parameter types; the last one repeats for variadic functions.
    pub(super) params: &'static [Param],
    /// Accepts the `~` suffix (Elasticsearch's `CaseInsensitiveScalarFunction`s).
    pub(super) case_aware: bool,
    pub(super) returns: Ty,
}

use Param as P;

/// Elasticsearch's `EqlFunctionRegistry`.
pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "add",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "between",
        min: 3,
        max: Some(4),
        params: &[P::String, P::String, P::String, P::Bool],
        case_aware: true,
        returns: Ty::String,
    },
    Function {
        name: "cidrmatch",
        min: 2,
        max: None,
        params: &[P::String, P::ConstString],
        case_aware: false,
        returns: Ty::Bool,
    },
    Function {
        name: "concat",
        min: 1,
        max: None,
        params: &[P::Any],
        case_aware: false,
        returns: Ty::String,
    },
    Function {
        name: "divide",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "endswith",
        min: 2,
        max: Some(2),
        params: &[P::String],
        case_aware: true,
        returns: Ty::Bool,
    },
    Function {
        name: "indexof",
        min: 2,
        max: Some(3),
        params: &[P::String, P::String, P::Int],
        case_aware: true,
        returns: Ty::Int,
    },
    Function {
        name: "length",
        min: 1,
        max: Some(1),
        params: &[P::String],
        case_aware: false,
        returns: Ty::Int,
    },
    Function {
        name: "modulo",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "multiply",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "number",
        min: 1,
        max: Some(2),
        params: &[P::String, P::Int],
        case_aware: false,
        returns: Ty::Number,
    },
    Function {
        name: "startswith",
        min: 2,
        max: Some(2),
        params: &[P::String],
        case_aware: true,
        returns: Ty::Bool,
    },
    Function {
        name: "string",
        min: 1,
        max: Some(1),
        params: &[P::Any],
        case_aware: false,
        returns: Ty::String,
    },
    Function {
        name: "stringcontains",
        min: 2,
        max: Some(2),
        params: &[P::String],
        case_aware: true,
        returns: Ty::Bool,
    },
    Function {
        name: "substring",
        min: 2,
        max: Some(3),
        params: &[P::String, P::Int],
        case_aware: false,
        returns: Ty::String,
    },
    Function {
        name: "subtract",
        min: 2,
        max: Some(2),
        params: &[P::Number],
        case_aware: false,
        returns: Ty::Number,
    },
];

/// The spelling used in documentation, for messages.
pub(super) const CANONICAL_NAMES: &[&str] = &[
    "add",
    "between",
    "cidrMatch",
    "concat",
    "divide",
    "endsWith",
    "indexOf",
    "length",
    "modulo",
    "multiply",
    "number",
    "startsWith",
    "string",
    "stringContains",
    "substring",
    "subtract",
];

pub(super) fn function(name: &str) -> Option<&'static Function> {
    let lower = name.to_ascii_lowercase();
    FUNCTIONS.iter().find(|f| f.name == lower)
}
