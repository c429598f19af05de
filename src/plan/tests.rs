use super::*;

const X86: &str = "x86_64-linux";
const CACHE: &str = "https://cache.nixos.org";

/// A store path whose hash is derived from its name, so tests can name paths.
fn sp(name: &str) -> StorePath {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    let hash: String = (0..32)
        .map(|_| {
            h = h
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[(h >> 59) as usize] as char
        })
        .collect();
    StorePath::parse(&format!("/nix/store/{hash}-{name}")).unwrap_or_else(|e| panic!("{e}"))
}

fn out(name: &str) -> StorePath {
    sp(name)
}

fn drv_path(name: &str) -> StorePath {
    sp(&format!("{name}.drv"))
}

/// A derivation `name` with output `out` = `out(name)`, using the `out` of each dep.
fn drv(name: &str, deps: &[&str]) -> Derivation {
    Derivation {
        path: drv_path(name),
        outputs: [("out".to_string(), out(name))].into_iter().collect(),
        input_drvs: deps
            .iter()
            .map(|d| (drv_path(d), vec!["out".to_string()]))
            .collect(),
        input_srcs: Vec::new(),
        system: X86.into(),
        required_features: Vec::new(),
        prefer_local: false,
    }
}

/// A builder with an id of its own (unique in the test process), probed or not.
fn builder(line: &str, reachable: bool) -> Builder {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = BuilderId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut b = Builder::declared_for_test(id, line);
    if reachable {
        b.set_status(crate::builder::Status::Verified { connection: None });
    } else {
        b.leave_out(crate::probe::ProbeFailure::Refused);
    }
    b.systems = Vec::new();
    b
}

/// The URIs of builders by id, as the input declares them.
fn uris(input: &PlanInput, ids: &[BuilderId]) -> Vec<String> {
    ids.iter()
        .filter_map(|id| input.builders.iter().find(|b| b.id == *id))
        .map(|b| b.machine.uri.to_string())
        .collect()
}

fn seasmoke() -> Builder {
    builder("ssh-ng://seasmoke x86_64-linux - 4 1", true)
}

fn input(drvs: Vec<Derivation>, wanted: &[&str]) -> PlanInput {
    PlanInput {
        graph: Graph {
            derivations: drvs.into_iter().map(|d| (d.path.clone(), d)).collect(),
            wanted: wanted.iter().map(|w| out(w)).collect(),
        },
        availability: Availability::default(),
        builders: Vec::new(),
        forced: Forced::Auto,
        local_system: X86.into(),
        ..PlanInput::default()
    }
}

fn valid(input: &mut PlanInput, names: &[&str]) {
    input
        .availability
        .valid_locally
        .extend(names.iter().map(|n| out(n)));
}

fn cached(input: &mut PlanInput, name: &str, refs: &[&str]) {
    let hit = CacheHit {
        uri: CACHE.into(),
        references: refs.iter().map(|r| out(r)).collect(),
        nar_size: None,
    };
    input.availability.in_caches.insert(out(name), hit);
}

fn on_builder(input: &mut PlanInput, name: &str, uri: &str, substitutable: bool, refs: &[&str]) {
    // The builder the test declared with that URI (none: a store no builder is).
    let builder = input
        .builders
        .iter()
        .find(|b| b.machine.uri == uri)
        .map_or(BuilderId(usize::MAX), |b| b.id);
    let hit = BuilderHit {
        builder,
        references: refs.iter().map(|r| out(r)).collect(),
        substitutable,
        nar_size: None,
    };
    input
        .availability
        .on_builders
        .entry(out(name))
        .or_default()
        .push(hit);
}

fn run(input: &PlanInput) -> Plan {
    plan(input).unwrap_or_else(|e| panic!("impossible: {e}"))
}

fn impossible(input: &PlanInput) -> String {
    match plan(input) {
        Ok(p) => panic!("planned {p:?}"),
        Err(e) => e.0,
    }
}

fn source_of(plan: &Plan, name: &str) -> (Source, Option<String>) {
    let path = out(name);
    match plan.paths.iter().find(|p| p.path == path) {
        Some(p) => (p.source, p.from.clone()),
        None => panic!("{name} not in {:?}", plan.paths),
    }
}

fn counts(
    valid_locally: usize,
    from_caches: usize,
    from_builders: usize,
    to_build: usize,
) -> Counts {
    Counts {
        valid_locally,
        from_caches,
        from_builders,
        to_build,
    }
}

// --- the walk ---------------------------------------------------------------------------

#[test]
fn everything_valid_is_noop_whatever_the_forced_mode() {
    for forced in [
        Forced::Auto,
        Forced::Substitute,
        Forced::Remote,
        Forced::Local,
    ] {
        let mut i = input(
            vec![drv("hello", &["glibc"]), drv("glibc", &[])],
            &["hello"],
        );
        valid(&mut i, &["hello"]);
        i.forced = forced;
        let p = run(&i);
        assert_eq!(p.mode, Mode::Noop, "{forced:?}");
        assert_eq!(p.reason, "everything is already in the local store");
        // A valid path ends the walk: glibc is not even looked at.
        assert_eq!(p.counts, counts(1, 0, 0, 0));
        assert!(p.paths.is_empty() && p.builds.is_empty());
    }
}

