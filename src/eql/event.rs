//! Pre-parsed events: the values of just the fields a plan needs, typed.
//!
//! A [`FieldTable`] (built by `compile`) lists every field path a query
//! reads and gives each a slot; [`FieldTable::build_event`] extracts those
//! paths from an event's `_source` once, converting each value to the type
//! the schema says, so evaluation is a slot lookup. Extraction follows the
//! Elasticsearch fields API: arrays (also arrays of objects) flatten, dotted
//! keys (`{"process.pid": 1}`, `{"process": {"parent.name": "x"}}`) resolve
//! like nested objects, explicit `null`s are dropped unless the mapping has a
//! `null_value`. A value is kept only if Elasticsearch would index it: not
//! malformed for the type (with `coerce: false`, no string for a number and
//! no fraction for an integer), not a keyword longer than `ignore_above`; a
//! `constant_keyword` has its value whatever `_source` says. Building an
//! event never panics, whatever the JSON.
//! `decode` builds the same events straight from NDJSON lines, sharing the
//! conversion below.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use serde_json::Value as Json;

use super::decode::EventDecoder;
use super::schema::{FieldInfo, FieldType, Schema};
use super::value::{parse_date_literal, parse_date_with_format, parse_epoch_millis, Value};

/// Deeper JSON than this is not searched (hostile input, not real events).
pub(crate) const MAX_DEPTH: usize = 64;
/// At most this many values are kept per field of one event.
pub(crate) const MAX_VALUES: usize = 10_000;

/// One field the plan reads.
#[derive(Clone, Debug)]
pub struct FieldSpec {
    /// The name as written in the query.
    pub name: String,
    pub info: FieldInfo,
    /// `null_value` converted to the field's type.
    null_value: Option<Value>,
    /// A `constant_keyword`'s value.
    constant: Option<Value>,
    /// The mapping's `ignore_above`, as a length in UTF-16 code units.
    ignore_above: Option<usize>,
}

impl FieldSpec {
    fn new(name: &str, info: FieldInfo) -> FieldSpec {
        let ignore_above = info.ignore_above.map(|n| n as usize);
        let indexed = |v: &Value| indexed(v, ignore_above);
        let null_value = info
            .null_value
            .as_ref()
            .and_then(|nv| convert(nv, &info.ty, info.coerce))
            .filter(indexed);
        let constant = info
            .constant
            .as_ref()
            .and_then(|c| convert(c, &info.ty, true));
        FieldSpec {
            name: name.to_string(),
            info,
            null_value,
            constant,
            ignore_above,
        }
    }
}

/// Whether Elasticsearch indexes the value: a string longer than
/// `ignore_above` is left out of the index (and of doc values), so queries
/// and the fields API never see it.
#[inline]
fn indexed(v: &Value, ignore_above: Option<usize>) -> bool {
    match (ignore_above, v) {
        (None, _) => true,
        // UTF-8 is never shorter than UTF-16 in code units: count only
        // strings that might be too long, as Java's `String.length()` does.
        (Some(limit), Value::Str(s)) => s.len() <= limit || s.encode_utf16().count() <= limit,
        (Some(_), _) => true,
    }
}

/// The fields a plan reads, each with a slot index.
#[derive(Clone, Debug, Default)]
pub struct FieldTable {
    specs: Vec<FieldSpec>,
    index: HashMap<String, usize>,
    timestamp: Option<usize>,
    tiebreaker: Option<usize>,
    category: Option<usize>,
    /// The line decoder for these fields, built on first use (see
    /// `decode`); reset whenever a slot is added.
    decoder: OnceLock<Arc<EventDecoder>>,
}

impl FieldTable {
    /// The slot of `name`, adding it if new.
    pub fn slot(&mut self, name: &str, schema: &Schema) -> usize {
        self.slot_with(name, || schema.resolve(name))
    }

