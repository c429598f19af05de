//! What `nix --version` and `nix config show` answered last time, kept in the user's cache
//! directory so that a run starts no nix process just to ask them again (each costs 10-20 ms of
//! nix's own start-up; a noop run otherwise spends most of its time there).
//!
//! An answer is reused only while everything it depends on is unchanged, which the key says:
//! - the version: the `nix` found on PATH, by canonical path (store paths are immutable; an
//!   upgrade through a profile moves the link) and by device, inode, size and mtime (a package
//!   manager replacing `/usr/bin/nix` changes them);
//! - the settings: that binary, every environment variable nix reads its configuration from
//!   (every `NIX_*`, the `XDG_*` directories, `HOME`), the content of every `nix.conf` nix
//!   loads (`$NIX_CONF_DIR/nix.conf`, `$NIX_USER_CONF_FILES` or the XDG config directories) and
//!   of the files they `include`, the boot (`/proc/sys/kernel/random/boot_id`: nix derives
//!   defaults such as `system-features` from the machine) and whether `/dev/kvm` exists.
//!
//! The file holds only the settings nixdispatch reads ([`KEPT_SETTINGS`]), never the rest of
//! `nix config show` (it can carry `access-tokens`), and only a hash of the configuration files.
//! It is written atomically (temporary file, then rename) with mode 0600; a cache that cannot be
//! read, parsed or written is ignored: nix is asked, as without it.

use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The settings of `nix config show` that nixdispatch reads ([`super::config::NixConfig`]);
/// only these lines are cached.
pub const KEPT_SETTINGS: &[&str] = &[
    "builders",
    "substituters",
    "trusted-public-keys",
    "require-sigs",
    "trusted-substituters",
    "accept-flake-config",
    "system",
    "extra-platforms",
    "system-features",
    "max-jobs",
];

/// How deep `include` directives are followed (nix has no limit; a loop must not hang us).
const MAX_INCLUDE_DEPTH: usize = 8;

/// The cache file: `$XDG_CACHE_HOME/nixdispatch/nix.json`, else `~/.cache/nixdispatch/nix.json`.
pub fn cache_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("nixdispatch").join("nix.json"))
}

/// What the cache file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cached {
    /// The key of the nix binary ([`binary_key`]) the answers below came from.
    #[serde(default)]
    pub binary: String,
    /// `nix --version`'s first line.
    #[serde(default)]
    pub version: Option<String>,
    /// The key of the configuration ([`config_key`]) `config` came from.
    #[serde(default)]
    pub config_key: Option<String>,
    /// The [`KEPT_SETTINGS`] lines of `nix config show`.
    #[serde(default)]
    pub config: Option<String>,
}

/// The cache as this process sees it: the file, the nix on PATH, and what the file holds for it.
#[derive(Debug)]
pub struct Lookup {
    file: PathBuf,
    binary: String,
    cached: Cached,
}

impl Lookup {
    /// Opens the cache for the `nix` on PATH; `None` when there is no cache directory or no
    /// nix on PATH (then nix is asked, and fails or answers as it does).
    pub fn open() -> Option<Lookup> {
        let file = cache_file()?;
        let binary = binary_key(std::env::var_os("PATH"))?;
        let cached = load(&file)
            .filter(|c| c.binary == binary)
            .unwrap_or_else(|| Cached {
                binary: binary.clone(),
                ..Cached::default()
            });
        Some(Lookup {
            file,
            binary,
            cached,
        })
    }

    /// `nix --version` as this nix answered it before.
    pub fn version(&self) -> Option<&str> {
        self.cached.version.as_deref()
    }

    /// Keeps this nix's `nix --version`.
    pub fn save_version(&mut self, text: &str) {
        self.cached.version = Some(text.lines().next().unwrap_or_default().to_owned());
        store(&self.file, &self.cached);
    }

