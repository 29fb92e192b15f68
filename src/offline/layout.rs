//! Where a chunk's lines are, when they are plainly laid out: found in one
//! pass over its bytes (32 at a time with AVX2), so that a search of the
//! whole chunk (the prefilter's) can go straight to the lines it found
//! something in, and no walk visits the others one by one.
//!
//! Plainly laid out: each line an object alone on its line — it starts
//! with `{` and ends with `}`, no blank line, no whitespace around it, no
//! `\r` before its newline. Then each line is its own trimmed text (what
//! [`for_each_line`](crate::source::files::for_each_line) gives), and has
//! an object's shape. Exported and generated NDJSON is laid out so; any
//! other chunk is walked line by line as before.

/// The newlines of a plainly laid out chunk, and whether it is ASCII.
#[derive(Debug, PartialEq)]
pub struct Plain {
    /// Where each newline is, in order (a last line may have none).
    pub newlines: Vec<u32>,
    /// Every byte is ASCII.
    pub ascii: bool,
}

/// [`Plain`] of `bytes` (whole lines) if they are plainly laid out; `None`
/// if not, or past 4 GiB.
pub fn plain(bytes: &[u8]) -> Option<Plain> {
    let len = bytes.len();
    if len < 2 || u32::try_from(len).is_err() || bytes[0] != b'{' {
        return None;
    }
    // the last byte ends a line: `}`, or the newline after one
    match bytes[len - 1] {
        b'}' => {}
        b'\n' if bytes[len - 2] == b'}' => {}
        _ => return None,
    }
    let mut newlines = Vec::with_capacity(len / 256);
    // the bytes between the first and the last, each with both neighbours
    let ascii = inner(bytes, &mut newlines)?;
    if bytes[len - 1] == b'\n' {
        newlines.push((len - 1) as u32);
    }
    Some(Plain {
        newlines,
        ascii: ascii && bytes[0].is_ascii() && bytes[len - 1].is_ascii(),
    })
}

/// Over `bytes[1..len - 1]`: pushes each newline's place to `newlines`,
/// `None` at one that does not come between `}` and `{`; else whether
/// those bytes are ASCII.
fn inner(bytes: &[u8], newlines: &mut Vec<u32>) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { avx2::inner(bytes, newlines) };
    }
    inner_from(bytes, 1, newlines, true)
}

