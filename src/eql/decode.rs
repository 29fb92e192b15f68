//! Decoding NDJSON lines straight into pre-built [`Event`]s.
//!
//! [`FieldTable::decode_event`] gives exactly the event that
//! [`FieldTable::build_event`] gives for the parsed line, without building a
//! `serde_json::Value` of the whole document: one pass of serde_json's
//! deserializer over the line descends only into keys on the way to a field
//! the plan reads and keeps only the values of those fields. A typical ECS
//! event has a few dozen fields of which a rule reads a handful, so most of
//! the line is scanned but never allocated.
//!
//! The fields' paths are compiled once per table into a small automaton
//! (`EventDecoder`, cached in the table): a state is the dotted prefix read
//! so far (`process.` after the key `process`), and each state maps the
//! object keys that lead somewhere (`name`, `parent`, `parent.name`, ...) to
//! the paths they complete and the state they continue in. Dotted keys at
//! any level, arrays of objects and nested arrays therefore resolve exactly
//! as in `build_event`, with the same depth and value caps.
//!
//! What is *not* done here: conversion to the field types, `null_value`,
//! constants, timestamp and tiebreaker extraction, which `event` shares
//! between both builders so they cannot drift apart.
//!
//! Errors: a line is rejected exactly when `serde_json::from_slice::<Value>`
//! rejects it (invalid UTF-8 or JSON, numbers out of `f64` range, lone
//! surrogate escapes, more than 127 nested arrays and objects — serde_json's
//! recursion limit), because skipped values are still parsed by
//! serde_json's own `deserialize_any`, not skimmed with `IgnoredAny`, which
//! accepts all of these (and would be only about 10% faster on ECS events).
//! A valid JSON line that is not an object is an error too
//! ([`DecodeError::NotObject`]). Values nested deeper than `build_event`'s
//! depth cap (64) are ignored, as there; nothing here panics or recurses
//! deeper than serde_json's limit.
//!
//! Duplicate keys: `serde_json::Value` keeps the *last* value of a repeated
//! key at the position of the *first*. Rather than buffer every relevant
//! subtree to replay that, a line with a repeated key that leads to a field
//! is decoded again through `serde_json::Value` and `build_event` (such
//! lines are rare: Elasticsearch itself rejects them).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::event::{Event, EventBuilder, FieldTable, Scalar, MAX_DEPTH, MAX_VALUES};

/// Why a line could not be decoded into an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid UTF-8 after byte {valid_up_to}")]
    Utf8 { valid_up_to: usize },
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected a JSON object, found {0}")]
    NotObject(&'static str),
}

impl FieldTable {
    /// Decodes one NDJSON line (without its newline) into the event
    /// [`FieldTable::build_event`] would build from the parsed line; an error
    /// when `serde_json` cannot parse the line or it is not an object (a
    /// blank line is an error too: callers skip those). The first call
    /// compiles the table's paths; later calls reuse them.
    pub fn decode_event(&self, line: &[u8]) -> Result<Event, DecodeError> {
        self.decoder().decode(self, line)
    }
}

/// The lookup structures of one [`FieldTable`], built once (and cached in
/// the table).
#[derive(Debug)]
pub(crate) struct EventDecoder {
    /// Distinct `_source` paths, in order of first use.
    paths: Vec<Box<str>>,
    /// The path index of each slot.
    slot_path: Vec<u32>,
    /// State 0 is the document root.
    states: Vec<State>,
    entries: Vec<Entry>,
}

/// A dotted prefix of one or more paths: which keys lead on from it.
///
/// An open-addressing table keyed by a cheap mix of the key's length and
/// three of its bytes; the full key is compared on a hit. Keys come from our
/// own plan, so there is no flooding to fear, and a full hash of every
/// object key costs more than the rest of the lookup.
#[derive(Debug, Default)]
struct State {
    /// Entry ids, `u32::MAX` for empty.
    slots: Box<[u32]>,
}

const EMPTY: u32 = u32::MAX;

