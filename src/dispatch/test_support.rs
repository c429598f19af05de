//! Builders, plans and argv helpers shared by the dispatch unit tests.

use crate::builder::{Builder, BuilderId};
use crate::child::Invocation;
use crate::dispatch::{Context, Steps};
use crate::nix::version::tests::NIX_2_26;
use crate::plan::{Counts, Mode, Plan, PlannedBuild};
use crate::store_path::StorePath;

pub(super) fn state(line: &str, reachable: bool) -> Builder {
    let mut b = Builder::declared_for_test(BuilderId(0), line);
    if reachable {
        b.set_status(crate::builder::Status::Verified { connection: None });
    } else {
        b.leave_out(crate::probe::ProbeFailure::Refused);
    }
    b.systems = Vec::new();
    b
}

/// seasmoke (live), deadhost (unreachable), fast (live, fractional speed, host key).
pub(super) fn builders() -> Vec<Builder> {
    let mut all = vec![
        state("ssh-ng://seasmoke x86_64-linux - 4 1", true),
        state("ssh-ng://deadhost x86_64-linux - 64 10", false),
        state(
            "ssh://me@fast:2222 x86_64-linux /k 8 2.5 kvm - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTU=",
            true,
        ),
    ];
    for (i, b) in all.iter_mut().enumerate() {
        b.id = BuilderId(i);
    }
    all
}

/// The id of the builder with that URI among [`builders`].
pub(super) fn id_of(uri: &str) -> BuilderId {
    builders()
        .iter()
        .find(|b| b.machine.uri == uri)
        .map_or(BuilderId(usize::MAX), |b| b.id)
}

pub(super) const SEASMOKE_LINE: &str = "ssh-ng://seasmoke x86_64-linux - 4 1 - - -";
pub(super) const FAST_LINE: &str =
    "ssh://me@fast:2222 x86_64-linux /k 8 2.5 kvm - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTU=";

pub(super) fn sp(n: u8) -> StorePath {
    let c = char::from(b'a' + n);
    StorePath::parse(&format!("/nix/store/{}-p{n}", c.to_string().repeat(32)))
        .unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn plan(mode: Mode, builds: Vec<Option<&str>>, substituters: &[&str]) -> Plan {
    Plan {
        mode,
        reason: String::new(),
        counts: Counts::default(),
        paths: Vec::new(),
        builds: builds
            .into_iter()
            .enumerate()
            .map(|(i, from)| PlannedBuild {
                drv: sp(i as u8),
                from: from.map(String::from),
            })
            .collect(),
        builder_substituters: substituters.iter().map(|s| id_of(s)).collect(),
        daemon_decides: false,
        substituters: None,
        estimates: Vec::new(),
        may_build_locally: true,
    }
}

pub(super) fn argv(steps: &Steps) -> Vec<String> {
    steps
        .build
        .argv()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

pub(super) fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub(super) const NIX_BUILD: &[&str] = &[
    "nix",
    "--extra-experimental-features",
    "nix-command flakes",
    "build",
    "--log-format",
    "internal-json",
    "-v",
    "--json",
];

pub(super) fn with(prefix: &[&str], rest: &[&str]) -> Vec<String> {
    v(prefix).into_iter().chain(v(rest)).collect()
}

pub(super) fn no_dead_builder(argv: &[String]) {
    assert!(!argv.iter().any(|a| a.contains("deadhost")), "{argv:?}");
}

pub(super) fn words(inv: &Invocation) -> Vec<String> {
    inv.argv()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// A hand-made plan as `plan::plan` would finish it with these builders as probed (whether
/// nix may build here).
pub(super) fn settled(plan: &Plan, builders: &[Builder]) -> Plan {
    Plan {
        may_build_locally: !plan.nothing_here(builders),
        ..plan.clone()
    }
}

/// A context with no builder, no user arguments and no environment, on Nix 2.26.
pub(super) fn bare(plan: &Plan) -> Context<'_> {
    Context {
        plan,
        builders: &[],
        nix: &NIX_2_26,
        nix_args: &[],
        env: &[],
    }
}