/// [`inner`] from byte `from` (at least 1) on, one byte at a time, with
/// `ascii` for the bytes before.
fn inner_from(bytes: &[u8], from: usize, newlines: &mut Vec<u32>, ascii: bool) -> Option<bool> {
    let mut high = !ascii;
    for i in from..bytes.len() - 1 {
        let b = bytes[i];
        high |= !b.is_ascii();
        if b == b'\n' {
            if bytes[i - 1] != b'}' || bytes[i + 1] != b'{' {
                return None;
            }
            newlines.push(i as u32);
        }
    }
    Some(!high)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_andnot_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_set1_epi8,
    };

    /// [`super::inner`], 32 bytes at a time: each with the byte before and
    /// the byte after (unaligned loads one byte either side) where it holds
    /// a newline, about one in fifteen; the last bytes one at a time.
    /// (Blocks of vectors searched first and their newlines pushed after,
    /// with no call in the search, measured slower.)
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn inner(bytes: &[u8], newlines: &mut Vec<u32>) -> Option<bool> {
        let newline = _mm256_set1_epi8(b'\n' as i8);
        let close = _mm256_set1_epi8(b'}' as i8);
        let open = _mm256_set1_epi8(b'{' as i8);
        // the high bits seen, in a general register (a vector one is
        // spilled around `push`, a call)
        let mut high = 0u32;
        let mut i = 1;
        // a vector at `i` and its neighbours span `i - 1 .. i + 33`:
        // within the bytes, and before the last byte
        while i + 33 < bytes.len() {
            // SAFETY: `i - 1 .. i + 33` is within `bytes` (loop condition,
            // `i >= 1`); unaligned loads.
            let at = bytes.as_ptr().add(i);
            let here = _mm256_loadu_si256(at as *const __m256i);
            high |= _mm256_movemask_epi8(here) as u32;
            let found = _mm256_cmpeq_epi8(here, newline);
            let mut mask = _mm256_movemask_epi8(found) as u32;
            if mask != 0 {
                let before = _mm256_loadu_si256(at.sub(1) as *const __m256i);
                let after = _mm256_loadu_si256(at.add(1) as *const __m256i);
                let framed = _mm256_and_si256(
                    _mm256_cmpeq_epi8(before, close),
                    _mm256_cmpeq_epi8(after, open),
                );
                if _mm256_movemask_epi8(_mm256_andnot_si256(framed, found)) != 0 {
                    return None;
                }
                while mask != 0 {
                    newlines.push((i + mask.trailing_zeros() as usize) as u32);
                    mask &= mask - 1;
                }
            }
            i += 32;
        }
        super::inner_from(bytes, i, newlines, high == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    /// What [`plain`] means, line by line.
    fn by_lines(bytes: &[u8]) -> Option<Plain> {
        if u32::try_from(bytes.len()).is_err() {
            return None;
        }
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let each_plain = body
            .split(|&b| b == b'\n')
            .all(|line| line.len() >= 2 && line[0] == b'{' && line[line.len() - 1] == b'}');
        each_plain.then(|| Plain {
            newlines: (0..bytes.len())
                .filter(|&i| bytes[i] == b'\n')
                .map(|i| i as u32)
                .collect(),
            ascii: bytes.is_ascii(),
        })
    }

    /// Lines made of the bytes that matter to the layout, and others.
    fn arb_chunk() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop::sample::select(vec![b'{', b'}', b'\n', b'a', b' ', b'\r', 0xc3]);
        let line = prop::collection::vec(byte, 0..40).prop_map(|mut inside| {
            inside.insert(0, b'{');
            inside.push(b'}');
            inside.retain(|&b| b != b'\n');
            inside
        });
        (
            prop::collection::vec(line, 1..40),
            prop::collection::vec(prop::sample::select(vec![b'a', b'\n', 0xc3, b' ']), 0..3),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(lines, edits, terminated, edit)| {
                let mut bytes = lines.join(&b'\n');
                if terminated {
                    bytes.push(b'\n');
                }
                if edit {
                    // a stray byte somewhere (a blank line, a broken edge)
                    for (k, e) in edits.into_iter().enumerate() {
                        let at = (k * 37 + bytes.len() / 2) % (bytes.len() + 1);
                        bytes.insert(at, e);
                    }
                }
                bytes
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn agrees_with_a_reading_line_by_line(
            bytes in arb_chunk(),
            shift in 0usize..33,
            copies in 1usize..8,
        ) {
            // at every offset from the vector blocks' edges, and long
            // enough for blocks (1 KiB)
            let mut shifted = vec![b'{'; shift];
            if shift > 0 {
                shifted.push(b'}');
                shifted.push(b'\n');
            }
            let copies = vec![bytes; copies];
            shifted.extend_from_slice(&copies.join(&b"\n{}\n"[..]));
            prop_assert_eq!(plain(&shifted), by_lines(&shifted));
        }
    }

    #[test]
    fn the_cases_are_both_plain_and_not() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut plain_ones, mut others) = (0, 0);
        for _ in 0..2000 {
            let bytes = arb_chunk().new_tree(&mut runner).unwrap().current();
            match plain(&bytes) {
                Some(_) => plain_ones += 1,
                None => others += 1,
            }
        }
        assert!(plain_ones > 500 && others > 200, "{plain_ones} {others}");
    }

    #[test]
    fn long_chunks_find_every_newline_in_and_between_blocks() {
        for len in [
            30, 31, 32, 33, 34, 63, 64, 65, 100, 1000, 1021, 1022, 1023, 4000,
        ] {
            let line = format!("{{{}}}", "x".repeat(len));
            let chunk = [line.as_bytes(); 7].join(&b'\n');
            let p = plain(&chunk).unwrap();
            assert_eq!(p.newlines.len(), 6);
            assert!(p.ascii);
            assert_eq!(Some(p), by_lines(&chunk));
            // a `\r` before the first newline, or before the last
            for at in [len + 2, 6 * (len + 3) - 1] {
                let mut crlf = chunk.clone();
                crlf.insert(at, b'\r');
                assert_eq!(plain(&crlf), None, "{len} {at}");
            }
        }
        for at in [3, 8 * 12 + 3, 8 * 250 + 3, 8 * 373 + 3] {
            let mut accent = [&b"{\"a\":1}"[..]; 400].join(&b'\n');
            accent.insert(at, 0xc3);
            assert!(!plain(&accent).unwrap().ascii, "{at}");
        }
    }
}
