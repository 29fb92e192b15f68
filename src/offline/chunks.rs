//! Lines of one NDJSON input worked on by several threads, in order.
//!
//! A cutting thread reads the input into chunks of whole lines (about
//! [`Threads::chunk_bytes`] each, cut after a newline). (A regular file is
//! not read by one thread: each worker reads its own blocks of it by
//! position, see [`map_file_chunks`].) Worker threads turn each chunk into
//! a result (decode, evaluate), numbering its lines from the chunk's start:
//! nobody counts a chunk's lines before its work, the work's own walk over
//! the lines counts them. The calling thread takes the results back in
//! input order with the number of each chunk's first line — so whatever
//! the caller does with them (report bad lines, check time order, feed a
//! matcher) happens exactly as if it had read the lines itself, one by
//! one. Chunks go to the workers in turn (chunk `i` to worker
//! `i % workers`) through channels of one chunk each, and the caller takes
//! them back in that same turn: no reordering buffer, and at most
//! `3 × workers + 2` chunks (or their results) are in memory at once
//! whatever the input size: one being cut, per worker one queued, one in
//! work and one result waiting, and the result being merged.
//!
//! Lines are those of [`for_each_line`](crate::source::files::for_each_line):
//! 1-based numbers counting blank lines, surrounding whitespace trimmed,
//! blank lines left out, byte offsets from the start of the input.

use std::borrow::Cow;
use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use super::layout::{self, Plain};
use crate::source::files::LineError;

/// How many workers, and how big a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threads {
    /// Worker threads decoding chunks; 1 reads on the calling thread alone
    /// (no threads started).
    pub workers: usize,
    /// Bytes read per chunk (a chunk ends at the last newline in them; a
    /// line longer than this makes its chunk longer).
    pub chunk_bytes: usize,
}

impl Threads {
    /// One worker per core (`available_parallelism`), 1 MiB chunks.
    pub fn available() -> Threads {
        Threads {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_bytes: 1 << 20,
        }
    }

    /// The calling thread alone.
    pub const ONE: Threads = Threads {
        workers: 1,
        chunk_bytes: 1 << 20,
    };

    /// `workers` workers with 1 MiB chunks (0 counts as 1).
    pub fn new(workers: usize) -> Threads {
        Threads {
            workers: workers.max(1),
            chunk_bytes: 1 << 20,
        }
    }
}

impl Default for Threads {
    fn default() -> Threads {
        Threads::available()
    }
}

/// Whole lines of an input, from byte `offset`: read into a buffer of its
/// own, or borrowed from a worker's buffer (`offline::blocks`).
#[derive(Debug)]
pub struct Chunk<'a> {
    pub offset: u64,
    pub bytes: Cow<'a, [u8]>,
    /// How many lines it holds, once [`Chunk::for_each_line`] counted them.
    lines: Cell<Option<u64>>,
}

impl<'a> Chunk<'a> {
    /// `bytes` (whole lines) at byte `offset` of the input.
    pub(super) fn new(offset: u64, bytes: Cow<'a, [u8]>) -> Chunk<'a> {
        Chunk {
            offset,
            bytes,
            lines: Cell::new(None),
        }
    }

    /// Calls `f(line, byte offset, trimmed bytes)` for each line that is
    /// not blank, as `for_each_line` would for these lines, but for `line`:
    /// the line's place in the chunk (0 for its first line, blank lines
    /// counted). The merge is given the number of the chunk's first line:
    /// the line's number in the input is that plus `line`.
    pub fn for_each_line(&self, mut f: impl FnMut(u64, u64, &[u8])) {
        let mut line = 0u64;
        let mut start = 0usize;
        let bytes = &self.bytes[..];
        while start < bytes.len() {
            let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i + 1);
            let raw = &bytes[start..end];
            if let Some(first) = raw.iter().position(|c| !c.is_ascii_whitespace()) {
                let last = raw
                    .iter()
                    .rposition(|c| !c.is_ascii_whitespace())
                    .map_or(first, |i| i + 1);
                f(
                    line,
                    self.offset + (start + first) as u64,
                    &raw[first..last],
                );
            }
            line += 1;
            start = end;
        }
        self.lines.set(Some(line));
    }

    /// Its lines, found by place, when they are plainly laid out (see
    /// [`layout`](super::layout)): then a line is its own trimmed text, so
    /// lines not looked at need not be walked over one by one, and the
    /// chunk knows how many it holds. `None` otherwise (walk them with
    /// [`Chunk::for_each_line`]).
    pub fn plain_lines(&self) -> Option<PlainLines<'_>> {
        let plain = layout::plain(&self.bytes)?;
        self.lines
            .set(Some(lines_of(&self.bytes, plain.newlines.len() as u64)));
        Some(PlainLines {
            bytes: &self.bytes,
            offset: self.offset,
            plain,
            next: 0,
        })
    }

    /// How many lines it holds (an unterminated last one too): counted by
    /// [`Chunk::for_each_line`], else here.
    pub(super) fn lines(&self) -> u64 {
        self.lines.get().unwrap_or_else(|| {
            let bytes = &self.bytes[..];
            lines_of(bytes, memchr::memchr_iter(b'\n', bytes).count() as u64)
        })
    }
}

