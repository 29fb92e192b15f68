//! String patterns: EQL wildcards (`*`, `?`) and Lucene regular expressions.
//!
//! Wildcards are matched byte-wise without allocating (ASCII case folding on
//! the fly; non-ASCII input under case folding takes a slower, allocating
//! path). In EQL wildcards there is no escape character: Elasticsearch turns
//! `*` and `?` into a LIKE pattern and treats `\` literally, which is what
//! Windows paths such as `C:\\Windows\\*` need.
//!
//! Regexes use Lucene `RegExp` syntax (what Elasticsearch's `regexp` query
//! runs, all optional features on), anchored to the whole string, and are
//! translated to the `regex` crate. Lucene's complement `~` and intersection
//! `&`, numeric intervals `<n-m>` and the empty language `#` have no
//! translation and are rejected rather than silently mismatched.

use regex::Regex;

/// A compiled wildcard pattern (`*` = any run, `?` = exactly one character).
#[derive(Clone, Debug)]
pub struct Wildcard {
    /// The pattern text (lower-cased when `insensitive`).
    pattern: Box<str>,
    kind: WildKind,
    insensitive: bool,
}

#[derive(Clone, Debug)]
enum WildKind {
    Exact,
    /// `abc*`
    Prefix(Box<str>),
    /// `*abc`
    Suffix(Box<str>),
    /// `*abc*`
    Contains(Box<str>),
    /// `*`
    Any,
    General,
}

impl Wildcard {
    pub fn new(pattern: &str, insensitive: bool) -> Wildcard {
        let pattern: Box<str> = if insensitive {
            pattern.to_lowercase().into()
        } else {
            pattern.into()
        };
        let stars = pattern.bytes().filter(|&b| b == b'*').count();
        let has_q = pattern.contains('?');
        let kind = if has_q {
            WildKind::General
        } else if stars == 0 {
            WildKind::Exact
        } else if pattern.bytes().all(|b| b == b'*') {
            WildKind::Any
        } else if stars == 1 && pattern.ends_with('*') {
            WildKind::Prefix(pattern[..pattern.len() - 1].into())
        } else if stars == 1 && pattern.starts_with('*') {
            WildKind::Suffix(pattern[1..].into())
        } else if stars == 2
            && pattern.len() > 2
            && pattern.starts_with('*')
            && pattern.ends_with('*')
        {
            WildKind::Contains(pattern[1..pattern.len() - 1].into())
        } else {
            WildKind::General
        };
        Wildcard {
            pattern,
            kind,
            insensitive,
        }
    }

    /// Whether the pattern has any wildcard character.
    pub fn is_literal(&self) -> bool {
        matches!(self.kind, WildKind::Exact)
    }

    pub fn is_match(&self, s: &str) -> bool {
        if self.insensitive && !s.is_ascii() {
            // Unicode case folding can change byte lengths; fold a copy.
            let lowered = s.to_lowercase();
            return self.match_folded(&lowered, false);
        }
        self.match_folded(s, self.insensitive)
    }

    fn match_folded(&self, s: &str, fold_ascii: bool) -> bool {
        let eq = |a: &[u8], b: &[u8]| {
            if fold_ascii {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let s = s.as_bytes();
        match &self.kind {
            WildKind::Any => true,
            WildKind::Exact => eq(s, self.pattern.as_bytes()),
            WildKind::Prefix(p) => s.len() >= p.len() && eq(&s[..p.len()], p.as_bytes()),
            WildKind::Suffix(p) => s.len() >= p.len() && eq(&s[s.len() - p.len()..], p.as_bytes()),
            WildKind::Contains(p) => contains(s, p.as_bytes(), fold_ascii),
            WildKind::General => wild_match(self.pattern.as_bytes(), s, fold_ascii),
        }
    }
}

fn contains(hay: &[u8], needle: &[u8], fold: bool) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.len() < needle.len() {
        return false;
    }
    let first = needle[0];
    (0..=hay.len() - needle.len()).any(|i| {
        let c = hay[i];
        let first_ok = if fold {
            c.to_ascii_lowercase() == first
        } else {
            c == first
        };
        first_ok
            && if fold {
                hay[i..i + needle.len()].eq_ignore_ascii_case(needle)
            } else {
                &hay[i..i + needle.len()] == needle
            }
    })
}

/// Length of the UTF-8 character starting with byte `b`.
fn utf8_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xff => 4,
        _ => 1,
    }
}

