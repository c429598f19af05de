//! The commands of `--push`: sign what is about to be pushed, then copy it to a store.

use super::strings;
use crate::child::Invocation;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `nix store sign -r --key-file KEY PATHS`: signs what is about to be pushed, closures included.
pub fn sign_paths(key: &Path, paths: &[PathBuf], env: &[(OsString, OsString)]) -> Invocation {
    let mut args = nix_command(&["store", "sign", "-r", "--key-file"]);
    args.push(key.into());
    args.extend(paths.iter().map(OsString::from));
    Invocation {
        env: env.to_vec(),
        ..Invocation::plain("nix", args)
    }
}

/// `nix copy [--no-check-sigs] --to URI PATHS`: pushes paths and their closures to a store;
/// `--no-check-sigs` when they were not signed (the store then decides whether it trusts us).
pub fn copy_paths(
    to: &str,
    paths: &[PathBuf],
    signed: bool,
    env: &[(OsString, OsString)],
) -> Invocation {
    let mut args = nix_command(&["copy"]);
    if !signed {
        args.push("--no-check-sigs".into());
    }
    args.extend(["--to".into(), to.into()]);
    args.extend(paths.iter().map(OsString::from));
    Invocation {
        env: env.to_vec(),
        ..Invocation::plain("nix", args)
    }
}

/// `--extra-experimental-features "nix-command flakes" ARGS`: nix's arguments for a new-style
/// command on every version.
fn nix_command(args: &[&str]) -> Vec<OsString> {
    let mut all = strings(&["--extra-experimental-features", crate::nix::FEATURES]);
    all.extend(strings(args));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::test_support::*;

    #[test]
    fn push_signs_then_copies() {
        let paths = [
            PathBuf::from("/nix/store/r-a"),
            PathBuf::from("/nix/store/r-b"),
        ];
        let features = ["nix", "--extra-experimental-features", "nix-command flakes"];
        let sign = sign_paths(Path::new("/k.sec"), &paths, &[]);
        assert_eq!(
            words(&sign),
            with(
                &features,
                &[
                    "store",
                    "sign",
                    "-r",
                    "--key-file",
                    "/k.sec",
                    "/nix/store/r-a",
                    "/nix/store/r-b"
                ]
            )
        );
        let env = vec![(OsString::from("NIX_SSHOPTS"), OsString::from("-F /cfg"))];
        let signed = copy_paths("ssh-ng://seasmoke", &paths, true, &env);
        assert_eq!(
            words(&signed),
            with(
                &features,
                &[
                    "copy",
                    "--to",
                    "ssh-ng://seasmoke",
                    "/nix/store/r-a",
                    "/nix/store/r-b"
                ]
            )
        );
        assert_eq!(signed.env, env);
        let unsigned = copy_paths("file:///c", &paths[..1], false, &[]);
        assert_eq!(
            words(&unsigned),
            with(
                &features,
                &[
                    "copy",
                    "--no-check-sigs",
                    "--to",
                    "file:///c",
                    "/nix/store/r-a"
                ]
            )
        );
    }
}
