//! KQL tree -> filter tree, as Kibana's `kbn-es-query` translates KQL to
//! query DSL (`src/platform/packages/shared/kbn-es-query/src/kuery/functions/
//! {is,range,exists,nested,and,or,not}.ts`) for the indices' field types.
//!
//! For `field: value`: the field name (a wildcard expands over the known
//! fields; an unknown name is used as written) and each field's types
//! decide the query: a lone `*` value is `exists`; a wildcard value is a
//! `wildcard` query on a field mapped only as `keyword` and a `query_string`
//! on any other; a `date` field gets a `range` with `gte` = `lte` = value
//! (and the configured time zone unless the value is epoch digits); a
//! `keyword` field a `term`; anything else `match`, or `match_phrase` for a
//! quoted value. Each field's query sits in a `bool.should`; free text (no
//! field) is a `multi_match` over all fields, or a `query_string` when it
//! has a wildcard. Fields under a `nested` object are wrapped in a `nested`
//! query when a wildcard field name reaches them; otherwise the query must
//! name them inside a `path: { ... }` group (Kibana's errors otherwise).

use super::ast::{LitValue, Literal, Node, Part};
use super::display::escape_query_string;
use super::error::LowerError;
use crate::filter::{Bounds, FieldTypes, Filter, KibanaType, Local, QueryString, Scalar};

/// Kibana's `KueryQueryOptions` (the part that changes the query).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KqlOptions {
    /// `dateFormatTZ`: sent as `time_zone` with date values.
    pub date_format_tz: Option<String>,
    /// `caseInsensitive`: sent on keyword `term` and `wildcard` queries.
    pub case_insensitive: Option<bool>,
    /// `nestedIgnoreUnmapped`: sent on `nested` queries.
    pub nested_ignore_unmapped: Option<bool>,
}

impl KqlOptions {
    /// What Kibana's detection engine uses for rules
    /// (`rule_types/utils/get_query_filter.ts`: `dateFormatTZ: 'Zulu'`).
    pub fn detection_rules() -> KqlOptions {
        KqlOptions {
            date_format_tz: Some("Zulu".into()),
            ..KqlOptions::default()
        }
    }
}

/// Translates a parsed query. `types` is the index pattern's fields; `None`
/// translates as Kibana does without an index pattern (every name as
/// written, no type-dependent choice).
pub fn lower(
    node: &Node,
    types: Option<&FieldTypes>,
    opts: &KqlOptions,
) -> Result<Filter, LowerError> {
    Lowering { types, opts }.node(node, None)
}

/// Translates a query as if written inside the nested group `path`
/// (Kibana's nested `context`).
pub fn lower_in_group(
    node: &Node,
    types: Option<&FieldTypes>,
    opts: &KqlOptions,
    path: &str,
) -> Result<Filter, LowerError> {
    Lowering { types, opts }.node(node, Some(path))
}

struct Lowering<'a> {
    types: Option<&'a FieldTypes>,
    opts: &'a KqlOptions,
}

/// One field of the index pattern as Kibana sees it.
struct FieldView {
    name: String,
    keyword: bool,
    date: bool,
    nested: Option<String>,
}

