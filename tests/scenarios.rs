//! Scenarios end to end, beyond the basics of `plan.rs` and `build.rs`: host keys from the
//! machines line, `NIX_SSHOPTS` in probes, several builders with a dead one, a signing builder,
//! a cache and a builder together, `doctor`, builders from the 2.26 client's nix config,
//! `--push`, the shape of `--json` and `--progress plain` output, and batching under latency.
//! Every run is the real binary as vermax against a real seasmoke.

mod common;

use common::{lab_or_skip, lab_with, Nixdispatch, Run};
use nixdispatch_lab::{ClientNix, Fault, Fixture, Lab, LabOptions};
use std::net::TcpListener;
use std::time::Duration;

/// The result paths in `build … --json`'s stdout (nix's result JSON; Nix 2.8 has no
/// --print-out-paths).
fn result_paths(run: &Run) -> Vec<String> {
    let paths: Vec<String> = run
        .json()
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["outputs"].as_object().cloned().unwrap_or_default())
        .filter_map(|(_, p)| p.as_str().map(str::to_owned))
        .collect();
    assert!(!paths.is_empty(), "no result path printed: {run:?}");
    paths
}

/// The argv nixdispatch ran nix with, from its `-vv` debug lines (`running argv=[...]`), with
/// the colours the debug lines may carry taken out.
fn nix_argv_lines(run: &Run) -> Vec<String> {
    let lines: Vec<String> = run
        .stderr
        .lines()
        .map(strip_ansi)
        .filter(|l| l.contains("argv=[") && l.contains("running"))
        .collect();
    assert!(!lines.is_empty(), "no debug line with nix's argv: {run:?}");
    lines
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// base64 of a public key line that is NOT seasmoke's: the lab's client key.
fn wrong_host_key(lab: &Lab) -> String {
    let line = std::fs::read_to_string(lab.dir().join("client_key.pub")).expect("client_key.pub");
    let line = line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, line)
}

/// `--builder SPEC --json probe` on Nix `v`, which must exit 0.
fn probe(lab: &Lab, v: ClientNix, spec: &str) -> Run {
    Nixdispatch::on(lab)
        .client(v)
        .builder(spec)
        .args(["--json", "probe"])
        .expect_exit(0)
}

/// `--builder SPEC --progress plain -vv build --json ATTR` (nix's argv in the debug lines) on
/// Nix 2.8, with more `flags` before `--progress`.
fn build_vv<'a>(lab: &'a Lab, spec: &str, flags: &[&str], attr: &str) -> Nixdispatch<'a> {
    Nixdispatch::on(lab)
        .builder(spec)
        .args(flags)
        .plain()
        .args(["-vv", "build", "--json"])
        .attr(attr)
}

/// `--builder SPEC --json plan ATTR` on Nix `v`, which must exit 0: the plan.
fn plan(lab: &Lab, v: ClientNix, spec: &str, attr: &str) -> serde_json::Value {
    Nixdispatch::on(lab)
        .client(v)
        .builder(spec)
        .args(["--json", "plan"])
        .attr(attr)
        .expect_exit(0)
        .json()
}

/// A loopback port nothing listens on (privileged, and no lab binds it).
const CLOSED_PORT: u16 = 1;

// ----- 1. host keys from the machines line --------------------------------------------------

#[test]
fn host_key_in_the_machines_line_is_honoured() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let spec = lab.builder_spec_with_host_key();
    for v in ClientNix::ALL {
        let run = probe(&lab, v, &spec);
        let b = &run.json()["builders"][0];
        assert_eq!(b["reachable"], true, "{v:?}: {run:?}");
        assert!(b["error"].is_null(), "{v:?}: {run:?}");
    }
    // nix accepts the same line: a remote build with it works.
    let run = Nixdispatch::on(&lab)
        .builder(&spec)
        .plain()
        .args(["build", "--json"])
        .attr("hello")
        .expect_exit(0);
    assert!(run.stderr.contains("mode: remote"), "{run:?}");
    let out = &result_paths(&run)[0];
    assert!(lab.builder_has(out), "not built on seasmoke: {run:?}");
}

