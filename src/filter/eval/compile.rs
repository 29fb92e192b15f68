//! Filter -> compiled nodes: each leaf resolved against the field types and
//! its query value parsed as the field type parses it.

use serde_json::Value;

use super::super::date::{DateFormats, TimeZone};
use super::super::fields::FieldTypes;
use super::super::tree::{Filter, Local};
use super::leaf::leaf_test;
use super::typed::{Family, FloatKind, Test};
use super::{EvalError, EvalOptions, Unmapped};

#[derive(Clone, Debug)]
pub(super) enum Node {
    Const(bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Leaf(Leaf),
    /// A field the types do not know, typed per value.
    Dynamic(DynLeaf),
    /// Every document field the types do not know (dynamic multi-field
    /// queries).
    AnyUnmapped(DynLeaf),
    Nested {
        path: String,
        inner: Box<Node>,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Leaf {
    pub source: String,
    pub nested: Option<String>,
    pub family: Family,
    pub ignore_above: Option<usize>,
    pub null_value: Option<Value>,
    /// A `constant_keyword`'s value, read instead of `_source`.
    pub constant: Option<Value>,
    pub test: Test,
}

/// The tests of one leaf for each type dynamic mapping can give a value.
#[derive(Clone, Debug)]
pub(super) struct DynLeaf {
    pub source: String,
    /// `x.keyword` of an unknown `x`: the keyword sub-field of its strings.
    pub keyword_sub: bool,
    text: Option<(Family, Test)>,
    keyword: Option<(Family, Test)>,
    integer: Option<(Family, Test)>,
    float: Option<(Family, Test)>,
    boolean: Option<(Family, Test)>,
    date: Option<(Family, Test)>,
}

impl DynLeaf {
    /// The family dynamic mapping gives this value, and the leaf's test for it.
    pub fn pick(&self, v: &Value) -> Option<(&Family, &Test)> {
        let slot = match v {
            Value::String(_) if self.keyword_sub => &self.keyword,
            Value::String(s) if looks_like_date(s) => &self.date,
            Value::String(_) => &self.text,
            Value::Number(n) if n.is_i64() || n.is_u64() => &self.integer,
            Value::Number(_) => &self.float,
            Value::Bool(_) => &self.boolean,
            _ => return None,
        };
        slot.as_ref().map(|(f, t)| (f, t))
    }
}

/// Elasticsearch's default `date_detection` (`strict_date_optional_time`),
/// for strings with at least a year and a month.
fn looks_like_date(s: &str) -> bool {
    s.len() >= 7
        && s.as_bytes()[4] == b'-'
        && DateFormats::parse(Some("strict_date_optional_time"))
            .is_ok_and(|f| f.parse_date(s, TimeZone::UTC, false).is_ok())
}

pub(super) struct Compiler<'a> {
    pub types: &'a FieldTypes,
    pub opts: &'a EvalOptions,
}

impl Compiler<'_> {
    /// `lenient`: a leaf the field type cannot answer matches nothing
    /// instead of failing (multi-field queries).
    pub fn node(&self, f: &Filter, lenient: bool) -> Result<Node, EvalError> {
        Ok(match f {
            Filter::MatchAll => Node::Const(true),
            Filter::MatchNone => Node::Const(false),
            Filter::And(v) => Node::And(self.nodes(v, lenient)?),
            Filter::Or(v) => Node::Or(self.nodes(v, lenient)?),
            Filter::Not(inner) => Node::Not(Box::new(self.node(inner, lenient)?)),
            Filter::Terms { field, values } => Node::Or(
                values
                    .iter()
                    .map(|v| self.node(&Filter::term(field, v.clone()), lenient))
                    .collect::<Result<_, _>>()?,
            ),
            Filter::MultiMatch { query, phrase, .. } => {
                let leaf = |field: &str| {
                    if *phrase {
                        Filter::MatchPhrase {
                            field: field.to_string(),
                            query: query.clone(),
                        }
                    } else {
                        Filter::Match {
                            field: field.to_string(),
                            query: query.clone(),
                        }
                    }
                };
                self.all_fields(&leaf("*"), leaf)?
            }
            Filter::QueryStringWildcard {
                field,
                pattern,
                analyze,
            } if field == "*" => {
                let leaf = |field: &str| Filter::QueryStringWildcard {
                    field: field.to_string(),
                    pattern: pattern.clone(),
                    analyze: *analyze,
                };
                self.all_fields(&leaf("*"), leaf)?
            }
            Filter::Nested {
                path,
                query,
                ignore_unmapped,
            } => {
                let is_nested = self
                    .types
                    .get(path)
                    .is_some_and(|i| i.types.contains("nested"));
                if is_nested
                    || (!self.types.is_mapped(path) && self.opts.unmapped == Unmapped::Dynamic)
                {
                    Node::Nested {
                        path: path.clone(),
                        inner: Box::new(self.node(query, lenient)?),
                    }
                } else if *ignore_unmapped == Some(true) && !self.types.is_mapped(path) {
                    Node::Const(false)
                } else {
                    return Err(EvalError::Query {
                        field: path.clone(),
                        message: "a nested query needs a field mapped as `nested`".into(),
                    });
                }
            }
            Filter::QueryString(qs) => match &qs.local {
                Local::Tree(t) => self.node(t, lenient)?,
                Local::Unsupported(why) => return Err(EvalError::Unsupported(why.clone())),
            },
            Filter::Verbatim(v) => match &v.local {
                Local::Tree(t) => self.node(t, lenient)?,
                Local::Unsupported(why) => return Err(EvalError::Unsupported(why.clone())),
            },
            Filter::Exists { field } => self.exists(field),
            leaf => self.leaf(leaf, lenient)?,
        })
    }

    fn nodes(&self, v: &[Filter], lenient: bool) -> Result<Vec<Node>, EvalError> {
        v.iter().map(|f| self.node(f, lenient)).collect()
    }

    /// A leaf on every known leaf field outside nested objects (leniently),
    /// and with dynamic mapping on every field the types do not know.
    fn all_fields(&self, any: &Filter, leaf: impl Fn(&str) -> Filter) -> Result<Node, EvalError> {
        let mut out = Vec::new();
        for name in self.types.leaf_names() {
            if self.types.nested_path(name).is_none() {
                out.push(self.leaf(&leaf(name), true)?);
            }
        }
        if self.opts.unmapped == Unmapped::Dynamic {
            out.push(Node::AnyUnmapped(self.dynamic("", false, any)?));
        }
        Ok(Node::Or(out))
    }

    fn exists(&self, field: &str) -> Node {
        match self.types.get(field) {
            Some(info) if !info.is_container() => match self.resolve(field) {
                Ok(base) => Node::Leaf(Leaf {
                    test: Test::Exists,
                    ..base
                }),
                // A type detectd does not model still has or lacks values.
                Err(_) => Node::Leaf(Leaf {
                    source: info.source_path.clone(),
                    nested: self.types.nested_path(field).map(str::to_string),
                    family: Family::Keyword,
                    ignore_above: None,
                    null_value: None,
                    constant: None,
                    test: Test::Exists,
                }),
            },
            // Elasticsearch expands `exists` on an object to its sub-fields.
            Some(_) => {
                let prefix = format!("{field}.");
                let names: Vec<&str> = self
                    .types
                    .leaf_names()
                    .filter(|n| n.starts_with(&prefix))
                    .collect();
                Node::Or(names.into_iter().map(|n| self.exists(n)).collect())
            }
            None if self.opts.unmapped == Unmapped::Dynamic => {
                let (source, keyword_sub) = dynamic_source(field);
                let exists = Some((Family::Keyword, Test::Exists));
                Node::Dynamic(DynLeaf {
                    source,
                    keyword_sub,
                    text: exists.clone(),
                    keyword: exists.clone(),
                    integer: exists.clone(),
                    float: exists.clone(),
                    boolean: exists.clone(),
                    date: exists,
                })
            }
            None => Node::Const(false),
        }
    }

    /// The field's source path, nested path and single evaluation family.
    fn resolve(&self, field: &str) -> Result<Leaf, EvalError> {
        let info = self.types.get(field).ok_or_else(|| EvalError::Query {
            field: field.to_string(),
            message: "not mapped".into(),
        })?;
        if let Some(custom) = &info.custom_analysis {
            return Err(EvalError::Unsupported(format!(
                "field `{field}` uses {custom}, which detectd does not model"
            )));
        }
        let mut family: Option<Family> = None;
        for ty in &info.types {
            let f = Family::of(ty, info.format.as_deref(), info.scaling_factor).map_err(|e| {
                EvalError::Query {
                    field: field.to_string(),
                    message: e.to_string(),
                }
            })?;
            family = Some(match family {
                None => f,
                Some(prev) if same_family(&prev, &f) => prev,
                Some(_) => {
                    return Err(EvalError::Unsupported(format!(
                        "field `{field}` has conflicting types {:?} across the indices",
                        info.types
                    )))
                }
            });
        }
        Ok(Leaf {
            source: info.source_path.clone(),
            nested: self.types.nested_path(field).map(str::to_string),
            family: family.ok_or_else(|| EvalError::Query {
                field: field.to_string(),
                message: "no type".into(),
            })?,
            ignore_above: info.ignore_above,
            null_value: info.null_value.clone(),
            constant: info.constant.clone(),
            test: Test::Never,
        })
    }

    fn leaf(&self, f: &Filter, lenient: bool) -> Result<Node, EvalError> {
        let field = leaf_field(f);
        let Some(info) = self.types.get(field) else {
            return match self.opts.unmapped {
                Unmapped::NoMatch => Ok(Node::Const(false)),
                Unmapped::Dynamic => {
                    let (source, keyword_sub) = dynamic_source(field);
                    Ok(Node::Dynamic(self.dynamic(&source, keyword_sub, f)?))
                }
            };
        };
        if info.is_container() {
            return Ok(Node::Const(false));
        }
        let attempt = self.resolve(field).and_then(|base| {
            let test = leaf_test(f, &base.family).map_err(|e| match e {
                EvalError::Query { message, .. } => EvalError::Query {
                    field: field.to_string(),
                    message,
                },
                other => other,
            })?;
            Ok(Node::Leaf(Leaf { test, ..base }))
        });
        match attempt {
            Err(_) if lenient => Ok(Node::Const(false)),
            other => other,
        }
    }

    fn dynamic(&self, source: &str, keyword_sub: bool, f: &Filter) -> Result<DynLeaf, EvalError> {
        let try_family = |family: Family| leaf_test(f, &family).ok().map(|t| (family, t));
        let date = DateFormats::parse(None).map(|formats| Family::Date {
            nanos: false,
            formats,
        })?;
        Ok(DynLeaf {
            source: source.to_string(),
            keyword_sub,
            text: try_family(Family::Text),
            keyword: try_family(Family::Keyword),
            integer: try_family(Family::Integer),
            float: try_family(Family::Float(FloatKind::Float)),
            boolean: try_family(Family::Boolean),
            date: try_family(date),
        })
    }
}

/// `x.keyword` with `x` unknown reads `x`'s strings as a keyword.
fn dynamic_source(field: &str) -> (String, bool) {
    match field.strip_suffix(".keyword") {
        Some(parent) => (parent.to_string(), true),
        None => (field.to_string(), false),
    }
}

fn same_family(a: &Family, b: &Family) -> bool {
    match (a, b) {
        (Family::Float(x), Family::Float(y)) => x == y,
        (Family::Date { nanos: x, .. }, Family::Date { nanos: y, .. }) => x == y,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

fn leaf_field(f: &Filter) -> &str {
    match f {
        Filter::Term { field, .. }
        | Filter::Terms { field, .. }
        | Filter::Match { field, .. }
        | Filter::MatchPhrase { field, .. }
        | Filter::Wildcard { field, .. }
        | Filter::QueryStringWildcard { field, .. }
        | Filter::Range { field, .. }
        | Filter::Exists { field } => field,
        _ => "",
    }
}