#[inline]
fn mix(key: &[u8]) -> usize {
    let (Some(&first), Some(&last)) = (key.first(), key.last()) else {
        return 0;
    };
    let mid = key.get(key.len() / 2).copied().unwrap_or(0);
    (key.len() as u32)
        .wrapping_mul(0x9E37_79B1)
        .wrapping_add(u32::from(first).wrapping_mul(0x85EB_CA77))
        .wrapping_add(u32::from(last).wrapping_mul(0xC2B2_AE3D))
        .wrapping_add(u32::from(mid).wrapping_mul(0x27D4_EB2F))
        .rotate_left(13) as usize
}

impl State {
    fn new(keys: &[(&str, u32)]) -> State {
        let size = (keys.len() * 4).next_power_of_two().max(4);
        let mut slots = vec![EMPTY; size];
        for &(k, id) in keys {
            let mut i = mix(k.as_bytes()) & (size - 1);
            while slots[i] != EMPTY {
                i = (i + 1) & (size - 1);
            }
            slots[i] = id;
        }
        State {
            slots: slots.into(),
        }
    }

    #[inline]
    fn get(&self, key: &str, entries: &[Entry]) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = mix(key.as_bytes()) & mask;
        // at most a quarter full, so the probe ends at an empty slot
        for _ in 0..self.slots.len() {
            let id = *self.slots.get(i)?;
            let entry = entries.get(id as usize)?;
            if *entry.key == *key {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
        None
    }
}

/// Where an object key leads from a state.
#[derive(Debug)]
struct Entry {
    key: Box<str>,
    /// Paths whose values this key's value is (or whose array it is).
    exact: Box<[u32]>,
    /// The state for the keys of this key's value (if it is an object).
    cont: Option<u32>,
}

impl EventDecoder {
    /// Compiles the table's paths.
    pub(crate) fn new(table: &FieldTable) -> EventDecoder {
        let mut paths: Vec<Box<str>> = Vec::new();
        let mut slot_path = Vec::with_capacity(table.len());
        for spec in table.specs() {
            let p = spec.info.source_path.as_str();
            let i = match paths.iter().position(|q| &**q == p) {
                Some(i) => i,
                None => {
                    paths.push(p.into());
                    paths.len() - 1
                }
            };
            slot_path.push(i as u32);
        }

        // A state is the prefix `t` read so far: "" at the root, otherwise
        // ending with the `.` that separates it from the next key. A key `k`
        // read in state `t` completes the paths equal to `t + k` (or to
        // `t + k + "."`, whose remaining path is then empty, as `collect`
        // treats it) and continues in state `t + k + "."` when a longer path
        // starts with it. This is `collect`'s string matching, done ahead.
        let mut prefixes: Vec<String> = vec![String::new()];
        let mut state_of: HashMap<String, u32> = HashMap::from([(String::new(), 0)]);
        let mut states = Vec::new();
        let mut entries = Vec::new();
        let mut next = 0;
        while next < prefixes.len() {
            let t = prefixes[next].clone();
            next += 1;
            // key -> (exact paths, continuation prefix)
            let mut found: Vec<(String, Vec<u32>, Option<String>)> = Vec::new();
            let mut add = |k: &str, exact: Option<u32>, cont: Option<String>| {
                let i = match found.iter().position(|(fk, _, _)| fk == k) {
                    Some(i) => i,
                    None => {
                        found.push((k.to_string(), Vec::new(), None));
                        found.len() - 1
                    }
                };
                if let Some(p) = exact {
                    if !found[i].1.contains(&p) {
                        found[i].1.push(p);
                    }
                }
                if cont.is_some() {
                    found[i].2 = cont;
                }
            };
            for (pi, p) in paths.iter().enumerate() {
                let pi = pi as u32;
                if p.len() <= t.len() || !p.starts_with(t.as_str()) {
                    continue;
                }
                let rest = &p[t.len()..];
                add(rest, Some(pi), None);
                for (j, _) in rest.match_indices('.') {
                    let k = &rest[..j];
                    let after = t.len() + j + 1;
                    if after == p.len() {
                        add(k, Some(pi), None);
                    } else {
                        add(k, None, Some(p[..after].to_string()));
                    }
                }
            }
            let mut keys = Vec::with_capacity(found.len());
            for (k, exact, cont) in found {
                let cont = cont.map(|c| match state_of.get(&c) {
                    Some(&s) => s,
                    None => {
                        let s = prefixes.len() as u32;
                        state_of.insert(c.clone(), s);
                        prefixes.push(c);
                        s
                    }
                });
                keys.push(entries.len() as u32);
                entries.push(Entry {
                    key: k.into(),
                    exact: exact.into(),
                    cont,
                });
            }
            let keys: Vec<(&str, u32)> = keys
                .iter()
                .map(|&id| (&*entries[id as usize].key, id))
                .collect();
            states.push(State::new(&keys));
        }
        EventDecoder {
            paths,
            slot_path,
            states,
            entries,
        }
    }

