//! Test support: the recorded nix logs in `tests/data`, read so that a missing or empty one
//! fails the test (a replay fed nothing would pass for nothing).

use std::path::{Path, PathBuf};

/// The folder of the recordings.
pub(crate) fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Every recording (`tests/data/*.log`), sorted; none at all fails the test.
pub(crate) fn all() -> Vec<PathBuf> {
    let dir = dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no recordings in {}", dir.display());
    files
}

/// The text of the recording at `path` (invalid UTF-8 read lossily); missing or empty fails.
pub(crate) fn read(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!bytes.is_empty(), "recording {} is empty", path.display());
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The text of the recording `tests/data/NAME`; missing or empty fails.
pub(crate) fn named(name: &str) -> String {
    read(&dir().join(name))
}
