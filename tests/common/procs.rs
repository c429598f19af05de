//! The processes of a lab, found by the marker every one of them carries in its environment
//! (`NIXDISPATCH_LAB=LABDIR`), for tests that check what a run leaves behind.

use std::path::Path;
use std::time::{Duration, Instant};

/// One live process of a lab.
pub struct LabProcess {
    /// Its command line, arguments joined by spaces.
    pub cmdline: String,
    /// Dead, waiting for its reaper.
    pub zombie: bool,
    /// In this test's pid namespace (seasmoke runs in one of its own: its processes are not
    /// the client's).
    pub here: bool,
}

/// Every process carrying the marker of the lab in `lab_dir` (the lab may be gone already).
pub fn lab_processes(lab_dir: &Path) -> Vec<LabProcess> {
    let marker = format!("NIXDISPATCH_LAB={}", lab_dir.display());
    let our_ns = std::fs::read_link("/proc/self/ns/pid").ok();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = entry.path();
        let Ok(environ) = std::fs::read(dir.join("environ")) else {
            continue;
        };
        if !environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let zombie = stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'));
        let here = std::fs::read_link(dir.join("ns/pid")).ok() == our_ns;
        found.push(LabProcess {
            cmdline,
            zombie,
            here,
        });
    }
    found
}

/// Waits until a process of the lab in `lab_dir` whose command line contains every one of
/// `words` runs; false after `limit`.
pub fn wait_for_process(lab_dir: &Path, words: &[&str], limit: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if lab_processes(lab_dir)
            .iter()
            .any(|p| words.iter().all(|w| p.cmdline.contains(w)))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}