#[test]
fn cache_hits_are_substituted_and_their_references_walked() {
    let mut i = input(
        vec![drv("hello", &["glibc"]), drv("glibc", &[])],
        &["hello"],
    );
    cached(&mut i, "hello", &["hello", "glibc", "libidn"]);
    cached(&mut i, "glibc", &[]);
    valid(&mut i, &["libidn"]);
    let p = run(&i);
    assert_eq!(p.mode, Mode::Substitute);
    assert_eq!(p.counts, counts(1, 2, 0, 0));
    assert_eq!(source_of(&p, "hello"), (Source::Cache, Some(CACHE.into())));
    assert_eq!(source_of(&p, "glibc"), (Source::Cache, Some(CACHE.into())));
    assert_eq!(
        p.reason,
        "nothing needs building: 2 paths come from https://cache.nixos.org"
    );
}

/// hello on seasmoke (substitutable, referring to glibc), glibc in the cache.
fn hello_on_seasmoke_glibc_cached() -> PlanInput {
    let mut i = input(
        vec![drv("hello", &["glibc"]), drv("glibc", &[])],
        &["hello"],
    );
    i.builders = vec![seasmoke()];
    on_builder(&mut i, "hello", "ssh-ng://seasmoke", true, &["glibc"]);
    cached(&mut i, "glibc", &[]);
    i
}

#[test]
fn a_substitutable_path_on_a_reachable_builder_comes_from_it() {
    let i = hello_on_seasmoke_glibc_cached();
    let p = run(&i);
    assert_eq!(p.mode, Mode::Substitute);
    assert_eq!(
        source_of(&p, "hello"),
        (Source::Builder, Some("ssh-ng://seasmoke".into()))
    );
    assert_eq!(p.counts, counts(0, 1, 1, 0));
    assert_eq!(
        uris(&i, &p.builder_substituters),
        vec!["ssh-ng://seasmoke".to_string()]
    );
    assert_eq!(
        p.reason,
        "nothing needs building: 1 path comes from https://cache.nixos.org and 1 from seasmoke"
    );
}

#[test]
fn an_untrusting_daemon_takes_no_builder_store_as_a_substituter() {
    let mut i = hello_on_seasmoke_glibc_cached();
    i.daemon = Some(Daemon { decides: true });
    let p = run(&i);
    // Copied back by the build hook, not substituted.
    assert!(p.builder_substituters.is_empty());
    assert_eq!(
        source_of(&p, "hello"),
        (Source::Builder, Some("ssh-ng://seasmoke".into()))
    );
    assert!(p.reason.contains("the nix daemon decides"), "{}", p.reason);
}

#[test]
fn a_cache_wins_over_a_builder() {
    let mut i = input(vec![drv("hello", &[])], &["hello"]);
    i.builders = vec![seasmoke()];
    cached(&mut i, "hello", &[]);
    on_builder(&mut i, "hello", "ssh-ng://seasmoke", true, &[]);
    let p = run(&i);
    assert_eq!(source_of(&p, "hello").0, Source::Cache);
    assert!(p.builder_substituters.is_empty());
}

#[test]
fn unreachable_builders_hold_nothing() {
    let mut i = input(vec![drv("hello", &[])], &["hello"]);
    i.builders = vec![builder("ssh-ng://seasmoke x86_64-linux", false)];
    on_builder(&mut i, "hello", "ssh-ng://seasmoke", true, &[]);
    let p = run(&i);
    assert_eq!(p.mode, Mode::Local);
    assert_eq!(source_of(&p, "hello"), (Source::Build, None));
}

#[test]
fn an_unsigned_output_on_a_builder_is_copied_back_by_the_hook_after_its_inputs() {
    let mut i = input(
        vec![drv("hello", &["glibc"]), drv("glibc", &[])],
        &["hello"],
    );
    i.builders = vec![seasmoke()];
    on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &["glibc"]);
    on_builder(&mut i, "glibc", "ssh-ng://seasmoke", false, &[]);
    let p = run(&i);
    assert_eq!(p.mode, Mode::Substitute);
    assert_eq!(
        source_of(&p, "hello"),
        (Source::Builder, Some("ssh-ng://seasmoke".into()))
    );
    // The hook needs glibc valid here first: it too is copied back (it is held there).
    assert_eq!(
        source_of(&p, "glibc"),
        (Source::Builder, Some("ssh-ng://seasmoke".into()))
    );
    assert_eq!(p.counts, counts(0, 0, 2, 0));
    // Nothing is substituted from the builder's store, so it is no substituter.
    assert!(p.builder_substituters.is_empty());
    assert_eq!(
        p.reason,
        "nothing needs building: 2 paths come from seasmoke"
    );
}

#[test]
fn copied_back_derivations_walk_their_inputs_which_may_need_building() {
    let mut i = input(
        vec![drv("hello", &["glibc"]), drv("glibc", &[])],
        &["hello"],
    );
    i.builders = vec![seasmoke()];
    on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &[]);
    let p = run(&i);
    assert_eq!(source_of(&p, "hello").0, Source::Builder);
    assert_eq!(
        source_of(&p, "glibc"),
        (Source::Build, Some("ssh-ng://seasmoke".into()))
    );
    assert_eq!(p.counts, counts(0, 0, 1, 1));
    assert_eq!(p.mode, Mode::Remote);
}

#[test]
fn copy_back_needs_a_builder_whose_entry_takes_the_derivation() {
    let mut i = input(vec![drv("hello", &[])], &["hello"]);
    i.builders = vec![builder("ssh-ng://seasmoke aarch64-linux", true)];
    on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &[]);
    let p = run(&i);
    assert_eq!(source_of(&p, "hello"), (Source::Build, None));
    assert_eq!(p.mode, Mode::Local);
}

