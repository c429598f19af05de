//! What the nix in front of us can do, and which spelling of each command it understands.
//!
//! The first guess comes from the version (`nix --version`, with Lix counted as the Nix 2.18 it
//! forked from: it prints 2.9x yet has the older shapes). Guesses are never the last word:
//! every reader accepts every shape it knows whatever the version said, and every command that
//! changed spelling falls back to the other spelling when nix rejects the first
//! ([`rejected_as_unknown`]). Determinate Nix prints `nix (Determinate Nix 3.x) 2.y.z` and is
//! read as the upstream `2.y.z` it is built on.
//!
//! ## What changed, where (checked against the Nix sources and release notes; "recorded" means
//! seen here on real binaries: Debian 12's 2.8.0, trixie's 2.26.3, sid's 2.34.8, recordings in
//! `tests/data/formats/`)
//!
//! | version | change | what nixdispatch does |
//! |---|---|---|
//! | 2.8 | oldest supported; `nix show-derivation`, `nix show-config`, `nix store ping`; `path-info --json` is an array with `valid: false` for missing paths (recorded) | reads all of it; below 2.8: exit 2 naming the version found and 2.8 |
//! | 2.15 | `nix derivation show` replaces `show-derivation`; a `.drv` installable needs `^*`; `store ping` prints `Trusted:` | picks by version, falls back on "not a recognised command" |
//! | 2.18 | `inputDrvs` values become `{outputs, dynamicOutputs}` | both read |
//! | 2.19 | `path-info --json` becomes an object keyed by path, `null` for missing; `nix store info` (and `--json`) replaces `store ping` (an alias that warns, recorded on 2.26 and 2.34); both print their text on stderr (seen here) | both shapes read; locally `store info --json`, else `store ping`'s text from stdout and stderr; on builders `store info`, else `store ping` |
//! | 2.20 | `nix config show` replaces `show-config` (alias warns, recorded on 2.26 and 2.34); nh 4 needs it | picks by version, falls back; `--via nh` below 2.20 is exit 2 naming the version, and the default runner is nix there even with nh on PATH |
//! | 2.29 | `--json` is pretty-printed when stdout is a terminal (`--no-pretty` turns it off) | stdout is always a pipe for us; the readers take any whitespace anyway |
//! | 2.31 | ports in `ssh://host:port` / `ssh-ng://host:port` store and builder URIs (before: passed to ssh as part of the host name; seen here, 2.26: `ssh: Could not resolve hostname 127.0.0.1:43349`, "Failed to find a machine for remote build!") | a builder URI with a port is unusable by an older local nix: one line says 2.31 is needed |
//! | 2.32 | derivation JSON (format 3) uses store path base names (keys, outputs, inputs) | base names read with the store dir |
//! | 2.33 | derivation JSON format 4: `inputs: {srcs, drvs}` replaces `inputSrcs`/`inputDrvs`; `nix derivation show` wraps it as `{"version": 4, "derivations": {...}}` (recorded on 2.34.8); `path-info --json-format 1\|2`, bare `--json` warns on every call; format 1 adds `version` and `storeDir` per entry; format 2 is `{version, storeDir, info}` with base names and a structured `ca` | both wrappers and inner shapes read; path-info asks for `--json-format 2` where offered |
//! | 2.34 | `store info --json` prints `trusted` as a boolean (2.26: a number) (recorded) | both read |
//! | 2.35 | path-info format 3: structured signatures `{keyName, sig}` | both signature forms read |
//!
//! What a 2.31 user (NixOS 25.11) sees that the lab's 2.26 does not: ports in ssh URIs and the
//! 2.29 pretty-printing; the 2.32+ derivation and 2.33+ path-info changes are not in 2.31. Nix
//! 2.31 itself cannot be installed on these machines: 2.26 and 2.34 bracket it.
//!
//! Forks: Lix (`nix (Lix, like Nix) 2.91.1`) keeps 2.18's shapes and commands; Determinate Nix
//! numbers its own result types 109 (`HashMismatch`) and 110 (`BuildResult`) in the internal-json
//! log, which upstream has not assigned: see `crate::log::types`.

use super::NixVersion;

/// The oldest Nix that nixdispatch runs with (the oldest one tested).
pub const MINIMUM: (u32, u32) = (2, 8);

/// What one nix installation offers, as far as its version tells (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `nix derivation show` (2.15+) rather than `nix show-derivation`.
    pub derivation_show: bool,
    /// `nix store info` (2.19+) rather than `nix store ping`.
    pub store_info: bool,
    /// `nix config show` (2.20+) rather than `nix show-config`.
    pub config_show: bool,
    /// `nix path-info --json-format N` (2.33+).
    pub path_info_json_format: bool,
    /// Ports in `ssh://`/`ssh-ng://` URIs (2.31+).
    pub ssh_uri_ports: bool,
    /// Lix, which has `nix config show` although it counts as 2.18 here.
    pub lix: bool,
}