    /// The key of nix's configuration in this process's environment.
    pub fn config_key(&self) -> String {
        let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        config_key(&self.binary, &env)
    }

    /// The kept lines of `nix config show` for configuration `key`, when cached.
    pub fn config(&self, key: &str) -> Option<&str> {
        match (&self.cached.config_key, &self.cached.config) {
            (Some(k), Some(text)) if k == key => Some(text),
            _ => None,
        }
    }

    /// Keeps the lines of `nix config show` nixdispatch reads, for configuration `key`.
    pub fn save_config(&mut self, key: String, text: &str) {
        self.cached.config_key = Some(key);
        self.cached.config = Some(kept_lines(text));
        store(&self.file, &self.cached);
    }
}

/// Reads the cache file; `None` when absent or unreadable.
pub fn load(file: &Path) -> Option<Cached> {
    let meta = std::fs::metadata(file).ok()?;
    // Anything big is not ours.
    if !meta.is_file() || meta.len() > 1 << 20 {
        return None;
    }
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}

/// Writes the cache file atomically (mode 0600, directory 0700); failures are only logged.
pub fn store(file: &Path, cached: &Cached) {
    if let Err(err) = try_store(file, cached) {
        tracing::debug!(file = %file.display(), %err, "the nix answers were not cached");
    }
}

fn try_store(file: &Path, cached: &Cached) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = file
        .parent()
        .ok_or_else(|| std::io::Error::other("no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".nix.json.{}", std::process::id()));
    let bytes = serde_json::to_vec(cached).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = f.write_all(&bytes).and_then(|()| f.sync_data());
    drop(f);
    match written.and_then(|()| std::fs::rename(&tmp, file)) {
        Ok(()) => Ok(()),
        Err(err) => {
            let _ = std::fs::remove_file(&tmp);
            Err(err)
        }
    }
}

/// The program `Command::new(name)` would run: the first executable file `name` on PATH.
pub fn find_on_path(name: &str, path: Option<OsString>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&path?)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The identity of the `nix` that runs: canonical path and its file's device, inode, size and
/// mtime. `None` when nix is not on PATH (the caller then asks nix, which fails as
/// it should).
pub fn binary_key(path_var: Option<OsString>) -> Option<String> {
    let found = find_on_path("nix", path_var)?;
    let real = std::fs::canonicalize(found).ok()?;
    let m = std::fs::metadata(&real).ok()?;
    // Not ctime: a hard link to the file (`nix-store --optimise`, seen here when a lab linked
    // it) changes it, while the binary stays the same.
    Some(format!(
        "{} dev={} ino={} size={} mtime={}.{}",
        real.display(),
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
    ))
}

/// The environment variables nix's configuration depends on, sorted.
fn config_env(env: &[(OsString, OsString)]) -> Vec<(OsString, OsString)> {
    let mut kept: Vec<(OsString, OsString)> = env
        .iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            k.starts_with("NIX_") || k.starts_with("XDG_") || k == "HOME"
        })
        .cloned()
        .collect();
    kept.sort();
    kept
}

