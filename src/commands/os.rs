//! `nixdispatch os`: build and activate a NixOS configuration, as `nh os` does.

use crate::cli::{OsAction as CliAction, OsArgs};
use crate::dispatch::{OsAction, Target};
use crate::run::execute;
use crate::settings::Settings;
use crate::Result;

/// Resolves the flake and host name as nixos-rebuild does, then runs.
pub async fn run(settings: &Settings, args: &OsArgs) -> Result<i32> {
    let flake = settings.defaults().os_flake(&args.flake);
    let target = Target::Os {
        flake,
        hostname: args
            .hostname
            .clone()
            .unwrap_or_else(|| settings.defaults().hostname.clone()),
        action: match args.action.unwrap_or_default() {
            CliAction::Switch => OsAction::Switch,
            CliAction::Boot => OsAction::Boot,
            CliAction::Test => OsAction::Test,
            CliAction::Build => OsAction::Build,
        },
    };
    execute(
        settings,
        target,
        super::runner(settings)?,
        &args.run,
        &crate::run::NixRequest::passthrough(&args.nix_args),
    )
    .await
}