    /// The slot of `name`, adding it with what `info` says about it if new.
    pub fn slot_with(&mut self, name: &str, info: impl FnOnce() -> FieldInfo) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.specs.len();
        self.specs.push(FieldSpec::new(name, info()));
        self.index.insert(name.to_string(), i);
        self.decoder = OnceLock::new();
        i
    }

    pub fn set_timestamp(&mut self, slot: usize) {
        self.timestamp = Some(slot);
    }

    /// The name of the timestamp field, if one is set.
    pub fn timestamp_name(&self) -> Option<&str> {
        self.timestamp
            .and_then(|s| self.specs.get(s))
            .map(|s| s.name.as_str())
    }

    pub fn set_tiebreaker(&mut self, slot: usize) {
        self.tiebreaker = Some(slot);
    }

    pub fn set_category(&mut self, slot: usize) {
        self.category = Some(slot);
    }

    pub fn category_slot(&self) -> Option<usize> {
        self.category
    }

    pub fn specs(&self) -> &[FieldSpec] {
        &self.specs
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The `_source` paths to fetch (aliases resolved, deduplicated, in slot
    /// order).
    pub fn source_paths(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in &self.specs {
            if !out.contains(&s.info.source_path.as_str()) {
                out.push(&s.info.source_path);
            }
        }
        out
    }

    /// The cached line decoder of this table.
    pub(crate) fn decoder(&self) -> &EventDecoder {
        self.decoder
            .get_or_init(|| Arc::new(EventDecoder::new(self)))
    }

    /// Extracts the table's fields from an event's `_source`.
    pub fn build_event(&self, source: &Json) -> Event {
        let mut builder = EventBuilder::with_capacity(self.specs.len());
        let mut raw: Vec<&Json> = Vec::new();
        for spec in &self.specs {
            raw.clear();
            collect(source, &spec.info.source_path, &mut raw, 0);
            builder.push_field(spec, raw.iter().filter_map(|j| Scalar::of(j)));
        }
        builder.finish(self)
    }
}

/// One JSON scalar as extraction sees it, borrowed from wherever the JSON
/// lives (a parsed `serde_json::Value`, or the raw line for
/// `FieldTable::decode_event`), so both builders convert values with the same
/// code.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scalar<'a> {
    Null,
    Bool(bool),
    Number(&'a serde_json::Number),
    Str(&'a str),
}

impl<'a> Scalar<'a> {
    /// `None` for arrays and objects, which are never leaf values.
    pub(crate) fn of(j: &'a Json) -> Option<Scalar<'a>> {
        match j {
            Json::Null => Some(Scalar::Null),
            Json::Bool(b) => Some(Scalar::Bool(*b)),
            Json::Number(n) => Some(Scalar::Number(n)),
            Json::String(s) => Some(Scalar::Str(s)),
            Json::Array(_) | Json::Object(_) => None,
        }
    }
}

/// Assembles an [`Event`] field by field, in slot order: the part of event
/// building that comes after finding a field's raw JSON values.
pub(crate) struct EventBuilder {
    values: Vec<Value>,
    ranges: Vec<(u32, u32)>,
}

impl EventBuilder {
    pub(crate) fn with_capacity(fields: usize) -> Self {
        EventBuilder {
            values: Vec::with_capacity(fields),
            ranges: Vec::with_capacity(fields),
        }
    }

    /// Adds the next slot's values from its raw JSON values in document
    /// order; only the first [`MAX_VALUES`] count, null becomes the
    /// `null_value` (if any), values malformed for the type are dropped, and
    /// a field left empty gets its constant.
    pub(crate) fn push_field<'a>(
        &mut self,
        spec: &FieldSpec,
        raw: impl Iterator<Item = Scalar<'a>>,
    ) {
        let start = self.values.len();
        for j in raw.take(MAX_VALUES) {
            if let Scalar::Null = j {
                if let Some(nv) = &spec.null_value {
                    self.values.push(nv.clone());
                }
            } else if let Some(v) = convert_scalar(j, &spec.info.ty, spec.info.coerce) {
                if indexed(&v, spec.ignore_above) {
                    self.values.push(v);
                }
            }
        }
        if self.values.len() == start {
            if let Some(c) = &spec.constant {
                self.values.push(c.clone());
            }
        }
        self.ranges.push((start as u32, self.values.len() as u32));
    }

    /// The event, with timestamp and tiebreaker taken from their slots.
    pub(crate) fn finish(self, table: &FieldTable) -> Event {
        let mut event = Event {
            values: self.values,
            ranges: self.ranges,
            timestamp: None,
            tiebreaker: None,
        };
        event.timestamp = table
            .timestamp
            .and_then(|s| event.get(s).first())
            .and_then(timestamp_millis);
        event.tiebreaker = table.tiebreaker.and_then(|s| event.get(s).first()).cloned();
        event
    }
}

/// Epoch millis of a timestamp value.
fn timestamp_millis(v: &Value) -> Option<i64> {
    match v {
        Value::Date(n) | Value::Long(n) => Some(*n),
        Value::Double(d) if d.is_finite() && d.abs() < 9.2e18 => Some(d.floor() as i64),
        Value::Str(s) => parse_date_literal(s),
        _ => None,
    }
}

/// An event reduced to the plan's fields. Serialisable so that pending
/// sequence state can be persisted with the events it holds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    values: Vec<Value>,
    ranges: Vec<(u32, u32)>,
    /// `@timestamp` (or the configured field) in epoch millis.
    pub timestamp: Option<i64>,
    pub tiebreaker: Option<Value>,
}

impl Event {
    /// All values of a slot (empty when missing or null).
    #[inline]
    pub fn get(&self, slot: usize) -> &[Value] {
        match self.ranges.get(slot) {
            // `get` rather than indexing: a deserialised event may be corrupt
            Some(&(a, b)) => self.values.get(a as usize..b as usize).unwrap_or(&[]),
            None => &[],
        }
    }
}

/// Collects the JSON values at a dotted `path`, flattening arrays and
/// resolving dotted keys at any level.
fn collect<'a>(node: &'a Json, path: &str, out: &mut Vec<&'a Json>, depth: usize) {
    if depth > MAX_DEPTH || out.len() > MAX_VALUES {
        return;
    }
    match node {
        Json::Array(items) => {
            for item in items {
                collect(item, path, out, depth + 1);
            }
        }
        _ if path.is_empty() && !node.is_object() => out.push(node),
        _ if path.is_empty() => {}
        Json::Object(map) => {
            for (k, v) in map {
                if let Some(rest) = path.strip_prefix(k.as_str()) {
                    if rest.is_empty() {
                        collect(v, "", out, depth + 1);
                    } else if let Some(rest) = rest.strip_prefix('.') {
                        collect(v, rest, out, depth + 1);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Converts one JSON value to the field type's value; `None` for values
/// Elasticsearch would not index (malformed for the type, arrays, objects).
fn convert(j: &Json, ty: &FieldType, coerce: bool) -> Option<Value> {
    convert_scalar(Scalar::of(j)?, ty, coerce)
}

/// Converts one JSON scalar to the field type's value; `None` for values
/// Elasticsearch would not index (malformed for the type). `coerce: false`
/// (numeric fields) refuses strings, and for integer types fractions, as
/// Elasticsearch's `XContentParser.longValue(false)` does: such a value is
/// malformed (the document is refused, or with `ignore_malformed` indexed
/// without it).
fn convert_scalar(j: Scalar<'_>, ty: &FieldType, coerce: bool) -> Option<Value> {
    match ty {
        FieldType::Dynamic => match j {
            Scalar::Str(s) => Some(Value::Str(Arc::from(s))),
            Scalar::Bool(b) => Some(Value::Bool(b)),
            Scalar::Number(n) => Some(match n.as_i64() {
                Some(i) => Value::Long(i),
                None => Value::Double(n.as_f64()?),
            }),
            Scalar::Null => None,
        },
        FieldType::Keyword => match j {
            Scalar::Str(s) => Some(Value::Str(Arc::from(s))),
            Scalar::Bool(b) => Some(Value::str(if b { "true" } else { "false" })),
            Scalar::Number(n) => Some(Value::Str(Arc::from(n.to_string().as_str()))),
            Scalar::Null => None,
        },
        FieldType::Long => match j {
            Scalar::Number(n) => match n.as_i64() {
                Some(i) => Some(Value::Long(i)),
                None if coerce => f64_to_long(n.as_f64()?),
                None => n
                    .as_f64()
                    .filter(|d| d.fract() == 0.0)
                    .and_then(f64_to_long),
            },
            Scalar::Str(_) if !coerce => None,
            Scalar::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => Some(Value::Long(i)),
                Err(_) => f64_to_long(s.trim().parse::<f64>().ok()?),
            },
            _ => None,
        },
        FieldType::Double => match j {
            Scalar::Number(n) => n.as_f64().map(Value::Double),
            Scalar::Str(_) if !coerce => None,
            Scalar::Str(s) => s.trim().parse::<f64>().ok().map(Value::Double),
            _ => None,
        },
        FieldType::Boolean => match j {
            Scalar::Bool(b) => Some(Value::Bool(b)),
            Scalar::Str(s) => match s {
                "true" => Some(Value::Bool(true)),
                "false" | "" => Some(Value::Bool(false)),
                _ => None,
            },
            _ => None,
        },
        FieldType::Date { formats } => match j {
            Scalar::Number(n) => match n.as_i64() {
                Some(i) => Some(Value::Date(i)),
                None => f64_to_long(n.as_f64()?).map(|v| match v {
                    Value::Long(i) => Value::Date(i),
                    other => other,
                }),
            },
            Scalar::Str(s) => {
                let ms = if formats.is_empty() {
                    parse_date_literal(s)
                } else {
                    formats
                        .iter()
                        .find_map(|f| parse_date_with_format(s, f))
                        .or_else(|| parse_epoch_millis(s))
                };
                ms.map(Value::Date)
            }
            _ => None,
        },
        FieldType::Ip => match j {
            Scalar::Str(s) => s
                .trim()
                .parse::<IpAddr>()
                .ok()
                .map(|ip| Value::Ip(canonical_ip(ip))),
            _ => None,
        },
        FieldType::Version => match j {
            Scalar::Str(s) => Some(Value::Version(Arc::from(s))),
            _ => None,
        },
    }
}

/// An ip as Elasticsearch gives it back: it stores every address in 16
/// bytes and decodes an IPv4-mapped one (`::ffff:10.0.0.1`) as the IPv4
/// address, so both spellings are one value (as join keys too).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn f64_to_long(d: f64) -> Option<Value> {
    if d.is_finite() && d.abs() < 9.2e18 {
        Some(Value::Long(d.trunc() as i64))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(schema: &Schema, names: &[&str]) -> FieldTable {
        let mut t = FieldTable::default();
        for n in names {
            t.slot(n, schema);
        }
        t
    }

    #[test]
    fn extracts_nested_dotted_and_array_values() {
        let s = Schema::default();
        let t = table(&s, &["process.pid", "process.parent.name", "tags", "a.b"]);
        let e = t.build_event(&json!({
            "process.pid": 1,
            "process": {"parent.name": "x"},
            "tags": ["t1", ["t2"], null],
            "a": [{"b": 1}, {"b": [2, 3]}, {"c": 4}]
        }));
        assert_eq!(e.get(0), &[Value::Long(1)]);
        assert_eq!(e.get(1), &[Value::str("x")]);
        assert_eq!(e.get(2), &[Value::str("t1"), Value::str("t2")]);
        assert_eq!(e.get(3), &[Value::Long(1), Value::Long(2), Value::Long(3)]);
    }

    #[test]
    fn converts_by_mapping_and_applies_null_value() {
        let s = Schema::from_mapping(&json!({"properties": {
            "pid": {"type": "long"},
            "ip": {"type": "ip"},
            "d": {"type": "date", "format": "dd-MM-yyyy"},
            "opt": {"type": "keyword", "null_value": "NULL"},
            "k": {"type": "keyword"},
            "event": {"properties": {"category": {"type": "alias", "path": "event_type"}}},
            "ds": {"type": "constant_keyword", "value": "endpoint"}
        }}))
        .unwrap();
        let t = table(&s, &["pid", "ip", "d", "opt", "k", "event.category", "ds"]);
        let e = t.build_event(&json!({
            "pid": "42", "ip": "10.0.0.1", "d": "02-01-1970", "opt": null, "k": 5,
            "event_type": "process"
        }));
        assert_eq!(e.get(0), &[Value::Long(42)]);
        assert_eq!(e.get(1), &[Value::Ip("10.0.0.1".parse().unwrap())]);
        assert_eq!(e.get(2), &[Value::Date(86_400_000)]);
        assert_eq!(e.get(3), &[Value::str("NULL")]);
        assert_eq!(e.get(4), &[Value::str("5")]);
        assert_eq!(e.get(5), &[Value::str("process")]);
        assert_eq!(e.get(6), &[Value::str("endpoint")]);
        // a missing field does not get the null_value
        let e = t.build_event(&json!({}));
        assert!(e.get(3).is_empty());
    }

    #[test]
    fn timestamp_and_tiebreaker() {
        let s = Schema::default();
        let mut t = FieldTable::default();
        let ts = t.slot("@timestamp", &s);
        let tb = t.slot("seq", &s);
        t.set_timestamp(ts);
        t.set_tiebreaker(tb);
        assert_eq!(
            t.build_event(&json!({"@timestamp": 5, "seq": 2})).timestamp,
            Some(5)
        );
        assert_eq!(
            t.build_event(&json!({"@timestamp": "100"})).timestamp,
            Some(100)
        );
        let e = t.build_event(&json!({"@timestamp": "1970-01-01T00:00:01.000Z", "seq": 2}));
        assert_eq!(e.timestamp, Some(1000));
        assert_eq!(e.tiebreaker, Some(Value::Long(2)));
        assert_eq!(
            t.build_event(&json!({"@timestamp": "nope"})).timestamp,
            None
        );
    }

    #[test]
    fn events_round_trip_through_serde() {
        let s = Schema::default();
        let mut t = table(&s, &["a", "b"]);
        let ts = t.slot("@timestamp", &s);
        t.set_timestamp(ts);
        let e = t.build_event(&json!({"a": [1, "x"], "@timestamp": 5}));
        let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.get(0), &[Value::Long(1), Value::str("x")]);
        assert!(back.get(1).is_empty());
    }

    #[test]
    fn never_panics_on_odd_json() {
        let s = Schema::from_mapping(&json!({"properties": {
            "n": {"type": "long"}, "i": {"type": "ip"}, "d": {"type": "date"}
        }}))
        .unwrap();
        let t = table(&s, &["n", "i", "d", "x.y"]);
        let mut deep = json!(1);
        for _ in 0..500 {
            deep = json!({ "x": [deep] });
        }
        for doc in [
            json!(null),
            json!([1, 2]),
            json!({"n": 1e300, "i": 5, "d": {"a": 1}, "x": "str"}),
            json!({"n": u64::MAX, "d": -1e300, "x": {"y": {"z": 1}}}),
            deep,
        ] {
            let e = t.build_event(&doc);
            assert!(e.get(0).len() <= 1);
        }
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn json_strategy() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::from),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Json::from),
            "[a-z0-9.:/ -]{0,12}".prop_map(Json::from),
            prop_oneof![
                Just("10.0.0.1"),
                Just("::1"),
                Just("1970-01-01T00:00:00Z"),
                Just("1.2.3-rc.1"),
                Just("99999999999999999999999")
            ]
            .prop_map(Json::from),
        ];
        leaf.prop_recursive(6, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![Just("a"), Just("b"), Just("a.b"), Just("c")],
                        inner
                    ),
                    0..5
                )
                .prop_map(|kv| Json::Object(
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn building_events_never_panics(doc in json_strategy()) {
            let schema = Schema::from_mapping(&serde_json::json!({"properties": {
                "a": {"properties": {"b": {"type": "long"}}},
                "c": {"type": "date", "format": "dd-MM-yyyy"},
                "b": {"type": "ip"},
                "a.c": {"type": "version"}
            }}))
            .unwrap();
            let mut t = FieldTable::default();
            for name in ["a", "a.b", "b", "c", "a.c", "x"] {
                t.slot(name, &schema);
            }
            t.set_timestamp(3);
            t.set_tiebreaker(1);
            let e = t.build_event(&doc);
            for slot in 0..6 {
                prop_assert!(e.get(slot).len() <= MAX_VALUES);
            }
        }
    }
}