#[test]
fn prefer_local_derivations_are_never_copied_back() {
    let mut hello = drv("hello", &[]);
    hello.prefer_local = true;
    let mut i = input(vec![hello], &["hello"]);
    i.builders = vec![seasmoke()];
    on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &[]);
    let p = run(&i);
    assert_eq!(source_of(&p, "hello"), (Source::Build, None));
    assert_eq!(p.mode, Mode::Local);
    assert_eq!(
        p.reason,
        "1 derivation must be built and it prefers local builds (preferLocalBuild)"
    );
}

#[test]
fn all_missing_outputs_of_a_derivation_go_together() {
    let mut multi = drv("openssl", &[]);
    multi.outputs.insert("dev".into(), out("openssl-dev"));
    multi.outputs.insert("man".into(), out("openssl-man"));
    let mut i = input(vec![multi], &["openssl", "openssl-dev"]);
    valid(&mut i, &["openssl-man"]);
    cached(&mut i, "openssl-dev", &[]);
    let p = run(&i);
    // openssl must be built; that build also produces dev, so dev is not fetched as well.
    // man is valid but nothing needs it, so the walk never counts it.
    assert_eq!(p.counts, counts(0, 0, 0, 1));
    assert_eq!(source_of(&p, "openssl").0, Source::Build);
    assert_eq!(source_of(&p, "openssl-dev").0, Source::Build);
    assert_eq!(p.paths.len(), 2);
    assert_eq!(p.builds.len(), 1);
}

#[test]
fn diamonds_are_visited_once() {
    let drvs = vec![
        drv("app", &["left", "right"]),
        drv("left", &["base"]),
        drv("right", &["base"]),
        drv("base", &[]),
    ];
    let mut i = input(drvs, &["app"]);
    i.builders = vec![seasmoke()];
    let p = run(&i);
    assert_eq!(p.counts, counts(0, 0, 0, 4));
    assert_eq!(p.paths.len(), 4);
    let mut sorted = p.paths.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(sorted, p.paths, "paths are sorted");
    assert_eq!(
        p.reason,
        "4 derivations must be built and seasmoke is reachable"
    );
}

#[test]
fn input_srcs_are_walked_and_orphans_left_to_nix() {
    let mut hello = drv("hello", &[]);
    hello.input_srcs = vec![out("builder.sh"), out("patch")];
    let mut i = input(vec![hello], &["hello", "lost"]);
    valid(&mut i, &["builder.sh"]);
    cached(&mut i, "patch", &[]);
    cached(&mut i, "hello", &[]);
    let p = run(&i);
    // hello is cached, so its sources are not needed; `lost` is produced by nothing.
    assert_eq!(source_of(&p, "lost"), (Source::Build, None));
    assert_eq!(p.counts, counts(0, 1, 0, 0));
    assert_eq!(p.mode, Mode::Substitute);
    assert_eq!(
        p.reason,
        "nothing needs building: 1 path comes from https://cache.nixos.org, and 1 path nobody has (nix will say why)"
    );

    i.availability.in_caches.remove(&out("hello"));
    let p = run(&i);
    assert_eq!(source_of(&p, "patch").0, Source::Cache);
    assert_eq!(p.counts, counts(1, 1, 0, 1));
}

#[test]
fn unknown_input_derivations_are_left_to_nix() {
    let mut i = input(vec![drv("hello", &["not-in-graph"])], &["hello"]);
    i.builders = vec![seasmoke()];
    let p = run(&i);
    assert_eq!(p.counts.to_build, 1);
    assert_eq!(p.paths.len(), 1);
}

// --- forced modes -----------------------------------------------------------------------

#[test]
fn forced_local_ignores_builders_entirely() {
    let mut i = input(
        vec![drv("hello", &["glibc"]), drv("glibc", &[])],
        &["hello"],
    );
    i.builders = vec![seasmoke()];
    i.forced = Forced::Local;
    on_builder(&mut i, "hello", "ssh-ng://seasmoke", true, &[]);
    on_builder(&mut i, "glibc", "ssh-ng://seasmoke", false, &[]);
    let p = run(&i);
    assert_eq!(p.mode, Mode::Local);
    assert_eq!(p.reason, "--mode local: 2 derivations will be built here");
    assert_eq!(source_of(&p, "hello"), (Source::Build, None));
    assert_eq!(source_of(&p, "glibc"), (Source::Build, None));
    assert!(p.builder_substituters.is_empty());
    assert!(p.builds.iter().all(|b| b.from.is_none()));
}

#[test]
fn forced_local_with_nothing_to_build_is_still_local() {
    let mut i = input(vec![drv("hello", &[])], &["hello"]);
    i.forced = Forced::Local;
    cached(&mut i, "hello", &[]);
    let p = run(&i);
    assert_eq!(p.mode, Mode::Local);
    assert_eq!(
        p.reason,
        "--mode local: nothing needs building; 1 path comes from https://cache.nixos.org"
    );
}

#[test]
fn forced_substitute_is_impossible_when_something_must_be_built() {
    let drvs = vec![drv("app", &["b", "c"]), drv("b", &[]), drv("c", &[])];
    let mut i = input(drvs, &["app"]);
    i.forced = Forced::Substitute;
    i.builders = vec![seasmoke()];
    let why = impossible(&i);
    assert!(
        why.starts_with("--mode substitute, but 3 derivations must be built ("),
        "{why}"
    );
    assert!(
        why.contains(" and 1 more): no cache or builder has them"),
        "{why}"
    );

    let mut i = input(vec![drv("app", &[])], &["app"]);
    i.forced = Forced::Substitute;
    assert_eq!(
        impossible(&i),
        "--mode substitute, but 1 derivation must be built (app): no cache or builder has it"
    );
}

