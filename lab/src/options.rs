//! How to start a lab.

use crate::{BuilderNix, Fixture};
use std::time::Duration;

/// How to start a lab. `LabOptions::default()` gives: no latency, no substituters, an unsigned
/// builder, `builders` not set in the client's nix config.
#[derive(Clone, Debug)]
pub struct LabOptions {
    /// One-way delay added in each direction between the client and seasmoke's sshd (so a round
    /// trip costs twice this).
    pub latency: Duration,
    /// Bytes per second the link to seasmoke carries in each direction, all connections
    /// together (`None`: unlimited).
    pub bandwidth: Option<u64>,
    /// The client's `substituters` is the lab's HTTP cache (otherwise empty). The cache runs in
    /// every lab either way, and seasmoke uses it as its substituter when this is set.
    pub http_cache: bool,
    /// seasmoke signs what it builds (`secret-key-files`) and the client trusts that key.
    pub builder_signs: bool,
    /// Put `builders = <builder_spec>` in the client's nix config. Otherwise nix's default
    /// applies: `@$NIX_CONF_DIR/machines`, i.e. the file [`Lab::client_conf_dir`](crate::Lab::client_conf_dir)`/machines`
    /// (absent unless a test writes it).
    pub configure_builders_in_nix: bool,
    /// maxJobs field of [`Lab::builder_spec`].
    pub builder_max_jobs: u32,
    /// More packages for the fixture flake, beside [`crate::default_fixtures`].
    pub fixtures: Vec<Fixture>,
    /// Lines appended to the client's `NIX_CONFIG`.
    pub extra_nix_config: String,
    /// Which Nix seasmoke runs (2.26 by default; 2.34 from the sid root).
    pub builder_nix: BuilderNix,
    /// seasmoke runs a nix-daemon with this `trusted-users` and its ssh sessions go through it
    /// (`NIX_REMOTE=daemon`), as a NixOS builder whose build user is not trusted. `None`: the
    /// sessions open seasmoke's store themselves, as root, always trusted.
    pub builder_daemon_trusted_users: Option<String>,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            latency: Duration::ZERO,
            bandwidth: None,
            http_cache: false,
            builder_signs: false,
            configure_builders_in_nix: false,
            builder_max_jobs: 2,
            fixtures: Vec::new(),
            extra_nix_config: String::new(),
            builder_nix: BuilderNix::default(),
            builder_daemon_trusted_users: None,
        }
    }
}