/// Greedy wildcard matching with backtracking to the last `*` (linear in
/// practice, no allocation). `?` consumes one whole UTF-8 character.
fn wild_match(p: &[u8], s: &[u8], fold: bool) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    si += utf8_len(s[si]);
                    continue;
                }
                c => {
                    let d = s[si];
                    let same = if fold {
                        c.eq_ignore_ascii_case(&d)
                    } else {
                        c == d
                    };
                    if same {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, ss)) => {
                // let the star swallow one more character
                let next = ss + utf8_len(s[ss]);
                star = Some((sp, next));
                pi = sp + 1;
                si = next;
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len() && si == s.len()
}

/// Why a Lucene regex cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegexError {
    #[error("unsupported lucene regex feature {feature} at offset {offset}")]
    Unsupported {
        feature: &'static str,
        offset: usize,
    },
    #[error("invalid regex: {0}")]
    Invalid(String),
}

/// Translates a Lucene `RegExp` (all syntax flags on) into an anchored
/// `regex`-crate pattern.
pub fn lucene_to_regex(src: &str, insensitive: bool) -> Result<String, RegexError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len() + 16);
    // Case-insensitive Lucene regexes fold ASCII letters only
    // (`RegExp.ASCII_CASE_INSENSITIVE`), so folding is spelled out per
    // letter instead of using the regex crate's Unicode `(?i)`.
    out.push_str("(?s)^(?:");
    let ci = insensitive;
    // Where the last atom starts in `out` (for stacked quantifiers: Lucene's
    // `.*?` is `(.*)?`, not a lazy star), and open groups.
    let mut last_atom: Option<usize> = None;
    let mut prev_quant = false;
    let mut groups: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = out.len();
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err(RegexError::Invalid("trailing backslash".into()));
                };
                match n {
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    's' => out.push_str("[ \\t\\n\\r\\f\\x0B]"),
                    'S' => out.push_str("[^ \\t\\n\\r\\f\\x0B]"),
                    'w' => out.push_str("[a-zA-Z0-9_]"),
                    'W' => out.push_str("[^a-zA-Z0-9_]"),
                    other => push_literal(&mut out, other, ci),
                }
                i += 2;
            }
            '"' => {
                // a quoted literal string is one atom
                let mut j = i + 1;
                out.push_str("(?:");
                while j < chars.len() && chars[j] != '"' {
                    push_literal(&mut out, chars[j], ci);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(RegexError::Invalid("unterminated quoted string".into()));
                }
                out.push(')');
                i = j + 1;
            }
            '[' => i = translate_class(&chars, i, &mut out, ci)?,
            '.' => {
                out.push('.');
                i += 1;
            }
            '@' => {
                out.push_str("(?:.*)");
                i += 1;
            }
            '(' => {
                groups.push(start);
                out.push_str("(?:");
                last_atom = None;
                prev_quant = false;
                i += 1;
                continue;
            }
            ')' => {
                let Some(open) = groups.pop() else {
                    return Err(RegexError::Invalid("unbalanced parenthesis".into()));
                };
                out.push(')');
                last_atom = Some(open);
                prev_quant = false;
                i += 1;
                continue;
            }
            '|' => {
                out.push('|');
                last_atom = None;
                prev_quant = false;
                i += 1;
                continue;
            }
            '*' | '+' | '?' | '{' => {
                let quant: String = if c == '{' {
                    let mut j = i + 1;
                    while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == ',') {
                        j += 1;
                    }
                    if j >= chars.len() || chars[j] != '}' || j == i + 1 {
                        return Err(RegexError::Invalid(format!(
                            "expected a repetition count after `{{` at offset {i}"
                        )));
                    }
                    let q: String = chars[i..=j].iter().collect();
                    i = j + 1;
                    q
                } else {
                    i += 1;
                    c.to_string()
                };
                let Some(atom) = last_atom else {
                    return Err(RegexError::Invalid(format!(
                        "expected something to repeat before `{quant}`"
                    )));
                };
                if prev_quant {
                    out.insert_str(atom, "(?:");
                    out.push(')');
                }
                out.push_str(&quant);
                prev_quant = true;
                continue;
            }
            '~' => {
                return Err(RegexError::Unsupported {
                    feature: "`~` (complement)",
                    offset: i,
                })
            }
            '&' => {
                return Err(RegexError::Unsupported {
                    feature: "`&` (intersection)",
                    offset: i,
                })
            }
            '#' => {
                return Err(RegexError::Unsupported {
                    feature: "`#` (empty language)",
                    offset: i,
                })
            }
            '<' => {
                return Err(RegexError::Unsupported {
                    feature: "`<n-m>` (numeric interval)",
                    offset: i,
                })
            }
            other => {
                push_literal(&mut out, other, ci);
                i += 1;
            }
        }
        last_atom = Some(start);
        prev_quant = false;
    }
    if !groups.is_empty() {
        return Err(RegexError::Invalid("unbalanced parenthesis".into()));
    }
    out.push_str(")$");
    Regex::new(&out).map_err(|e| RegexError::Invalid(e.to_string()))?;
    Ok(out)
}

