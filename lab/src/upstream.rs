//! upstream: the lab's HTTP binary cache (served in this process over a `file://` directory,
//! signed with its own key) and the scratch store that fills it.

use crate::lab::Lab;
use crate::sys::{self, lines};
use crate::{failed, Result, LAB_MARKER_VAR, PATH};
use std::path::PathBuf;
use std::process::Command;

impl Lab {
    /// `http://127.0.0.1:PORT`, the upstream binary cache.
    pub fn cache_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http.port())
    }

    /// Caps the bytes per second the HTTP cache sends, all requests together (`None`:
    /// unlimited): a cache behind a slow link.
    pub fn set_cache_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.http.set_bandwidth(bytes_per_sec);
    }

    /// The `file://` directory behind [`Lab::cache_url`].
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join("upstream/cache")
    }

    /// `METHOD /path STATUS` of every request the HTTP cache served.
    pub fn cache_requests(&self) -> Vec<String> {
        self.http.log()
    }

    /// The cache's public key (`upstream-lab-1:...`), trusted by the client.
    pub fn cache_public_key(&self) -> &str {
        &self.cache_public_key
    }

    /// Builds `installable` in a scratch store (Nix 2.26) and copies its closure, signed with
    /// the cache key, into the HTTP cache (`compression=none`). Returns the output paths.
    pub fn push_to_cache(&self, installable: &str) -> Result<Vec<String>> {
        let mut c = self.upstream_command("nix");
        c.args(["build", "--no-link", "--print-out-paths", installable]);
        let out = sys::run(c, &format!("building {installable} for the cache")).map_err(failed)?;
        let paths = lines(&out);
        let mut c = self.upstream_command("nix");
        c.args(["copy", "--to", &self.cache_store_uri()])
            .args(&paths);
        sys::run(c, "nix copy to the lab cache").map_err(failed)?;
        Ok(paths)
    }

    /// `file://LABDIR/upstream/cache?compression=none&secret-key=...`: the store URI that
    /// writes (and signs) into the HTTP cache. Use with [`Lab::upstream_command`].
    pub fn cache_store_uri(&self) -> String {
        format!(
            "file://{}?compression=none&secret-key={}",
            self.cache_dir().display(),
            self.dir.join("upstream/signing.sec").display()
        )
    }

    /// `program` run on the scratch store that fills the cache (Nix 2.26 chroot).
    pub fn upstream_command(&self, program: &str) -> Command {
        let mut c = Command::new(self.dir.join("bin/upstream"));
        c.arg(program).env_clear().envs(self.upstream_env());
        c
    }

    pub(crate) fn upstream_env(&self) -> Vec<(String, String)> {
        let d = self.dir.display();
        vec![
            (LAB_MARKER_VAR.into(), d.to_string()),
            ("PATH".into(), PATH.into()),
            ("HOME".into(), format!("{d}/home")),
            ("USER".into(), "root".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("NIX_CONF_DIR".into(), format!("{d}/upstream/etc-nix")),
        ]
    }
}