#[test]
fn a_wrong_host_key_in_the_machines_line_is_refused_and_nix_never_uses_it() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let spec = format!(
        "ssh-ng://seasmoke x86_64-linux - 2 1 - - {}",
        wrong_host_key(&lab)
    );
    for v in ClientNix::ALL {
        let run = probe(&lab, v, &spec);
        let b = &run.json()["builders"][0];
        assert_eq!(b["reachable"], false, "{v:?}: {run:?}");
        let error = b["error"].as_str().unwrap_or_default();
        assert!(error.contains("host key"), "{v:?}: {error:?}");
    }
    let before = lab.builder_connections();
    let run = build_vv(&lab, &spec, &[], "chain").expect_exit(0);
    assert!(run.stderr.contains("mode: local"), "{run:?}");
    assert!(
        run.stderr.contains("host key"),
        "the reason names it: {run:?}"
    );
    for line in nix_argv_lines(&run) {
        assert!(!line.contains("ssh-ng://seasmoke"), "nix got it: {line}");
    }
    // Only the probe knocked (once), and was turned away; nix never tried.
    assert_eq!(lab.builder_connections() - before, 1, "{run:?}");
    let out = &result_paths(&run)[0];
    assert!(lab.client_has(ClientNix::V2_8, out));
    assert!(!lab.builder_has(out), "built on seasmoke with a wrong key");
}

// ----- 2. NIX_SSHOPTS ------------------------------------------------------------------------

#[test]
fn probes_honour_nix_sshopts() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let good = std::fs::read_to_string(lab.ssh_config()).expect("ssh config");
    let port = format!("Port {}", lab.builder_port());
    assert!(good.contains(&port), "{good}");
    let wrong = lab.dir().join("ssh_config_wrong_port");
    std::fs::write(&wrong, good.replace(&port, &format!("Port {CLOSED_PORT}"))).expect("write");
    let spec = lab.builder_spec();
    for v in ClientNix::ALL {
        let before = lab.builder_connections();
        let run = Nixdispatch::on(&lab)
            .client(v)
            .env("NIX_SSHOPTS", format!("-F {}", wrong.display()))
            .builder(&spec)
            .args(["--connect-timeout", "2", "--json", "probe"])
            .bound(Duration::from_secs(30))
            .expect_exit(0);
        let b = &run.json()["builders"][0];
        assert_eq!(b["reachable"], false, "{v:?}: {run:?}");
        assert_eq!(b["error"], "connection refused", "{v:?}: {run:?}");
        assert_eq!(lab.builder_connections(), before, "{v:?}: went to seasmoke");
    }
}

// ----- 3. several builders, one of them dead -------------------------------------------------

#[test]
fn a_dead_second_builder_is_reported_and_left_out() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let spec = lab.builder_spec();
    let dead = format!("ssh-ng://127.0.0.1:{CLOSED_PORT} x86_64-linux - 8 10");
    let plan = Nixdispatch::on(&lab)
        .builder(&spec)
        .builder(&dead)
        .args(["--json", "plan"])
        .attr("chain")
        .expect_exit(0)
        .json();
    assert_eq!(plan["mode"], "remote", "{plan}");
    let builders = plan["builders"].as_array().unwrap();
    assert_eq!(builders.len(), 2, "{plan}");
    assert_eq!(builders[0]["reachable"], true, "{plan}");
    assert_eq!(
        builders[1]["uri"],
        format!("ssh-ng://127.0.0.1:{CLOSED_PORT}"),
        "{plan}"
    );
    assert_eq!(builders[1]["reachable"], false, "{plan}");
    assert_eq!(builders[1]["error"], "connection refused", "{plan}");
    assert!(plan["paths"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["source"] == "build" && p["from"] == "ssh-ng://seasmoke"));

    let run = build_vv(&lab, &spec, &["--builder", &dead], "chain").expect_exit(0);
    for line in nix_argv_lines(&run) {
        assert!(
            !line.contains("127.0.0.1"),
            "nix got the dead builder: {line}"
        );
    }
    let out = &result_paths(&run)[0];
    assert!(lab.builder_has(out), "not built on seasmoke: {run:?}");
}