#[test]
fn forced_substitute_when_nothing_must_be_built() {
    let mut i = input(vec![drv("hello", &[])], &["hello"]);
    i.forced = Forced::Substitute;
    i.builders = vec![seasmoke()];
    on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &[]);
    let p = run(&i);
    assert_eq!(p.mode, Mode::Substitute);
    assert_eq!(p.counts, counts(0, 0, 1, 0));
}

#[test]
fn forced_remote_needs_a_reachable_builder_for_every_build() {
    let mut i = input(vec![drv("hello", &[])], &["hello"]);
    i.forced = Forced::Remote;
    assert_eq!(
        impossible(&i),
        "--mode remote, but no builders are configured: add one with --builder or nix's builders setting"
    );

    i.builders = vec![builder("ssh-ng://seasmoke x86_64-linux", false)];
    assert_eq!(impossible(&i), "--mode remote, but no reachable builder can build x86_64-linux: seasmoke: connection refused");

    i.builders = vec![builder("ssh-ng://seasmoke aarch64-linux", true)];
    assert_eq!(
        impossible(&i),
        "--mode remote, but no reachable builder can build x86_64-linux: seasmoke is declared for aarch64-linux only"
    );

    i.builders.push(seasmoke_named("other"));
    let p = run(&i);
    assert_eq!(p.mode, Mode::Remote);
    assert_eq!(
        p.reason,
        "--mode remote: 1 derivation must be built and other is reachable"
    );
    assert_eq!(
        source_of(&p, "hello"),
        (Source::Build, Some("ssh-ng://other".into()))
    );
    assert!(p.all_builds_remote());
}

#[test]
fn forced_remote_names_missing_features() {
    let mut kvm = drv("vm-test", &[]);
    kvm.required_features = vec!["kvm".into()];
    let mut i = input(vec![kvm], &["vm-test"]);
    i.forced = Forced::Remote;
    i.builders = vec![seasmoke()];
    assert_eq!(
        impossible(&i),
        "--mode remote, but no reachable builder can build x86_64-linux with kvm: seasmoke lacks feature kvm"
    );
}

#[test]
fn forced_remote_with_nothing_to_build() {
    let mut i = input(vec![drv("hello", &[])], &["hello"]);
    i.forced = Forced::Remote;
    cached(&mut i, "hello", &[]);
    i.builders = vec![builder("ssh-ng://seasmoke x86_64-linux", false)];
    assert_eq!(
        impossible(&i),
        "--mode remote, but no builder is reachable (seasmoke: connection refused)"
    );
    i.builders = vec![seasmoke()];
    let p = run(&i);
    assert_eq!(p.mode, Mode::Remote);
    assert_eq!(
        p.reason,
        "--mode remote: nothing needs building; 1 path comes from https://cache.nixos.org"
    );
}

// --- auto -------------------------------------------------------------------------------

fn seasmoke_named(host: &str) -> Builder {
    builder(&format!("ssh-ng://{host} x86_64-linux"), true)
}

#[test]
fn auto_builds_remotely_when_a_builder_takes_the_work() {
    let drvs = vec![drv("a", &["b"]), drv("b", &["c"]), drv("c", &[])];
    let mut i = input(drvs, &["a"]);
    i.builders = vec![seasmoke()];
    let p = run(&i);
    assert_eq!(p.mode, Mode::Remote);
    assert_eq!(
        p.reason,
        "3 derivations must be built and seasmoke is reachable"
    );
    assert!(p
        .builds
        .iter()
        .all(|b| b.from.as_deref() == Some("ssh-ng://seasmoke")));
    assert!(p.all_builds_remote());
    assert_eq!(p.counts.to_build, 3);
}

#[test]
fn auto_picks_speed_then_jobs_then_order() {
    let drvs = vec![drv("a", &[])];
    let mut i = input(drvs, &["a"]);
    let pick = |i: &PlanInput| run(i).builds[0].from.clone().unwrap_or_default();

    i.builders = vec![
        builder("ssh-ng://slow x86_64-linux - 16 1", true),
        builder("ssh-ng://fast x86_64-linux - 1 2.5", true),
        builder("ssh-ng://down x86_64-linux - 64 10", false),
    ];
    assert_eq!(pick(&i), "ssh-ng://fast");

    i.builders = vec![
        builder("ssh-ng://few x86_64-linux - 2 2", true),
        builder("ssh-ng://many x86_64-linux - 8 2", true),
    ];
    assert_eq!(pick(&i), "ssh-ng://many");

    i.builders = vec![
        builder("ssh-ng://first x86_64-linux - 8 2", true),
        builder("ssh-ng://second x86_64-linux - 8 2", true),
    ];
    assert_eq!(pick(&i), "ssh-ng://first");
}

