//! Where the history lives and how it is read and written: `$XDG_STATE_HOME/nixdispatch/history`
//! (default `~/.local/state/nixdispatch/history`), mode 0600 in a 0700 directory.
//!
//! Two runs at once both keep their samples: a run saves only what it added, under an
//! exclusive lock (`history.lock`, `flock`, waited for at most [`LOCK_WAIT`]), by reading the
//! file again, adding its samples, bounding, and replacing the file atomically (a temporary file
//! in the same directory, renamed over it). A reader never sees half a file. A damaged,
//! truncated or foreign file is ignored with one warning and replaced at the next save.

use super::file::{decode, encode};
use super::{History, MAX_SAMPLES};
use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The history file's name in the state directory.
pub const HISTORY_FILE: &str = "history";
/// The lock file's name in the state directory.
const LOCK_FILE: &str = "history.lock";
/// The largest history file read (a bigger one is not ours, or damaged).
const MAX_FILE_BYTES: u64 = 32 << 20;
/// The longest a save waits for another run's save to finish.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// The state directory: `$XDG_STATE_HOME/nixdispatch` when it is set to an absolute path, else
/// `$HOME/.local/state/nixdispatch`; `None` without either (the history is then off).
pub fn state_dir(xdg_state_home: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    let absolute = |v: Option<&OsStr>| {
        v.map(PathBuf::from)
            .filter(|p| p.is_absolute() && !p.as_os_str().is_empty())
    };
    absolute(xdg_state_home)
        .or_else(|| absolute(home).map(|h| h.join(".local/state")))
        .map(|d| d.join("nixdispatch"))
}

/// A history as loaded: what it holds, and the one warning to show when the file was there
/// but could not be used.
#[derive(Debug, Default)]
pub struct Loaded {
    /// What is known (empty without a usable file).
    pub history: History,
    /// One line on why the file was ignored, if it was.
    pub warning: Option<String>,
}

/// Reads the history in `dir`. A missing file is an empty history; any other problem is an
/// empty history and a warning, never an error.
pub fn load(dir: &Path) -> Loaded {
    let path = dir.join(HISTORY_FILE);
    match read(&path) {
        Ok(history) => Loaded {
            history: history.unwrap_or_default(),
            warning: None,
        },
        Err(why) => Loaded {
            history: History::new(),
            warning: Some(format!(
                "the history {} is ignored ({why}); the next run replaces it",
                path.display()
            )),
        },
    }
}

/// The history in `path`: `Ok(None)` when there is none, `Err(why)` when it cannot be used.
fn read(path: &Path) -> Result<Option<History>, String> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {} MiB", MAX_FILE_BYTES >> 20));
    }
    let text = String::from_utf8(bytes).map_err(|_| "not text".to_string())?;
    decode(&text).map(Some).map_err(|d| d.0)
}

/// Adds `recording` (what this run learned) to the history in `dir` and writes it back, under
/// the lock. Returns why it could not, for one warning line.
pub fn save(dir: &Path, recording: &History) -> Result<(), String> {
    if recording.is_empty() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _lock = Lock::take(&dir.join(LOCK_FILE), LOCK_WAIT)?;
    let path = dir.join(HISTORY_FILE);
    // What other runs saved since this one loaded it is in the file now: keep it. A damaged
    // file was warned about at load; it is replaced.
    let mut history = read(&path).ok().flatten().unwrap_or_default();
    history.merge(recording);
    history.bound(MAX_SAMPLES);
    write_atomic(&path, encode(&history).as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes `bytes` to a temporary file beside `path` (mode 0600), syncs it, renames it over
/// `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{HISTORY_FILE}.{}.{}",
        std::process::id(),
        super::unix_now()
    ));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The mode of a new file is masked by the umask; 0600 is narrower than any umask leaves.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// An exclusive `flock` on the lock file, released when dropped (or when the process dies,
/// so a killed run never leaves the history locked).
struct Lock {
    _file: fs::File,
}

impl Lock {
    fn take(path: &Path, wait: Duration) -> Result<Lock, String> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let deadline = Instant::now() + wait;
        loop {
            // SAFETY: flock only acts on the descriptor we own; no memory is passed.
            if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Lock { _file: file });
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "another run held {} for more than {}s",
                    path.display(),
                    wait.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests;
