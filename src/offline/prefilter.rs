//! Lines an EQL query cannot match, ruled out from their bytes before they
//! are decoded (`detectd query` without `--mapping`).
//!
//! The query's pushdown filter ([`crate::eql::pushdown`]) is a superset of
//! what the evaluator matches (proptested there). A string leaf of it —
//! `term`, `terms`, `wildcard` — holds only for an event with a value
//! containing the leaf's text (a wildcard's longest literal fragment), and
//! a value's text is in the line as JSON writes it. So a line in which one
//! of the query's required texts appears nowhere cannot match, and is not
//! decoded. Searching for a few texts with SIMD is many times faster than
//! decoding: a chunk of lines is searched once ([`Prefilter::hits`]: one
//! `aho-corasick` pass (Teddy) for the texts of each alternative's most
//! selective clause and the `\u` escapes below), and only the lines holding one are
//! judged by themselves (`memchr`'s memmem for case-sensitive texts,
//! `aho-corasick` with ASCII folding for case-insensitive ones).
//!
//! What keeps it sound, leaf by leaf:
//! * JSON may spell any character as `\uXXXX` and `/` as `\/`: a line with
//!   a `\u` and a hex digit is always decoded, and one with `\/` when a
//!   text holds a `/` (no other text can be spelt with it); a `\u`
//!   without one is no JSON, and only checked for shape when ruled out
//!   (below). Otherwise a string's only spelling
//!   is the canonical one (`\"`, `\\`, the character itself); texts with
//!   control characters, which have two spellings, are not used.
//! * Numbers have many spellings (`1e3`, `1000.0`) and the evaluator
//!   compares numeric strings by value: a string text made only of number
//!   characters, or one that parses as a number, is not used; a whole
//!   number compared by value requires its digits only beside its
//!   branch's other texts, and a line that may spell numbers otherwise
//!   holds it (`offline::required`, where the texts of each leaf are
//!   drawn).
//! * Case-insensitive leaves (`:`, `~`) fold Unicode: a non-ASCII character
//!   may lower-case to an ASCII one (the Kelvin sign to `k`), so a line with
//!   any non-ASCII byte is decoded; texts with non-ASCII characters are not
//!   used case-insensitively.
//! * A mapping changes what a leaf means (a normalizer, a `text` field), so
//!   there is no prefilter with `--mapping`.
//!
//! A line ruled out is not decoded, so it is checked only for shape (valid
//! UTF-8, `{` … `}`): a line broken inside its braces that the query could
//! not have matched is not reported as a bad line. An event query's answer,
//! and a sequence's, are the same with and without the prefilter
//! (`tests/offline_prefilter.rs`); a sequence's partial matches may expire
//! later (fewer events advance its clock), which only matters at the
//! `--max-pending` cap.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use memchr::memmem::Finder;

use super::chunks::Chunk;
use super::required::{numeric, required, sorted, spells_numbers_otherwise, Clause, Text};
use crate::eql::ast::Query;
use crate::eql::compile::CompileOptions;
use crate::eql::pushdown::{pushdown, Filter};

/// Where a chunk's lines may match ([`Prefilter::hits`]).
#[derive(Debug)]
pub struct Hits {
    /// Places of texts, in order, each with the clauses it satisfies
    /// ([`SPELT_OTHERWISE`] for an escape).
    at: Vec<(usize, u64)>,
    /// The first place not before the line last judged.
    next: usize,
    /// The chunk is ASCII (so valid UTF-8).
    ascii: bool,
}

/// The lines of one chunk judged in order ([`Prefilter::chunk`]).
#[derive(Debug)]
pub struct ChunkJudge<'p> {
    prefilter: &'p Prefilter,
    hits: Option<Hits>,
    /// The chunk's offset in its input.
    offset: u64,
}

impl ChunkJudge<'_> {
    /// Whether the line `bytes` at `offset` of the input is ruled out
    /// (see [`Prefilter::rules_out`]).
    pub fn rules_out(&mut self, bytes: &[u8], offset: u64) -> bool {
        match self.hits.as_mut() {
            Some(hits) => {
                let start = (offset - self.offset) as usize;
                self.prefilter.rules_out(bytes, start, hits)
            }
            None => !self.prefilter.may_match(bytes),
        }
    }
}