fn push_literal(out: &mut String, c: char, fold: bool) {
    if fold && c.is_ascii_alphabetic() {
        out.push('[');
        out.push(c.to_ascii_lowercase());
        out.push(c.to_ascii_uppercase());
        out.push(']');
        return;
    }
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// `[...]` starting at `start`; returns the index after `]`.
/// Single letters of a class are case-folded like literals; ranges are not
/// (as in Lucene).
fn translate_class(
    chars: &[char],
    start: usize,
    out: &mut String,
    fold: bool,
) -> Result<usize, RegexError> {
    let mut i = start + 1;
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            out.push(']');
            return Ok(i + 1);
        }
        first = false;
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    break;
                };
                match n {
                    'd' => out.push_str("0-9"),
                    's' => out.push_str(" \\t\\n\\r\\f\\x0B"),
                    'w' => out.push_str("a-zA-Z0-9_"),
                    other => push_class_char(chars, i + 1, out, other, fold),
                }
                i += 2;
            }
            '-' => {
                out.push('-');
                i += 1;
            }
            other => {
                push_class_char(chars, i, out, other, fold);
                i += 1;
            }
        }
    }
    Err(RegexError::Invalid("unterminated character class".into()))
}

/// A class character at `pos`; folded when it is not a range end point.
fn push_class_char(chars: &[char], pos: usize, out: &mut String, c: char, fold: bool) {
    let in_range = chars.get(pos + 1) == Some(&'-')
        && chars.get(pos + 2).is_some_and(|&n| n != ']')
        || pos >= 2 && chars[pos - 1] == '-' && chars[pos - 2] != '[';
    push_class_literal(out, c);
    if fold && !in_range && c.is_ascii_alphabetic() {
        let other = if c.is_ascii_lowercase() {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        };
        out.push(other);
    }
}

fn push_class_literal(out: &mut String, c: char) {
    if matches!(c, '[' | ']' | '\\' | '^' | '&' | '~' | '-') {
        out.push('\\');
    }
    out.push(c);
}

/// A compiled Lucene regex.
#[derive(Clone, Debug)]
pub struct LuceneRegex {
    re: Regex,
}

