//! A second, lenient reading of a response body that serde_json refused.
//!
//! Elasticsearch returns `_source` exactly as it was indexed, and its JSON
//! parser (Jackson) accepts two things serde_json does not by default:
//! nesting deeper than 128 levels, and `\uD800`-style escapes of lone UTF-16
//! surrogates (strings from WTF-16 sources such as Windows file names). One
//! such document in an index must not fail every run of every rule that
//! reads it, forever, so a refused body is read again: lone surrogate
//! escapes become U+FFFD (the replacement character, as any UTF-8 reader
//! would make of them; an escape is 6 bytes either way, so the body keeps
//! its length) and deep nesting is parsed on a growing stack, up to
//! [`MAX_DEPTH`] levels.

use serde::Deserialize;
use serde_json::Value;

/// The deepest nesting read leniently. Jackson's default limit is 1000
/// (`StreamReadConstraints`), so Elasticsearch indexes nothing deeper; the
/// bound also keeps the recursive drop of the value within a thread's stack.
pub const MAX_DEPTH: usize = 1000;

/// What the lenient reading had to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leniency {
    /// Lone surrogate escapes replaced by U+FFFD.
    pub surrogates_replaced: usize,
    /// The body's nesting depth when it is beyond serde_json's default 128.
    pub deep: Option<usize>,
}

/// Reads `body` leniently, or `None` if that does not help either (the body
/// is not JSON for another reason, or nests deeper than [`MAX_DEPTH`]).
pub fn parse(body: &[u8]) -> Option<(Value, Leniency)> {
    let depth = max_depth(body);
    if depth > MAX_DEPTH {
        return None;
    }
    let mut repaired = body.to_vec();
    let surrogates_replaced = replace_lone_surrogates(&mut repaired);
    let mut de = serde_json::Deserializer::from_slice(&repaired);
    de.disable_recursion_limit();
    let value = Value::deserialize(serde_stacker::Deserializer::new(&mut de)).ok()?;
    de.end().ok()?;
    let leniency = Leniency {
        surrogates_replaced,
        deep: (depth > 128).then_some(depth),
    };
    (leniency != Leniency::default()).then_some((value, leniency))
}

/// The deepest nesting of arrays and objects, brackets inside strings aside.
fn max_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Rewrites each `\uXXXX` escape of a surrogate that is not half of a
/// high-low pair to `\ufffd`, in place; returns how many. A backslash only
/// appears inside strings in JSON, so every backslash starts an escape.
fn replace_lone_surrogates(body: &mut [u8]) -> usize {
    let mut replaced = 0;
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        if body.get(i + 1) != Some(&b'u') {
            i += 2; // `\"`, `\\`, `\n`, ...
            continue;
        }
        let Some(unit) = hex_unit(body, i + 2) else {
            i += 2;
            continue;
        };
        let low_follows = || {
            body.get(i + 6) == Some(&b'\\')
                && body.get(i + 7) == Some(&b'u')
                && hex_unit(body, i + 8).is_some_and(|u| (0xDC00..=0xDFFF).contains(&u))
        };
        match unit {
            0xD800..=0xDBFF if low_follows() => i += 12,
            0xD800..=0xDFFF => {
                body[i + 2..i + 6].copy_from_slice(b"fffd");
                replaced += 1;
                i += 6;
            }
            _ => i += 6,
        }
    }
    replaced
}

/// The four hex digits at `at` as a UTF-16 code unit.
fn hex_unit(body: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(body.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_become_replacement_characters_and_pairs_stay() {
        let body =
            br#"{"a":"x\ud800y","b":"\udc00","c":"\ud83d\ude00","d":"\\ud800","e":"\ud800\u0041"}"#;
        assert!(serde_json::from_slice::<Value>(body).is_err());
        let (v, how) = parse(body).expect("read leniently");
        assert_eq!(how.surrogates_replaced, 3);
        assert_eq!(how.deep, None);
        assert_eq!(v["a"], "x\u{fffd}y");
        assert_eq!(v["b"], "\u{fffd}");
        assert_eq!(v["c"], "\u{1F600}", "a valid pair is kept");
        assert_eq!(v["d"], "\\ud800", "an escaped backslash is no escape");
        assert_eq!(v["e"], "\u{fffd}A");
    }

    #[test]
    fn deep_nesting_is_read_up_to_the_limit() {
        let deep = |n: usize| format!("{}1{}", "{\"a\":[".repeat(n / 2), "]}".repeat(n / 2));
        let body = deep(600);
        assert!(serde_json::from_slice::<Value>(body.as_bytes()).is_err());
        let (v, how) = parse(body.as_bytes()).expect("read leniently");
        assert_eq!(how.deep, Some(600));
        let mut at = &v;
        for _ in 0..300 {
            at = &at["a"][0];
        }
        assert_eq!(*at, 1);
        // the limit itself is read, and dropped, within a 2 MiB test thread
        // stack (a tokio worker's size) in a debug build
        assert_eq!(
            parse(deep(MAX_DEPTH).as_bytes()).unwrap().1.deep,
            Some(MAX_DEPTH)
        );
        assert_eq!(parse(deep(MAX_DEPTH + 2).as_bytes()), None);
        // brackets inside strings do not count
        assert_eq!(max_depth(br#"{"a":"[[[{{{"}"#), 1);
    }

    #[test]
    fn what_is_not_json_stays_refused_and_good_json_needs_no_leniency() {
        for body in [
            &b"<html>502</html>"[..],
            b"{\"a\":",
            b"{\"a\":\"\\ud800",
            b"{\"a\":1}",
        ] {
            assert_eq!(parse(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any bytes: no panic, and never a reading of a body that needed none.
            #[test]
            fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
                if let Some((_, how)) = parse(&body) {
                    prop_assert_ne!(how, Leniency::default());
                }
            }

            /// A string with lone surrogate escapes spliced in anywhere reads as
            /// the same string with U+FFFD there; valid pairs and other escapes
            /// keep their meaning.
            #[test]
            fn lone_surrogates_read_as_replacement_characters(
                parts in proptest::collection::vec(("[a-z\\\\\"\u{1F600}é]{0,4}", 0xD800u16..=0xDFFF), 1..5)
            ) {
                let mut escaped = String::new();
                let mut expected = String::new();
                for (text, unit) in &parts {
                    // serde_json escapes the text; then one surrogate escape alone
                    let quoted = serde_json::to_string(text).unwrap();
                    escaped.push_str(&quoted[1..quoted.len() - 1]);
                    expected.push_str(text);
                    escaped.push_str(&format!("\\u{unit:04x}"));
                    expected.push('\u{fffd}');
                }
                let body = format!("{{\"s\":\"{escaped}\"}}");
                // a high escape right before a low one (the text between them
                // empty) is a valid pair, not two lone ones: skip those inputs
                prop_assume!(!parts.windows(2).any(|w| w[1].0.is_empty()
                    && (0xD800..=0xDBFF).contains(&w[0].1)
                    && (0xDC00..=0xDFFF).contains(&w[1].1)));
                let (value, how) = parse(body.as_bytes()).expect("read leniently");
                prop_assert_eq!(how.surrogates_replaced, parts.len());
                prop_assert_eq!(value["s"].as_str().unwrap(), expected.as_str());
            }
        }
    }
}