/// Calls `f(line, offset, bytes)` for each line of `chunk` the
/// `prefilter` (if any) does not rule out, as [`Chunk::for_each_line`]
/// would. When the chunk's lines are plainly laid out (each a `{…}` alone
/// on its line: [`Chunk::plain_lines`]) and it is UTF-8 — most chunks of
/// most inputs — only the lines holding a hit of the chunk's search are
/// looked at: every other one is ruled out (it has an object's shape), so
/// no walk visits them, and they are most lines. Else line by line
/// ([`ChunkJudge::rules_out`]).
pub fn for_each_kept(
    prefilter: Option<&Prefilter>,
    chunk: &Chunk,
    mut f: impl FnMut(u64, u64, &[u8]),
) {
    let Some(prefilter) = prefilter else {
        return chunk.for_each_line(f);
    };
    // the chunk is searched once, whichever way its lines are then judged
    let hits = match chunk.plain_lines() {
        Some(mut lines) => {
            let ascii = lines.ascii();
            match prefilter.hits_in(&chunk.bytes, ascii) {
                Some(mut hits) if ascii || std::str::from_utf8(&chunk.bytes).is_ok() => {
                    while let Some(&(place, _)) = hits.at.get(hits.next) {
                        let (line, offset, bytes) = lines.holding(place);
                        let start = (offset - chunk.offset) as usize;
                        if !prefilter.rules_out(bytes, start, &mut hits) {
                            f(line, offset, bytes);
                        }
                    }
                    return;
                }
                other => other,
            }
        }
        None => prefilter.hits(&chunk.bytes),
    };
    let mut judge = ChunkJudge {
        prefilter,
        hits,
        offset: chunk.offset,
    };
    chunk.for_each_line(|line, offset, bytes| {
        if !judge.rules_out(bytes, offset) {
            f(line, offset, bytes);
        }
    });
}

/// The bit of a hit that is an escape: the line is judged by itself.
const SPELT_OTHERWISE: u64 = 1 << 63;

/// A clause ready to search.
#[derive(Debug)]
struct Searcher {
    /// Case-sensitive texts, each with `memchr`'s SIMD substring search
    /// (faster than an automaton for a few texts).
    exact: Vec<Finder<'static>>,
    /// Case-insensitive texts (ASCII folding).
    folded: Option<AhoCorasick>,
    /// A text is a number's digits: a line that may spell numbers
    /// otherwise holds the clause ([`spells_numbers_otherwise`]).
    numbers: bool,
}

/// One alternative (a sequence's stage): a text of each clause.
#[derive(Debug)]
struct Alternative {
    clauses: Vec<Searcher>,
    /// The bits of the clauses a chunk search finds ([`Prefilter::hits`]).
    found: u64,
    /// The other clauses, searched in a line only when it holds all of
    /// those.
    rest: Vec<usize>,
}

/// What a line must hold to be worth decoding: for one of the
/// alternatives (a sequence's stages), a text of each of its clauses.
#[derive(Debug)]
pub struct Prefilter {
    alternatives: Vec<Alternative>,
    /// Some clause has case-insensitive texts (non-ASCII lines are kept).
    folds: bool,
    /// `\u`, the start of another spelling of any character (when the
    /// backslash is not itself escaped) ...
    unicode: Finder<'static>,
    /// ... when it starts one of these: [`ESCAPES`], or [`ASCII_ESCAPES`]
    /// when every text is ASCII and compared case-sensitively.
    escapes: &'static [&'static [u8]],
    /// `\/`, another spelling of `/`, when a text holds one (when the
    /// backslash is not itself escaped).
    slash: Option<Finder<'static>>,
    /// The escapes that matter (`escapes`), then the case-sensitive texts
    /// of the clauses a chunk search finds: one pass over a chunk finds
    /// them all ([`Self::hits`]).
    texts: ClauseSearch,
    /// The case-insensitive texts of the clauses a chunk search finds,
    /// lower-cased: searched in a lower-cased copy of the chunk.
    folded: Option<ClauseSearch>,
}

/// Texts searched in a chunk at once, each with the clauses finding it
/// satisfies.
#[derive(Debug)]
struct ClauseSearch {
    texts: Texts,
    /// Per text: its clauses and those of every text it starts with (the
    /// longest text at a place is the one found there).
    satisfies: Vec<u64>,
}

impl ClauseSearch {
    fn new(texts: &[(&[u8], u64)]) -> Option<ClauseSearch> {
        let satisfies = texts
            .iter()
            .map(|(found, _)| {
                texts
                    .iter()
                    .filter(|(t, _)| found.starts_with(t))
                    .fold(0, |clauses, (_, c)| clauses | c)
            })
            .collect();
        let texts: Vec<&[u8]> = texts.iter().map(|(t, _)| *t).collect();
        Some(ClauseSearch {
            texts: Texts::new(&texts)?,
            satisfies,
        })
    }

