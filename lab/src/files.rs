//! The files of a lab: the directory layout, the keys (ssh host and client keys, nix signing
//! keys), `known_hosts`, the ssh config and each host's `nix.conf`, and small file helpers.

use crate::lab::Lab;
use crate::{failed, sys, ClientNix, Result, PATH};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directories of a fresh lab (see the crate docs' layout), with each client's store seeded.
pub(crate) fn make_layout(dir: &Path) -> Result<()> {
    for d in [
        "bin",
        "home",
        "markers",
        "flake",
        "vermax/etc-nix",
        "vermax/nix-2.8",
        "vermax/nix-2.26",
        "vermax/nix-2.34",
        "seasmoke/nix",
        "seasmoke/etc-nix",
        "seasmoke/home",
        "upstream/nix",
        "upstream/etc-nix",
        "upstream/cache",
    ] {
        fs::create_dir_all(dir.join(d))?;
    }
    for v in ClientNix::EVERY {
        seed_store_layout(&dir.join(format!("vermax/nix-{}", v.version())))?;
    }
    Ok(())
}

/// The public halves of the keys a fresh lab makes (the secret halves stay in files).
pub(crate) struct Keys {
    /// seasmoke's ssh host key (`ssh-ed25519 AAAA...`), also in `known_hosts`.
    pub(crate) host_key_pub: String,
    /// The cache's nix signing key (`upstream-lab-1:...`).
    pub(crate) cache_public_key: String,
    /// seasmoke's nix signing key (`seasmoke-lab-1:...`).
    pub(crate) builder_public_key: String,
}

impl Keys {
    /// Makes seasmoke's host key and its impostor twin's, the client key (authorized on
    /// seasmoke), `known_hosts`, and the nix signing keys of the cache and of seasmoke.
    pub(crate) fn generate(dir: &Path) -> Result<Keys> {
        let keygen = |file: &str, comment: &str| -> Result<String> {
            let mut c = Command::new("ssh-keygen");
            c.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(dir.join(file));
            sys::run(c, "ssh-keygen").map_err(failed)?;
            let pubkey = fs::read_to_string(dir.join(format!("{file}.pub")))?;
            Ok(pubkey.trim().to_string())
        };
        let host_key_pub = keygen("seasmoke/host_key", "seasmoke")?;
        keygen("seasmoke/impostor_host_key", "impostor")?;
        let client_pub = keygen("client_key", "root@vermax")?;
        fs::write(
            dir.join("seasmoke/authorized_keys"),
            format!("{client_pub}\n"),
        )?;
        let host_key_fields: Vec<&str> = host_key_pub.split_whitespace().take(2).collect();
        let host_key_pub = host_key_fields.join(" ");
        fs::write(
            dir.join("known_hosts"),
            format!("seasmoke {host_key_pub}\n"),
        )?;

        let nix_key = |name: &str, sub: &str| -> Result<String> {
            let sec = dir.join(format!("{sub}/signing.sec"));
            let public = dir.join(format!("{sub}/signing.pub"));
            let mut c = Command::new("unshare");
            c.args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-ec",
            ])
            .arg("mount --bind \"$1\" /nix; shift; exec \"$@\"")
            .arg("sh")
            .arg(dir.join("upstream/nix"))
            .args(["nix-store", "--generate-binary-cache-key", name])
            .arg(&sec)
            .arg(&public)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", dir.join("home"))
            .env("NIX_CONF_DIR", dir.join("vermax/etc-nix"))
            .env("NIX_CONFIG", "build-users-group =");
            sys::run(c, "nix-store --generate-binary-cache-key").map_err(failed)?;
            Ok(fs::read_to_string(&public)?.trim().to_string())
        };
        let cache_public_key = nix_key("upstream-lab-1", "upstream")?;
        let builder_public_key = nix_key("seasmoke-lab-1", "seasmoke")?;

        Ok(Keys {
            host_key_pub,
            cache_public_key,
            builder_public_key,
        })
    }
}

impl Lab {
    /// The ssh config file the lab writes (`Host seasmoke`, through the proxy).
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }

    pub(crate) fn write_files(&self) -> Result<()> {
        let d = self.dir.display().to_string();
        let proxy_port = self.proxy.port();
        fs::write(
            self.dir.join("ssh_config"),
            format!(
                "# The lab's complete ssh config: use with ssh -F {d}/ssh_config\n\
                 Host seasmoke\n\
                 \x20 HostName 127.0.0.1\n\
                 \x20 Port {proxy_port}\n\
                 \x20 User root\n\
                 \x20 IdentityFile {d}/client_key\n\
                 \x20 IdentitiesOnly yes\n\
                 \x20 IdentityAgent none\n\
                 \x20 UserKnownHostsFile {d}/known_hosts\n\
                 \x20 GlobalKnownHostsFile /dev/null\n\
                 \x20 HostKeyAlias seasmoke\n\
                 \x20 StrictHostKeyChecking yes\n\
                 \x20 UpdateHostKeys no\n\
                 \x20 BatchMode yes\n\
                 Host *\n\
                 \x20 StrictHostKeyChecking yes\n\
                 \x20 BatchMode yes\n"
            ),
        )?;
        fs::write(
            self.dir.join("registry.json"),
            "{\"flakes\":[],\"version\":2}\n",
        )?;
        fs::write(self.dir.join("vermax/etc-nix/nix.conf"), "")?;
        let mut seasmoke = format!(
            "experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\n\
             trusted-public-keys = {}\nflake-registry = {d}/registry.json\n",
            self.cache_public_key
        );
        if self.opts.http_cache {
            seasmoke += &format!("substituters = {}\n", self.cache_url());
        } else {
            seasmoke += "substituters =\n";
        }
        if self.opts.builder_signs {
            seasmoke += &format!("secret-key-files = {d}/seasmoke/signing.sec\n");
        }
        if let Some(users) = &self.opts.builder_daemon_trusted_users {
            seasmoke += &format!("trusted-users = {users}\n");
        }
        fs::write(self.dir.join("seasmoke/etc-nix/nix.conf"), seasmoke)?;
        fs::write(
            self.dir.join("upstream/etc-nix/nix.conf"),
            format!(
                "experimental-features = nix-command flakes\nsandbox = false\n\
                 build-users-group =\nsubstituters =\nflake-registry = {d}/registry.json\n"
            ),
        )?;
        fs::write(
            self.dir.join("home/.bashrc"),
            "PS1=\"[${NIXDISPATCH_LAB_HOST:-lab}] \\w# \"\n",
        )?;
        self.write_scripts()?;
        Ok(())
    }
}

/// The link every nix makes when it first opens a store (`var/nix/gcroots/profiles`), made in
/// advance: two nix processes opening a fresh store at the same moment race to create it, and
/// the loser fails with "creating symlink from '/nix/var/nix/gcroots/profiles' ...: File
/// exists" (seen here with Nix 2.8 when two runs start at once). A used store always has it.
pub(crate) fn seed_store_layout(nix_dir: &Path) -> Result<()> {
    fs::create_dir_all(nix_dir.join("var/nix/profiles"))?;
    fs::create_dir_all(nix_dir.join("var/nix/gcroots"))?;
    let link = nix_dir.join("var/nix/gcroots/profiles");
    if fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink("/nix/var/nix/profiles", &link)?;
    }
    Ok(())
}

/// Removes what is inside `dir`, keeping `dir` itself (it may be the source of a bind mount).
pub(crate) fn empty_dir(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(&p)?;
        } else {
            fs::remove_file(&p)?;
        }
    }
    Ok(())
}

pub(crate) fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", sys::random_hex(3)));
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }
}
