//! Lines of one NDJSON input worked on by several threads, in order.
//!
//! A cutting thread cuts the input into chunks of whole lines (about
//! [`Threads::chunk_bytes`] each, cut after a newline): read into buffers
//! from a reader, or slices of bytes already in memory — a file mapped into
//! memory ([`map_file_chunks`]), which the workers then search and decode in
//! the page cache, with no copy. Worker threads number each chunk's lines
//! (in turn, [`Numbering`]: the cutting thread touches only the bytes near
//! its cuts) and turn it into a result (decode, evaluate); the calling thread takes
//! the results back in input order — so whatever the caller does with them
//! (report bad lines, check time order, feed a matcher) happens exactly as
//! if it had read the lines itself, one by one. Chunks go to the workers in
//! turn (chunk `i` to worker `i % workers`) through channels of one chunk
//! each, and the caller takes them back in that same turn: no reordering
//! buffer, and at most `3 × workers + 2` chunks (or their results) are in
//! memory at once whatever the input size: one being cut, per worker one
//! queued, one in work and one result waiting, and the result being merged.
//!
//! Lines are those of [`for_each_line`](crate::source::files::for_each_line):
//! 1-based numbers counting blank lines, surrounding whitespace trimmed,
//! blank lines left out, byte offsets from the start of the input.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use memmap2::{Advice, Mmap, UncheckedAdvice};

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

/// Whole lines of an input, from line `first_line` at byte `offset`: read
/// into a buffer of its own, or a slice of an input in memory.
#[derive(Debug)]
pub struct Chunk<'a> {
    pub first_line: u64,
    pub offset: u64,
    pub bytes: Cow<'a, [u8]>,
    /// Its place among the input's chunks (0, 1, …).
    seq: u64,
}

impl Chunk<'_> {
    /// Calls `f(line number, byte offset, trimmed bytes)` for each line
    /// that is not blank, as `for_each_line` would for these lines.
    pub fn for_each_line(&self, mut f: impl FnMut(u64, u64, &[u8])) {
        let mut line = self.first_line;
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
    }
}

/// Reads `reader` in chunks, maps each with `work` on `threads.workers`
/// threads, and hands the results to `merge` in input order. An I/O error
/// ends the read after the results of the lines before it; an error of
/// `merge` stops the read (the threads end) and is returned.
///
/// With one worker, the chunks are read and worked on by the calling thread.
pub fn map_chunks<T: Send, E>(
    reader: impl Read + Send,
    threads: Threads,
    work: &(impl Fn(&Chunk) -> T + Sync),
    merge: impl FnMut(T) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    let chunks = Chunker::new(reader, threads.chunk_bytes.max(1));
    map_cut(chunks, threads, work, &|_| {}, merge)
}

/// [`map_chunks`] of bytes in memory: the chunks are slices of `bytes`.
pub fn map_slice_chunks<T: Send, E>(
    bytes: &[u8],
    threads: Threads,
    work: &(impl Fn(&Chunk) -> T + Sync),
    merge: impl FnMut(T) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    map_cut(
        SliceCutter::new(bytes, threads),
        threads,
        work,
        &|_| {},
        merge,
    )
}