#[test]
fn auto_routes_each_derivation_to_a_builder_that_takes_it() {
    let mut arm = drv("arm", &["x86"]);
    arm.system = "aarch64-linux".into();
    let mut kvm = drv("kvm", &[]);
    kvm.required_features = vec!["kvm".into()];
    let mut i = input(vec![arm, drv("x86", &[]), kvm], &["arm", "kvm"]);
    i.builders = vec![
        builder("ssh-ng://pi aarch64-linux", true),
        builder("ssh-ng://big x86_64-linux - 8 4 kvm", true),
        builder("ssh-ng://bench x86_64-linux - 8 9 kvm benchmark", true),
    ];
    let p = run(&i);
    let from = |n: &str| source_of(&p, n).1.unwrap_or_default();
    assert_eq!(from("arm"), "ssh-ng://pi");
    assert_eq!(
        from("x86"),
        "ssh-ng://big",
        "bench takes only benchmark derivations"
    );
    assert_eq!(from("kvm"), "ssh-ng://big");
    assert_eq!(
        p.reason,
        "3 derivations must be built and pi and big are reachable"
    );
}

#[test]
fn an_entry_without_systems_takes_the_local_system() {
    let mut i = input(vec![drv("a", &[])], &["a"]);
    i.builders = vec![builder("ssh-ng://seasmoke", true)];
    assert_eq!(run(&i).mode, Mode::Remote);
    i.local_system = "aarch64-linux".into();
    assert_eq!(run(&i).mode, Mode::Local);
}

#[test]
fn probed_systems_must_agree_with_the_entry() {
    let mut i = input(vec![drv("a", &[])], &["a"]);
    let mut b = seasmoke();
    b.systems = vec!["aarch64-linux".into()];
    i.builders = vec![b];
    let p = run(&i);
    assert_eq!(p.mode, Mode::Local);
    assert_eq!(p.reason, "1 derivation must be built and no builder can take it (seasmoke builds aarch64-linux only)");
    i.builders[0].systems = vec!["x86_64-linux".into(), "i686-linux".into()];
    assert_eq!(run(&i).mode, Mode::Remote);
}

#[test]
fn auto_keeps_prefer_local_derivations_here() {
    let mut cfg = drv("config-file", &[]);
    cfg.prefer_local = true;
    let mut i = input(vec![drv("app", &["config-file"]), cfg], &["app"]);
    i.builders = vec![seasmoke()];
    let p = run(&i);
    assert_eq!(p.mode, Mode::Remote);
    assert_eq!(source_of(&p, "config-file"), (Source::Build, None));
    assert_eq!(source_of(&p, "app").1.as_deref(), Some("ssh-ng://seasmoke"));
    assert!(!p.all_builds_remote());
    assert_eq!(
        p.reason,
        "2 derivations must be built and seasmoke is reachable (1 of them will build here)"
    );
}

#[test]
fn auto_builds_locally_and_says_why_when_no_builder_takes_the_work() {
    let drvs = vec![drv("a", &["b"]), drv("b", &["c"]), drv("c", &[])];
    let mut i = input(drvs, &["a"]);
    assert_eq!(
        run(&i).reason,
        "3 derivations must be built and no builders are configured"
    );

    let mut down = builder("ssh-ng://seasmoke x86_64-linux", false);
    down.leave_out(crate::probe::ProbeFailure::TimedOut(Some(
        std::time::Duration::from_secs(3),
    )));
    i.builders = vec![down.clone()];
    let p = run(&i);
    assert_eq!(p.mode, Mode::Local);
    assert_eq!(
        p.reason,
        "3 derivations must be built and the builder is unreachable (seasmoke: timed out after 3s)"
    );
    assert!(p.builds.iter().all(|b| b.from.is_none()));
    assert!(p.paths.iter().all(|p| p.from.is_none()));

    // Left out as this machine: answered, not unreachable.
    let mut me = builder("ssh-ng://vermax x86_64-linux", false);
    me.leave_out(crate::probe::ProbeFailure::ThisMachine);
    i.builders = vec![me];
    let p = run(&i);
    assert_eq!(p.mode, Mode::Local);
    assert!(
        p.reason.starts_with(
            "3 derivations must be built and the builder is unusable (vermax: this machine"
        ),
        "{}",
        p.reason
    );

    i.builders = vec![down, builder("ssh-ng://pi aarch64-linux", true)];
    assert_eq!(
        run(&i).reason,
        "3 derivations must be built and no builder can take them (seasmoke: timed out after 3s; pi is declared for aarch64-linux only)"
    );
}

#[test]
fn reasons_list_every_source() {
    let names: Vec<String> = (0..45).map(|n| format!("p{n}")).collect();
    let drvs: Vec<Derivation> = names.iter().map(|n| drv(n, &[])).collect();
    let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut i = input(drvs, &wanted);
    i.builders = vec![seasmoke(), seasmoke_named("other")];
    for n in &names[..40] {
        cached(&mut i, n, &[]);
    }
    for n in &names[40..42] {
        on_builder(&mut i, n, "ssh-ng://seasmoke", true, &[]);
    }
    for n in &names[42..] {
        on_builder(&mut i, n, "ssh-ng://other", false, &[]);
    }
    let p = run(&i);
    assert_eq!(
        p.reason,
        "nothing needs building: 40 paths come from https://cache.nixos.org, 3 from other and 2 from seasmoke"
    );
    assert_eq!(p.counts, counts(0, 40, 5, 0));
    assert_eq!(
        uris(&i, &p.builder_substituters),
        vec!["ssh-ng://seasmoke".to_string()]
    );
}