#[test]
fn a_tarpit_second_builder_never_reaches_nix() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    // Accepts TCP (the kernel's backlog) and never says a word: ssh waits for a banner forever.
    let tarpit = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = tarpit.local_addr().expect("addr").port();
    // Faster than seasmoke: nix would try it first if it were given it.
    let slow = format!("ssh-ng://127.0.0.1:{port} x86_64-linux - 8 10");
    let flags = ["--builder", &slow, "--connect-timeout", "2"];
    let run = build_vv(&lab, &lab.builder_spec(), &flags, "chain")
        // Several times the connect timeout plus a small remote build: catches a wait on the
        // tarpit (ssh would wait for its banner forever), asserts no speed.
        .bound(Duration::from_secs(60))
        .expect_exit(0);
    assert!(run.stderr.contains("mode: remote"), "{run:?}");
    for line in nix_argv_lines(&run) {
        assert!(line.contains("ssh-ng://seasmoke"), "{line}");
        assert!(
            !line.contains(&format!(":{port}")),
            "nix got the tarpit: {line}"
        );
    }
    let out = &result_paths(&run)[0];
    assert!(lab.builder_has(out), "not built on seasmoke: {run:?}");
    drop(tarpit);
}

// ----- 4. a signing builder ------------------------------------------------------------------

#[test]
fn a_signing_builder_is_a_substituter_and_nothing_builds() {
    let Some(lab) = lab_with(|o| o.builder_signs = true) else {
        return;
    };
    let held = lab
        .build_on_builder(&lab.flake_ref("wide"))
        .expect("seed seasmoke");
    let inst = lab.flake_ref("wide");
    // The 2.26 client also carries the host key into the substituter URI.
    for (v, spec) in [
        (ClientNix::V2_8, lab.builder_spec()),
        (ClientNix::V2_26, lab.builder_spec_with_host_key()),
    ] {
        let plan = plan(&lab, v, &spec, "wide");
        assert_eq!(plan["mode"], "substitute", "{v:?}: {plan}");
        assert_eq!(plan["counts"]["to_build"], 0, "{v:?}: {plan}");
        let paths = plan["paths"].as_array().unwrap();
        assert_eq!(paths.len(), 5, "root and 4 leaves: {plan}");
        assert!(
            paths
                .iter()
                .all(|p| p["source"] == "builder" && p["from"] == "ssh-ng://seasmoke"),
            "{v:?}: {plan}"
        );

        let run = Nixdispatch::on(&lab)
            .client(v)
            .builder(&spec)
            .args(["--json", "-vv", "build", &inst])
            .expect_exit(0);
        for line in nix_argv_lines(&run) {
            assert!(
                line.contains("extra-substituters") && line.contains("ssh-ng://seasmoke"),
                "{v:?}: seasmoke is not a substituter: {line}"
            );
        }
        let events = run.json_lines();
        assert_eq!(events[0]["event"], "plan", "{v:?}: {run:?}");
        assert_eq!(events[0]["mode"], "substitute", "{v:?}: {run:?}");
        let builds: Vec<_> = events
            .iter()
            .filter(|e| {
                matches!(
                    e["event"].as_str(),
                    Some("build_start" | "build_done" | "build_reused")
                )
            })
            .collect();
        assert!(builds.is_empty(), "{v:?}: something was built: {builds:?}");
        let substituted = events
            .iter()
            .filter(|e| e["event"] == "substitute_done")
            .count();
        assert!(substituted >= 1, "{v:?}: nothing substituted: {run:?}");
        for p in &held {
            assert!(lab.client_has(v, p), "{v:?}: {p} is missing");
        }
    }
}

// ----- 5. a cache and a builder together -----------------------------------------------------