/// [`map_chunks`] of a file, mapped into memory when it is a regular file
/// that can be (read otherwise: a pipe, a terminal, an empty file).
///
/// The map is read-only and private; as with every map of a file (and as
/// `ripgrep` accepts), another process truncating the file during the read
/// ends this one with `SIGBUS`. Only the offline commands, which read a
/// file the user names, map files; the daemon's sources read them.
pub fn map_file_chunks<T: Send, E>(
    file: File,
    threads: Threads,
    work: &(impl Fn(&Chunk) -> T + Sync),
    merge: impl FnMut(T) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    let regular = file.metadata().is_ok_and(|m| m.is_file() && m.len() > 0);
    // SAFETY: the map is only read, and lives until the read ends; what a
    // concurrent truncation does is said above.
    let map = regular
        .then(|| unsafe { Mmap::map(&file) })
        .and_then(Result::ok);
    match map {
        Some(map) => {
            // Read ahead, and drop pages behind: the lines are read once.
            let _ = map.advise(Advice::Sequential);
            // Each worker unmaps the pages of the chunk it is done with, so
            // the unmapping is shared out rather than left to one thread at
            // the end (about 20 ms for a 491 MB file on the bench machine).
            let unmap = |chunk: &Chunk| {
                // SAFETY: the map is shared and only read; a page advised
                // away is mapped again from the file if read again (the
                // pages of a cut are also the neighbouring chunk's).
                let _ = unsafe {
                    map.unchecked_advise_range(
                        UncheckedAdvice::DontNeed,
                        chunk.offset as usize,
                        chunk.bytes.len(),
                    )
                };
            };
            map_cut(
                SliceCutter::new(&map, threads),
                threads,
                work,
                &unmap,
                merge,
            )
        }
        None => map_chunks(file, threads, work, merge),
    }
}

/// Where chunks come from: cut from an input, in order.
trait Cut<'a>: Send {
    /// The next chunk; `None` at the end of the input (and after an error).
    fn next_chunk(&mut self) -> io::Result<Option<Chunk<'a>>>;
}

/// Maps the chunks of `chunks` as [`map_chunks`] says; `done` is called
/// with each chunk once its work is done.
fn map_cut<'a, T: Send, E>(
    mut chunks: impl Cut<'a>,
    threads: Threads,
    work: &(impl Fn(&Chunk) -> T + Sync),
    done: &(impl Fn(&Chunk) + Sync),
    mut merge: impl FnMut(T) -> Result<(), E>,
) -> Result<(), LineError<E>> {
    let workers = threads.workers.max(1);
    let numbering = Numbering::new();
    let numbering = &numbering;
    if workers == 1 {
        while let Some(mut chunk) = chunks.next_chunk().map_err(LineError::Io)? {
            // one thread numbers its chunks in order: no wait
            numbering.number(&mut chunk);
            let result = work(&chunk);
            done(&chunk);
            merge(result).map_err(LineError::Callback)?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let mut to_workers: Vec<SyncSender<io::Result<Chunk<'a>>>> = Vec::with_capacity(workers);
        let mut from_workers: Vec<Receiver<io::Result<T>>> = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (chunk_tx, chunk_rx) = sync_channel::<io::Result<Chunk<'a>>>(1);
            let (result_tx, result_rx) = sync_channel::<io::Result<T>>(1);
            to_workers.push(chunk_tx);
            from_workers.push(result_rx);
            scope.spawn(move || {
                // Stopping early (the caller stopped, or `work` panicked)
                // wakes the workers waiting for a chunk this one held.
                let early = StopOnDrop(Some(numbering));
                for chunk in chunk_rx {
                    let result = match chunk {
                        Ok(mut c) => {
                            if !numbering.number(&mut c) {
                                return; // the caller stopped
                            }
                            let result = work(&c);
                            done(&c);
                            Ok(result)
                        }
                        Err(e) => Err(e),
                    };
                    if result_tx.send(result).is_err() {
                        return; // the caller stopped
                    }
                }
                early.disarm();
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
        // A closed channel in turn means the reader is done: every chunk
        // before it was taken.
        let mut turn = 0usize;
        while let Ok(result) = from_workers[turn].recv() {
            let value = result.map_err(LineError::Io)?;
            merge(value).map_err(LineError::Callback)?;
            turn = (turn + 1) % workers;
        }
        Ok(())
    })
}

/// Where the next chunk is cut: its place in the input's chunks and its
/// byte offset. (Its line number is counted by whoever works on it, see
/// [`Numbering`]: the cutting thread only looks near the cuts.)
#[derive(Clone, Copy, Default)]
struct Cuts {
    next_chunk: u64,
    offset: u64,
}

impl Cuts {
    /// `bytes` (whole lines, not empty) as the next chunk, not numbered.
    fn chunk<'a>(&mut self, bytes: Cow<'a, [u8]>) -> Chunk<'a> {
        let chunk = Chunk {
            first_line: 0,
            offset: self.offset,
            bytes,
            seq: self.next_chunk,
        };
        self.next_chunk += 1;
        self.offset += chunk.bytes.len() as u64;
        chunk
    }
}

