//! Whether a builder is this machine under another name (`ssh-ng://localhost`, a fleet-wide
//! `nix.buildMachines` list applied to every host): nix then waits forever, because the build
//! holds its outputs' locks while the "remote" side, working on the same store, waits for them
//! (NixOS/nix#2029, open since 2018; seen here with Nix 2.8 and 2.34, plain nix included).
//!
//! Names cannot tell, so the probe asks the builder for its store's identity: the kernel's boot
//! id (a random UUID per boot, shared by containers and chroots on one kernel) and the device
//! and inode of its `/nix/store` directory. Same boot and same directory is the same store,
//! whatever the mount namespace, bind mount or chroot it is seen through; a chroot or container
//! with a store of its own (the lab's seasmoke) shares the boot id but not the directory, and
//! is rightly another machine. A store shared over NFS by two kernels is not caught.

use std::os::unix::fs::MetadataExt;

/// The store directory nix builds in, here and on builders (a builder must share it).
pub(crate) const STORE_DIR: &str = "/nix/store";

/// The shell lines that print a builder's [`StoreIdentity`], as the info script carries them
/// (`probe::info`; a test checks that they agree).
#[cfg(test)]
pub(crate) const SCRIPT: &str =
    "cat /proc/sys/kernel/random/boot_id 2>/dev/null; stat -L -c '%d:%i' /nix/store 2>/dev/null";

/// One store as the kernel knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreIdentity {
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// `DEVICE:INODE` of the store directory.
    pub store: String,
}

impl StoreIdentity {
    /// This process's store, or `None` when either part cannot be read (then nothing is
    /// judged to be this machine).
    pub fn local() -> Option<StoreIdentity> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let meta = std::fs::metadata(STORE_DIR).ok()?;
        Some(StoreIdentity {
            boot_id: boot_id.trim().to_owned(),
            store: format!("{}:{}", meta.dev(), meta.ino()),
        })
    }

    /// Reads [`SCRIPT`]'s two lines (in any order among others); `None` unless both are there.
    pub(crate) fn parse<'a>(lines: impl Iterator<Item = &'a str>) -> Option<StoreIdentity> {
        let mut boot_id = None;
        let mut store = None;
        for line in lines.map(str::trim) {
            let is_uuid = line.len() == 36
                && line.chars().filter(|c| *c == '-').count() == 4
                && line.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            let is_dev_ino = line
                .split_once(':')
                .is_some_and(|(d, i)| is_number(d) && is_number(i));
            if is_uuid {
                boot_id = Some(line.to_owned());
            } else if is_dev_ino {
                store = Some(line.to_owned());
            }
        }
        Some(StoreIdentity {
            boot_id: boot_id?,
            store: store?,
        })
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_boot_id_and_the_store_directory() {
        let out = "0d3c9a8e-2b1f-4e5a-9c7d-1234567890ab\n2049:1311\n";
        assert_eq!(
            StoreIdentity::parse(out.lines()),
            Some(StoreIdentity {
                boot_id: "0d3c9a8e-2b1f-4e5a-9c7d-1234567890ab".into(),
                store: "2049:1311".into(),
            })
        );
        // A builder without /proc or without the store says nothing: not this machine.
        assert_eq!(StoreIdentity::parse("2049:1311\n".lines()), None);
        assert_eq!(
            StoreIdentity::parse(
                "0d3c9a8e-2b1f-4e5a-9c7d-1234567890ab\nstat: cannot stat\n".lines()
            ),
            None
        );
    }

    #[test]
    fn this_process_has_an_identity_where_a_store_exists() {
        if std::path::Path::new(STORE_DIR).is_dir() {
            let here = StoreIdentity::local();
            assert!(here.is_some_and(|h| h.boot_id.len() == 36));
        }
    }
}
