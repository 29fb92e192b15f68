//! Prints a tree back as KQL the way Kibana's `toKqlExpression` does
//! (`(a AND b)`, `NOT x`, `field: value`, values escaped with
//! `escapeKuery`), so a parsed query reads back to an equivalent one.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::ast::{LitValue, Literal, Node, Part};

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Or { clauses, .. } => join(f, clauses, " OR "),
            Node::And { clauses, .. } => join(f, clauses, " AND "),
            Node::Not { inner, .. } => write!(f, "NOT {inner}"),
            Node::Nested { path, query, .. } => write!(f, "{}: {{ {query} }}", literal(path)),
            Node::Is { field, value, .. } if field.value == LitValue::Null => {
                f.write_str(&value_literal(value))
            }
            Node::Is { field, value, .. } => {
                write!(f, "{}: {}", literal(field), value_literal(value))
            }
            Node::Range {
                field, op, value, ..
            } => write!(
                f,
                "{} {} {}",
                value_literal(field),
                op.symbol(),
                value_literal(value)
            ),
            Node::Exists { field, .. } => write!(f, "{}: *", literal(field)),
        }
    }
}

fn join(f: &mut fmt::Formatter<'_>, clauses: &[Node], sep: &str) -> fmt::Result {
    f.write_str("(")?;
    for (i, c) in clauses.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{c}")?;
    }
    f.write_str(")")
}

/// A literal as Kibana prints it: quoted with `"` and `\` escaped, a
/// wildcard with query-string escapes, otherwise `escapeKuery`.
pub fn literal(l: &Literal) -> String {
    match &l.value {
        LitValue::Wildcard(parts) => parts
            .iter()
            .map(|p| match p {
                Part::Star => "*".to_string(),
                Part::Text(t) => escape_query_string(t),
            })
            .collect(),
        _ if l.quoted => format!(
            "\"{}\"",
            l.to_plain_string()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        ),
        _ => escape_kuery(&l.to_plain_string()),
    }
}

/// A value (or a range's field) as [`literal`] prints it, and, beyond
/// Kibana's `escapeKuery`, a last word `and` or `or`, or a last `not`,
/// escaped: it is printed before more text (` AND next`, ` < 5`), which
/// would otherwise read as an operator. The grammar's `Or` and `And` need
/// a space before the word, its `Not` does not (`'not'i Space+`), so
/// `abcnot < 5` reads `abc` and then `not`. Kibana reads the escaped word
/// as the plain word.
fn value_literal(l: &Literal) -> String {
    if l.quoted || matches!(l.value, LitValue::Wildcard(_)) {
        return literal(l);
    }
    // On the plain text: in the printed one `\not` may be `\n` and `ot`.
    let plain = l.to_plain_string();
    static LAST_WORD: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?i)(?:(?:^|\s)(?:and|or)|not)$").ok());
    let word = LAST_WORD
        .as_ref()
        .and_then(|re| re.find(&plain))
        .map_or("", |m| m.as_str().trim_start());
    let (head, word) = plain.split_at(plain.len() - word.len());
    if word.is_empty() {
        escape_kuery(head)
    } else {
        format!("{}\\{word}", escape_kuery(head))
    }
}

/// Kibana's `escapeKuery`: special characters, `and`/`or` between spaces,
/// `not` before a space, and tab/CR/LF.
pub fn escape_kuery(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if matches!(c, '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*') {
            out.push('\\');
        }
        out.push(c);
    }
    static AND_OR: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"(?i)(\s+)(and|or)(\s+)").ok());
    static NOT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(?i)not(\s+)").ok());
    if let Some(re) = AND_OR.as_ref() {
        out = re.replace_all(&out, "$1\\$2$3").into_owned();
    }
    if let Some(re) = NOT.as_ref() {
        out = re.replace_all(&out, "\\$0").into_owned();
    }
    out.replace('\t', "\\t")
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

/// Kibana's `escapeQueryString` (query_string reserved characters).
pub fn escape_query_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "+-=&|><!(){}[]^\"~*?:\\/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