impl LuceneRegex {
    pub fn new(src: &str, insensitive: bool) -> Result<LuceneRegex, RegexError> {
        let translated = lucene_to_regex(src, insensitive)?;
        let re = Regex::new(&translated).map_err(|e| RegexError::Invalid(e.to_string()))?;
        Ok(LuceneRegex { re })
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(p: &str, s: &str, ci: bool) -> bool {
        Wildcard::new(p, ci).is_match(s)
    }

    #[test]
    fn wildcard_star_and_question_mark() {
        assert!(wm("a*", "abc", false));
        assert!(wm("*c", "abc", false));
        assert!(wm("*b*", "abc", false));
        assert!(wm("a*c", "abbbc", false));
        assert!(wm("a?c", "abc", false));
        assert!(!wm("a?c", "ac", false));
        assert!(!wm("a?c", "abbc", false));
        assert!(wm("1?", "12", false));
        assert!(!wm("1?", "1", false));
        assert!(wm("*", "", false));
        assert!(!wm("abc", "abcd", false));
        assert!(wm("*a*b?", "xxaxxbz", false));
        assert!(wm("?é?", "aéb", false));
        assert!(wm("?", "é", false));
    }

    #[test]
    fn wildcard_case_folding() {
        assert!(wm("*.EXE", "cmd.exe", true));
        assert!(!wm("*.EXE", "cmd.exe", false));
        assert!(wm("C:\\Windows\\*", "c:\\windows\\system32", true));
        assert!(wm("ÉTÉ*", "été là", true));
        assert!(wm("*PLOR*", "explorer", true));
    }

    #[test]
    fn backslash_is_literal_in_wildcards() {
        assert!(wm("a\\*", "a\\bc", false));
        assert!(!wm("a\\*", "a*", false));
    }

    #[test]
    fn lucene_regex_translation() {
        let m = |p: &str, s: &str| LuceneRegex::new(p, false).unwrap().is_match(s);
        assert!(m("a.c", "abc"));
        assert!(!m("a.c", "xabc"), "anchored to the whole string");
        assert!(m("[a-c]+", "abcab"));
        assert!(m("\\d+", "123"));
        assert!(m("a{2,3}", "aaa"));
        assert!(m("\"a.b\"", "a.b"));
        assert!(!m("\"a.b\"", "axb"));
        assert!(m("@x", "anythingx"));
        assert!(m("a^b$", "a^b$"), "^ and $ are literals in Lucene");
        assert!(m("(ab|cd)*", "abcd"));
        assert!(LuceneRegex::new("ABC", true).unwrap().is_match("abc"));
        assert!(LuceneRegex::new("[ab]+\"CD\"", true)
            .unwrap()
            .is_match("AbcD"));
        // Lucene folds ASCII letters only
        assert!(!LuceneRegex::new("é", true).unwrap().is_match("É"));
        assert!(!LuceneRegex::new("[é]", true).unwrap().is_match("É"));
        assert!(matches!(
            LuceneRegex::new("~a", false),
            Err(RegexError::Unsupported { .. })
        ));
        assert!(LuceneRegex::new("a&b", false).is_err());
        assert!(LuceneRegex::new("<1-5>", false).is_err());
        assert!(LuceneRegex::new("(a", false).is_err());
        assert!(LuceneRegex::new("*a", false).is_err());
        // stacked quantifiers repeat the repetition (no lazy matching)
        assert!(m(".*?net1.*?", "c:\\net1 user"));
        assert!(m("a+{2}", "aaa"));
        assert!(m("\"ab\"+", "ababab"));
        assert!(!m("\"ab\"+", "abb"));
        assert!(m("x(ab)?y", "xy"));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The wildcard semantics spelled as a regex, to check the hand-written
    /// matcher against.
    fn reference(pattern: &str, s: &str, insensitive: bool) -> bool {
        let mut re = String::from(if insensitive { "(?is)^" } else { "(?s)^" });
        for c in pattern.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        Regex::new(&re).unwrap().is_match(s)
    }

    proptest! {
        #[test]
        fn wildcard_matches_like_the_reference(
            pattern in "[abAé*?]{0,8}",
            s in "[abAéB]{0,10}",
            insensitive in any::<bool>(),
        ) {
            let w = Wildcard::new(&pattern, insensitive);
            prop_assert_eq!(w.is_match(&s), reference(&pattern, &s, insensitive));
        }
    }
}