#[test]
fn the_cache_and_the_builder_each_provide_their_part() {
    let Some(lab) = lab_with(|o| o.http_cache = true) else {
        return;
    };
    let in_cache = lab
        .push_to_cache(&lab.flake_ref("hello"))
        .expect("fill the cache");
    let on_builder = lab
        .build_on_builder(&lab.flake_ref("chain"))
        .expect("seed seasmoke");
    let spec = lab.builder_spec();
    let (hello, chain) = (lab.flake_ref("hello"), lab.flake_ref("chain"));
    let v = ClientNix::V2_8;
    let plan = Nixdispatch::on(&lab)
        .builder(&spec)
        .args(["--json", "plan", &hello, &chain])
        .expect_exit(0)
        .json();
    assert_eq!(plan["mode"], "substitute", "{plan}");
    assert_eq!(plan["counts"]["to_build"], 0, "{plan}");
    assert!(
        plan["counts"]["from_caches"].as_u64().unwrap() >= 1,
        "{plan}"
    );
    assert!(
        plan["counts"]["from_builders"].as_u64().unwrap() >= 1,
        "{plan}"
    );
    let source_of = |p: &str| {
        plan["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == p)
            .map(|e| e["source"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(source_of(&in_cache[0]).as_deref(), Some("cache"), "{plan}");
    assert_eq!(
        source_of(&on_builder[0]).as_deref(),
        Some("builder"),
        "{plan}"
    );

    let requests_before = lab.cache_requests().len();
    let run = Nixdispatch::on(&lab)
        .builder(&spec)
        .args(["--json", "build", &hello, &chain])
        .expect_exit(0);
    let events = run.json_lines();
    assert_eq!(events[0]["mode"], "substitute", "{run:?}");
    let requests = lab.cache_requests()[requests_before..].to_vec();
    let hash = |p: &str| p.trim_start_matches("/nix/store/")[..32].to_owned();
    assert!(
        requests
            .iter()
            .any(|r| r.contains(&format!("/{}.narinfo 200", hash(&in_cache[0])))),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /nar/") && r.ends_with(" 200")),
        "no NAR was downloaded from the cache: {requests:#?}"
    );
    let cache = lab.cache_url();
    let from = |e: &serde_json::Value, prefix: &str| {
        e["from"].as_str().is_some_and(|f| f.starts_with(prefix))
    };
    let done = |e: &serde_json::Value| {
        matches!(e["event"].as_str(), Some("substitute_done" | "copy_done"))
    };
    assert!(
        events.iter().any(|e| done(e) && from(e, &cache)),
        "nothing came from the cache: {run:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| done(e) && from(e, "ssh-ng://seasmoke")),
        "nothing came from seasmoke: {run:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["event"] == "build_start" && e["host"].as_str() == Some("local")),
        "something was built here: {run:?}"
    );
    for p in in_cache.iter().chain(&on_builder) {
        assert!(lab.client_has(v, p), "{p} is missing: {run:?}");
    }
}

#[test]
fn asking_the_builder_does_not_make_it_ask_its_caches() {
    // With http_cache, the lab's cache is seasmoke's substituter too.
    let Some(lab) = lab_with(|o| o.http_cache = true) else {
        return;
    };
    lab.push_to_cache(&lab.flake_ref("hello"))
        .expect("something in the cache");
    let before = lab.cache_requests().len();
    let plan = plan(&lab, ClientNix::V2_8, &lab.builder_spec(), "chain");
    assert_eq!(plan["mode"], "remote", "{plan}");
    assert_eq!(plan["paths"].as_array().unwrap().len(), 3, "{plan}");
    let requests = lab.cache_requests()[before..].to_vec();
    for p in plan["paths"].as_array().unwrap() {
        let path = p["path"].as_str().unwrap();
        let hash = &path.trim_start_matches("/nix/store/")[..32];
        let asked = requests
            .iter()
            .filter(|r| r.contains(&format!("/{hash}.narinfo")))
            .count();
        // Once by nixdispatch itself; seasmoke's store query must not send seasmoke to its caches.
        assert_eq!(asked, 1, "{path} asked {asked} times: {requests:#?}");
    }
}

// ----- 6. doctor -----------------------------------------------------------------------------

#[test]
fn doctor_on_a_healthy_lab_and_with_auth_refused() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let spec = lab.builder_spec();
    for v in ClientNix::ALL {
        let run = Nixdispatch::on(&lab)
            .client(v)
            .builder(&spec)
            .arg("doctor")
            .expect_exit(0);
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with("ok") && l.contains("seasmoke")),
            "{v:?}: {run:?}"
        );
        assert!(!run.stdout.contains("error"), "{v:?}: {run:?}");
    }
    lab.set_fault(Fault::AuthRefused);
    let run = Nixdispatch::on(&lab)
        .builder(&spec)
        .args(["--connect-timeout", "2", "doctor"])
        .bound(Duration::from_secs(30))
        .expect_exit(2);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("error") && l.contains("authentication"))
        .unwrap_or_else(|| panic!("no authentication error: {run:?}"));
    assert!(
        lines
            .get(at + 1)
            .is_some_and(|l| l.trim_start().starts_with("fix:")),
        "no fix after it: {run:?}"
    );
    assert_eq!(run.stderr.trim().lines().count(), 1, "one line: {run:?}");
    lab.set_fault(Fault::None);
}