#[test]
fn json_has_the_contract_fields() {
    let mut i = input(vec![drv("hello", &[])], &["hello"]);
    i.builders = vec![seasmoke()];
    let p = run(&i);
    let json = serde_json::to_value(&p).unwrap_or_default();
    let expected = serde_json::json!({
        "mode": "remote",
        "reason": "1 derivation must be built and seasmoke is reachable",
        "counts": {"valid_locally": 0, "from_caches": 0, "from_builders": 0, "to_build": 1},
        "paths": [{"path": out("hello").as_str(), "source": "build", "from": "ssh-ng://seasmoke"}],
    });
    assert_eq!(json, expected);
    let local = serde_json::to_value(PlannedPath {
        path: out("x"),
        source: Source::Build,
        from: None,
    })
    .unwrap_or_default();
    assert_eq!(local["from"], serde_json::Value::Null);
    assert_eq!(
        serde_json::to_value(Source::Cache).unwrap_or_default(),
        "cache"
    );
    assert_eq!(
        serde_json::to_value(Source::Builder).unwrap_or_default(),
        "builder"
    );
    assert_eq!(serde_json::to_value(Mode::Noop).unwrap_or_default(), "noop");
    assert_eq!(
        serde_json::to_value(Mode::Substitute).unwrap_or_default(),
        "substitute"
    );
    assert_eq!(
        serde_json::to_value(Mode::Local).unwrap_or_default(),
        "local"
    );
}

#[test]
fn impossible_maps_to_exit_3() {
    assert_eq!(crate::Error::from(Impossible("x".into())).code(), 3);
}

#[test]
fn thousands_of_paths_plan_fast_and_deterministically() {
    // 6,000 derivations, each depending on the two before it, plus 3,000 cached runtime
    // references: deep, wide and full of diamonds.
    let n = 6000;
    let names: Vec<String> = (0..n).map(|k| format!("pkg{k}")).collect();
    let mut drvs = Vec::with_capacity(n);
    for k in 0..n {
        let deps: Vec<&str> = (k.saturating_sub(2)..k)
            .map(|j| names[j].as_str())
            .collect();
        drvs.push(drv(&names[k], &deps));
    }
    let mut i = input(drvs, &[names[n - 1].as_str()]);
    i.builders = vec![seasmoke(), seasmoke_named("other")];
    for k in (0..n).step_by(2) {
        let refs: Vec<String> = vec![format!("rt{k}")];
        let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
        cached(&mut i, &names[k], &refs);
        cached(&mut i, &format!("rt{k}"), &[]);
    }
    valid(&mut i, &["pkg1"]);
    let started = std::time::Instant::now();
    let p = run(&i);
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs_f64() < 3.0, "took {elapsed:?}");
    assert_eq!(p.counts.to_build, n / 2 - 1);
    // pkg0 (and its rt0) is needed only by pkg1, which is valid, and by the cached pkg2.
    assert_eq!(p.counts.from_caches, n - 2);
    assert_eq!(p.counts.valid_locally, 1);
    assert_eq!(p, run(&i), "deterministic");
}

#[test]
fn falling_back_builds_the_rest_here_and_says_why() {
    let drvs = vec![drv("a", &["b"]), drv("b", &[])];
    let mut i = input(drvs, &["a"]);
    i.builders = vec![seasmoke()];
    assert_eq!(run(&i).mode, Mode::Remote);
    i.fell_back = Some("seasmoke stopped answering".into());
    let p = run(&i);
    assert_eq!(p.mode, Mode::Local);
    assert_eq!(
        p.reason,
        "seasmoke stopped answering, so the rest is built locally"
    );
    assert!(p.builds.iter().all(|b| b.from.is_none()));
    // No builder is handed to nix any more.
    let flags: Vec<String> =
        crate::dispatch::mode_flags(&p, &i.builders, &crate::nix::version::tests::NIX_2_26)
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
    assert!(
        flags.windows(3).any(|w| w == ["--option", "builders", ""]),
        "{flags:?}"
    );
}

fn unverified_seasmoke() -> Builder {
    let mut b = seasmoke();
    b.set_status(crate::builder::Status::Unverified {
        alive: Some(true),
        note: Some("alive; not verified".to_owned()),
        connection: None,
    });
    b
}

#[test]
fn a_single_user_plan_is_left_alone() {
    let mut i = input(vec![drv("a", &[])], &["a"]);
    i.builders = vec![unverified_seasmoke()];
    let p = run(&i);
    assert_eq!(p.mode, Mode::Remote);
    assert_eq!(
        p.reason,
        "1 derivation must be built and seasmoke is reachable"
    );
    assert!(!p.daemon_decides);
}

#[test]
fn an_unverified_builder_leaves_the_choice_to_nix_and_says_so() {
    let mut i = input(vec![drv("a", &[])], &["a"]);
    i.builders = vec![unverified_seasmoke()];
    i.daemon = Some(Daemon { decides: false });
    let p = run(&i);
    assert!(!p.daemon_decides);
    assert!(
        p.reason.contains("seasmoke is alive but not verified"),
        "{}",
        p.reason
    );
    assert!(p.reason.contains("nix decides"), "{}", p.reason);
}

#[test]
fn an_untrusted_user_is_told_the_daemon_decides() {
    let mut i = input(vec![drv("a", &[])], &["a"]);
    i.builders = vec![seasmoke()];
    i.daemon = Some(Daemon { decides: true });
    let p = run(&i);
    assert!(p.daemon_decides);
    assert!(p.reason.contains("the nix daemon decides"), "{}", p.reason);
    assert!(!p.reason.contains("not verified"), "{}", p.reason);
    // A noop stays a noop, the daemon's to decide all the same.
    let noop = run(&PlanInput {
        checked_noop: Some(2),
        ..i
    });
    assert_eq!(noop.mode, Mode::Noop);
    assert_eq!(noop.reason, NOOP_REASON);
    assert_eq!(noop.counts.valid_locally, 2);
    assert!(noop.daemon_decides);
}

