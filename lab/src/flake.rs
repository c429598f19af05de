//! The fixture flake of a lab (`LABDIR/flake`): its refs, its nonce, its packages, and the
//! markers its activation scripts leave.

use crate::lab::{lock, Lab};
use crate::{failed, files::write_atomic, fixtures, sys, Fixture, Result};
use std::fs;
use std::path::PathBuf;

impl Lab {
    /// Where the markers of the fixtures' activation scripts land.
    pub fn markers_dir(&self) -> PathBuf {
        self.dir.join("markers")
    }

    /// The content of `markers/NAME` (trimmed), if it exists: `home-activated` and
    /// `os-test`/`os-boot`/`os-switch` hold the store path that was activated;
    /// `home-activations` and `os-activations` accumulate one line per activation.
    pub fn marker(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.markers_dir().join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The fixture flake's directory.
    pub fn flake_dir(&self) -> PathBuf {
        self.dir.join("flake")
    }

    /// `path:LABDIR/flake` (works with Nix 2.8 and 2.26; no git needed).
    pub fn flake(&self) -> String {
        format!("path:{}", self.flake_dir().display())
    }

    /// `path:LABDIR/flake#ATTR`, e.g. `flake_ref("chain")` for `packages.x86_64-linux.chain`, or
    /// `flake_ref("homeConfigurations.root.activationPackage")`.
    pub fn flake_ref(&self, attr: &str) -> String {
        format!("{}#{attr}", self.flake())
    }

    /// The nonce in every fixture derivation of this lab.
    pub fn nonce(&self) -> String {
        lock(&self.nonce).clone()
    }

    /// Rewrites the flake with a new nonce, so every fixture path is fresh again.
    pub fn renew_nonce(&self) -> Result<String> {
        let n = sys::random_hex(6);
        *lock(&self.nonce) = n.clone();
        self.write_flake()?;
        Ok(n)
    }

    /// Adds (or replaces) a fixture package and rewrites the flake.
    pub fn add_fixture(&self, f: Fixture) -> Result<()> {
        check_fixtures(std::slice::from_ref(&f))?;
        {
            let mut fx = lock(&self.fixtures);
            fx.retain(|g| g.name != f.name);
            fx.push(f);
        }
        self.write_flake()
    }

    pub(crate) fn write_flake(&self) -> Result<()> {
        let text = fixtures::flake_nix(&self.nonce(), &self.markers_dir(), &lock(&self.fixtures));
        write_atomic(&self.flake_dir().join("flake.nix"), &text)?;
        Ok(())
    }
}

/// Refuses a fixture whose name the flake cannot hold.
pub(crate) fn check_fixtures(fixtures: &[Fixture]) -> Result<()> {
    match fixtures.iter().find(|f| !f.has_valid_name()) {
        Some(f) => Err(failed(format!(
            "fixture names use [A-Za-z0-9_-]: {:?}",
            f.name
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixture_name_the_flake_cannot_hold_is_an_error_not_a_panic() {
        assert!(check_fixtures(&crate::default_fixtures()).is_ok());
        let bad = [Fixture::single("ok"), Fixture::chain("two words", 2)];
        let err = check_fixtures(&bad).expect_err("refused").to_string();
        assert!(err.contains("\"two words\""), "{err}");
        assert!(check_fixtures(&[Fixture::single("")]).is_err());
    }
}
