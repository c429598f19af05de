//! sudo for activation by a non-root user: asked once before the build (on the terminal, not
//! behind the progress display), kept fresh during the build, and asked again at activation
//! time when it lapsed anyway (a build longer than sudo's `timestamp_timeout`, 5 minutes by
//! default, or a timeout shorter than our refresh interval). The command lines come from
//! [`crate::dispatch`], [`crate::child`] runs them.

use crate::child;
use crate::dispatch::{self, Runner, Target};
use crate::settings::Settings;
use std::time::Duration;

/// How often the timestamp is refreshed while nix builds. sudo's default timeout is 5 minutes;
/// a shorter one is caught at activation time by [`ensure`].
pub const REFRESH: Duration = Duration::from_secs(60);

/// Whether nh will ask sudo itself (a system configuration activated by a non-root user): its
/// prompt must reach the terminal, so nh runs in the terminal's foreground.
pub fn nh_needs_sudo(settings: &Settings, target: &Target, runner: Runner) -> bool {
    !settings.as_root()
        && matches!(runner, Runner::Nh { .. })
        && matches!(target, Target::Os { action, .. } if *action != dispatch::OsAction::Build)
}

/// Whether activating `target` will need sudo: a system configuration, switched through nix
/// (nh asks for sudo itself), by someone who is not root.
pub fn needs_sudo(settings: &Settings, target: &Target, runner: Runner) -> bool {
    !settings.as_root()
        && runner == Runner::Nix
        && matches!(target, Target::Os { action, .. } if *action != dispatch::OsAction::Build)
}

/// Asks sudo for the password now (if it needs one), with the terminal: stdin, stdout and stderr
/// are ours, and we are in the foreground process group, so the prompt reaches the person.
pub async fn validate() -> bool {
    child::run_on_terminal(&dispatch::sudo_validate()).await
}

/// Whether `sudo -n` runs without asking right now.
pub async fn fresh() -> bool {
    child::succeeds_quietly(&dispatch::sudo_check(), None).await
}

/// Makes sure `sudo -n` works for activation: asks again on the terminal when the timestamp
/// lapsed. `false` when it cannot be had (no terminal, wrong password, not allowed).
pub async fn ensure() -> bool {
    fresh().await || validate().await
}

/// Refreshes sudo's timestamp (`sudo -n -v`, never a prompt) every [`REFRESH`] until dropped.
pub struct Keepalive(tokio::task::JoinHandle<()>);

impl Keepalive {
    /// Starts refreshing in the background.
    pub fn start() -> Keepalive {
        Keepalive(tokio::spawn(async {
            loop {
                tokio::time::sleep(REFRESH).await;
                // Bounded: a sudo that hangs is given up on, and tried again next round.
                child::succeeds_quietly(&dispatch::sudo_refresh(), Some(Duration::from_secs(10)))
                    .await;
            }
        }))
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        self.0.abort();
    }
}