    /// Adds every place in `haystack` where a text starts, with the
    /// clauses it satisfies, to `at`; an escape ([`SPELT_OTHERWISE`]) only
    /// where its backslash is not itself escaped.
    fn find_all(&self, haystack: &[u8], at: &mut Vec<(usize, u64)>) {
        let mut from = 0;
        while let Some(m) = self.texts.find_from(haystack, from) {
            let clauses = self.satisfies[m.pattern().as_usize()];
            if clauses != SPELT_OTHERWISE || escaped(haystack, m.start()) {
                at.push((m.start(), clauses));
            }
            // the next place: a text may start within this one (or within
            // `\\u…`, no escape)
            from = m.start() + 1;
        }
    }
}

/// The starts of `\u` escapes: JSON spells a character `\u` and four hex
/// digits. Three bytes each, so that `\user` in a Windows path (`C:\\Users\\user`)
/// is not one, and the search runs on three-byte fingerprints.
const ESCAPES: [&[u8]; 22] = [
    b"\\u0", b"\\u1", b"\\u2", b"\\u3", b"\\u4", b"\\u5", b"\\u6", b"\\u7", b"\\u8", b"\\u9",
    b"\\ua", b"\\ub", b"\\uc", b"\\ud", b"\\ue", b"\\uf", b"\\uA", b"\\uB", b"\\uC", b"\\uD",
    b"\\uE", b"\\uF",
];

/// The starts of the escapes that matter when every text is ASCII and
/// compared case-sensitively: of ASCII characters (`\u0000` to `\u007f`,
/// with the rest of Latin-1), which may spell a character of a text, and of
/// surrogates (`\ud800` to `\udfff`, with the rest of `\ud…`), a lone one
/// of which makes a line that looks well formed no JSON (decoded, it is
/// reported). No other escape spells a character of an ASCII text; three
/// texts rather than 22 make the chunk search faster.
const ASCII_ESCAPES: [&[u8]; 3] = [b"\\u00", b"\\ud", b"\\uD"];

/// A search for several texts at once.
#[derive(Debug)]
enum Texts {
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl Searcher {
    /// Whether `line` holds one of the texts.
    fn holds(&self, line: &[u8]) -> bool {
        self.exact.iter().any(|f| f.find(line).is_some())
            || self.folded.as_ref().is_some_and(|a| a.is_match(line))
            || (self.numbers && spells_numbers_otherwise(line))
    }
}

impl Texts {
    /// The longest of `texts` at each place: Teddy (SIMD) when the CPU has
    /// it (the automaton's own choice for a few long texts is many times
    /// slower), else an automaton.
    fn new(texts: &[&[u8]]) -> Option<Texts> {
        let packed = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(texts)
            .build();
        Some(match packed {
            Some(packed) => Texts::Packed(packed),
            None => Texts::Automaton(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(texts)
                    .ok()?,
            ),
        })
    }

    /// The first text found in `haystack` from `from` on.
    fn find_from(&self, haystack: &[u8], from: usize) -> Option<aho_corasick::Match> {
        let span = aho_corasick::Span {
            start: from,
            end: haystack.len(),
        };
        match self {
            Texts::Packed(s) => s.find_in(haystack, span),
            Texts::Automaton(a) => a.find(aho_corasick::Input::new(haystack).span(span)),
        }
    }
}

impl Prefilter {
    /// The prefilter of `query` when its pushdown filter requires some
    /// text; `None` when every line may match. Leaves on metadata fields
    /// (`_index` is the file's name, not in the line) and on the time
    /// fields (compared as dates) require nothing.
    pub fn for_query(query: &Query, opts: &CompileOptions) -> Option<Prefilter> {
        Prefilter::for_filter(&pushdown(query, &opts.event_category_field), opts)
    }

