//! vermax, the client, in its three variants ([`ClientNix`]): its environment and nix settings,
//! its store, and commands run as it (nixdispatch included).

use crate::files::{empty_dir, seed_store_layout};
use crate::lab::{lock, Lab};
use crate::sys::{self, quiet_success};
use crate::{failed, Result, LAB_MARKER_VAR, PATH};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which Nix the client (vermax) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientNix {
    /// This machine's Debian 12 Nix 2.8.0, in a private mount namespace with the lab's `/nix`.
    V2_8,
    /// Nix 2.26.3 and nh 4.4 in a chroot of the Debian trixie root, with the lab's `/nix`.
    V2_26,
    /// Nix 2.34.8 and nh 4.4 in a chroot of the Debian sid root ([`sid_root`]), with the lab's
    /// `/nix`.
    V2_34,
}

impl ClientNix {
    /// The 2.8 and 2.26 variants, oldest first: what most lab tests run on.
    pub const ALL: [ClientNix; 2] = [ClientNix::V2_8, ClientNix::V2_26];

    /// Every variant, 2.34 included, oldest first.
    pub const EVERY: [ClientNix; 3] = [ClientNix::V2_8, ClientNix::V2_26, ClientNix::V2_34];

    /// "2.8", "2.26" or "2.34".
    pub fn version(self) -> &'static str {
        match self {
            ClientNix::V2_8 => "2.8",
            ClientNix::V2_26 => "2.26",
            ClientNix::V2_34 => "2.34",
        }
    }

    /// The name of the lab's script for this client (`vermax-2.8`, `vermax-2.26`,
    /// `vermax-2.34`).
    pub fn script_name(self) -> &'static str {
        match self {
            ClientNix::V2_8 => "vermax-2.8",
            ClientNix::V2_26 => "vermax-2.26",
            ClientNix::V2_34 => "vermax-2.34",
        }
    }

    /// Whether nh runs on it (nh needs Nix 2.20+: not on 2.8).
    pub fn has_nh(self) -> bool {
        self != ClientNix::V2_8
    }
}

impl Lab {
    /// The client's `NIX_CONF_DIR` (holds an empty `nix.conf`; write a `machines` file here to
    /// test nix's default `builders = @$NIX_CONF_DIR/machines`).
    pub fn client_conf_dir(&self) -> PathBuf {
        self.dir.join("vermax/etc-nix")
    }

    /// The client's `NIX_CONFIG`.
    pub fn client_nix_config(&self) -> String {
        let mut c = String::from(
            "experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\n",
        );
        if self.opts.http_cache {
            c += &format!("substituters = {}\n", self.cache_url());
        } else {
            c += "substituters =\n";
        }
        c += &format!("trusted-public-keys = {}", self.cache_public_key);
        if self.opts.builder_signs {
            c += &format!(" {}", self.builder_public_key);
        }
        c += "\n";
        if self.opts.configure_builders_in_nix {
            c += &format!("builders = {}\n", self.builder_spec());
        }
        c += &format!(
            "flake-registry = {}\nconnect-timeout = 5\n",
            self.dir.join("registry.json").display()
        );
        if !self.opts.extra_nix_config.is_empty() {
            c += &self.opts.extra_nix_config;
            if !c.ends_with('\n') {
                c.push('\n');
            }
        }
        c
    }

