//! The re-plan after a builder vanished mid-run: the rest is built here, once.

use super::{reason, Mode, Plan};

/// The local plan that finishes the run after `why` (a builder vanished or stopped answering):
/// every build goes here and the reason says so; nix is given no builder (a local plan's).
/// What was already realised stays realised; nix skips it.
pub(super) fn finish_here(plan: Plan, why: &str) -> Plan {
    let builds = plan
        .builds
        .into_iter()
        .map(|build| super::PlannedBuild {
            from: None,
            ..build
        })
        .collect();
    Plan {
        mode: Mode::Local,
        reason: reason::fell_back(why),
        builds,
        ..plan
    }
}
