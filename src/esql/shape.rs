//! The shape of an ES|QL query (see the module docs).

use std::fmt;

/// What running an ES|QL rule needs to know about its query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// The index patterns after `FROM` (comma-separated, possibly quoted).
    pub indices: Vec<String>,
    /// The `METADATA` fields of the `FROM` command (`_id`, `_index`, …).
    pub metadata: Vec<String>,
    /// Whether a `STATS` command aggregates the rows (Kibana:
    /// `computeIsESQLQueryAggregating` in `@kbn/securitysolution-utils`: any
    /// command named `stats`).
    pub aggregating: bool,
    /// The grouping columns of the last `STATS … BY` (the output column
    /// name of `BY x = expr` is `x`); empty when it has no `BY`.
    pub group_by: Vec<String>,
    /// The fields of every `MV_EXPAND` command, in order.
    pub expanded: Vec<String>,
}

/// Why a query's shape cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

impl Shape {
    /// Reads `query`'s shape. The query must start with `FROM` (a detection
    /// rule reads indices; `ROW` and `SHOW` read none).
    pub fn read(query: &str) -> Result<Shape, ShapeError> {
        let commands = split_commands(query)?;
        let first = commands
            .first()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ShapeError("expected an ES|QL query, found nothing".into()))?;
        let (name, rest) = command_name(first);
        if !name.eq_ignore_ascii_case("from") {
            return Err(ShapeError(format!(
                "expected the query to start with FROM <indices>, found `{name}`"
            )));
        }
        let (indices, metadata) = from_clause(rest)?;
        let mut shape = Shape {
            indices,
            metadata,
            aggregating: false,
            group_by: Vec::new(),
            expanded: Vec::new(),
        };
        for command in &commands[1..] {
            let (name, rest) = command_name(command.trim());
            if name.eq_ignore_ascii_case("stats") || name.eq_ignore_ascii_case("inlinestats") {
                // INLINESTATS keeps every row: it does not aggregate them
                // away (Kibana's check counts `stats` only).
                if name.eq_ignore_ascii_case("stats") {
                    shape.aggregating = true;
                    shape.group_by = group_by(rest);
                }
            } else if name.eq_ignore_ascii_case("mv_expand") {
                let field = unquote(rest.trim());
                if !field.is_empty() {
                    shape.expanded.push(field);
                }
            }
        }
        Ok(shape)
    }

    /// Whether the rows carry the source document's `_id` (`METADATA _id`):
    /// a non-aggregating query's rows then alert as that document.
    pub fn has_id(&self) -> bool {
        !self.aggregating && self.metadata.iter().any(|m| m == "_id")
    }
}