/// The line numbers of chunks counted on the workers, in turn: the worker
/// of chunk `k` counts its lines, waits until chunk `k - 1` is numbered
/// (its worker counted it, which needs no later chunk), takes the next
/// line number and passes it on — then works on its chunk. Counting is
/// one SIMD pass over bytes the work reads next, so the wait is short.
struct Numbering {
    next: std::sync::Mutex<Next>,
    turn: std::sync::Condvar,
}

struct Next {
    chunk: u64,
    first_line: u64,
    /// A worker stopped (the caller did): a chunk before may never be
    /// numbered, so nobody waits any more.
    stopped: bool,
}

impl Numbering {
    fn new() -> Numbering {
        Numbering {
            next: std::sync::Mutex::new(Next {
                chunk: 0,
                first_line: 1,
                stopped: false,
            }),
            turn: std::sync::Condvar::new(),
        }
    }

    /// Sets `chunk.first_line`; `false` once the workers stop.
    fn number(&self, chunk: &mut Chunk<'_>) -> bool {
        let lines = lines_in(&chunk.bytes);
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        while next.chunk != chunk.seq && !next.stopped {
            next = self.turn.wait(next).unwrap_or_else(|e| e.into_inner());
        }
        if next.stopped {
            return false;
        }
        chunk.first_line = next.first_line;
        next.chunk += 1;
        next.first_line += lines;
        self.turn.notify_all();
        true
    }

    /// A worker stops: wakes those waiting for a chunk it held.
    fn stop(&self) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        next.stopped = true;
        self.turn.notify_all();
    }
}

/// Stops the numbering when dropped, unless disarmed.
struct StopOnDrop<'n>(Option<&'n Numbering>);

impl StopOnDrop<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(numbering) = self.0 {
            numbering.stop();
        }
    }
}

/// How many lines `bytes` (whole lines) hold, an unterminated last one too.
fn lines_in(bytes: &[u8]) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', bytes).count() as u64;
    newlines + u64::from(!bytes.is_empty() && bytes.last() != Some(&b'\n'))
}

/// Cuts bytes in memory into slices of whole lines.
struct SliceCutter<'a> {
    rest: &'a [u8],
    chunk_bytes: usize,
    cuts: Cuts,
}

impl SliceCutter<'_> {
    fn new(bytes: &[u8], threads: Threads) -> SliceCutter<'_> {
        SliceCutter {
            rest: bytes,
            chunk_bytes: threads.chunk_bytes.max(1),
            cuts: Cuts::default(),
        }
    }
}

impl<'a> Cut<'a> for SliceCutter<'a> {
    fn next_chunk(&mut self) -> io::Result<Option<Chunk<'a>>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        // After the last newline in the first `chunk_bytes`, or the first
        // newline after them (a long line), or at the end.
        let cut = if self.rest.len() <= self.chunk_bytes {
            self.rest.len()
        } else if let Some(i) = memchr::memrchr(b'\n', &self.rest[..self.chunk_bytes]) {
            i + 1
        } else {
            memchr::memchr(b'\n', &self.rest[self.chunk_bytes..])
                .map_or(self.rest.len(), |i| self.chunk_bytes + i + 1)
        };
        let (bytes, rest) = self.rest.split_at(cut);
        self.rest = rest;
        Ok(Some(self.cuts.chunk(Cow::Borrowed(bytes))))
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