impl Capabilities {
    /// The first guess for this version (Lix counts as 2.18).
    pub fn of(version: &NixVersion) -> Capabilities {
        Capabilities {
            derivation_show: version.at_least(2, 15),
            store_info: version.at_least(2, 19),
            config_show: version.at_least(2, 20),
            path_info_json_format: version.at_least(2, 33),
            ssh_uri_ports: version.at_least(2, 31),
            lix: version.lix,
        }
    }

    /// Whether nh can run on this nix: nh 4 runs `nix config show` (2.20+; Lix has it too).
    pub fn runs_nh(&self) -> bool {
        self.config_show || self.lix
    }

    /// The same for a version string as a remote builder reports it (`nix-store (Nix) 2.34.8`
    /// or just `2.34.8`); `None` when it names no version.
    pub fn of_text(text: &str) -> Option<Capabilities> {
        NixVersion::parse(text).ok().map(|v| Capabilities::of(&v))
    }
}

/// Whether the version is below [`MINIMUM`].
pub fn too_old(version: &NixVersion) -> bool {
    !version.at_least(MINIMUM.0, MINIMUM.1)
}

/// The one line for a nix older than [`MINIMUM`].
pub fn too_old_message(version: &NixVersion) -> String {
    format!(
        "Nix {version} is too old: nixdispatch needs Nix {}.{} or later; upgrade nix (or put a newer one first on PATH)",
        MINIMUM.0, MINIMUM.1
    )
}

/// Whether nix's stderr says it does not know a command or flag we passed (so the older
/// spelling should be tried): `'info' is not a recognised command`, `unrecognised flag
/// '--json-format'` (every version 2.8..2.34 spells them so; Lix alike).
pub fn rejected_as_unknown(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("is not a recognised command")
        || s.contains("is not a recognized command")
        || s.contains("unrecognised flag")
        || s.contains("unrecognized flag")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> NixVersion {
        NixVersion::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn capabilities_follow_the_version() {
        let old = Capabilities::of(&v("nix (Nix) 2.8.0"));
        assert!(!old.derivation_show && !old.store_info && !old.config_show);
        assert!(!old.runs_nh());
        assert!(Capabilities::of(&v("nix (Nix) 2.20.0")).runs_nh());
        assert!(Capabilities::of(&v("nix (Lix, like Nix) 2.91.1")).runs_nh());
        assert!(!old.path_info_json_format && !old.ssh_uri_ports);
        let mid = Capabilities::of(&v("nix (Nix) 2.26.3"));
        assert!(mid.derivation_show && mid.store_info && mid.config_show);
        assert!(!mid.path_info_json_format && !mid.ssh_uri_ports);
        let new = Capabilities::of(&v("nix (Nix) 2.34.8"));
        assert!(new.path_info_json_format && new.ssh_uri_ports);
        let nixos_25_11 = Capabilities::of(&v("nix (Nix) 2.31.2"));
        assert!(nixos_25_11.ssh_uri_ports && !nixos_25_11.path_info_json_format);
    }

    #[test]
    fn lix_is_not_judged_by_its_number() {
        // Lix 2.91 forked from Nix 2.18: none of the 2.19+ spellings.
        let lix = Capabilities::of(&v("nix (Lix, like Nix) 2.91.1"));
        assert!(lix.derivation_show);
        assert!(!lix.store_info && !lix.config_show && !lix.path_info_json_format);
        assert!(!lix.ssh_uri_ports);
        // Determinate Nix: the upstream version it is built on.
        let det = Capabilities::of(&v("nix (Determinate Nix 3.8.2) 2.30.1"));
        assert!(det.config_show && !det.ssh_uri_ports && !det.path_info_json_format);
    }

    #[test]
    fn builder_version_text() {
        let caps = Capabilities::of_text("nix-store (Nix) 2.34.8").unwrap();
        assert!(caps.path_info_json_format);
        assert!(Capabilities::of_text("2.26.3").is_some_and(|c| !c.path_info_json_format));
        assert!(Capabilities::of_text("sh: nix-store: not found").is_none());
    }

    #[test]
    fn minimum_is_2_8() {
        assert!(too_old(&v("nix (Nix) 2.7.0")));
        assert!(too_old(&v("nix (Nix) 2.3.16")));
        assert!(!too_old(&v("nix (Nix) 2.8.0")));
        assert!(!too_old(&v("nix (Lix, like Nix) 2.91.1")));
        let msg = too_old_message(&v("nix (Nix) 2.3.16"));
        assert!(msg.contains("2.3.16") && msg.contains("2.8"), "{msg}");
    }

    #[test]
    fn recognises_nix_refusing_a_spelling() {
        // Recorded: Nix 2.8 on `nix store info`, `nix config show`; 2.26 on `--json-format`.
        assert!(rejected_as_unknown(
            "error: 'info' is not a recognised command\nTry 'nix --help' for more information.\n"
        ));
        assert!(rejected_as_unknown(
            "error: 'config' is not a recognised command\n"
        ));
        assert!(rejected_as_unknown(
            "error: unrecognised flag '--json-format'\nTry 'nix --help' for more information.\n"
        ));
        assert!(!rejected_as_unknown(
            "error: getting status of \"/nix/store/x\": No such file or directory"
        ));
    }
}
