//! Lucene wildcard patterns, as the `wildcard` query and `query_string`
//! wildcard terms read them: `*` any run of characters, `?` exactly one,
//! `\` makes the next character literal (a trailing `\` is itself).
//!
//! Case-insensitive patterns fold each plain character, but an escaped
//! character still matches only itself, as Elasticsearch's
//! `AutomatonQueries.toCaseInsensitiveWildcardAutomaton` builds it
//! (`Automata.makeChar` for the escaped code point).

/// One element of a compiled pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    /// Compared after case folding (when the pattern is case-insensitive).
    Lit(char),
    /// An escaped character: compared as is.
    Exact(char),
    One,
    Any,
}

/// A compiled wildcard pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    toks: Vec<Tok>,
    case_insensitive: bool,
}

impl Pattern {
    pub fn new(pattern: &str, case_insensitive: bool) -> Pattern {
        let mut toks = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            toks.push(match c {
                '*' => Tok::Any,
                '?' => Tok::One,
                '\\' => match chars.next() {
                    Some(n) => Tok::Exact(n),
                    None => Tok::Lit(fold('\\', case_insensitive)),
                },
                c => Tok::Lit(fold(c, case_insensitive)),
            });
        }
        Pattern {
            toks,
            case_insensitive,
        }
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let t: Vec<char> = text.chars().collect();
        let ci = self.case_insensitive;
        let p = &self.toks;
        // Iterative glob match with single-star backtracking.
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some(Tok::One) => {
                    pi += 1;
                    ti += 1;
                }
                Some(Tok::Lit(c)) if *c == fold(t[ti], ci) => {
                    pi += 1;
                    ti += 1;
                }
                Some(Tok::Exact(c)) if *c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                Some(Tok::Any) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|t| *t == Tok::Any)
    }
}

fn fold(c: char, case_insensitive: bool) -> char {
    if !case_insensitive {
        return c;
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// The pattern as a `text` field's normalizer leaves it (`query_string`
/// wildcard terms): literal characters lowercased, escapes kept.
pub fn normalize_lowercase(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push('\\');
            if let Some(n) = chars.next() {
                out.extend(n.to_lowercase());
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_escapes() {
        assert!(Pattern::new("*.exe", false).matches("cmd.exe"));
        assert!(!Pattern::new("*.exe", false).matches("cmd.EXE"));
        assert!(Pattern::new("*.exe", true).matches("cmd.EXE"));
        assert!(Pattern::new("c?d", false).matches("cmd"));
        assert!(!Pattern::new(r"c\?d", false).matches("cmd"));
        assert!(Pattern::new(r"c\?d", false).matches("c?d"));
        assert!(Pattern::new(r"*\\*", false).matches(r"a\b"));
        assert!(!Pattern::new(r"*\\*", false).matches("ab"));
        assert!(Pattern::new(r"a\*", false).matches("a*"));
        assert!(!Pattern::new(r"a\*", false).matches("ab"));
        assert!(Pattern::new(r"a\", false).matches(r"a\"));
        assert!(Pattern::new("", false).matches(""));
        assert!(Pattern::new("**", false).matches(""));
        assert!(Pattern::new("*a*b*", false).matches("xxaxxbxx"));
    }

    #[test]
    fn escaped_characters_keep_their_case_in_case_insensitive_patterns() {
        // `C:\Program Files*` as a TOML basic string with `\\` spells it:
        // `\P` is an escaped `P`, not a backslash.
        let p = Pattern::new(r"C:\Program Files*", true);
        assert!(p.matches("c:Program filesMore"));
        assert!(!p.matches("c:program filesMore"));
        assert!(!p.matches(r"C:\Program Files\x"));
        assert!(Pattern::new(r"a\\b", true).matches(r"A\B"));
        assert!(Pattern::new(r"A\", true).matches(r"a\"));
    }

    #[test]
    fn lowercasing_keeps_escapes() {
        assert_eq!(normalize_lowercase(r"Foo\*Bar*"), r"foo\*bar*");
    }
}