    /// The prefilter of a pushdown filter (what [`Filter::matches`]
    /// requires of a line; the query's pushdown requires no more than its
    /// matches do): `None` when every line may pass it.
    pub fn for_filter(filter: &Filter, opts: &CompileOptions) -> Option<Prefilter> {
        // An OR at the top (a sequence's or a sample's stages) keeps each
        // branch whole: a line must hold every text of some branch.
        let branches: Vec<&Filter> = match filter {
            Filter::Bool { must, should, .. } if must.is_empty() && !should.is_empty() => {
                should.iter().collect()
            }
            other => vec![other],
        };
        let mut stages = Vec::with_capacity(branches.len());
        let mut folds = false;
        let mut slash = false;
        for branch in branches {
            let clauses = sorted(required(branch, opts));
            // a line is searched for numbers' digits only where the chunk
            // search found the rest of its branch
            if clauses.first().is_none_or(numeric) {
                return None;
            }
            folds |= clauses.iter().flatten().any(|t| t.case_insensitive);
            slash |= clauses.iter().flatten().any(|t| t.bytes.contains(&b'/'));
            stages.push(clauses);
        }
        // The chunk search finds the texts of each alternative's first
        // (most selective) clause, and of its other clauses whose texts
        // are among those anyway: more texts, found everywhere
        // (`"network"` names an ECS object too), would slow it down.
        let first: Vec<&Text> = stages.iter().flat_map(|c| &c[0]).collect();
        // Each text the chunk search finds, with the clauses it satisfies.
        let mut exact: Vec<(&[u8], u64)> = Vec::new();
        let mut folded: Vec<(&[u8], u64)> = Vec::new();
        let mut bits = 0;
        let mut alternatives = Vec::with_capacity(stages.len());
        for clauses in &stages {
            let mut found = 0u64;
            let mut rest = Vec::new();
            for (i, clause) in clauses.iter().enumerate() {
                let searched =
                    !numeric(clause) && (i == 0 || clause.iter().all(|t| first.contains(&t)));
                if i == 0 && bits == 63 {
                    return None; // more stages than a search tells apart
                }
                if !searched || bits == 63 {
                    rest.push(i);
                    continue;
                }
                let bit = 1 << bits;
                bits += 1;
                found |= bit;
                for t in clause {
                    let table = if t.case_insensitive {
                        &mut folded
                    } else {
                        &mut exact
                    };
                    match table.iter_mut().find(|(b, _)| *b == &t.bytes[..]) {
                        Some((_, clauses)) => *clauses |= bit,
                        None => table.push((&t.bytes, bit)),
                    }
                }
            }
            alternatives.push(Alternative {
                clauses: searchers(clauses)?,
                found,
                rest,
            });
        }
        let slash = slash.then(|| Finder::new(b"\\/").into_owned());
        // An escape of a non-ASCII character spells no character of an
        // ASCII text, but may one of a text with a non-ASCII character, and
        // under case-insensitive texts one that folds to ASCII (the Kelvin
        // sign to `k`). Texts never start with an escape (a JSON string
        // spells `\u` only for control characters, which no text holds), so
        // an escape's clauses stay its own.
        let ascii = !folds
            && stages
                .iter()
                .flatten()
                .flatten()
                .all(|t| t.bytes.is_ascii());
        let escapes: &'static [&'static [u8]] = match ascii {
            true => &ASCII_ESCAPES,
            false => &ESCAPES,
        };
        let texts: Vec<(&[u8], u64)> = escapes
            .iter()
            .map(|&e| (e, SPELT_OTHERWISE))
            .chain(exact)
            .collect();
        let texts = ClauseSearch::new(&texts)?;
        // The case-insensitive texts, found the same way in a lower-cased
        // copy of the chunk (only ASCII chunks are searched: see `hits`),
        // so with the same SIMD search rather than an automaton folding
        // case byte by byte, many times slower.
        let lower: Vec<(Vec<u8>, u64)> = folded
            .iter()
            .map(|(t, c)| (t.to_ascii_lowercase(), *c))
            .collect();
        let lower: Vec<(&[u8], u64)> = lower.iter().map(|(t, c)| (t.as_slice(), *c)).collect();
        let folded = match lower.is_empty() {
            true => None,
            false => Some(ClauseSearch::new(&lower)?),
        };
        Some(Prefilter {
            alternatives,
            folds,
            unicode: Finder::new(b"\\u").into_owned(),
            escapes,
            slash,
            texts,
            folded,
        })
    }

    /// Whether `line` (one NDJSON line, trimmed) may match: `false` only
    /// when it cannot.
    pub fn may_match(&self, line: &[u8]) -> bool {
        // Not an object on one line: decoding says why.
        if line.first() != Some(&b'{') || line.last() != Some(&b'}') {
            return true;
        }
        if self
            .alternatives
            .iter()
            .any(|a| a.clauses.iter().all(|c| c.holds(line)))
        {
            return true;
        }
        // A text is missing: ruled out, unless the line may spell it
        // otherwise (or is not UTF-8, which decoding reports).
        if self.spells_otherwise(line) {
            return true;
        }
        !line.is_ascii() && (self.folds || std::str::from_utf8(line).is_err())
    }

    /// Where in `chunk` (whole lines) a line may match, found by searching
    /// the chunk once for all texts rather than each line: the places of
    /// the texts of the clauses the search finds (each alternative's
    /// first, at least), each with the clauses it satisfies, and of the
    /// escapes. `None` when every line must be judged by itself:
    /// case-insensitive texts in a chunk with non-ASCII bytes.
    pub fn hits(&self, chunk: &[u8]) -> Option<Hits> {
        self.hits_in(chunk, chunk.is_ascii())
    }

