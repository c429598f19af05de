//! `nixdispatch build`: `nix build` with a plan. nix's own flags come as typed
//! ([`crate::nix_flags`]); the ones that change what must happen are carried out here.

use crate::cli::BuildArgs;
use crate::dispatch::{Runner, Target};
use crate::nix_flags::NixBuildFlags;
use crate::run::{execute, NixRequest, Stdout};
use crate::settings::Settings;
use crate::Result;

/// Builds the installables (`.` when none is given, as nix does).
pub async fn run(settings: Settings, args: &BuildArgs) -> Result<i32> {
    let flags = NixBuildFlags::read(&args.nix_args, settings.nix().version.at_least(2, 9));
    let settings = settings.with_nix_build_flags(&flags)?;
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
            out_paths: flags.print_out_paths && settings.nix().version.at_least(2, 9),
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
