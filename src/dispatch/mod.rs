//! Plan → commands: every command line nixdispatch runs, built from the plan and the target.
//! Pure: nothing here spawns or reads anything ([`crate::child`] runs what is built here).
//!
//! - `target.rs`: what to realise (`build`, `home`, `os`) and the installables it stands for;
//! - `steps.rs`: a target carried out as the plan says: the build, then the activation steps;
//! - `argv.rs`: the `nix build` and `nh` command lines, with the options for the plan's mode;
//! - `push.rs`: signing and copying for `--push`;
//! - `sudo.rs`: sudo's own commands.

mod argv;
mod push;
mod steps;
mod sudo;
mod target;
#[cfg(test)]
mod test_support;

pub use argv::{mode_flags, nix_ssh_env, Context};
pub use push::{copy_paths, sign_paths};
pub use steps::{steps, Activation, Steps, SYSTEM_PROFILE};
pub use sudo::{sudo_check, sudo_refresh, sudo_validate};
pub use target::{DispatchError, HomeAction, OsAction, Runner, Target};

use std::ffi::OsString;

fn strings(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}
