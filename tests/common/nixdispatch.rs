//! A builder for one run of nixdispatch in a lab, so that a test reads as what it runs:
//!
//! ```ignore
//! let run = Nixdispatch::on(&lab).seasmoke().plain().args(["build", "--json"]).attr("chain").expect_exit(0);
//! ```
//!
//! The arguments go to nixdispatch in the order they are given. By default the client is Nix 2.8
//! and the run is bounded by [`BOUND`] (a hang bound, not a speed target).

use super::{bin, run_limited, Background, Run, BOUND};
use nixdispatch_lab::{ClientNix, Lab, LabOptions};
use std::process::Command;
use std::time::Duration;

/// One run of nixdispatch as vermax, being described (see the module docs).
#[must_use = "a run is described, not started: call run, expect_exit or background"]
pub struct Nixdispatch<'a> {
    lab: &'a Lab,
    client: ClientNix,
    args: Vec<String>,
    env: Vec<(String, String)>,
    bound: Duration,
}

impl<'a> Nixdispatch<'a> {
    /// A run on `lab`'s client, Nix 2.8, no arguments yet, bounded by [`BOUND`].
    pub fn on(lab: &'a Lab) -> Nixdispatch<'a> {
        Nixdispatch {
            lab,
            client: ClientNix::V2_8,
            args: Vec::new(),
            env: Vec::new(),
            bound: BOUND,
        }
    }

    /// `--builder SEASMOKE --progress plain build ATTR` on `lab` (Nix 2.8).
    pub fn build_on_seasmoke(lab: &'a Lab, attr: &str) -> Nixdispatch<'a> {
        Nixdispatch::on(lab)
            .seasmoke()
            .plain()
            .arg("build")
            .attr(attr)
    }

    /// The client's Nix.
    pub fn client(mut self, v: ClientNix) -> Self {
        self.client = v;
        self
    }

    /// `--builder SPEC`.
    pub fn builder(self, spec: &str) -> Self {
        self.args(["--builder", spec])
    }

    /// `--builder` with the lab's own machines line for seasmoke.
    pub fn seasmoke(self) -> Self {
        let spec = self.lab.builder_spec();
        self.builder(&spec)
    }

    /// `--progress plain`.
    pub fn plain(self) -> Self {
        self.args(["--progress", "plain"])
    }

    /// One more argument.
    pub fn arg(self, arg: &str) -> Self {
        self.args([arg])
    }

    /// `--via RUNNER` (nix or nh).
    pub fn via(self, runner: &str) -> Self {
        self.args(["--via", runner])
    }

    /// `home switch --flake LAB-FLAKE -c root@vermax`: the lab's home configuration.
    pub fn home_switch(self) -> Self {
        let flake = self.lab.flake();
        self.args(["home", "switch", "--flake", &flake, "-c", "root@vermax"])
    }

    /// `os switch --flake LAB-FLAKE -H vermax`: the lab's system.
    pub fn os_switch(self) -> Self {
        let flake = self.lab.flake();
        self.args(["os", "switch", "--flake", &flake, "-H", "vermax"])
    }

    /// More arguments, as they are.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The lab flake's installable for `attr`.
    pub fn attr(self, attr: &str) -> Self {
        let installable = self.lab.flake_ref(attr);
        self.args([installable])
    }

    /// An environment variable for the run.
    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.env.push((key.to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Kill the run after `limit` (a hang bound).
    pub fn bound(mut self, limit: Duration) -> Self {
        self.bound = limit;
        self
    }

    /// The command as described, not started.
    pub fn command(&self) -> Command {
        let mut cmd = self.lab.nixdispatch(self.client, bin());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(&self.args);
        cmd
    }

    /// Runs it to its end (or its bound).
    pub fn run(self) -> Run {
        run_limited(self.command(), self.bound)
    }

    /// Runs it, asserting it exits with `code` (the client and the whole run shown if not).
    pub fn expect_exit(self, code: i32) -> Run {
        let client = self.client;
        let run = self.run();
        assert_eq!(run.code, Some(code), "{client:?}: {run:?}");
        run
    }

    /// Starts it in the background (no bound: the test bounds its waits).
    pub fn background(self) -> Background {
        Background::start(self.command())
    }
}

/// `--builder SEASMOKE --via RUNNER --progress plain` on Nix `v`: what a switch is run with.
pub fn switch_via<'a>(lab: &'a Lab, v: ClientNix, runner: &str) -> Nixdispatch<'a> {
    Nixdispatch::on(lab)
        .client(v)
        .seasmoke()
        .via(runner)
        .plain()
}

/// The lab of a lab test, or `None` when the test is to be skipped (not root, and not in CI:
/// see [`nixdispatch_lab::skip_unless_root`]). The test is named by the harness's thread.
pub fn lab_or_skip(opts: LabOptions) -> Option<Lab> {
    if skipped() {
        return None;
    }
    Some(super::lab(opts))
}

/// [`lab_or_skip`] with the default options as `set` changes them.
pub fn lab_with(set: impl FnOnce(&mut LabOptions)) -> Option<Lab> {
    let mut opts = LabOptions::default();
    set(&mut opts);
    lab_or_skip(opts)
}

/// [`nixdispatch_lab::skip_unless_root`] for the test running on this thread (the harness names
/// the thread after the test): true when the test is to end now, skipped.
pub fn skipped() -> bool {
    let thread = std::thread::current();
    nixdispatch_lab::skip_unless_root(thread.name().unwrap_or("a lab test"))
}