    /// The client's environment (both variants): `NIX_CONFIG`, `NIX_CONF_DIR`, `NIX_SSHOPTS`,
    /// `HOME`, `USER`, `LOGNAME`, `PATH` (`LABDIR/bin` first), `LANG`, `NH_BYPASS_ROOT_CHECK`,
    /// and the lab marker `NIXDISPATCH_LAB`.
    pub fn client_env(&self) -> Vec<(String, String)> {
        let d = self.dir.display();
        vec![
            (LAB_MARKER_VAR.into(), d.to_string()),
            ("PATH".into(), format!("{d}/bin:{PATH}")),
            ("HOME".into(), format!("{d}/home")),
            ("USER".into(), "root".into()),
            ("LOGNAME".into(), "root".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("NIX_CONF_DIR".into(), format!("{d}/vermax/etc-nix")),
            ("NIX_SSHOPTS".into(), format!("-F {d}/ssh_config")),
            ("NIX_CONFIG".into(), self.client_nix_config()),
            ("NH_BYPASS_ROOT_CHECK".into(), "true".into()),
        ]
    }

    /// The lab script that runs commands as the client variant `v`.
    pub fn client_script(&self, v: ClientNix) -> PathBuf {
        self.dir.join("bin").join(v.script_name())
    }

    /// The physical directory of the client's `/nix`.
    pub fn client_nix_dir(&self, v: ClientNix) -> PathBuf {
        self.dir.join(format!("vermax/nix-{}", v.version()))
    }

    /// Empties the client's store (variant `v`), as on a freshly installed vermax. No client
    /// command of that variant may be running.
    pub fn reset_client(&self, v: ClientNix) -> Result<()> {
        empty_dir(&self.client_nix_dir(v))?;
        seed_store_layout(&self.client_nix_dir(v))
    }

    /// `program` run as vermax with Nix version `v`: in its namespace (and chroot for 2.26), with
    /// exactly [`Lab::client_env`] (the caller's environment is not inherited; add with `.env`).
    /// Append arguments with `.arg(..)`. The spawned pid becomes `program` itself (no fork in
    /// between), so signals sent to the child reach the program. The working directory carries
    /// over when it is inside the lab directory (2.26) or anywhere (2.8).
    pub fn client_command(&self, v: ClientNix, program: &str) -> Command {
        let mut c = Command::new(self.client_script(v));
        // In the lab's home, so that `nix build`'s result links land there, not in the caller's
        // directory (a test's is the repository). `Command::current_dir` overrides it.
        c.arg(program)
            .env_clear()
            .envs(self.client_env())
            .current_dir(self.dir.join("home"));
        c
    }

    /// The nixdispatch binary at `bin` (e.g. `env!("CARGO_BIN_EXE_nixdispatch")`) run as vermax:
    /// copied to `LABDIR/bin/nixdispatch` (again when it changed), which runs in both variants.
    /// When the copy fails, the command returned fails when run (exit 127, the reason on its
    /// stderr); [`Lab::try_nixdispatch`] returns that error instead.
    pub fn nixdispatch(&self, v: ClientNix, bin: &Path) -> Command {
        self.try_nixdispatch(v, bin)
            .unwrap_or_else(|e| sys::failing_command(&e.to_string()))
    }

    /// [`Lab::nixdispatch`], with a failed copy as an error.
    pub fn try_nixdispatch(&self, v: ClientNix, bin: &Path) -> Result<Command> {
        let dest = self.install_nixdispatch(bin).map_err(|e| {
            failed(format!(
                "nixdispatch-lab: cannot copy {} into the lab: {e}",
                bin.display()
            ))
        })?;
        Ok(self.client_command(v, &dest.to_string_lossy()))
    }

    /// Copies the nixdispatch binary into `LABDIR/bin/nixdispatch` (atomically).
    pub fn install_nixdispatch(&self, bin: &Path) -> Result<PathBuf> {
        let meta = fs::metadata(bin)
            .map_err(|e| failed(format!("nixdispatch binary {}: {e}", bin.display())))?;
        let key = (bin.to_path_buf(), meta.modified()?, meta.len());
        let dest = self.dir.join("bin/nixdispatch");
        let mut copied = lock(&self.copied_bin);
        if copied.as_ref() != Some(&key) || !dest.exists() {
            let tmp = self
                .dir
                .join(format!("bin/.nixdispatch.{}", sys::random_hex(4)));
            fs::copy(bin, &tmp)?;
            fs::rename(&tmp, &dest)?;
            *copied = Some(key);
        }
        Ok(dest)
    }

    /// Is `path` valid in the client's store (`nix-store --check-validity`)?
    pub fn client_has(&self, v: ClientNix, path: &str) -> bool {
        let mut c = self.client_command(v, "nix-store");
        c.args(["--check-validity", path]);
        quiet_success(c)
    }
}
