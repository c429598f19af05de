use super::*;

fn build(at: u64, secs: f64) -> BuildSample {
    BuildSample {
        at,
        secs: Some(secs),
        ok: true,
    }
}

fn copy(at: u64, bytes: u64, secs: f64) -> CopySample {
    CopySample {
        at,
        direction: Direction::From,
        bytes,
        secs,
    }
}

#[test]
fn nothing_known_is_none_never_a_guess() {
    let h = History::new();
    assert_eq!(h.build_secs("hello-2.12", "local"), None);
    assert_eq!(h.copy_secs("hello-2.12", "http://cache", Some(1000)), None);
    assert_eq!(h.bandwidth("http://cache"), None);
    assert_eq!(h.rtt_ms("ssh-ng://seasmoke"), None);
}

#[test]
fn build_time_is_the_median_of_successes_per_name_and_host() {
    let mut h = History::new();
    for (at, secs) in [(1, 10.0), (2, 30.0), (3, 20.0)] {
        h.add_build(
            "hello-2.12",
            "ssh-ng://seasmoke?ssh-key=/k",
            build(at, secs),
        );
    }
    h.add_build(
        "hello-2.12",
        "ssh-ng://seasmoke",
        BuildSample {
            at: 4,
            secs: None,
            ok: false,
        },
    );
    assert_eq!(h.build_secs("hello-2.12", "ssh-ng://seasmoke"), Some(20.0));
    assert_eq!(h.build_count("hello-2.12", "ssh-ng://seasmoke"), (4, 1));
    assert_eq!(h.build_secs("hello-2.12", "local"), None, "another host");
    assert_eq!(h.build_secs("hello-2.13", "ssh-ng://seasmoke"), None);
}

#[test]
fn each_key_keeps_its_last_samples_only() {
    let mut h = History::new();
    for at in 0..(SAMPLES_PER_KEY as u64 + 5) {
        h.add_build("a", "local", build(at, at as f64));
    }
    let kept = &h.builds[&("a".to_string(), "local".to_string())];
    assert_eq!(kept.len(), SAMPLES_PER_KEY);
    assert_eq!(kept.front().map(|s| s.at), Some(5), "the oldest went");
}

#[test]
fn the_whole_history_is_bounded_oldest_first() {
    let mut h = History::new();
    for i in 0..100u64 {
        h.add_build(&format!("p{i}"), "local", build(i, 1.0));
    }
    h.add_probe(
        "ssh-ng://b",
        ProbeSample {
            at: 1000,
            rtt_ms: 3.0,
        },
    );
    h.bound(10);
    assert_eq!(h.len(), 10);
    assert!(h.rtt_ms("ssh-ng://b").is_some(), "the newest stay");
    assert!(h.build_secs("p99", "local").is_some());
    assert!(h.build_secs("p0", "local").is_none());
    assert!(h.build_secs("p90", "local").is_none());
    assert!(h.build_secs("p91", "local").is_some());
}

#[test]
fn copies_give_bandwidth_per_store_and_times_per_path() {
    let mut h = History::new();
    h.add_copy("big", "http://cache", copy(1, 4_000_000, 2.0));
    h.add_copy("small", "http://cache", copy(2, 1_000_000, 1.0));
    h.add_copy("unsized", "http://cache", copy(3, 0, 5.0));
    assert_eq!(h.bandwidth("http://cache"), Some(5_000_000.0 / 3.0));
    assert_eq!(h.copy_secs("big", "http://cache", None), Some(2.0));
    // Never copied: its size at the store's bandwidth, or nothing without a size.
    let t = h.copy_secs("new", "http://cache", Some(5_000_000)).unwrap();
    assert!((t - 3.0).abs() < 1e-9, "{t}");
    assert_eq!(h.copy_secs("new", "http://cache", None), None);
    assert_eq!(h.copy_secs("new", "ssh-ng://other", Some(5)), None);
}

#[test]
fn keys_that_cannot_be_written_are_not_recorded() {
    let mut h = History::new();
    h.add_build("a\tb", "local", build(1, 1.0));
    h.add_build("a", "x\ny", build(1, 1.0));
    h.add_build("", "local", build(1, 1.0));
    h.add_build(&"n".repeat(MAX_KEY_LEN + 1), "local", build(1, 1.0));
    h.add_build("a", "local", build(1, f64::NAN));
    assert!(h.is_empty());
}

#[test]
fn merge_adds_another_runs_samples() {
    let mut a = History::new();
    a.add_build("x", "local", build(1, 1.0));
    let mut b = History::new();
    b.add_build("x", "local", build(2, 3.0));
    b.add_probe("ssh-ng://s", ProbeSample { at: 2, rtt_ms: 9.0 });
    a.merge(&b);
    assert_eq!(a.build_secs("x", "local"), Some(2.0));
    assert_eq!(a.rtt_ms("ssh-ng://s"), Some(9.0));
}

#[test]
fn host_keys_drop_the_query_and_name_this_machine_local() {
    assert_eq!(host_key(""), "local");
    assert_eq!(host_key("local"), "local");
    assert_eq!(
        host_key("ssh-ng://root@seasmoke:2222?ssh-key=/k&compress=true"),
        "ssh-ng://root@seasmoke:2222"
    );
}

#[test]
fn the_file_format_round_trips_and_refuses_what_it_cannot_read() {
    let mut h = History::new();
    h.add_build("hello-2.12", "local", build(1, 1.5));
    h.add_build(
        "hello-2.12",
        "local",
        BuildSample {
            at: 2,
            secs: None,
            ok: false,
        },
    );
    h.add_copy(
        "hello-2.12",
        "http://cache",
        CopySample {
            at: 3,
            direction: Direction::To,
            bytes: 12,
            secs: 0.25,
        },
    );
    h.add_probe("ssh-ng://s", ProbeSample { at: 4, rtt_ms: 1.5 });
    let text = file::encode(&h);
    assert_eq!(file::decode(&text), Ok(h));
    assert!(file::decode("").is_err());
    assert!(file::decode("{\"json\": true}\n").is_err(), "foreign");
    assert!(
        file::decode("nixdispatch-history 9\nend\t0\n").is_err(),
        "newer"
    );
    let cut = &text[..text.len() - 8];
    assert!(file::decode(cut).is_err(), "truncated: {cut}");
    let garbled = text.replace("1.500", "x");
    assert!(file::decode(&garbled).is_err());
}