fn var<'a>(env: &'a [(OsString, OsString)], name: &str) -> Option<&'a OsString> {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The configuration files nix loads, in its order (libstore's `loadConfFile`): the system's
/// `$NIX_CONF_DIR/nix.conf` (default `/etc/nix`), then `$NIX_USER_CONF_FILES` or, without it,
/// `nix/nix.conf` in `$XDG_CONFIG_HOME` (`~/.config`) and in each of `$XDG_CONFIG_DIRS`
/// (`/etc/xdg`).
pub fn config_files(env: &[(OsString, OsString)]) -> Vec<PathBuf> {
    let conf_dir =
        var(env, "NIX_CONF_DIR").map_or_else(|| PathBuf::from("/etc/nix"), PathBuf::from);
    let mut files = vec![conf_dir.join("nix.conf")];
    if let Some(user) = var(env, "NIX_USER_CONF_FILES") {
        files.extend(std::env::split_paths(user));
    } else {
        let home = var(env, "XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| var(env, "HOME").map(|h| PathBuf::from(h).join(".config")));
        files.extend(home.map(|h| h.join("nix/nix.conf")));
        let dirs = var(env, "XDG_CONFIG_DIRS")
            .cloned()
            .unwrap_or_else(|| OsString::from("/etc/xdg"));
        files.extend(std::env::split_paths(&dirs).map(|d| d.join("nix/nix.conf")));
    }
    files
}

/// The files a `nix.conf` text includes (`include PATH`, `!include PATH`), relative to `dir`.
fn includes(text: &str, dir: &Path) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default().trim();
            let rest = line
                .strip_prefix("!include")
                .or_else(|| line.strip_prefix("include"))?;
            // `include` followed by a space: `includes = …` is some other setting.
            if !rest.starts_with(char::is_whitespace) {
                return None;
            }
            let path = rest.trim();
            (!path.is_empty()).then(|| dir.join(path))
        })
        .collect()
}

fn hash_file(hasher: &mut Sha256, path: &Path, depth: usize) {
    hasher.update(path.as_os_str().as_encoded_bytes());
    hasher.update([0]);
    match std::fs::read(path) {
        Ok(bytes) => {
            hasher.update(b"present\0");
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
            if depth < MAX_INCLUDE_DEPTH {
                let dir = path.parent().unwrap_or(Path::new("/"));
                for inc in includes(&String::from_utf8_lossy(&bytes), dir) {
                    hash_file(hasher, &inc, depth + 1);
                }
            }
        }
        Err(err) => {
            hasher.update(b"absent\0");
            hasher.update(format!("{:?}", err.kind()).as_bytes());
        }
    }
    hasher.update([0]);
}

