//! `nixdispatch home`: build and activate a home-manager configuration, as `nh home` does.

use crate::cli::{HomeAction as CliAction, HomeArgs};
use crate::dispatch::{HomeAction, Target};
use crate::run::execute;
use crate::settings::Settings;
use crate::{Error, Result};

/// Resolves the flake and configuration name as home-manager does, then runs.
pub async fn run(settings: &Settings, args: &HomeArgs) -> Result<i32> {
    let flake = settings.defaults().home_flake(&args.flake);
    let configuration = match &args.configuration {
        Some(c) => c.clone(),
        None => default_configuration(settings, &flake).await?,
    };
    let target = Target::Home {
        flake,
        configuration,
        action: match args.action.unwrap_or_default() {
            CliAction::Switch => HomeAction::Switch,
            CliAction::Build => HomeAction::Build,
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

/// `$USER@$(hostname)` when the flake has it, else `$USER`, as home-manager picks.
async fn default_configuration(settings: &Settings, flake: &str) -> Result<String> {
    let user = settings.defaults().user.clone().ok_or_else(|| {
        Error::input("USER is not set: set it, or name the configuration with -c NAME")
    })?;
    let host = &settings.defaults().hostname;
    let names = settings
        .nix()
        .attr_names(flake, "homeConfigurations")
        .await?;
    let candidates = [format!("{user}@{host}"), user];
    candidates
        .iter()
        .find(|c| names.contains(c))
        .cloned()
        .ok_or_else(|| {
            Error::input(format!(
                "{flake} has no homeConfigurations.\"{}\" nor .\"{}\" (it has: {}); pick one with -c NAME",
                candidates[0],
                candidates[1],
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ))
        })
}
