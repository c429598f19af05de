//! A whole run's expected time: the critical path of what remains to build and copy, each
//! builder with its job slots, from the history's times per step. Pure (time passed in).
//!
//! A step the history does not know counts for nothing and makes the estimate partial; a run
//! none of whose remaining steps is known has no estimate at all: never a made-up number.

use super::History;
use crate::plan::{Graph, Plan, Source};
use crate::store_path::short_name;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

/// How many copies nix runs at once (its `max-substitution-jobs` default).
pub const COPY_SLOTS: usize = 16;
/// How often nix tries again a build it postponed because every slot of the builders that can
/// take it was busy (its `build-poll-interval`, 5 s): such a build starts at the next try after
/// a slot frees, not when it frees (seen on the lab, Nix 2.8 and 2.34: four 1 s builds on a
/// two-slot builder took 7 s, not 2 s).
pub const POLL_MS: u64 = 5000;

/// A group of job slots: a host's, or the copies'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// How many steps it runs at once.
    pub jobs: usize,
    /// A builder nix reaches through its build hook: a build that finds every slot busy waits
    /// for nix's next try ([`POLL_MS`]).
    pub polls: bool,
}

/// What a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A derivation built on a host.
    Build,
    /// A store path copied here from a cache or a builder.
    Copy,
}

/// One step of a run, for the estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Its name for people: the derivation's or store path's name without the hash.
    pub name: String,
    /// Where: the host that builds it (`local` or a builder URI), or the store it is copied
    /// from.
    pub place: String,
    /// What it is.
    pub kind: StepKind,
    /// Which slot group it runs in (a host's job slots, or the copies').
    pub group: usize,
    /// Its expected seconds, when the history knows them.
    pub secs: Option<f64>,
    /// The steps that must end before it starts.
    pub deps: Vec<usize>,
}

/// Where a step is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Waiting,
    Running(Instant),
    Done,
}

/// An estimate of what remains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Seconds until the run's known steps are done.
    pub secs: f64,
    /// Some remaining steps are not known: the run will take longer than `secs`.
    pub partial: bool,
}

/// The steps of a run and where each is, to estimate what remains as they end.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEstimate {
    steps: Vec<Step>,
    status: Vec<Status>,
    /// Job slots per group.
    slots: Vec<usize>,
    /// Whether each group's waiting builds start on nix's next try only ([`Group::polls`]).
    polls: Vec<bool>,
    dependents: Vec<Vec<usize>>,
    /// Steps by the key the log names them by: a `.drv` path for builds (and for outputs a
    /// builder hands back, which nix reports as builds), a store path for copies.
    by_key: HashMap<String, usize>,
}

impl RunEstimate {
    /// A run of `steps` in slot `groups`; `keys` names each step (the `.drv` or store path the
    /// log will name it by).
    pub fn new(
        mut steps: Vec<Step>,
        mut groups: Vec<Group>,
        keys: Vec<(String, usize)>,
    ) -> RunEstimate {
        // A step naming no group or a step that does not exist is taken in, not a panic.
        if groups.is_empty() {
            groups.push(Group {
                jobs: 1,
                polls: false,
            });
        }
        let n = steps.len();
        for step in &mut steps {
            step.group = step.group.min(groups.len() - 1);
            step.deps.retain(|d| *d < n);
        }
        let mut dependents = vec![Vec::new(); steps.len()];
        for (i, step) in steps.iter().enumerate() {
            for &d in &step.deps {
                if let Some(list) = dependents.get_mut(d) {
                    list.push(i);
                }
            }
        }
        RunEstimate {
            status: vec![Status::Waiting; steps.len()],
            steps,
            slots: groups.iter().map(|g| g.jobs.max(1)).collect(),
            polls: groups.iter().map(|g| g.polls).collect(),
            dependents,
            by_key: keys.into_iter().filter(|(_, i)| *i < n).collect(),
        }
    }

