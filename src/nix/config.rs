//! nix's own settings, as nix itself resolves them: `nix.conf`, `NIX_CONFIG`, `extra-` settings,
//! all merged by `nix show-config` (before 2.20) or `nix config show` (2.20 and later; the old
//! name still works there but warns).

use super::Nix;
use crate::Result;
use std::collections::BTreeMap;

/// The settings nixdispatch reads from nix.
#[derive(Debug, Clone, Default)]
pub struct NixConfig {
    /// The raw `builders` value (machines-file text, `@FILE` includes not yet expanded).
    pub builders: String,
    /// `substituters`, in the order nix lists them.
    pub substituters: Vec<String>,
    /// `trusted-public-keys`: `name:base64` entries.
    pub trusted_public_keys: Vec<String>,
    /// `require-sigs`.
    pub require_sigs: bool,
    /// `trusted-substituters`: what a daemon also takes from users it does not trust.
    pub trusted_substituters: Vec<String>,
    /// `accept-flake-config`: nix applies a flake's `nixConfig` without asking.
    pub accept_flake_config: bool,
    /// `system`: what this machine builds natively.
    pub system: String,
    /// `extra-platforms`: what else it can build.
    pub extra_platforms: Vec<String>,
    /// `system-features` of this machine.
    pub system_features: Vec<String>,
    /// `max-jobs` as nix reports it.
    pub max_jobs: String,
}

impl NixConfig {
    /// Builds the config from `name = value` lines as nix prints them.
    pub fn from_lines(text: &str) -> NixConfig {
        let map: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|line| {
                line.split_once(" = ")
                    .or_else(|| line.strip_suffix(" =").map(|k| (k, "")))
            })
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let list = |key: &str| -> Vec<String> {
            map.get(key)
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        NixConfig {
            builders: map
                .get("builders")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            substituters: list("substituters"),
            trusted_public_keys: list("trusted-public-keys"),
            require_sigs: map.get("require-sigs").is_none_or(|v| *v != "false"),
            trusted_substituters: list("trusted-substituters"),
            accept_flake_config: map.get("accept-flake-config") == Some(&"true"),
            system: map
                .get("system")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "x86_64-linux".to_owned()),
            extra_platforms: list("extra-platforms"),
            system_features: list("system-features"),
            max_jobs: map
                .get("max-jobs")
                .map(|v| v.to_string())
                .unwrap_or_default(),
        }
    }

    /// The names of the trusted public keys (the part before `:`), which signatures name.
    pub fn trusted_key_names(&self) -> Vec<&str> {
        self.trusted_public_keys
            .iter()
            .filter_map(|k| k.split_once(':').map(|(name, _)| name))
            .collect()
    }
}

impl Nix {
    /// Reads nix's resolved settings (asked once per configuration: [`super::cache`]).
    pub async fn config(&self) -> Result<NixConfig> {
        let mut lookup = super::cache::Lookup::open();
        let key = lookup.as_ref().map(|l| l.config_key());
        if let (Some(lookup), Some(key)) = (&lookup, &key) {
            if let Some(text) = lookup.config(key) {
                return Ok(NixConfig::from_lines(text));
            }
        }
        let out = self
            .output_either(self.caps.config_show, &["config", "show"], &["show-config"])
            .await?;
        let text = String::from_utf8_lossy(&out);
        if let (Some(lookup), Some(key)) = (&mut lookup, key) {
            lookup.save_config(key, &text);
        }
        Ok(NixConfig::from_lines(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_show_config_output() {
        let text = "builders = @/etc/nix/machines\nbuilders-use-substitutes = false\nrequire-sigs = true\nsubstituters = http://127.0.0.1:9 https://cache.nixos.org/\nsystem = x86_64-linux\ntrusted-public-keys = cache.nixos.org-1:6NCH= lab:abc=\nextra-platforms = i686-linux\nsystem-features = benchmark big-parallel kvm nixos-test\n";
        let c = NixConfig::from_lines(text);
        assert_eq!(c.builders, "@/etc/nix/machines");
        assert_eq!(
            c.substituters,
            ["http://127.0.0.1:9", "https://cache.nixos.org/"]
        );
        assert_eq!(c.trusted_key_names(), ["cache.nixos.org-1", "lab"]);
        assert!(c.require_sigs);
        assert_eq!(c.system, "x86_64-linux");
        assert_eq!(c.extra_platforms, ["i686-linux"]);
    }

    #[test]
    fn reads_every_recorded_version() {
        // `nix show-config` (2.8) and `nix config show` (2.26, 2.34), recorded on a store
        // with NIX_CONF_DIR holding `substituters =` and no builders.
        for file in [
            "show-config-2.8.txt",
            "config-show-2.26.txt",
            "config-show-2.34.txt",
        ] {
            let path = format!("{}/tests/data/formats/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let c = NixConfig::from_lines(&text);
            assert_eq!(c.system, "x86_64-linux", "{file}");
            assert!(c.substituters.is_empty(), "{file}: {:?}", c.substituters);
            assert!(c.require_sigs, "{file}");
            assert_eq!(c.trusted_key_names(), ["cache.nixos.org-1"], "{file}");
            assert!(c.builders.starts_with('@'), "{file}: {}", c.builders);
            assert!(
                c.extra_platforms.contains(&"i686-linux".to_owned()),
                "{file}"
            );
        }
    }

    #[test]
    fn empty_values_and_require_sigs_off() {
        let c = NixConfig::from_lines("substituters =\nbuilders =\nrequire-sigs = false\n");
        assert!(c.substituters.is_empty());
        assert_eq!(c.builders, "");
        assert!(!c.require_sigs);
        assert!(!c.accept_flake_config && c.trusted_substituters.is_empty());
        let c = NixConfig::from_lines(
            "accept-flake-config = true\ntrusted-substituters = http://a https://b\n",
        );
        assert!(c.accept_flake_config);
        assert_eq!(c.trusted_substituters, ["http://a", "https://b"]);
    }
}
