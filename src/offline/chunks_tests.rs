use super::*;
use crate::source::files::for_each_line;

type Lines = Vec<(u64, u64, Vec<u8>)>;

fn by_line(input: &[u8]) -> Lines {
    let mut out = Vec::new();
    for_each_line::<()>(input, &mut |line, offset, bytes| {
        out.push((line, offset, bytes.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

/// How the chunks are cut.
#[derive(Clone, Copy, Debug)]
enum Way {
    Read,
    /// A regular file, read by position (read in turn when empty).
    File,
}

fn by_chunks(input: &[u8], way: Way, workers: usize, chunk_bytes: usize) -> (Lines, usize) {
    let threads = Threads {
        workers,
        chunk_bytes,
    };
    let work = |chunk: &Chunk| {
        let mut lines = Vec::new();
        chunk.for_each_line(|line, offset, bytes| lines.push((line, offset, bytes.to_vec())));
        lines
    };
    let mut out = Vec::new();
    let mut chunks = 0;
    let merge = |first_line, lines: Lines| -> Result<(), ()> {
        chunks += 1;
        out.extend(
            lines
                .into_iter()
                .map(|(line, offset, bytes)| (first_line + line, offset, bytes)),
        );
        Ok(())
    };
    match way {
        Way::Read => map_chunks(input, threads, &work, merge),
        Way::File => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("events.ndjson");
            std::fs::write(&path, input).unwrap();
            map_file_chunks(File::open(&path).unwrap(), threads, &work, merge)
        }
    }
    .unwrap();
    (out, chunks)
}

#[test]
fn chunks_give_the_lines_of_a_line_by_line_read_whatever_the_cut() {
    let long = format!("{{\"long\":\"{}\"}}", "x".repeat(100));
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\n\n\n".to_vec(),
        b"{\"a\":1}".to_vec(),
        b"{\"a\":1}\n\n  {\"b\":2}  \r\n\xff\n{\"c\":3}".to_vec(),
        format!("{long}\n\n{long}\r\n \t\n{{\"z\":0}}\n{long}").into_bytes(),
        // a line longer than a block and than a worker's read past its block
        format!(
            "{{\"a\":1}}\n{{\"big\":\"{}\"}}\n{{\"b\":2}}\n",
            "y".repeat(40_000)
        )
        .into_bytes(),
        (1..200)
            .map(|i| {
                if i % 9 == 0 {
                    "   \n".to_string()
                } else {
                    format!("{{\"n\":{i}}}\n")
                }
            })
            .collect::<String>()
            .into_bytes(),
    ];
    for input in &inputs {
        let want = by_line(input);
        for (way, workers) in [Way::Read, Way::File]
            .into_iter()
            .flat_map(|way| [1, 2, 3].map(|workers| (way, workers)))
        {
            for chunk_bytes in [1, 2, 7, 16, 64, 1 << 20] {
                let (got, chunks) = by_chunks(input, way, workers, chunk_bytes);
                assert_eq!(
                    got,
                    want,
                    "{way:?}, workers {workers}, chunks of {chunk_bytes} bytes, input {:?}",
                    String::from_utf8_lossy(input)
                );
                if chunk_bytes == 1 {
                    // a chunk per line at least (blank ones included)
                    assert!(chunks >= want.len(), "{chunks} chunks");
                }
            }
        }
    }
}

/// A reader that fails after `ok` bytes.
struct FailingAfter<'a> {
    bytes: &'a [u8],
    ok: usize,
}

impl Read for FailingAfter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.ok).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        self.ok -= n;
        Ok(n)
    }
}

#[test]
fn a_read_error_comes_after_the_lines_read_before_it() {
    let input = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n";
    // fails in the middle of the third line
    for workers in [1, 2] {
        for chunk_bytes in [1, 5, 100] {
            let threads = Threads {
                workers,
                chunk_bytes,
            };
            let reader = FailingAfter {
                bytes: input,
                ok: 20,
            };
            let mut seen = Vec::new();
            let work = |chunk: &Chunk| {
                let mut lines = Vec::new();
                chunk.for_each_line(|line, _, _| lines.push(line));
                lines
            };
            let result = map_chunks::<_, ()>(reader, threads, &work, |first_line, lines| {
                seen.extend(lines.into_iter().map(|line| first_line + line));
                Ok(())
            });
            match result {
                Err(LineError::Io(e)) => assert_eq!(e.to_string(), "disk on fire"),
                _ => panic!("an I/O error expected"),
            }
            assert_eq!(seen, [1, 2], "workers {workers}, chunk {chunk_bytes}");
        }
    }
}

#[test]
fn an_error_of_the_merge_stops_the_read() {
    let input: Vec<u8> = (0..10_000)
        .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
        .collect();
    for workers in [1, 2, 4] {
        let threads = Threads {
            workers,
            chunk_bytes: 64,
        };
        // (a work that does not walk the lines: they are counted for it)
        let work = |_: &Chunk| ();
        let mut merged = 0;
        let result = map_chunks(&input[..], threads, &work, |first, ()| {
            merged += 1;
            if first > 100 {
                Err(first)
            } else {
                Ok(())
            }
        });
        match result {
            Err(LineError::Callback(first)) => assert!(first > 100),
            _ => panic!("the merge's error expected"),
        }
        assert!(merged < 50, "stopped early: {merged} chunks merged");
    }
}