/// How many lines whole lines `bytes` with `newlines` newlines are: an
/// unterminated last one counts.
fn lines_of(bytes: &[u8], newlines: u64) -> u64 {
    newlines + u64::from(!bytes.is_empty() && bytes.last() != Some(&b'\n'))
}

/// The lines of a plainly laid out chunk ([`Chunk::plain_lines`]), found
/// from places in them, in order.
pub struct PlainLines<'c> {
    bytes: &'c [u8],
    offset: u64,
    plain: Plain,
    /// The first newline not before the last place asked about.
    next: usize,
}

impl<'c> PlainLines<'c> {
    /// Whether every byte of the chunk is ASCII.
    pub fn ascii(&self) -> bool {
        self.plain.ascii
    }

    /// The line holding byte `place` of the chunk (places must come in
    /// order): as [`Chunk::for_each_line`] gives it, its place in the
    /// chunk, its byte offset in the input and its bytes. A newline is the
    /// end of the line before it.
    pub fn holding(&mut self, place: usize) -> (u64, u64, &'c [u8]) {
        let newlines = &self.plain.newlines;
        while newlines
            .get(self.next)
            .is_some_and(|&n| (n as usize) < place)
        {
            self.next += 1;
        }
        let start = match self.next {
            0 => 0,
            n => newlines[n - 1] as usize + 1,
        };
        let end = newlines
            .get(self.next)
            .map_or(self.bytes.len(), |&n| n as usize);
        (
            self.next as u64,
            self.offset + start as u64,
            &self.bytes[start..end],
        )
    }
}

/// Reads `reader` in chunks, maps each with `work` on `threads.workers`
/// threads, and hands the results to `merge` in input order, each with the
/// number of its chunk's first line (1-based). An I/O error
/// ends the read after the results of the lines before it; an error of
/// `merge` stops the read (the threads end) and is returned.
///
/// With one worker, the chunks are read and worked on by the calling thread.
pub fn map_chunks<T: Send, E>(
    reader: impl Read + Send,
    threads: Threads,
    work: &(impl Fn(&Chunk) -> T + Sync),
    merge: impl FnMut(u64, T) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    let chunks = Chunker::new(reader, threads.chunk_bytes.max(1));
    map_cut(chunks, threads, work, merge)
}

/// [`map_chunks`] of a file: a regular file is read by position, each
/// worker reading its own blocks (`offline::blocks`, on Unix); anything
/// else (a pipe, a terminal, a file that says it is empty, as those of
/// `/proc` do) is read in turn.
pub fn map_file_chunks<T: Send, E>(
    file: File,
    threads: Threads,
    work: &(impl Fn(&Chunk) -> T + Sync),
    merge: impl FnMut(u64, T) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    #[cfg(unix)]
    if let Some(len) = file
        .metadata()
        .ok()
        .filter(|m| m.is_file() && m.len() > 0)
        .map(|m| m.len())
    {
        return super::blocks::map_file_blocks(&file, len, threads, work, merge);
    }
    map_chunks(file, threads, work, merge)
}

/// Where chunks come from: cut from an input, in order.
trait Cut<'a>: Send {
    /// The next chunk; `None` at the end of the input (and after an error).
    fn next_chunk(&mut self) -> io::Result<Option<Chunk<'a>>>;
}

/// Maps the chunks of `chunks` as [`map_chunks`] says.
fn map_cut<'a, T: Send, E>(
    mut chunks: impl Cut<'a>,
    threads: Threads,
    work: &(impl Fn(&Chunk) -> T + Sync),
    merge: impl FnMut(u64, T) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    let workers = threads.workers.max(1);
    let numbered = |chunk: &Chunk| Worked::of(chunk, work);
    let mut merge = InOrder::new(merge);
    if workers == 1 {
        while let Some(chunk) = chunks.next_chunk().map_err(LineError::Io)? {
            merge.take(Ok(numbered(&chunk)))?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let mut to_workers: Vec<SyncSender<io::Result<Chunk<'a>>>> = Vec::with_capacity(workers);
        let mut from_workers: Vec<Receiver<io::Result<Worked<T>>>> = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (chunk_tx, chunk_rx) = sync_channel::<io::Result<Chunk<'a>>>(1);
            let (result_tx, result_rx) = sync_channel::<io::Result<Worked<T>>>(1);
            to_workers.push(chunk_tx);
            from_workers.push(result_rx);
            scope.spawn(move || {
                for chunk in chunk_rx {
                    if result_tx.send(chunk.map(|c| numbered(&c))).is_err() {
                        return; // the caller stopped
                    }
                }
            });
        }
        scope.spawn(move || {
            let mut turn = 0usize;
            loop {
                let next = chunks.next_chunk();
                let last = !matches!(next, Ok(Some(_)));
                let item = match next {
                    Ok(Some(chunk)) => Ok(chunk),
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                if to_workers[turn].send(item).is_err() || last {
                    return; // the caller stopped, or the read failed
                }
                turn = (turn + 1) % workers;
            }
        });
        merge.in_turn(&from_workers)
    })
}

