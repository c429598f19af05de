use super::*;
use crate::history::{BuildSample, History};
use std::os::unix::fs::PermissionsExt;

fn one_build(name: &str, at: u64) -> History {
    let mut h = History::new();
    h.add_build(
        name,
        "local",
        BuildSample {
            at,
            secs: Some(1.0),
            ok: true,
        },
    );
    h
}

#[test]
fn state_dir_follows_xdg_then_home() {
    fn p(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }
    assert_eq!(
        state_dir(p("/x/state"), p("/home/u")),
        Some(PathBuf::from("/x/state/nixdispatch"))
    );
    assert_eq!(
        state_dir(p("relative"), p("/home/u")),
        Some(PathBuf::from("/home/u/.local/state/nixdispatch")),
        "a relative XDG_STATE_HOME is ignored, as the spec says"
    );
    assert_eq!(
        state_dir(p(""), p("/home/u")),
        Some(PathBuf::from("/home/u/.local/state/nixdispatch"))
    );
    assert_eq!(state_dir(None, None), None);
}

#[test]
fn saved_history_is_private_and_loads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state/nixdispatch");
    assert_eq!(load(&dir).history, History::new(), "none yet");
    assert!(load(&dir).warning.is_none(), "no file is no warning");
    save(&dir, &one_build("hello-2.12", 1)).unwrap();
    let file = dir.join(HISTORY_FILE);
    let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dmode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dmode, 0o700);
    let loaded = load(&dir);
    assert!(loaded.warning.is_none());
    assert_eq!(loaded.history.build_secs("hello-2.12", "local"), Some(1.0));
    // No temporary files are left behind.
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_damaged_truncated_or_foreign_file_is_ignored_with_one_warning_then_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    save(&dir, &one_build("a", 1)).unwrap();
    let file = dir.join(HISTORY_FILE);
    let whole = fs::read(&file).unwrap();
    for bad in [
        whole[..whole.len() / 2].to_vec(),
        b"\x00\xff\xfe garbage".to_vec(),
        b"name,host,secs\nhello,local,3\n".to_vec(),
        Vec::new(),
    ] {
        fs::write(&file, &bad).unwrap();
        let loaded = load(&dir);
        assert!(loaded.history.is_empty());
        let warning = loaded.warning.expect("one warning");
        assert!(warning.contains("ignored"), "{warning}");
        assert!(!warning.contains('\n'), "one line: {warning}");
        save(&dir, &one_build("b", 2)).unwrap();
        let loaded = load(&dir);
        assert!(loaded.warning.is_none(), "replaced");
        assert!(loaded.history.build_secs("b", "local").is_some());
    }
    // A directory where the file should be: a warning, and saving fails with a reason.
    fs::remove_file(&file).unwrap();
    fs::create_dir(&file).unwrap();
    assert!(load(&dir).warning.is_some());
    assert!(save(&dir, &one_build("c", 3)).is_err());
}

#[test]
fn saving_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let mut big = History::new();
    for i in 0..(MAX_SAMPLES as u64 + 500) {
        big.add_build(
            &format!("p{i}"),
            "local",
            BuildSample {
                at: i,
                secs: Some(1.0),
                ok: true,
            },
        );
    }
    save(tmp.path(), &big).unwrap();
    let loaded = load(tmp.path()).history;
    assert_eq!(loaded.len(), MAX_SAMPLES);
    assert!(
        loaded.build_secs("p0", "local").is_none(),
        "the oldest went"
    );
    let size = fs::metadata(tmp.path().join(HISTORY_FILE)).unwrap().len();
    assert!(size < MAX_FILE_BYTES, "{size}");
}

#[test]
fn two_runs_saving_at_once_both_keep_their_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                for i in 0..40u64 {
                    save(&dir, &one_build(&format!("w{w}-{i}"), i)).expect("no save fails");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let loaded = load(&dir);
    assert!(loaded.warning.is_none());
    for w in 0..2 {
        for i in 0..40 {
            assert!(
                loaded
                    .history
                    .build_secs(&format!("w{w}-{i}"), "local")
                    .is_some(),
                "w{w}-{i} was lost"
            );
        }
    }
}

#[test]
fn a_held_lock_is_waited_for_a_bounded_time() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(LOCK_FILE);
    let held = Lock::take(&path, Duration::ZERO).unwrap();
    let t = Instant::now();
    let err = Lock::take(&path, Duration::from_millis(100))
        .err()
        .expect("held elsewhere");
    assert!(err.contains("another run"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(10), "bounded");
    drop(held);
    assert!(
        Lock::take(&path, Duration::ZERO).is_ok(),
        "released on drop"
    );
}

/// Load and save of a history with tens of thousands of keys: prints the times (measured, not
/// asserted; run with `--nocapture` to see them).
#[test]
fn tens_of_thousands_of_keys_load_and_save() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = History::new();
    for i in 0..30_000u64 {
        for at in 0..3 {
            h.add_build(
                &format!("package-number-{i}-1.2.3"),
                "ssh-ng://root@seasmoke:2222",
                BuildSample {
                    at: i * 10 + at,
                    secs: Some(12.5),
                    ok: true,
                },
            );
        }
    }
    for i in 0..10_000u64 {
        h.add_copy(
            &format!("package-number-{i}-1.2.3"),
            "https://cache.example.org",
            crate::history::CopySample {
                at: i,
                direction: crate::history::Direction::From,
                bytes: 123_456,
                secs: 0.5,
            },
        );
    }
    let t = Instant::now();
    save(tmp.path(), &h).unwrap();
    let saved = t.elapsed();
    let t = Instant::now();
    let loaded = load(tmp.path());
    let loaded_in = t.elapsed();
    assert!(loaded.warning.is_none());
    assert_eq!(loaded.history.len(), 100_000);
    let size = fs::metadata(tmp.path().join(HISTORY_FILE)).unwrap().len();
    eprintln!(
        "history of {} samples ({} keys, {} KiB): first save {saved:?}, load {loaded_in:?}",
        loaded.history.len(),
        loaded.history.builds.len() + loaded.history.copies.len(),
        size / 1024
    );
    let t = Instant::now();
    save(tmp.path(), &one_build("one-more", u64::MAX / 2)).unwrap();
    eprintln!(
        "a run's save into it (read, merge, bound, write): {:?}",
        t.elapsed()
    );
}
