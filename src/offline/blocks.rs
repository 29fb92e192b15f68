//! A regular file's lines worked on by several threads, each reading its
//! own part of the file by position.
//!
//! The file is cut, by arithmetic alone, into blocks of
//! [`Threads::chunk_bytes`]; worker `w` of `W` takes blocks `w`, `w + W`,
//! … and reads each (`pread`) into a buffer of its own that it reuses, so
//! the copy lands in that core's cache and the work then reads it there.
//! Nobody reads ahead to find where lines end: a block's chunk is the lines
//! that *start* in it — from the first line start at or after the block's
//! first byte (the worker reads the byte before it to know) to the end of
//! the last line starting before its end (the worker reads on past the end
//! until a newline). A line longer than a block makes the blocks it covers
//! empty chunks, and the block it starts in one line long. Results come
//! back in input order as [`super::chunks`] says, numbered there.
//!
//! Against a map of the file (what [`super::chunks::map_file_chunks`] did
//! before), the kernel copies bytes rather than mapping and unmapping each
//! page of the page cache, and the copying is spread over the workers. In
//! memory at once: per worker its buffer (a block and the end of its last
//! line) and one result waiting. A file truncated during the read ends it
//! early, as with a read (no `SIGBUS`); an I/O error goes to the merge
//! after the lines of the blocks before.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{sync_channel, Receiver};

use super::chunks::{Chunk, InOrder, Threads, Worked};
use crate::source::files::LineError;

/// How far a worker reads on past its block at first, looking for the end
/// of its last line (a few lines of events; less for smaller blocks); each
/// read that finds no newline reads twice as far next, up to
/// [`READ_ON_MAX`].
const READ_ON: usize = 4 << 10;
const READ_ON_MAX: usize = 1 << 20;

/// [`super::chunks::map_chunks`] of the first `len` bytes of a regular
/// file, read by position.
pub(super) fn map_file_blocks<T: Send, E>(
    file: &File,
    len: u64,
    threads: Threads,
    work: &(impl Fn(&Chunk) -> T + Sync),
    merge: impl FnMut(u64, T) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    let workers = threads.workers.max(1);
    let blocks = Blocks {
        file,
        len,
        size: threads.chunk_bytes.max(1) as u64,
    };
    let count = len.div_ceil(blocks.size);
    let mut merge = InOrder::new(merge);
    let worked = |k: u64, buffer: &mut Vec<u8>| -> io::Result<Worked<T>> {
        let chunk = blocks.read(k, buffer)?;
        Ok(Worked::of(&chunk, work))
    };
    if workers == 1 {
        let mut buffer = Vec::new();
        for k in 0..count {
            merge.take(worked(k, &mut buffer))?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let from_workers: Vec<Receiver<io::Result<Worked<T>>>> = (0..workers)
            .map(|w| {
                let (result_tx, result_rx) = sync_channel(1);
                let worked = &worked;
                scope.spawn(move || {
                    let mut buffer = Vec::new();
                    for k in (w as u64..count).step_by(workers) {
                        let result = worked(k, &mut buffer);
                        let failed = result.is_err();
                        if result_tx.send(result).is_err() || failed {
                            return; // the caller stopped, or the read failed
                        }
                    }
                });
                result_rx
            })
            .collect();
        merge.in_turn(&from_workers)
    })
}

/// A file's first `len` bytes in blocks of `size`.
struct Blocks<'f> {
    file: &'f File,
    len: u64,
    size: u64,
}

impl Blocks<'_> {
    /// The lines starting in block `k`, read into `buffer` (grown as
    /// needed, never shrunk: its bytes are not zeroed again for each block).
    fn read<'b>(&self, k: u64, buffer: &'b mut Vec<u8>) -> io::Result<Chunk<'b>> {
        let start = k * self.size;
        let end = (start + self.size).min(self.len);
        // from the byte before the block: is it a newline?
        let from = start.saturating_sub(1);
        let mut filled = read_at(self.file, from, (end - from) as usize, buffer, 0)?;
        let first = if start == 0 {
            Some(0)
        } else {
            memchr::memchr(b'\n', &buffer[..filled]).map(|i| i + 1)
        };
        // a line starting in the block, or none (a long line covers it)
        let Some(first) = first.filter(|&i| i < filled) else {
            return Ok(Chunk::new(end, Cow::Borrowed(&[])));
        };
        // read on to the end of the block's last line
        let mut read_on = (self.size as usize).clamp(64, READ_ON);
        while buffer[filled - 1] != b'\n' {
            let at = from + filled as u64;
            let read = read_at(self.file, at, read_on, buffer, filled)?;
            read_on = (read_on * 2).min(READ_ON_MAX);
            if read == 0 {
                break; // the end of the file: an unterminated last line
            }
            filled = match memchr::memchr(b'\n', &buffer[filled..filled + read]) {
                Some(i) => filled + i + 1,
                None => filled + read,
            };
        }
        let bytes = &buffer[first..filled];
        Ok(Chunk::new(from + first as u64, Cow::Borrowed(bytes)))
    }
}

/// Reads up to `n` bytes of `file` from byte `at` into `buffer` from
/// `into` on (fewer at the end of the file); returns how many.
fn read_at(file: &File, at: u64, n: usize, buffer: &mut Vec<u8>, into: usize) -> io::Result<usize> {
    if buffer.len() < into + n {
        buffer.resize(into + n, 0);
    }
    let mut filled = 0;
    while filled < n {
        let to = &mut buffer[into + filled..into + n];
        match file.read_at(to, at + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
