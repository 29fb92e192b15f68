//! The local state backend is for one instance: a second `detectd run` on
//! the same state directory would run every rule a second time and race
//! the first on its checkpoint files. The process holds an exclusive lock
//! on `<dir>/detectd.lock` for its whole life (the operating system drops
//! it when the process dies, even by SIGKILL), and a second one refuses to
//! start.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The lock, held until dropped.
#[derive(Debug)]
pub struct StateDirLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another detectd instance is using the state directory {dir} (it holds {path}): \
         the local state backend runs one instance only; stop the other one, or use \
         state.backend = \"cluster\" to run several instances"
    )]
    Held { dir: String, path: String },
    #[error("cannot lock the state directory {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

impl StateDirLock {
    /// Takes the lock of `dir` (created if missing), or says who has it.
    pub fn acquire(dir: &Path) -> Result<StateDirLock, LockError> {
        let io = |source| LockError::Io {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join("detectd.lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        if !try_lock(&file).map_err(io)? {
            return Err(LockError::Held {
                dir: dir.display().to_string(),
                path: path.display().to_string(),
            });
        }
        // Who holds it, for a person looking at the directory.
        let _ = file.set_len(0);
        let _ = writeln!(file, "pid {}", std::process::id());
        Ok(StateDirLock { _file: file, path })
    }
}

/// An exclusive, non-blocking `flock(2)`: `false` if another process
/// holds it. (`File::try_lock` does the same from Rust 1.89 on, above this
/// crate's minimum version.)
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock(2) on a descriptor `file` keeps open for the call; no
    // memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Elsewhere no lock is taken (detectd runs on unix systems).
#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDirLock::acquire(dir.path()).unwrap();
        let second = StateDirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(second, LockError::Held { .. }), "{second}");
        assert!(second.to_string().contains("one instance only"));
        drop(first);
        StateDirLock::acquire(dir.path()).unwrap();
    }
}
