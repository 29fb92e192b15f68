//! Errors of reading query DSL, each at a JSON pointer into the query.

use serde_json::Value;

/// A JSON pointer (RFC 6901) to a value inside a query, for errors: the
/// caller knows where the query itself sits (a rule file's `filters[2]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pointer(String);

impl Pointer {
    pub fn root() -> Pointer {
        Pointer(String::new())
    }

    /// The pointer to a key or index under this one.
    pub fn child(&self, segment: impl std::fmt::Display) -> Pointer {
        let seg = segment.to_string().replace('~', "~0").replace('/', "~1");
        Pointer(format!("{}/{seg}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("/")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// A query the cluster would refuse (or read differently from what it
/// says): wrong shapes, unknown query types or parameters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DslError {
    #[error("at `{path}`: expected {expected}, found {found}")]
    Expected {
        path: String,
        expected: String,
        found: String,
    },
    #[error("at `{path}`: unknown query type `{name}`, expected a query such as `term`, `match_phrase`, `wildcard`, `range`, `exists`, `bool` or `query_string`")]
    UnknownQuery { path: String, name: String },
    #[error("at `{path}`: a `{query}` query takes no `{param}` (expected {expected})")]
    UnknownParameter {
        path: String,
        query: String,
        param: String,
        expected: String,
    },
    #[error("at `{path}`: the query nests deeper than {limit} levels")]
    TooDeep { path: String, limit: usize },
}

impl DslError {
    pub(crate) fn expected(path: &Pointer, expected: impl Into<String>, found: &Value) -> DslError {
        DslError::Expected {
            path: path.to_string(),
            expected: expected.into(),
            found: describe(found),
        }
    }

    /// The pointer the error is at.
    pub fn path(&self) -> &str {
        match self {
            DslError::Expected { path, .. }
            | DslError::UnknownQuery { path, .. }
            | DslError::UnknownParameter { path, .. }
            | DslError::TooDeep { path, .. } => path,
        }
    }
}

/// A JSON value named for an error message: its type, and short scalars
/// as written.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::String(s) if s.chars().count() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(a) if a.is_empty() => "an empty array".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(o) if o.is_empty() => "an empty object".into(),
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().take(3).map(|k| format!("`{k}`")).collect();
            format!("an object with {}", keys.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_escape_and_display() {
        let p = Pointer::root().child("query").child("a/b~c").child(2);
        assert_eq!(p.to_string(), "/query/a~1b~0c/2");
        assert_eq!(Pointer::root().to_string(), "/");
    }

    #[test]
    fn values_are_described() {
        assert_eq!(describe(&json!({"a":1,"b":2})), "an object with `a`, `b`");
        assert_eq!(describe(&json!("x")), "the string \"x\"");
        assert_eq!(describe(&json!([])), "an empty array");
    }
}