    /// Decodes one line with `table`, the table this decoder was built from.
    pub(crate) fn decode(&self, table: &FieldTable, line: &[u8]) -> Result<Event, DecodeError> {
        // Validating the whole line up front is what `from_slice` does piece
        // by piece (it checks every string it parses); doing it once lets
        // the parser borrow strings without re-checking them.
        let text = std::str::from_utf8(line).map_err(|e| DecodeError::Utf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let mut ctx = Ctx {
            leaves: Vec::with_capacity(2 * self.paths.len()),
            lists: vec![List::default(); self.paths.len()],
            seen: Vec::with_capacity(16),
            duplicate: false,
            not_object: None,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = RootSeed {
            dec: self,
            ctx: &mut ctx,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        if let Err(e) = parsed {
            if ctx.duplicate {
                let doc: serde_json::Value = serde_json::from_str(text)?;
                return Ok(table.build_event(&doc));
            }
            return Err(match ctx.not_object {
                Some(kind) => DecodeError::NotObject(kind),
                None => DecodeError::Json(e),
            });
        }
        let mut builder = EventBuilder::with_capacity(table.len());
        for (spec, &p) in table.specs().iter().zip(&self.slot_path) {
            builder.push_field(spec, ctx.values_of(p));
        }
        Ok(builder.finish(table))
    }
}

/// A kept JSON scalar, borrowing the line where serde_json lets it (strings
/// without escapes).
#[derive(Debug)]
enum Leaf<'de> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'de, str>),
}

impl Leaf<'_> {
    fn scalar(&self) -> Scalar<'_> {
        match self {
            Leaf::Null => Scalar::Null,
            Leaf::Bool(b) => Scalar::Bool(*b),
            Leaf::Number(n) => Scalar::Number(n),
            Leaf::Str(s) => Scalar::Str(s),
        }
    }
}

/// Mutable state of one decode.
struct Ctx<'de> {
    /// Kept values in document order, each with the index of the next value
    /// of the same path.
    leaves: Vec<(Leaf<'de>, u32)>,
    /// The values of each path.
    lists: Vec<List>,
    /// Entries seen in each open object, to spot repeated keys.
    seen: Vec<u32>,
    duplicate: bool,
    not_object: Option<&'static str>,
}

/// A path's values: a list threaded through `Ctx::leaves`.
#[derive(Clone, Copy, Debug)]
struct List {
    first: u32,
    last: u32,
    /// Capped like `build_event`.
    count: u32,
}

const END: u32 = u32::MAX;

impl Default for List {
    fn default() -> Self {
        List {
            first: END,
            last: END,
            count: 0,
        }
    }
}

impl<'de> Ctx<'de> {
    #[inline]
    fn keep(&mut self, exact: &[u32], leaf: impl Fn() -> Leaf<'de>) {
        for &p in exact {
            let Some(list) = self.lists.get_mut(p as usize) else {
                continue;
            };
            if list.count as usize >= MAX_VALUES {
                continue;
            }
            let i = self.leaves.len() as u32;
            self.leaves.push((leaf(), END));
            match self.leaves.get_mut(list.last as usize) {
                Some(prev) => prev.1 = i,
                None => list.first = i,
            }
            list.last = i;
            list.count += 1;
        }
    }

    /// The kept values of path `p`, in document order.
    fn values_of(&self, p: u32) -> impl Iterator<Item = Scalar<'_>> {
        let mut i = self.lists.get(p as usize).map_or(END, |l| l.first);
        std::iter::from_fn(move || {
            let (leaf, next) = self.leaves.get(i as usize)?;
            i = *next;
            Some(leaf.scalar())
        })
    }
}