/// The commands of a query: split at `|` outside strings, comments and
/// brackets.
fn split_commands(query: &str) -> Result<Vec<String>, ShapeError> {
    let bytes = query.as_bytes();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &query[i..];
        if let Some(inner) = rest.strip_prefix("\"\"\"") {
            let end = inner
                .find("\"\"\"")
                .ok_or_else(|| ShapeError("unterminated \"\"\" string".into()))?;
            current.push_str(&rest[..end + 6]);
            i += end + 6;
            continue;
        }
        match bytes[i] {
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                if j >= bytes.len() {
                    return Err(ShapeError("unterminated string".into()));
                }
                current.push_str(&query[i..=j]);
                i = j + 1;
            }
            b'`' => {
                let end = rest[1..]
                    .find('`')
                    .ok_or_else(|| ShapeError("unterminated `quoted` name".into()))?;
                current.push_str(&rest[..end + 2]);
                i += end + 2;
            }
            b'/' if rest.starts_with("//") => {
                i += rest.find('\n').unwrap_or(rest.len());
                current.push(' ');
            }
            b'/' if rest.starts_with("/*") => {
                let end = rest[2..]
                    .find("*/")
                    .ok_or_else(|| ShapeError("unterminated /* comment".into()))?;
                i += end + 4;
                current.push(' ');
            }
            b'(' | b'[' => {
                depth += 1;
                current.push(char::from(bytes[i]));
                i += 1;
            }
            b')' | b']' => {
                depth -= 1;
                current.push(char::from(bytes[i]));
                i += 1;
            }
            b'|' if depth == 0 => {
                out.push(std::mem::take(&mut current));
                i += 1;
            }
            _ => {
                let ch = rest.chars().next().unwrap_or(' ');
                current.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out.push(current);
    Ok(out)
}

/// A command's name and the text after it.
fn command_name(command: &str) -> (&str, &str) {
    let end = command
        .find(|c: char| c.is_whitespace())
        .unwrap_or(command.len());
    (&command[..end], &command[end..])
}

/// `FROM a, "b-*" METADATA _id, _index` (or the older `[METADATA …]`).
fn from_clause(rest: &str) -> Result<(Vec<String>, Vec<String>), ShapeError> {
    // Index names hold no brackets: the older `[METADATA …]` is the same
    // clause without them.
    let rest = rest.replace(['[', ']'], " ");
    let lower = rest.to_ascii_lowercase();
    let (sources, metadata) = match find_word(&lower, "metadata") {
        Some(at) => (&rest[..at], split_list(&rest[at + "metadata".len()..])),
        None => (rest.as_str(), Vec::new()),
    };
    let indices = split_list(sources);
    if indices.is_empty() {
        return Err(ShapeError("expected index patterns after FROM".into()));
    }
    Ok((indices, metadata))
}

/// The grouping columns after ` BY ` in a `STATS` command.
fn group_by(rest: &str) -> Vec<String> {
    let lower = rest.to_ascii_lowercase();
    let Some(at) = find_word(&lower, "by") else {
        return Vec::new();
    };
    split_top_level(&rest[at + 2..])
        .into_iter()
        .map(|item| {
            // `BY name = expr` names the column; `BY field` is the field.
            let name = match item.find('=') {
                Some(eq) if !item[eq..].starts_with("==") => &item[..eq],
                _ => item.as_str(),
            };
            unquote(name.trim())
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// The position of `word` as a whole word in `text` (lowercase), outside
/// quotes and brackets.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    for i in 0..bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'"' | b'`' => quote = Some(b),
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            _ if depth == 0 && bytes[i..].starts_with(word.as_bytes()) => {
                let before = i == 0 || !is_word(bytes[i - 1]);
                let after = bytes.get(i + word.len()).is_none_or(|c| !is_word(*c));
                if before && after {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'@'
}

/// A comma-separated list, names unquoted.
fn split_list(text: &str) -> Vec<String> {
    split_top_level(text)
        .into_iter()
        .map(|s| unquote(s.trim()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Splits at commas outside quotes and brackets.
fn split_top_level(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        if let Some(q) = quote {
            current.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '`' => {
                quote = Some(c);
                current.push(c);
            }
            '(' | '[' => {
                depth += 1;
                current.push(c);
            }
            ')' | ']' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '`'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_aggregating_query_with_metadata_and_mv_expand() {
        let s = Shape::read(
            "from logs-endpoint.events.process-* metadata _id, _index, _version\n\
             | mv_expand event.action\n| where process.name == \"a|b\" // not | a command\n\
             | keep process.name",
        )
        .unwrap();
        assert_eq!(s.indices, ["logs-endpoint.events.process-*"]);
        assert_eq!(s.metadata, ["_id", "_index", "_version"]);
        assert!(!s.aggregating);
        assert!(s.has_id());
        assert_eq!(s.expanded, ["event.action"]);
    }

    #[test]
    fn an_aggregating_query_groups_by_the_last_stats() {
        let s = Shape::read(
            "FROM logs-a, \"logs-b-*\" [METADATA _id]\n\
             | STATS c = COUNT(*) BY host.name, user.name\n\
             | WHERE c > 5 | STATS n = COUNT_DISTINCT(user.name) BY h = host.name",
        )
        .unwrap();
        assert_eq!(s.indices, ["logs-a", "logs-b-*"]);
        assert_eq!(s.metadata, ["_id"]);
        assert!(s.aggregating);
        assert!(!s.has_id(), "an aggregating query's rows are not documents");
        assert_eq!(s.group_by, ["h"]);
    }

    #[test]
    fn a_query_not_starting_with_from_or_unterminated_is_an_error() {
        assert!(Shape::read("row a = 1").is_err());
        assert!(Shape::read("").is_err());
        assert!(Shape::read("from a | where b == \"x").is_err());
        assert!(Shape::read("from").is_err());
    }

    #[test]
    fn stats_without_by_has_no_group_columns() {
        let s = Shape::read("from a | stats count(*)").unwrap();
        assert!(s.aggregating);
        assert!(s.group_by.is_empty());
    }
}
