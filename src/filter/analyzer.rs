//! Elasticsearch's `standard` analyzer, as `text` fields index and search
//! by default: Unicode word segmentation (UAX #29), then lowercase; no stop
//! words.
//!
//! Limits, against Lucene's `StandardTokenizer`: segmentation follows the
//! `unicode-segmentation` crate's word bounds (the same Unicode rules, the
//! crate's Unicode version); a segment is a token when it holds a letter or
//! digit, so emoji-only segments (tokens in Lucene) are dropped; lowercase is
//! Rust's full Unicode mapping where Lucene maps each code point alone (they
//! differ for a few characters such as `İ`); tokens longer than 255
//! characters are split as Lucene splits them.

use unicode_segmentation::UnicodeSegmentation;

/// Lucene's default `max_token_length`.
const MAX_TOKEN_CHARS: usize = 255;

/// The tokens of one value, in position order.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split_word_bounds() {
        if !word.chars().any(char::is_alphanumeric) {
            continue;
        }
        let lower = word.to_lowercase();
        if lower.chars().count() <= MAX_TOKEN_CHARS {
            out.push(lower);
            continue;
        }
        let chars: Vec<char> = lower.chars().collect();
        out.extend(
            chars
                .chunks(MAX_TOKEN_CHARS)
                .map(|c| c.iter().collect::<String>()),
        );
    }
    out
}

/// Whether `phrase` occurs as consecutive tokens of `value_tokens`.
pub fn contains_phrase(value_tokens: &[String], phrase: &[String]) -> bool {
    if phrase.is_empty() {
        return false;
    }
    value_tokens.windows(phrase.len()).any(|w| w == phrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_standard_tokenizer() {
        assert_eq!(
            tokens("Hello World, cmd.exe running"),
            ["hello", "world", "cmd.exe", "running"]
        );
        assert_eq!(
            tokens(r"C:\Windows\System32\cmd.exe /c whoami"),
            ["c", "windows", "system32", "cmd.exe", "c", "whoami"]
        );
        assert_eq!(tokens("10.0.0.1 it's"), ["10.0.0.1", "it's"]);
        assert_eq!(tokens("foo-bar_baz"), ["foo", "bar_baz"]);
        assert_eq!(tokens("中文"), ["中", "文"]);
        assert!(tokens("!!! ...").is_empty());
        assert_eq!(tokens(&"a".repeat(300)).len(), 2);
    }

    #[test]
    fn phrases_are_consecutive() {
        let t = tokens("the quick brown fox");
        assert!(contains_phrase(&t, &tokens("Quick Brown")));
        assert!(!contains_phrase(&t, &tokens("brown quick")));
        assert!(!contains_phrase(&t, &[]));
    }
}