    /// The steps of `plan` (with its derivation `graph`): each build on its host, each path
    /// copied from a cache or a builder, timed from `history`; `slots` says how many jobs a
    /// host (`local` or a builder URI) runs at once.
    pub fn for_plan(
        plan: &Plan,
        graph: &Graph,
        history: &History,
        slots: impl Fn(&str) -> usize,
    ) -> RunEstimate {
        let mut groups: Vec<String> = Vec::new();
        let mut group_of = |name: &str| match groups.iter().position(|g| g == name) {
            Some(i) => i,
            None => {
                groups.push(name.to_string());
                groups.len() - 1
            }
        };
        let copies_group = group_of("(copies)");
        let mut steps = Vec::new();
        let mut keys = Vec::new();
        let mut by_path: HashMap<&str, usize> = HashMap::new();
        for b in &plan.builds {
            let host = b.from.as_deref().unwrap_or("local");
            let name = short_name(b.drv.as_str());
            keys.push((b.drv.as_str().to_string(), steps.len()));
            by_path.insert(b.drv.as_str(), steps.len());
            steps.push(Step {
                name: name.to_string(),
                place: host.to_string(),
                kind: StepKind::Build,
                group: group_of(host),
                secs: history.build_secs(name, host),
                deps: Vec::new(),
            });
        }
        let index = graph.output_index();
        for p in &plan.paths {
            let (Source::Cache | Source::Builder, Some(from)) = (p.source, p.from.as_deref())
            else {
                continue;
            };
            let i = steps.len();
            keys.push((p.path.as_str().to_string(), i));
            by_path.insert(p.path.as_str(), i);
            // nix reports an output a builder hands back through its build hook as a build.
            if let Some((drv, _)) = index.producer(&p.path) {
                if !by_path.contains_key(drv.path.as_str()) {
                    keys.push((drv.path.as_str().to_string(), i));
                }
            }
            steps.push(Step {
                name: short_name(p.path.as_str()).to_string(),
                place: from.to_string(),
                kind: StepKind::Copy,
                group: copies_group,
                secs: history.copy_secs(short_name(p.path.as_str()), from, None),
                deps: Vec::new(),
            });
        }
        // What a builder builds comes back here after it (nix's build hook copies each
        // output back; a session copies them home): a copy step per output, timed from the
        // history's copies of it over that link. The history's remote build times are the
        // builder's own and hold no copy.
        for b in &plan.builds {
            let (Some(host), Some(&built), Some(drv)) = (
                b.from.as_deref(),
                by_path.get(b.drv.as_str()),
                graph.derivations.get(&b.drv),
            ) else {
                continue;
            };
            for output in drv.outputs.values() {
                if by_path.contains_key(output.as_str()) {
                    continue;
                }
                let name = short_name(output.as_str());
                keys.push((output.as_str().to_string(), steps.len()));
                steps.push(Step {
                    name: name.to_string(),
                    place: host.to_string(),
                    kind: StepKind::Copy,
                    group: copies_group,
                    secs: history.copy_secs(name, host, None),
                    deps: vec![built],
                });
            }
        }
        for b in &plan.builds {
            let (Some(&i), Some(drv)) =
                (by_path.get(b.drv.as_str()), graph.derivations.get(&b.drv))
            else {
                continue;
            };
            let mut deps = Vec::new();
            for input in drv.input_drvs.keys() {
                if let Some(&d) = by_path.get(input.as_str()) {
                    deps.push(d);
                } else if let Some(input) = graph.derivations.get(input) {
                    deps.extend(
                        input
                            .outputs
                            .values()
                            .filter_map(|o| by_path.get(o.as_str())),
                    );
                }
            }
            deps.extend(
                drv.input_srcs
                    .iter()
                    .filter_map(|s| by_path.get(s.as_str())),
            );
            deps.sort_unstable();
            deps.dedup();
            steps[i].deps = deps;
        }
        let groups = groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                if i == copies_group {
                    Group {
                        jobs: COPY_SLOTS,
                        polls: false,
                    }
                } else {
                    Group {
                        jobs: slots(g),
                        polls: g != "local",
                    }
                }
            })
            .collect();
        RunEstimate::new(steps, groups, keys)
    }

    /// How many steps it has.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether it has no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The step the log names by `key` (a `.drv` or store path), if the run has one.
    pub fn step(&self, key: &str) -> Option<usize> {
        self.by_key.get(key).copied()
    }

    /// The steps, in their order (builds first, then copies).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Where step `i` is: `None` waiting, `Some(None)` done, `Some(Some(started))` running.
    pub fn progress(&self, i: usize) -> Option<Option<Instant>> {
        match self.status.get(i)? {
            Status::Waiting => None,
            Status::Running(t) => Some(Some(*t)),
            Status::Done => Some(None),
        }
    }

    /// The steps no other step waits for: the tops of the run's tree.
    pub fn roots(&self) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&i| self.dependents[i].is_empty())
            .collect()
    }

    /// What the step named `key` is, if the run has one.
    pub fn kind_of(&self, key: &str) -> Option<StepKind> {
        Some(self.steps.get(self.step(key)?)?.kind)
    }

    /// The expected seconds of the step named `key`, when known.
    pub fn expected_secs(&self, key: &str) -> Option<f64> {
        self.steps.get(self.step(key)?)?.secs
    }

    /// The step named `key` started at `now`.
    pub fn started(&mut self, key: &str, now: Instant) {
        if let Some(i) = self.step(key) {
            if self.status[i] == Status::Waiting {
                self.status[i] = Status::Running(now);
            }
        }
    }

    /// The step named `key`, already running, really began only now: a remote build whose
    /// hook spent the time so far copying its inputs there (the history holds the build alone).
    pub fn began_work(&mut self, key: &str, now: Instant) {
        if let Some(i) = self.step(key) {
            if matches!(self.status[i], Status::Running(_)) {
                self.status[i] = Status::Running(now);
            }
        }
    }

    /// The step named `key` ended (built, copied, failed or cancelled alike).
    pub fn ended(&mut self, key: &str) {
        if let Some(i) = self.step(key) {
            self.status[i] = Status::Done;
        }
    }

    /// What remains as of `now`: the critical path of the steps not done, each host's slots
    /// filled longest step first; running steps count what their expected time has left.
    /// `None` when no remaining step is known (or none remains unknown-free to say anything).
    pub fn remaining(&self, now: Instant) -> Option<Estimate> {
        let mut partial = false;
        let mut any_known = false;
        let mut left = vec![0u64; self.steps.len()];
        for (i, step) in self.steps.iter().enumerate() {
            if self.status[i] == Status::Done {
                continue;
            }
            match step.secs {
                Some(secs) => {
                    any_known = true;
                    let elapsed = match self.status[i] {
                        Status::Running(t) => now.saturating_duration_since(t).as_secs_f64(),
                        _ => 0.0,
                    };
                    left[i] = ((secs - elapsed).max(0.0) * 1000.0) as u64;
                }
                None => partial = true,
            }
        }
        if !any_known {
            // Nothing known remains: done, when the history knew some of the run's steps;
            // nothing to say when it knew none.
            let knew_some = self.steps.iter().any(|s| s.secs.is_some());
            return (!partial && knew_some).then_some(Estimate {
                secs: 0.0,
                partial: false,
            });
        }
        let ms = self.schedule(&left);
        Some(Estimate {
            secs: ms as f64 / 1000.0,
            partial,
        })
    }

    /// The time (ms) the remaining steps take with `left` ms each: list scheduling on each
    /// group's slots, running steps first, then ready ones longest first.
    fn schedule(&self, left: &[u64]) -> u64 {
        let n = self.steps.len();
        let mut waiting_on = vec![0usize; n];
        for (i, step) in self.steps.iter().enumerate() {
            waiting_on[i] = step
                .deps
                .iter()
                .filter(|&&d| d < n && self.status[d] != Status::Done)
                .count();
        }
        let mut free: Vec<usize> = self.slots.clone();
        let mut ready: Vec<BinaryHeap<(u64, Reverse<usize>)>> = vec![BinaryHeap::new(); free.len()];
        let mut events: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
        for (i, step) in self.steps.iter().enumerate() {
            match self.status[i] {
                Status::Done => {}
                Status::Running(_) => {
                    if let Some(f) = free.get_mut(step.group) {
                        *f = f.saturating_sub(1);
                    }
                    events.push(Reverse((left[i], i)));
                }
                Status::Waiting if waiting_on[i] == 0 => {
                    if let Some(q) = ready.get_mut(step.group) {
                        q.push((left[i], Reverse(i)));
                    }
                }
                Status::Waiting => {}
            }
        }
        let mut now = 0u64;
        let mut touched: Vec<usize> = (0..free.len()).collect();
        // Builds that found every slot of their builder busy: nix tries them again on its
        // next poll only. Wake-ups are events `n + group`.
        let mut postponed = vec![false; n];
        let mut wake_pending = vec![false; free.len()];
        loop {
            for &g in &touched {
                while free[g] > 0 {
                    let Some(&(_, Reverse(i))) = ready[g].peek() else {
                        break;
                    };
                    if self.polls[g] && postponed[i] && now % POLL_MS != 0 {
                        if !wake_pending[g] {
                            wake_pending[g] = true;
                            events.push(Reverse((now.div_ceil(POLL_MS) * POLL_MS, n + g)));
                        }
                        break;
                    }
                    ready[g].pop();
                    free[g] -= 1;
                    events.push(Reverse((now + left[i], i)));
                }
                if self.polls[g] {
                    for (_, Reverse(i)) in ready[g].iter() {
                        postponed[*i] = true;
                    }
                }
            }
            touched.clear();
            let Some(Reverse((t, i))) = events.pop() else {
                break;
            };
            now = now.max(t);
            if i >= n {
                let g = i - n;
                wake_pending[g] = false;
                touched.push(g);
                continue;
            }
            let g = self.steps[i].group;
            free[g] = (free[g] + 1).min(self.slots[g].max(1));
            touched.push(g);
            for &k in &self.dependents[i] {
                waiting_on[k] = waiting_on[k].saturating_sub(1);
                if waiting_on[k] == 0 && self.status[k] == Status::Waiting {
                    let gk = self.steps[k].group;
                    ready[gk].push((left[k], Reverse(k)));
                    touched.push(gk);
                }
            }
        }
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn step(group: usize, secs: Option<f64>, deps: &[usize]) -> Step {
        Step {
            name: String::new(),
            place: String::new(),
            kind: StepKind::Build,
            group,
            secs,
            deps: deps.to_vec(),
        }
    }

    fn groups(jobs: &[usize]) -> Vec<Group> {
        jobs.iter()
            .map(|&jobs| Group { jobs, polls: false })
            .collect()
    }

    fn keys(n: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("s{i}"), i)).collect()
    }

    #[test]
    fn a_chain_takes_the_sum() {
        let steps = vec![
            step(0, Some(1.0), &[]),
            step(0, Some(2.0), &[0]),
            step(0, Some(3.0), &[1]),
        ];
        let e = RunEstimate::new(steps, groups(&[4]), keys(3));
        let r = e.remaining(Instant::now()).unwrap();
        assert_eq!(
            r,
            Estimate {
                secs: 6.0,
                partial: false
            }
        );
    }

    #[test]
    fn a_wide_set_fills_the_slots() {
        let steps = vec![step(0, Some(2.0), &[]); 4];
        let one = RunEstimate::new(steps.clone(), groups(&[1]), keys(4));
        assert_eq!(one.remaining(Instant::now()).unwrap().secs, 8.0);
        let two = RunEstimate::new(steps.clone(), groups(&[2]), keys(4));
        assert_eq!(two.remaining(Instant::now()).unwrap().secs, 4.0);
        let many = RunEstimate::new(steps, groups(&[8]), keys(4));
        assert_eq!(many.remaining(Instant::now()).unwrap().secs, 2.0);
    }

    #[test]
    fn hosts_have_their_own_slots() {
        // Two builds on each of two one-slot hosts, then one that needs all four.
        let steps = vec![
            step(0, Some(1.0), &[]),
            step(0, Some(1.0), &[]),
            step(1, Some(5.0), &[]),
            step(1, Some(5.0), &[]),
            step(0, Some(1.0), &[0, 1, 2, 3]),
        ];
        let e = RunEstimate::new(steps, groups(&[1, 1]), keys(5));
        assert_eq!(e.remaining(Instant::now()).unwrap().secs, 11.0);
    }

    #[test]
    fn builds_waiting_for_a_builder_slot_start_on_nixs_next_try() {
        // Four 1 s builds on a two-slot builder, then one that needs them all: the last two
        // leaves start at nix's next poll (5 s), the root at once after them.
        let mut steps = vec![step(0, Some(1.0), &[]); 4];
        steps.push(step(0, Some(1.0), &[0, 1, 2, 3]));
        let builder = vec![Group {
            jobs: 2,
            polls: true,
        }];
        let e = RunEstimate::new(steps.clone(), builder, keys(5));
        assert_eq!(e.remaining(Instant::now()).unwrap().secs, 7.0);
        // Here, a freed slot is taken at once.
        let local = RunEstimate::new(steps, groups(&[2]), keys(5));
        assert_eq!(local.remaining(Instant::now()).unwrap().secs, 3.0);
    }

    #[test]
    fn unknown_steps_make_it_partial_and_all_unknown_makes_none() {
        let steps = vec![step(0, Some(2.0), &[]), step(0, None, &[0])];
        let e = RunEstimate::new(steps, groups(&[1]), keys(2));
        assert_eq!(
            e.remaining(Instant::now()),
            Some(Estimate {
                secs: 2.0,
                partial: true
            })
        );
        let mut unknown = RunEstimate::new(vec![step(0, None, &[])], groups(&[1]), keys(1));
        assert_eq!(
            unknown.remaining(Instant::now()),
            None,
            "never a made-up number"
        );
        unknown.ended("s0");
        assert_eq!(
            unknown.remaining(Instant::now()),
            None,
            "nor once it is done"
        );
    }

    #[test]
    fn it_shrinks_as_steps_run_and_end() {
        let steps = vec![step(0, Some(4.0), &[]), step(0, Some(4.0), &[0])];
        let mut e = RunEstimate::new(steps, groups(&[1]), keys(2));
        let t0 = Instant::now();
        assert_eq!(e.remaining(t0).unwrap().secs, 8.0);
        e.started("s0", t0);
        assert_eq!(e.remaining(t0 + Duration::from_secs(1)).unwrap().secs, 7.0);
        // Overdue: what it had left is nothing, never negative.
        assert_eq!(e.remaining(t0 + Duration::from_secs(9)).unwrap().secs, 4.0);
        e.ended("s0");
        e.started("s1", t0 + Duration::from_secs(9));
        assert_eq!(e.remaining(t0 + Duration::from_secs(10)).unwrap().secs, 3.0);
        e.ended("s1");
        assert_eq!(
            e.remaining(t0).unwrap(),
            Estimate {
                secs: 0.0,
                partial: false
            }
        );
        e.ended("no-such-step");
        assert_eq!(e.expected_secs("s1"), Some(4.0));
        assert_eq!(e.expected_secs("nope"), None);
    }

    #[test]
    fn a_remote_build_counts_from_when_the_builder_began() {
        let mut e = RunEstimate::new(vec![step(0, Some(4.0), &[])], groups(&[1]), keys(1));
        let t0 = Instant::now();
        e.began_work("s0", t0);
        assert_eq!(
            e.remaining(t0).unwrap().secs,
            4.0,
            "not running: nothing to move"
        );
        e.started("s0", t0);
        // Three seconds of copying inputs there, then the build itself begins.
        e.began_work("s0", t0 + Duration::from_secs(3));
        assert_eq!(e.remaining(t0 + Duration::from_secs(4)).unwrap().secs, 3.0);
    }

    #[test]
    fn ten_thousand_steps_schedule_quickly() {
        let steps: Vec<Step> = (0..10_000)
            .map(|i| step(i % 3, Some(1.0), if i > 3 { &[0, 1] } else { &[] }))
            .collect();
        let e = RunEstimate::new(steps, groups(&[4, 4, 16]), keys(10_000));
        let t = Instant::now();
        assert!(e.remaining(Instant::now()).is_some());
        assert!(t.elapsed() < Duration::from_secs(30), "a hang bound only");
    }
}
