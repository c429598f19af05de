//! `nixdispatch build`: `nix build` with a plan. nix's own flags come as typed
//! ([`crate::nix_flags`]); the ones that change what must happen are carried out here.

use crate::cli::BuildArgs;
use crate::dispatch::{Runner, Target};
use crate::nix_flags::NixBuildFlags;
use crate::run::{execute, NixRequest, Stdout};
use crate::settings::Settings;
use crate::{Error, Result};

/// Builds the installables (`.` when none is given, as nix does).
pub async fn run(settings: &Settings, args: &BuildArgs) -> Result<i32> {
    let flags = NixBuildFlags::read(&args.nix_args, settings.nix.version.at_least(2, 9));
    let settings = understood(settings, &flags)?;
    let installables = if args.installables.is_empty() && !flags.file_or_expr {
        vec![".".to_owned()]
    } else {
        args.installables.clone()
    };
    let request = NixRequest {
        build_args: flags.build.clone(),
        eval_args: flags.eval.clone(),
        rebuild: flags.rebuild,
        dry_run: flags.dry_run,
        fallback: flags.fallback,
        stdout: Stdout::Nix {
            json: flags.json,
            out_paths: flags.print_out_paths && settings.nix.version.at_least(2, 9),
        },
    };
    execute(
        &settings,
        Target::Build { installables },
        Runner::Nix,
        &args.run,
        &request,
    )
    .await
}

/// The settings as nix's flags change them: `--builders`/`--option builders` choose the
/// builders (as `--builder` does), `--offline` uses no substituter and no builder, `-j 0`
/// builds nothing here.
fn understood(settings: &Settings, flags: &NixBuildFlags) -> Result<Settings> {
    let mut settings = settings.clone();
    if let Some(spec) = &flags.builders {
        settings.builders =
            crate::settings::parse_cli_builders(std::slice::from_ref(spec))?.unwrap_or_default();
        settings.builders_origin = "--builders".to_owned();
    }
    if flags.offline {
        settings.nix_config.substituters.clear();
    }
    let no_local_jobs = flags.max_jobs.as_deref().is_some_and(|j| j.trim() == "0");
    settings.forced = settings
        .forced
        .under_nix_flags(flags.offline, no_local_jobs)
        .map_err(Error::input)?;
    Ok(settings)
}
