//! The Debian roots the lab's hosts run from, and which Nix each gives.
//!
//! - `trixie`: Nix 2.26.3 (+ nh 4.4): seasmoke by default, the 2.26 client, the cache filler.
//! - `sid`: Nix 2.34.8 (+ nh 4.4): the 2.34 client ([`crate::ClientNix::V2_34`]) and seasmoke
//!   with [`BuilderNix::V2_34`]. Made by `scripts/lab-deps` (`debootstrap --variant=minbase sid`,
//!   apt told not to check the Release file's Valid-Until). nh 4.4 runs there without its
//!   "Nix older than 2.31.2" warning.
//!
//! Both live under `/var/lib/nixdispatch-lab` (or `$NIXDISPATCH_LAB_ROOT`) and are shared by
//! every lab: nothing writes into them but empty mount points (`/nix`, `/tmp`, `/run` are
//! mounted over inside each host's private namespace).

use crate::{LabError, LabOptions, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Which Nix seasmoke, the builder, runs (`LabOptions::builder_nix`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BuilderNix {
    /// Nix 2.26.3 from the trixie root (the default).
    #[default]
    V2_26,
    /// Nix 2.34.8 from the sid root ("seasmoke-2.34").
    V2_34,
}

impl BuilderNix {
    /// Both, oldest first.
    pub const ALL: [BuilderNix; 2] = [BuilderNix::V2_26, BuilderNix::V2_34];

    /// "2.26" or "2.34".
    pub fn version(self) -> &'static str {
        match self {
            BuilderNix::V2_26 => "2.26",
            BuilderNix::V2_34 => "2.34",
        }
    }

    /// The root it runs from.
    pub fn root(self) -> PathBuf {
        match self {
            BuilderNix::V2_26 => trixie_root(),
            BuilderNix::V2_34 => sid_root(),
        }
    }
}

/// Where the trixie root lives.
pub fn trixie_root() -> PathBuf {
    let base = std::env::var_os("NIXDISPATCH_LAB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_LAB_ROOT));
    base.join("trixie")
}

/// Where the sid root (Nix 2.34) lives.
pub fn sid_root() -> PathBuf {
    std::env::var_os("NIXDISPATCH_LAB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_LAB_ROOT))
        .join("sid")
}

/// What a root needs to serve as a host; the first missing file, if any.
pub fn missing_in(root: &std::path::Path) -> Option<PathBuf> {
    [
        "usr/sbin/sshd",
        "usr/bin/nix-daemon",
        "usr/bin/nix",
        "bin/bash",
    ]
    .iter()
    .map(|need| root.join(need))
    .find(|p| !p.exists())
}

/// Checks what a lab needs before anything is made (root, the trixie root, the builder's root,
/// the machine's own tools) and makes the empty `/nix` mount points (on the machine, for the 2.8
/// client, and in the roots). Returns the trixie root.
pub(crate) fn check_prerequisites(opts: &LabOptions) -> Result<PathBuf> {
    if !crate::sys::is_root() {
        return Err(LabError::NotRoot);
    }
    let trixie = trixie_root();
    if let Some(need) = missing_in(&trixie) {
        return Err(LabError::Missing(need.display().to_string()));
    }
    for need in [
        "/usr/bin/nix",
        "/usr/bin/unshare",
        "/usr/bin/ssh",
        "/usr/bin/ssh-keygen",
        "/usr/bin/hostname",
    ] {
        if !Path::new(need).exists() {
            return Err(LabError::Missing(need.to_string()));
        }
    }
    if let Some(need) = missing_in(&opts.builder_nix.root()) {
        return Err(LabError::Missing(need.display().to_string()));
    }
    fs::create_dir_all("/nix")?;
    fs::create_dir_all(trixie.join("nix"))?;
    if sid_root().is_dir() {
        fs::create_dir_all(sid_root().join("nix"))?;
    }
    Ok(trixie)
}