// ----- 7. the 2.26 client with builders from nix config; --push ------------------------------

#[test]
fn the_2_26_client_plans_with_builders_from_its_nix_config() {
    let Some(lab) = lab_with(|o| o.configure_builders_in_nix = true) else {
        return;
    };
    let plan = Nixdispatch::on(&lab)
        .client(ClientNix::V2_26)
        .args(["--json", "plan"])
        .attr("chain")
        .expect_exit(0)
        .json();
    assert_eq!(plan["mode"], "remote", "{plan}");
    assert_eq!(plan["builders"][0]["uri"], "ssh-ng://seasmoke", "{plan}");
    assert_eq!(plan["builders"][0]["reachable"], true, "{plan}");
    assert_eq!(plan["counts"]["to_build"], 3, "{plan}");
}

#[test]
fn builders_from_nix_s_default_machines_file() {
    // No `builders` in the client's config: nix's default `@$NIX_CONF_DIR/machines` applies.
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    std::fs::write(
        lab.client_conf_dir().join("machines"),
        format!(
            "# the lab's builders\n{} # seasmoke, with its host key\n\nssh-ng://127.0.0.1:1 x86_64-linux\n",
            lab.builder_spec_with_host_key()
        ),
    )
    .expect("write machines");
    for v in ClientNix::ALL {
        let plan = Nixdispatch::on(&lab)
            .client(v)
            .args(["--json", "plan"])
            .attr("chain")
            .expect_exit(0)
            .json();
        assert_eq!(plan["mode"], "remote", "{v:?}: {plan}");
        let builders = plan["builders"].as_array().unwrap();
        assert_eq!(builders.len(), 2, "{v:?}: {plan}");
        assert_eq!(builders[0]["uri"], "ssh-ng://seasmoke", "{v:?}: {plan}");
        assert_eq!(builders[0]["reachable"], true, "{v:?}: {plan}");
        assert_eq!(builders[1]["error"], "connection refused", "{v:?}: {plan}");
    }
}

/// `build --push ARGS`, with a fresh nonce, for both clients: the local result must land in
/// seasmoke's store.
fn assert_push_lands_on_seasmoke(lab: &Lab, spec: &str, extra: &[&str]) {
    for v in ClientNix::ALL {
        lab.renew_nonce().expect("fresh paths");
        let run = Nixdispatch::on(lab)
            .client(v)
            .builder(spec)
            .plain()
            .args(extra)
            .args(["build", "--push", "--json"])
            .attr("chain")
            .expect_exit(0);
        assert!(run.stderr.contains("mode: local"), "{v:?}: {run:?}");
        let out = &result_paths(&run)[0];
        assert!(lab.client_has(v, out), "{v:?}");
        assert!(
            lab.builder_has(out),
            "{v:?}: --push did not copy {out} to seasmoke: {run:?}"
        );
        assert!(run.stderr.contains("pushed to seasmoke"), "{v:?}: {run:?}");
    }
}

