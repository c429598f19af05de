//! Teardown: a lab's Drop (seasmoke's namespace, every process carrying the lab's marker, the
//! directory), the half-started lab's, and the sweep of labs whose owner died without Drop.

use crate::lab::Lab;
use crate::{proxy, sid_root, sys, Result, LAB_MARKER_VAR};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.proxy.set_route(proxy::Route::Down);
        self.kill_builder();
        let marker = format!("{LAB_MARKER_VAR}={}", self.dir.display());
        sys::kill_until_gone(
            || sys::pids_with_env_entry(&marker),
            Duration::from_secs(10),
        );
        remove_lab_dir(&self.dir, self.extra_mountpoint.as_deref());
        if self.extra_mountpoint.is_some() {
            // The sid root's twin of the trixie mount point (2.34 hosts).
            let rel = self.dir.strip_prefix("/").unwrap_or(&self.dir);
            let _ = fs::remove_dir(sid_root().join(rel));
        }
    }
}

/// Cleans a half-started lab (before the Lab value exists).
pub(crate) struct HalfLab {
    pub(crate) dir: PathBuf,
    pub(crate) extra_mountpoint: Option<PathBuf>,
}

impl Drop for HalfLab {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            remove_lab_dir(&self.dir, self.extra_mountpoint.as_deref());
        }
    }
}

fn remove_lab_dir(dir: &Path, extra_mountpoint: Option<&Path>) {
    for _ in 0..20 {
        match fs::remove_dir_all(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    if let Some(m) = extra_mountpoint {
        let _ = fs::remove_dir(m);
    }
}

/// Takes the lab directory's lock (held until the returned file is closed).
pub(crate) fn lock_lab_dir(dir: &Path) -> Result<fs::File> {
    use std::os::fd::AsRawFd;
    // Locked before it takes its name, so a sweeper never sees it unlocked.
    let f = fs::File::create(dir.join("lock.new"))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    fs::rename(dir.join("lock.new"), dir.join("lock"))?;
    Ok(f)
}

/// Removes lab directories whose owner died without Drop (SIGKILL, abort): their lock is free.
/// Their seasmoke already ended with its owner (see `Seasmoke::_lifeline`); any process still
/// carrying their marker is killed first.
pub(crate) fn sweep_stale_labs(base: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(rd) = fs::read_dir(base) else { return };
    for entry in rd.flatten() {
        let dir = entry.path();
        let is_lab = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("nixdispatch-lab-"))
            && dir.is_dir();
        if !is_lab {
            continue;
        }
        let stale = match fs::File::open(dir.join("lock")) {
            // SAFETY: flock on a file descriptor we own; the lock goes with the file.
            Ok(f) => unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 },
            // No lock file: being created right now, or very old. Only the latter is stale.
            Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(3600)),
        };
        let marker = format!("{LAB_MARKER_VAR}={}", dir.display());
        // Without a lock (an older lab), live processes of the lab mean it is in use.
        let stale =
            stale && (dir.join("lock").exists() || sys::pids_with_env_entry(&marker).is_empty());
        if stale {
            sys::kill_until_gone(|| sys::pids_with_env_entry(&marker), Duration::from_secs(5));
            let _ = fs::remove_dir_all(&dir);
        }
    }
}