impl Lowering<'_> {
    fn node(&self, node: &Node, nested: Option<&str>) -> Result<Filter, LowerError> {
        Ok(match node {
            Node::Or { clauses, .. } => Filter::Or(self.nodes(clauses, nested)?),
            Node::And { clauses, .. } => Filter::And(self.nodes(clauses, nested)?),
            Node::Not { inner, .. } => Filter::not(self.node(inner, nested)?),
            Node::Nested { path, query, .. } => {
                let path = path.to_plain_string();
                let full = match nested {
                    Some(outer) => format!("{outer}.{path}"),
                    None => path,
                };
                Filter::Nested {
                    query: Box::new(self.node(query, Some(&full))?),
                    path: full,
                    ignore_unmapped: self.opts.nested_ignore_unmapped,
                }
            }
            Node::Exists { field, .. } => Filter::Exists {
                field: prefixed(field, nested).to_plain_string(),
            },
            Node::Is { field, value, .. } => self.is(field, value, nested)?,
            Node::Range {
                field, op, value, ..
            } => {
                let full = self.full_field(field, nested)?;
                let v = scalar(value);
                let epoch = is_epoch(&v);
                let queries = self
                    .fields_of(&full)
                    .into_iter()
                    .map(|f| {
                        let mut bounds = Bounds::default();
                        let slot = match op.key() {
                            "gt" => &mut bounds.gt,
                            "gte" => &mut bounds.gte,
                            "lt" => &mut bounds.lt,
                            _ => &mut bounds.lte,
                        };
                        *slot = Some(v.clone());
                        let time_zone = if f.date && !epoch {
                            self.opts.date_format_tz.clone()
                        } else {
                            None
                        };
                        let q = Filter::Range {
                            field: f.name.clone(),
                            bounds,
                            time_zone,
                            format: None,
                        };
                        self.wrap_nested(&full, &f, nested, q)
                    })
                    .collect();
                Filter::Or(queries)
            }
        })
    }

    fn nodes(&self, v: &[Node], nested: Option<&str>) -> Result<Vec<Filter>, LowerError> {
        v.iter().map(|n| self.node(n, nested)).collect()
    }

    /// Kibana's `is` function.
    fn is(
        &self,
        field: &Literal,
        value: &Literal,
        nested: Option<&str>,
    ) -> Result<Filter, LowerError> {
        let exists = value.is_lone_wildcard();
        if exists && field.is_lone_wildcard() {
            return Ok(Filter::MatchAll);
        }
        let full = self.full_field(field, nested)?;
        let v = scalar(value);
        if full.value == LitValue::Null {
            return Ok(match &value.value {
                LitValue::Wildcard(parts) => free_text_wildcard(&query_string_text(parts)),
                _ => Filter::MultiMatch {
                    query: v,
                    phrase: value.quoted,
                    lenient: true,
                },
            });
        }
        let mut queries = Vec::new();
        for f in self.fields_of(&full) {
            let q = if exists {
                Filter::exists(&f.name)
            } else if let LitValue::Wildcard(parts) = &value.value {
                let pattern = query_string_text(parts);
                if f.keyword {
                    Filter::Wildcard {
                        field: f.name.clone(),
                        pattern,
                        case_insensitive: self.opts.case_insensitive,
                    }
                } else {
                    field_query_string(&f.name, &pattern)
                }
            } else if f.date {
                let time_zone = if is_epoch(&v) {
                    None
                } else {
                    self.opts.date_format_tz.clone()
                };
                Filter::Range {
                    field: f.name.clone(),
                    bounds: Bounds {
                        gte: Some(v.clone()),
                        lte: Some(v.clone()),
                        ..Bounds::default()
                    },
                    time_zone,
                    format: None,
                }
            } else if f.keyword {
                Filter::Term {
                    field: f.name.clone(),
                    value: v.clone(),
                    case_insensitive: self.opts.case_insensitive,
                }
            } else if value.quoted {
                Filter::MatchPhrase {
                    field: f.name.clone(),
                    query: v.clone(),
                }
            } else {
                Filter::Match {
                    field: f.name.clone(),
                    query: v.clone(),
                }
            };
            queries.push(self.wrap_nested(&full, &f, nested, q));
        }
        Ok(Filter::Or(queries))
    }

    /// Kibana's `getFullFieldNameNode`: the name inside its nested group,
    /// checked against the fields' nested paths.
    fn full_field(&self, field: &Literal, nested: Option<&str>) -> Result<Literal, LowerError> {
        let full = prefixed(field, nested);
        let Some(types) = self.types else {
            return Ok(full);
        };
        if matches!(full.value, LitValue::Wildcard(_)) && nested.is_none() {
            return Ok(full);
        }
        for f in self.fields_of_in(types, &full) {
            let err = match (nested, f.nested.as_deref()) {
                (Some(group), None) => Some(LowerError::NotNested {
                    field: f.name.clone(),
                    group: group.to_string(),
                    span: field.span,
                }),
                (None, Some(path)) => Some(LowerError::NestedOutsideGroup {
                    field: f.name.clone(),
                    path: path.to_string(),
                    span: field.span,
                }),
                (Some(group), Some(path)) if group != path => Some(LowerError::WrongNestedPath {
                    field: f.name.clone(),
                    group: group.to_string(),
                    path: path.to_string(),
                    span: field.span,
                }),
                _ => None,
            };
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(full)
    }

    /// The index pattern's fields a name covers, or the name as written
    /// when it covers none.
    fn fields_of(&self, full: &Literal) -> Vec<FieldView> {
        let found = self
            .types
            .map(|t| self.fields_of_in(t, full))
            .unwrap_or_default();
        if found.is_empty() {
            return vec![FieldView {
                name: full.to_plain_string(),
                keyword: false,
                date: false,
                nested: None,
            }];
        }
        found
    }

    /// Kibana's `getFields`: the field of that exact name, or every field a
    /// wildcard name matches.
    fn fields_of_in(&self, types: &FieldTypes, full: &Literal) -> Vec<FieldView> {
        let view = |name: &str| FieldView {
            name: name.to_string(),
            keyword: types.single_type(name) == Some("keyword"),
            date: types.kibana_type(name) == Some(KibanaType::Date),
            nested: types.nested_path(name).map(str::to_string),
        };
        match &full.value {
            LitValue::Text(name) => match types.get(name) {
                Some(info) if !info.is_container() => vec![view(name)],
                _ => Vec::new(),
            },
            LitValue::Wildcard(parts) => types
                .leaf_names()
                .filter(|n| wildcard_name_matches(parts, n))
                .map(view)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A wildcard field name reaching into a nested object is wrapped in a
    /// `nested` query (outside nested groups).
    fn wrap_nested(
        &self,
        full: &Literal,
        f: &FieldView,
        nested: Option<&str>,
        q: Filter,
    ) -> Filter {
        match (&full.value, &f.nested, nested) {
            (LitValue::Wildcard(_), Some(path), None) => Filter::Nested {
                path: path.clone(),
                query: Box::new(q),
                ignore_unmapped: self.opts.nested_ignore_unmapped,
            },
            _ => q,
        }
    }
}

/// The field literal with the nested group's path in front.
fn prefixed(field: &Literal, nested: Option<&str>) -> Literal {
    let Some(path) = nested else {
        return field.clone();
    };
    let value = match &field.value {
        LitValue::Wildcard(parts) => {
            let mut out = vec![Part::Text(format!("{path}."))];
            for p in parts {
                match (out.last_mut(), p) {
                    (Some(Part::Text(t)), Part::Text(s)) => t.push_str(s),
                    _ => out.push(p.clone()),
                }
            }
            LitValue::Wildcard(out)
        }
        _ => LitValue::Text(format!("{path}.{}", field.to_plain_string())),
    };
    Literal {
        value,
        ..field.clone()
    }
}

/// Kibana's `wildcard.test`: the whole name matches, `*` any run.
fn wildcard_name_matches(parts: &[Part], name: &str) -> bool {
    let mut pattern = String::new();
    for p in parts {
        match p {
            Part::Star => pattern.push('*'),
            Part::Text(t) => {
                for c in t.chars() {
                    if matches!(c, '*' | '?' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(c);
                }
            }
        }
    }
    crate::filter::pattern::Pattern::new(&pattern, false).matches(name)
}

/// The literal's value as the query DSL carries it.
fn scalar(l: &Literal) -> Scalar {
    match &l.value {
        LitValue::Null => Scalar::Null,
        LitValue::Bool(b) => Scalar::Bool(*b),
        LitValue::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Scalar::Int(*n as i64),
        LitValue::Number(n) => Scalar::Float(*n),
        _ => Scalar::String(l.to_plain_string()),
    }
}

/// Epoch values (numbers, digit strings) get no time zone.
fn is_epoch(v: &Scalar) -> bool {
    match v {
        Scalar::Int(_) | Scalar::Float(_) => true,
        Scalar::String(s) => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

/// Kibana's `toQueryStringQuery`: text escaped for `query_string`, `*` kept.
fn query_string_text(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|p| match p {
            Part::Star => "*".to_string(),
            Part::Text(t) => escape_query_string(t),
        })
        .collect()
}

/// `query_string` on one field for a wildcard value on a non-keyword field.
/// The query has no operators (everything reserved is escaped) but
/// whitespace still separates terms, any of which may match.
fn field_query_string(field: &str, query: &str) -> Filter {
    let terms = split_terms(query);
    if terms.len() == 1 {
        return Filter::QueryStringWildcard {
            field: field.to_string(),
            pattern: query.to_string(),
            analyze: false,
        };
    }
    Filter::QueryString(QueryString {
        query: query.to_string(),
        fields: vec![field.to_string()],
        analyze_wildcard: None,
        time_zone: None,
        local: local_terms(&terms, Some(field)),
    })
}

/// Free text with a wildcard: `query_string` over the default fields.
fn free_text_wildcard(query: &str) -> Filter {
    Filter::QueryString(QueryString {
        query: query.to_string(),
        fields: Vec::new(),
        analyze_wildcard: None,
        time_zone: None,
        local: local_terms(&split_terms(query), None),
    })
}

fn split_terms(query: &str) -> Vec<&str> {
    query.split_whitespace().collect()
}

/// What the whitespace-separated terms select: any of them, a term with an
/// unescaped wildcard as a wildcard, others as an analyzed match.
fn local_terms(terms: &[&str], field: Option<&str>) -> Local {
    let mut out = Vec::new();
    for t in terms {
        if matches!(*t, "AND" | "OR" | "NOT" | "&&" | "||") {
            return Local::Unsupported(format!(
                "the query_string term `{t}` is an operator Kibana does not escape"
            ));
        }
        out.push(if has_unescaped_wildcard(t) {
            Filter::QueryStringWildcard {
                field: field.unwrap_or("*").to_string(),
                pattern: t.to_string(),
                analyze: false,
            }
        } else {
            let text = unescape(t);
            match field {
                Some(f) => Filter::Match {
                    field: f.to_string(),
                    query: Scalar::String(text),
                },
                None => Filter::MultiMatch {
                    query: Scalar::String(text),
                    phrase: false,
                    lenient: true,
                },
            }
        });
    }
    Local::Tree(Box::new(Filter::Or(out)))
}

fn has_unescaped_wildcard(t: &str) -> bool {
    let mut escaped = false;
    for c in t.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '*' || c == '?' {
            return true;
        }
    }
    false
}

fn unescape(t: &str) -> String {
    let mut out = String::new();
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next().unwrap_or('\\'));
        } else {
            out.push(c);
        }
    }
    out
}
