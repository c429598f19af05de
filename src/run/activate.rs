//! Activation after a successful build of `home` or `os` through nix: the steps dispatch
//! names (home-manager's `activate`; the system profile and `switch-to-configuration`), with
//! sudo when a system is activated by a non-root user.

use crate::child::{self, Keep};
use crate::dispatch;
use crate::monitor::Monitor;
use crate::Result;

/// Runs the activation steps on the result; `Some(why)` when one failed. With `sudo`, each
/// runs through `sudo -n` (a system's profile and switch-to-configuration need root).
pub(super) async fn activate(
    steps: &dispatch::Steps,
    result: &std::path::Path,
    sudo: bool,
    monitor: &mut Monitor,
) -> Result<Option<String>> {
    if sudo && !super::sudo::fresh().await {
        monitor.message(
            "nixdispatch: sudo's timestamp lapsed during the build: asking again to activate",
        );
        if !super::sudo::validate().await {
            return Ok(Some(format!(
                "activation needs root and sudo did not allow it; the build is done: activate it with `sudo {}/bin/switch-to-configuration switch`",
                result.display()
            )));
        }
    }
    for (step, inv) in steps.activate.iter().zip(steps.activation(result, sudo)) {
        let name = step.name();
        monitor.message(&format!("nixdispatch: activating: {name}"));
        // With sudo, `sudo -n`: credentials were asked for up front (`sudo -v`), never
        // prompt behind the bars.
        let finished =
            child::run(&inv, Keep::Nothing, |r| super::attempt::show(monitor, r)).await?;
        if !finished.status.success() {
            return Ok(Some(format!(
                "activation failed: {name} {} ({}); the new configuration may be partly active, run it again or roll back",
                result.display(),
                finished.status
            )));
        }
    }
    Ok(None)
}