/// The document root: must be an object.
struct RootSeed<'d, 'c, 'de> {
    dec: &'d EventDecoder,
    ctx: &'c mut Ctx<'de>,
}

impl<'de> DeserializeSeed<'de> for RootSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RootSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        walk_object(self.dec, self.ctx, 0, 0, map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.not_object("an array")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_object("a string")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_object("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_object("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_object("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_object("a number")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_object("null")
    }
}

impl RootSeed<'_, '_, '_> {
    fn not_object<E: de::Error>(self, kind: &'static str) -> Result<(), E> {
        self.ctx.not_object = Some(kind);
        Err(E::custom(format_args!(
            "expected a JSON object, found {kind}"
        )))
    }
}

/// Reads the entries of an object in `state` whose values are at `depth`
/// minus one.
fn walk_object<'de, A: MapAccess<'de>>(
    dec: &EventDecoder,
    ctx: &mut Ctx<'de>,
    state: u32,
    depth: usize,
    mut map: A,
) -> Result<(), A::Error> {
    let Some(state) = dec.states.get(state as usize) else {
        return skip_entries(map);
    };
    let base = ctx.seen.len();
    while let Some(found) = map.next_key_seed(KeySeed(state, &dec.entries))? {
        let Some(entry) = found.and_then(|id| Some((id, dec.entries.get(id as usize)?))) else {
            map.next_value_seed(Skip)?;
            continue;
        };
        if ctx.seen[base..].contains(&entry.0) {
            ctx.duplicate = true;
            return Err(de::Error::custom("repeated key"));
        }
        ctx.seen.push(entry.0);
        map.next_value_seed(ValueSeed {
            dec,
            ctx: &mut *ctx,
            exact: &entry.1.exact,
            cont: entry.1.cont,
            depth: depth + 1,
        })?;
    }
    ctx.seen.truncate(base);
    Ok(())
}

fn skip_entries<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_key_seed(Skip)?.is_some() {
        map.next_value_seed(Skip)?;
    }
    Ok(())
}

/// An object key, looked up in a state without allocating.
struct KeySeed<'d>(&'d State, &'d [Entry]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<u32>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<u32>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, k: &str) -> Result<Option<u32>, E> {
        Ok(self.0.get(k, self.1))
    }
}

/// A value on the way to (or at) one or more of the paths.
struct ValueSeed<'d, 'c, 'de> {
    dec: &'d EventDecoder,
    ctx: &'c mut Ctx<'de>,
    /// Paths this value belongs to.
    exact: &'d [u32],
    /// The state for this value's keys, if it is an object.
    cont: Option<u32>,
    /// Containers above this value (the root's values are at 1).
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth > MAX_DEPTH {
            // `collect` does not look this deep; parse (to reject what
            // serde_json rejects) but keep nothing
            return d.deserialize_any(Skip);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.ctx.keep(self.exact, || Leaf::Null);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        self.ctx.keep(self.exact, || Leaf::Bool(b));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.ctx.keep(self.exact, || Leaf::Number(n.into()));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.ctx.keep(self.exact, || Leaf::Number(n.into()));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<(), E> {
        // as serde_json::Value does: a float without a JSON form is null
        self.ctx.keep(self.exact, || {
            Number::from_f64(n).map_or(Leaf::Null, Leaf::Number)
        });
        Ok(())
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<(), E> {
        self.ctx.keep(self.exact, || Leaf::Str(Cow::Borrowed(s)));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        // an escaped string, unescaped into serde_json's scratch buffer
        self.ctx
            .keep(self.exact, || Leaf::Str(Cow::Owned(s.to_owned())));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // arrays flatten: every item belongs where the array does
        while seq
            .next_element_seed(ValueSeed {
                dec: self.dec,
                ctx: &mut *self.ctx,
                exact: self.exact,
                cont: self.cont,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        // an object is never a value itself; only its keys can lead on
        match self.cont {
            Some(state) => walk_object(self.dec, self.ctx, state, self.depth, map),
            None => skip_entries(map),
        }
    }
}

/// Parses and drops a value. `deserialize_any` rather than `IgnoredAny` so
/// that a line is rejected exactly when `serde_json::Value` would reject it.
struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        skip_entries(map)
    }
}

#[cfg(test)]
mod tests;