#[test]
fn with_nix_fallback_a_substitute_plan_says_what_nix_does() {
    let mut i = input(vec![drv("a", &[])], &["a"]);
    cached(&mut i, "a", &[]);
    i.nix_fallback = true;
    let p = run(&i);
    assert_eq!(p.mode, Mode::Substitute);
    assert!(
        p.reason
            .ends_with("; with --fallback, nix builds whatever a source fails to give"),
        "{}",
        p.reason
    );
}

#[test]
fn nix_flags_force_a_mode() {
    assert_eq!(Forced::Auto.under_nix_flags(true, false), Ok(Forced::Local));
    assert_eq!(
        Forced::Auto.under_nix_flags(false, true),
        Ok(Forced::Remote)
    );
    assert_eq!(
        Forced::Substitute.under_nix_flags(true, true),
        Ok(Forced::Substitute)
    );
    assert!(Forced::Local.under_nix_flags(false, true).is_err());
}

/// What a history that saw `two quick builds with 6 MB outputs` knows, here and on seasmoke.
fn quick_big_outputs(local_secs: f64, remote_secs: f64, link: f64) -> Knowledge {
    let mut k = Knowledge {
        consulted: true,
        local_jobs: 2,
        ..Knowledge::default()
    };
    for name in ["one", "two"] {
        k.build_secs
            .insert((name.into(), cost::LOCAL.into()), local_secs);
        k.build_secs
            .insert((name.into(), "ssh-ng://seasmoke".into()), remote_secs);
        k.output_bytes.insert(name.into(), 6_000_000);
    }
    k.bandwidth.insert("ssh-ng://seasmoke".into(), link);
    k
}

fn two_quick_builds(knowledge: Knowledge) -> PlanInput {
    let mut i = input(vec![drv("one", &[]), drv("two", &[])], &["one", "two"]);
    i.builders = vec![seasmoke()];
    i.knowledge = knowledge;
    i
}

#[test]
fn quick_builds_behind_a_slow_link_build_here_and_the_reason_names_the_estimate() {
    let p = run(&two_quick_builds(quick_big_outputs(2.0, 1.0, 1_000_000.0)));
    assert_eq!(p.mode, Mode::Local);
    assert!(p.builds.iter().all(|b| b.from.is_none()), "{:?}", p.builds);
    assert_eq!(
        p.reason,
        "2 derivations must be built: about 2 s here against about 12 s through seasmoke \
         (12.0 MB to copy back at 1.0 MB/s)"
    );
    let modes: Vec<(Mode, Option<f64>)> = p.estimates.iter().map(|e| (e.mode, e.secs)).collect();
    assert_eq!(
        modes,
        [(Mode::Local, Some(2.0)), (Mode::Remote, Some(12.0))]
    );
}

#[test]
fn long_builds_on_a_fast_link_stay_remote_with_both_estimates_in_the_reason() {
    let p = run(&two_quick_builds(quick_big_outputs(
        60.0,
        20.0,
        100_000_000.0,
    )));
    assert_eq!(p.mode, Mode::Remote);
    assert_eq!(
        p.reason,
        "2 derivations must be built and seasmoke is reachable; about 20 s through seasmoke \
         against about 60 s here"
    );
}

#[test]
fn quick_builds_that_would_save_under_two_seconds_stay_on_the_builder() {
    // 0.1 s here against 1.1 s through seasmoke: ten times faster, but only a second saved.
    let p = run(&two_quick_builds(quick_big_outputs(
        0.1,
        0.05,
        12_000_000.0,
    )));
    assert_eq!(p.mode, Mode::Remote, "{}", p.reason);
}

#[test]
fn a_close_call_keeps_the_presence_rule() {
    // Local 10 s against remote 11 s: within the margin, the remote plan stands.
    let p = run(&two_quick_builds(quick_big_outputs(
        10.0,
        10.0,
        6_000_000.0,
    )));
    assert_eq!(p.mode, Mode::Remote);
}

#[test]
fn without_enough_history_the_choice_is_presence_and_the_reason_says_so() {
    let mut k = quick_big_outputs(2.0, 1.0, 1_000_000.0);
    k.build_secs
        .remove(&("two".to_string(), cost::LOCAL.to_string()));
    let p = run(&two_quick_builds(k));
    assert_eq!(p.mode, Mode::Remote);
    assert_eq!(
        p.reason,
        "2 derivations must be built and seasmoke is reachable; no estimate was used: the \
         history does not know two on this machine"
    );
    assert_eq!(p.estimates[0].secs, None);
    assert_eq!(p.estimates[1].secs, Some(12.0));

    // No history consulted at all (a forced mode, or none kept): today's plan, word for word.
    let p = run(&two_quick_builds(Knowledge::default()));
    assert_eq!(
        p.reason,
        "2 derivations must be built and seasmoke is reachable"
    );
    assert!(p.estimates.is_empty());
}

#[test]
fn a_builder_that_holds_outputs_is_never_traded_for_a_local_build() {
    let mut i = two_quick_builds(quick_big_outputs(2.0, 1.0, 1_000_000.0));
    let uri = "ssh-ng://seasmoke";
    on_builder(&mut i, "one", uri, false, &[]);
    let p = run(&i);
    assert_eq!(p.mode, Mode::Remote, "{}", p.reason);
}