    /// [`Self::hits`] of a chunk known to be ASCII or not.
    fn hits_in(&self, chunk: &[u8], ascii: bool) -> Option<Hits> {
        if self.folds && !ascii {
            return None;
        }
        let mut at: Vec<(usize, u64)> = Vec::new();
        self.texts.find_all(chunk, &mut at);
        // apart: a two-byte pattern would slow the search of the others
        if let Some(slash) = &self.slash {
            at.extend(
                slash
                    .find_iter(chunk)
                    .filter(|&i| escaped(chunk, i))
                    .map(|i| (i, SPELT_OTHERWISE)),
            );
        }
        if let Some(folded) = &self.folded {
            // ASCII (checked above): lower-casing keeps every place
            folded.find_all(&chunk.to_ascii_lowercase(), &mut at);
        }
        at.sort_unstable_by_key(|&(place, _)| place);
        Some(Hits { at, next: 0, ascii })
    }

    /// Whether the line at `start..end` of a chunk with these `hits` is
    /// ruled out: what [`Self::may_match`] says of it, from the clauses
    /// its hits satisfy and a search of the line for the others only
    /// where those are all there; a line that may not match is ruled out
    /// when it has the shape of an object on one line (decoding reports
    /// the others). Lines must come in order.
    pub fn rules_out(&self, line: &[u8], start: usize, hits: &mut Hits) -> bool {
        while hits.at.get(hits.next).is_some_and(|&(h, _)| h < start) {
            hits.next += 1;
        }
        let mut satisfied = 0u64;
        while let Some(&(h, clauses)) = hits.at.get(hits.next) {
            if h >= start + line.len() {
                break;
            }
            satisfied |= clauses;
            hits.next += 1;
        }
        let shaped = line.first() == Some(&b'{') && line.last() == Some(&b'}');
        if satisfied != 0 && shaped {
            if satisfied & SPELT_OTHERWISE != 0 {
                return false;
            }
            let may = self.alternatives.iter().any(|a| {
                satisfied & a.found == a.found && a.rest.iter().all(|&c| a.clauses[c].holds(line))
            });
            if may {
                return false;
            }
        }
        shaped && (hits.ascii || line.is_ascii() || std::str::from_utf8(line).is_ok())
    }

    /// The judge of `chunk`'s lines, in order: by one search of the chunk
    /// where it allows ([`Self::hits`]), else line by line.
    pub fn chunk(&self, chunk: &Chunk) -> ChunkJudge<'_> {
        ChunkJudge {
            prefilter: self,
            hits: self.hits(&chunk.bytes),
            offset: chunk.offset,
        }
    }

    /// Whether the line has a `\u` escape that matters (one of `escapes`),
    /// or a `\/` one when a text holds `/`: a backslash that is not itself
    /// escaped (an odd run of backslashes) at its start.
    fn spells_otherwise(&self, line: &[u8]) -> bool {
        let unicode = self.unicode.find_iter(line).any(|start| {
            self.escapes.iter().any(|e| line[start..].starts_with(e)) && escaped(line, start)
        });
        unicode
            || self
                .slash
                .as_ref()
                .is_some_and(|f| f.find_iter(line).any(|start| escaped(line, start)))
    }
}

/// Whether the backslash at `at` escapes the next character: it ends an
/// odd run of backslashes.
fn escaped(bytes: &[u8], at: usize) -> bool {
    let run = bytes[..=at]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    run % 2 == 1
}

/// A branch's clauses, ready to search; `None` if a search cannot be
/// built.
fn searchers(clauses: &[Clause]) -> Option<Vec<Searcher>> {
    clauses
        .iter()
        .map(|clause| {
            let (folded, exact): (Vec<&Text>, Vec<&Text>) =
                clause.iter().partition(|t| t.case_insensitive);
            let folded = if folded.is_empty() {
                None
            } else {
                let texts = folded.iter().map(|t| &t.bytes);
                Some(
                    AhoCorasickBuilder::new()
                        .ascii_case_insensitive(true)
                        .match_kind(MatchKind::LeftmostFirst)
                        .build(texts)
                        .ok()?,
                )
            };
            Some(Searcher {
                exact: exact
                    .iter()
                    .map(|t| Finder::new(&t.bytes).into_owned())
                    .collect(),
                folded,
                numbers: numeric(clause),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "prefilter_tests.rs"]
pub(super) mod tests;