/// What the work made of a chunk, and how many lines the chunk holds.
pub(super) struct Worked<T> {
    lines: u64,
    result: T,
}

impl<T> Worked<T> {
    /// `work` done on `chunk`.
    pub(super) fn of(chunk: &Chunk, work: &impl Fn(&Chunk) -> T) -> Worked<T> {
        let result = work(chunk);
        Worked {
            lines: chunk.lines(),
            result,
        }
    }
}

/// The caller's merge, given the results in input order with the number
/// of their chunk's first line.
pub(super) struct InOrder<M> {
    merge: M,
    first_line: u64,
}

impl<M> InOrder<M> {
    pub(super) fn new(merge: M) -> InOrder<M> {
        InOrder {
            merge,
            first_line: 1,
        }
    }

    /// Merges the next chunk's result (an I/O error ends the read).
    pub(super) fn take<T, E>(&mut self, worked: io::Result<Worked<T>>) -> Result<(), LineError<E>>
    where
        M: FnMut(u64, T) -> Result<(), E>,
    {
        let worked = worked.map_err(LineError::Io)?;
        let first = self.first_line;
        self.first_line += worked.lines;
        (self.merge)(first, worked.result).map_err(LineError::Callback)
    }

    /// Merges the results of workers that took the chunks in turn (chunk
    /// `i` to worker `i % workers`), until a worker's channel closes: every
    /// chunk before it was taken.
    pub(super) fn in_turn<T, E>(
        &mut self,
        from_workers: &[Receiver<io::Result<Worked<T>>>],
    ) -> Result<(), LineError<E>>
    where
        M: FnMut(u64, T) -> Result<(), E>,
    {
        for turn in (0..from_workers.len()).cycle() {
            match from_workers[turn].recv() {
                Ok(worked) => self.take(worked)?,
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// Where the next chunk is cut: its byte offset.
#[derive(Clone, Copy, Default)]
struct Cuts {
    offset: u64,
}

impl Cuts {
    /// `bytes` (whole lines, not empty) as the next chunk.
    fn chunk<'a>(&mut self, bytes: Cow<'a, [u8]>) -> Chunk<'a> {
        let chunk = Chunk::new(self.offset, bytes);
        self.offset += chunk.bytes.len() as u64;
        chunk
    }
}

/// Cuts an input into chunks of whole lines.
struct Chunker<R> {
    reader: R,
    chunk_bytes: usize,
    /// The start of a line read with the previous chunk.
    carry: Vec<u8>,
    cuts: Cuts,
    /// A read failed: the lines before it went out as a chunk, this next.
    error: Option<io::Error>,
    done: bool,
}

impl<R: Read> Chunker<R> {
    fn new(reader: R, chunk_bytes: usize) -> Chunker<R> {
        Chunker {
            reader,
            chunk_bytes,
            carry: Vec::new(),
            cuts: Cuts::default(),
            error: None,
            done: false,
        }
    }
}

impl<'a, R: Read + Send> Cut<'a> for Chunker<R> {
    fn next_chunk(&mut self) -> io::Result<Option<Chunk<'a>>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.done {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(self.chunk_bytes.max(self.carry.len() * 2));
        bytes.extend_from_slice(&self.carry);
        // bytes[..searched] hold no newline
        let mut searched = 0usize;
        let cut = loop {
            if bytes.len() >= self.chunk_bytes {
                if let Some(i) = memchr::memrchr(b'\n', &bytes[searched..]) {
                    break searched + i + 1;
                }
                searched = bytes.len();
            }
            let before = bytes.len();
            let room = match self.chunk_bytes.checked_sub(before) {
                Some(r) if r > 0 => r,
                _ => self.chunk_bytes,
            };
            bytes.reserve(room);
            // `read_to_end` of at most `room` bytes: short reads (a pipe)
            // are read on, interrupted ones again, nothing is zeroed first.
            match (&mut self.reader).take(room as u64).read_to_end(&mut bytes) {
                Ok(0) => {
                    self.done = true;
                    break bytes.len();
                }
                Ok(_) => {}
                Err(e) => {
                    // As a line-by-line read: the lines before the error
                    // are read, the one it cut is not.
                    self.done = true;
                    self.error = Some(e);
                    break memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1);
                }
            }
        };
        self.carry.clear();
        if !self.done {
            self.carry.extend_from_slice(&bytes[cut..]);
        }
        bytes.truncate(cut);
        if bytes.is_empty() {
            return match self.error.take() {
                Some(e) => Err(e),
                None => Ok(None),
            };
        }
        Ok(Some(self.cuts.chunk(Cow::Owned(bytes))))
    }
}

#[cfg(test)]
#[path = "chunks_tests.rs"]
mod tests;