/// `big` in the cache and in seasmoke's store (signed), 10 MB; the links as measured.
fn big_in_cache_and_on_seasmoke(cache_rate: Option<f64>, builder_rate: Option<f64>) -> PlanInput {
    let mut i = input(vec![drv("big", &[])], &["big"]);
    i.builders = vec![seasmoke()];
    cached(&mut i, "big", &[]);
    if let Some(hit) = i.availability.in_caches.get_mut(&out("big")) {
        hit.nar_size = Some(10_000_000);
    }
    on_builder(&mut i, "big", "ssh-ng://seasmoke", true, &[]);
    let mut k = Knowledge {
        consulted: true,
        local_jobs: 1,
        ..Knowledge::default()
    };
    if let Some(rate) = cache_rate {
        k.bandwidth.insert(CACHE.into(), rate);
    }
    if let Some(rate) = builder_rate {
        k.bandwidth.insert("ssh-ng://seasmoke".into(), rate);
    }
    i.knowledge = k;
    i
}

#[test]
fn a_large_path_behind_a_slow_cache_comes_from_a_builder_measured_faster() {
    let p = run(&big_in_cache_and_on_seasmoke(
        Some(1_000_000.0),
        Some(50_000_000.0),
    ));
    assert_eq!(p.mode, Mode::Substitute);
    assert_eq!(p.paths[0].source, Source::Builder, "{:?}", p.paths);
    assert_eq!(p.paths[0].from.as_deref(), Some("ssh-ng://seasmoke"));
    assert_eq!(p.builder_substituters.len(), 1);
    assert_eq!(
        p.reason,
        "nothing needs building: 1 path comes from seasmoke; 1 path (10.0 MB) from seasmoke's \
         store rather than https://cache.nixos.org: under 1 s against about 10 s"
    );
    // nix takes a path from the first substituter that has it: the builder's store goes
    // before the cache (appended, the cache would still serve it).
    let mut i = big_in_cache_and_on_seasmoke(Some(1_000_000.0), Some(50_000_000.0));
    i.configured_substituters = vec![CACHE.into(), "file:///c".into()];
    assert_eq!(
        run(&i).substituters,
        Some(vec![
            "ssh-ng://seasmoke".to_string(),
            CACHE.into(),
            "file:///c".into()
        ])
    );
    // Dead caches stay left out.
    i.substituters = Some(vec!["file:///c".into()]);
    assert_eq!(
        run(&i).substituters,
        Some(vec!["ssh-ng://seasmoke".to_string(), "file:///c".into()])
    );
}

#[test]
fn an_untrusting_daemon_takes_the_cache_however_fast_the_builder() {
    // The daemon ignores the builder's store as a substituter from us: the cache, as nix.
    let mut i = big_in_cache_and_on_seasmoke(Some(1_000_000.0), Some(50_000_000.0));
    i.daemon = Some(Daemon { decides: true });
    let p = run(&i);
    assert_eq!(p.paths[0].source, Source::Cache, "{:?}", p.paths);
    assert!(p.builder_substituters.is_empty());
}

#[test]
fn without_both_links_measured_the_cache_comes_first_as_today() {
    let today = {
        let mut i = big_in_cache_and_on_seasmoke(None, None);
        i.knowledge = Knowledge::default();
        run(&i)
    };
    assert_eq!(today.paths[0].source, Source::Cache);
    for (cache, builder) in [
        (None, Some(50_000_000.0)),
        (Some(1_000_000.0), None),
        // Measured, but the builder is not clearly faster.
        (Some(1_000_000.0), Some(1_100_000.0)),
    ] {
        let mut i = big_in_cache_and_on_seasmoke(cache, builder);
        i.configured_substituters = vec![CACHE.into()];
        let p = run(&i);
        assert_eq!(p.substituters, None, "nix's own order");
        assert_eq!(p, today, "{cache:?} {builder:?}");
    }
}

#[test]
fn a_remote_run_is_expected_to_take_its_builds_and_the_copies_back() {
    use crate::history::{BuildSample, CopySample, Direction, History, RunEstimate, StepKind};
    let i = two_quick_builds(quick_big_outputs(60.0, 20.0, 100_000_000.0));
    let p = run(&i);
    assert_eq!(p.mode, Mode::Remote);
    let mut h = History::new();
    for name in ["one", "two"] {
        let build = BuildSample {
            at: 1,
            secs: Some(20.0),
            ok: true,
        };
        h.add_build(name, "ssh-ng://seasmoke", build);
    }
    let copy = CopySample {
        at: 1,
        direction: Direction::From,
        bytes: 6_000_000,
        secs: 3.0,
    };
    h.add_copy("one", "ssh-ng://seasmoke", copy);
    let known = RunEstimate::for_plan(&p, &i.graph, &h, |_| 4);
    let now = std::time::Instant::now();
    let left = known.remaining(now).expect("an estimate");
    // two's copy is unknown: the estimate is partial, never a made-up number.
    assert!(left.partial, "{left:?}");
    h.add_copy("two", "ssh-ng://seasmoke", copy);
    let both = RunEstimate::for_plan(&p, &i.graph, &h, |_| 4);
    let left = both.remaining(now).expect("an estimate");
    assert!(!left.partial);
    assert_eq!(
        left.secs, 23.0,
        "the builds at once, then their copies back"
    );
    assert_eq!(both.kind_of(out("one").as_str()), Some(StepKind::Copy));
}
