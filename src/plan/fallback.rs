//! The re-plan after a builder vanished mid-run: the rest is built here, once.

use super::{Builder, Mode, Plan};

/// Turns `plan` into the local plan that finishes the run after `why` (a builder vanished or
/// stopped answering): every build goes here, every builder counts as unreachable, and the
/// reason says so. What was already realised stays realised; nix skips it.
pub fn fall_back_locally(plan: &mut Plan, builders: &mut [Builder], why: &str) {
    plan.mode = Mode::Local;
    plan.reason = format!("{why}, so the rest is built locally");
    for build in &mut plan.builds {
        build.from = None;
    }
    for builder in builders {
        let seen = builder.seen();
        builder.set_status(crate::builder::Status::Unusable {
            failure: builder.failure().cloned(),
            seen,
        });
    }
}