#[test]
fn push_after_a_local_build_lands_on_seasmoke() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    // Reachable, but declared for another system only: the plan is local, the push goes there.
    assert_push_lands_on_seasmoke(&lab, "ssh-ng://seasmoke aarch64-linux - 2 1 - - -", &[]);
}

#[test]
fn push_after_a_forced_local_build_lands_on_seasmoke() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    assert_push_lands_on_seasmoke(&lab, &lab.builder_spec(), &["--mode", "local"]);
}

// ----- 8. the shape of --json and --progress plain -------------------------------------------

#[test]
fn json_is_only_json_lines_and_plain_has_no_escape_codes() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let spec = lab.builder_spec();
    for v in ClientNix::ALL {
        lab.renew_nonce().expect("fresh paths");
        let run = Nixdispatch::on(&lab)
            .client(v)
            .builder(&spec)
            .args(["--json", "build"])
            .attr("chain")
            .expect_exit(0);
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert!(lines.len() >= 2, "{v:?}: {run:?}");
        let events: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("{v:?}: not a JSON line ({e}): {l:?}\n{run:?}"))
            })
            .collect();
        assert!(
            events.iter().all(|e| e["event"].is_string()),
            "{v:?}: {run:?}"
        );
        assert!(lines[0].starts_with(r#"{"event":"plan""#), "{v:?}: {run:?}");
        assert!(
            lines.last().unwrap().starts_with(r#"{"event":"summary""#),
            "{v:?}: {run:?}"
        );
        assert_eq!(
            events.iter().filter(|e| e["event"] == "summary").count(),
            1,
            "{v:?}: {run:?}"
        );
        assert!(
            events.iter().any(|e| e["event"] == "build_start"
                && e["host"].as_str().is_some_and(|h| h.contains("seasmoke"))),
            "{v:?}: {run:?}"
        );

        lab.renew_nonce().expect("fresh paths");
        let build = |attr: &str| {
            Nixdispatch::on(&lab)
                .client(v)
                .builder(&spec)
                .plain()
                .arg("build")
                .attr(attr)
        };
        let run = build("chain").expect_exit(0);
        assert!(run.stderr.contains("mode: remote"), "{v:?}: {run:?}");
        assert!(
            !run.stderr.contains('\u{1b}') && !run.stdout.contains('\u{1b}'),
            "{v:?}: escape codes in plain output: {run:?}"
        );
        // nix colours its errors: a failure's lines must come out plain too.
        let run = build("fail").expect_exit(1);
        assert!(
            !run.stderr.contains('\u{1b}') && !run.stdout.contains('\u{1b}'),
            "{v:?}: escape codes in plain output: {run:?}"
        );
    }
}

#[test]
fn plain_output_with_debug_lines_has_no_escape_codes() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let run = Nixdispatch::on(&lab)
        .seasmoke()
        .plain()
        .args(["-vv", "build"])
        .attr("hello")
        .expect_exit(0);
    assert!(
        !run.stderr.contains('\u{1b}'),
        "escape codes in plain output: {run:?}"
    );
}

// ----- 9. batching under latency -------------------------------------------------------------

#[test]
fn many_paths_under_latency_take_few_connections() {
    let Some(lab) = lab_with(|o| {
        o.latency = Duration::from_millis(30);
        o.fixtures = vec![Fixture::wide("wide200", 200)];
    }) else {
        return;
    };
    lab.build_on_builder(&lab.flake_ref("wide200"))
        .expect("seed seasmoke");
    let before = lab.builder_connections();
    // One query per path would cost 200 round trips of 60 ms and more: still far inside BOUND.
    let plan = plan(&lab, ClientNix::V2_8, &lab.builder_spec(), "wide200");
    assert_eq!(plan["mode"], "substitute", "{plan}");
    assert_eq!(plan["counts"]["from_builders"], 201, "{plan}");
    let used = lab.builder_connections() - before;
    assert!(used <= 2, "{used} ssh connections for one plan");
}