/// The key of nix's configuration as this process would see it (see the module documentation).
pub fn config_key(binary: &str, env: &[(OsString, OsString)]) -> String {
    let mut h = Sha256::new();
    h.update(b"nixdispatch config key 1\0");
    h.update(binary.as_bytes());
    h.update([0]);
    for (k, v) in config_env(env) {
        h.update(k.as_encoded_bytes());
        h.update(b"=");
        h.update(v.as_encoded_bytes());
        h.update([0]);
    }
    for file in config_files(env) {
        hash_file(&mut h, &file, 0);
    }
    let boot = std::fs::read("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    h.update(&boot);
    h.update([0, u8::from(Path::new("/dev/kvm").exists())]);
    // SAFETY: geteuid has no preconditions.
    h.update(unsafe { libc::geteuid() }.to_le_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The lines of `nix config show` output worth keeping ([`KEPT_SETTINGS`]).
pub fn kept_lines(text: &str) -> String {
    text.lines()
        .filter(|line| {
            let name = line.split_once('=').map_or("", |(k, _)| k).trim();
            KEPT_SETTINGS.contains(&name)
        })
        .fold(String::new(), |mut out, line| {
            out.push_str(line);
            out.push('\n');
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn the_binary_key_changes_with_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let nix = bin.join("nix");
        std::fs::write(&nix, "#!/bin/sh\n").unwrap();
        let path = Some(bin.clone().into_os_string());
        // Not executable: not what Command would run.
        assert_eq!(binary_key(path.clone()), None);
        std::fs::set_permissions(&nix, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let first = binary_key(path.clone()).unwrap();
        assert_eq!(binary_key(path.clone()).as_ref(), Some(&first));
        // A link to it is the same nix.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::os::unix::fs::symlink(&nix, other.join("nix")).unwrap();
        assert_eq!(
            binary_key(Some(other.clone().into_os_string())).as_ref(),
            Some(&first)
        );
        // Replaced (a package upgrade): a new key.
        let tmp = bin.join(".nix.new");
        std::fs::write(&tmp, "#!/bin/sh\necho new\n").unwrap();
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::rename(&tmp, &nix).unwrap();
        assert_ne!(binary_key(path).unwrap(), first);
    }

    #[test]
    fn the_config_key_follows_files_includes_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("etc");
        std::fs::create_dir(&conf).unwrap();
        std::fs::write(
            conf.join("nix.conf"),
            "substituters =\n!include extra.conf\n",
        )
        .unwrap();
        let base = env(&[
            ("NIX_CONF_DIR", conf.to_str().unwrap()),
            ("HOME", dir.path().to_str().unwrap()),
            ("XDG_CONFIG_DIRS", "/nonexistent"),
            ("TERM", "dumb"),
        ]);
        let k1 = config_key("nix", &base);
        assert_eq!(config_key("nix", &base), k1);
        // An unrelated variable does not matter; NIX_CONFIG does.
        let mut other = base.clone();
        other.push(("LANG".into(), "C".into()));
        assert_eq!(config_key("nix", &other), k1);
        let mut with_config = base.clone();
        with_config.push(("NIX_CONFIG".into(), "max-jobs = 0".into()));
        assert_ne!(config_key("nix", &with_config), k1);
        // Another binary.
        assert_ne!(config_key("nix2", &base), k1);
        // The included file appearing.
        std::fs::write(conf.join("extra.conf"), "builders =\n").unwrap();
        let k2 = config_key("nix", &base);
        assert_ne!(k2, k1);
        // The user's file.
        let user = dir.path().join(".config/nix");
        std::fs::create_dir_all(&user).unwrap();
        std::fs::write(user.join("nix.conf"), "max-jobs = 4\n").unwrap();
        assert_ne!(config_key("nix", &base), k2);
    }

    #[test]
    fn config_files_as_nix_loads_them() {
        let files = config_files(&env(&[("HOME", "/home/u")]));
        assert_eq!(
            files,
            [
                PathBuf::from("/etc/nix/nix.conf"),
                PathBuf::from("/home/u/.config/nix/nix.conf"),
                PathBuf::from("/etc/xdg/nix/nix.conf"),
            ]
        );
        let files = config_files(&env(&[
            ("HOME", "/home/u"),
            ("NIX_CONF_DIR", "/c"),
            ("NIX_USER_CONF_FILES", "/a.conf:/b.conf"),
        ]));
        assert_eq!(
            files,
            ["/c/nix.conf", "/a.conf", "/b.conf"].map(PathBuf::from)
        );
    }

    #[test]
    fn includes_are_read_relative_to_the_file() {
        let found = includes(
            "include a.conf\n!include /abs.conf # c\nincludes = x\n# include no\n",
            Path::new("/etc/nix"),
        );
        assert_eq!(found, ["/etc/nix/a.conf", "/abs.conf"].map(PathBuf::from));
    }

    #[test]
    fn only_the_settings_read_are_kept() {
        let text = "access-tokens = github.com=secret\nbuilders = @/etc/nix/machines\nsubstituters =\nsystem = x86_64-linux\n";
        let kept = kept_lines(text);
        assert!(!kept.contains("secret"), "{kept}");
        assert_eq!(
            kept,
            "builders = @/etc/nix/machines\nsubstituters =\nsystem = x86_64-linux\n"
        );
        let config = crate::nix::config::NixConfig::from_lines(&kept);
        assert_eq!(config.builders, "@/etc/nix/machines");
    }

    #[test]
    fn a_cache_round_trips_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/nix.json");
        assert_eq!(load(&file), None);
        let cached = Cached {
            binary: "b".into(),
            version: Some("nix (Nix) 2.8.0".into()),
            config_key: Some("k".into()),
            config: Some("system = x86_64-linux\n".into()),
        };
        store(&file, &cached);
        assert_eq!(load(&file), Some(cached));
        let mode = std::fs::metadata(&file).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(&file, "not json").unwrap();
        assert_eq!(load(&file), None);
    }
}
