//! The [`Lab`] value: what a running lab holds, and how it starts. Each host and job has its own
//! module (`seasmoke`, `clients`, `upstream`, `faults`, `files`, `cleanup`); they all add methods
//! to this one type.

use crate::cleanup::{lock_lab_dir, sweep_stale_labs, HalfLab};
use crate::files::Keys;
use crate::seasmoke::{pick_ports, Ports, Seasmoke};
use crate::{default_fixtures, http, proxy, roots, sys, Fault, Fixture, LabOptions, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

/// A running lab. See the crate docs. Dropping it cleans everything up.
pub struct Lab {
    pub(crate) dir: PathBuf,
    pub(crate) trixie: PathBuf,
    pub(crate) opts: LabOptions,
    pub(crate) nonce: Mutex<String>,
    pub(crate) fixtures: Mutex<Vec<Fixture>>,
    pub(crate) proxy: proxy::Proxy,
    pub(crate) http: http::HttpCache,
    pub(crate) ports: Mutex<Ports>,
    pub(crate) seasmoke: Mutex<Option<Seasmoke>>,
    pub(crate) fault: Mutex<Fault>,
    pub(crate) host_key_pub: String,
    pub(crate) cache_public_key: String,
    pub(crate) builder_public_key: String,
    pub(crate) copied_bin: Mutex<Option<(PathBuf, SystemTime, u64)>>,
    pub(crate) extra_mountpoint: Option<PathBuf>,
    /// `LABDIR/lock`, flock'ed while this lab lives: a later lab that finds it unlocked knows
    /// the owner died without cleaning up, and removes the directory.
    pub(crate) _lock: fs::File,
}

// Tests share a lab across threads (a fault switched while a build runs elsewhere).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Lab>();
};

/// Locks `m`, also after a panic in another thread that held it (the data stays usable).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Lab {
    /// Starts a lab: keys, configs, fixture flake, seasmoke's sshd (and its impostor twin for
    /// [`Fault::HostKeyChanged`]), the proxy and the HTTP cache. About a quarter second.
    pub fn start(opts: LabOptions) -> Result<Lab> {
        let trixie = roots::check_prerequisites(&opts)?;
        crate::flake::check_fixtures(&opts.fixtures)?;

        let base = std::env::temp_dir();
        sweep_stale_labs(&base);
        let tmp = tempfile::Builder::new()
            .prefix("nixdispatch-lab-")
            .tempdir_in(&base)?;
        let dir = tmp.path().to_path_buf();
        // From here on the Lab owns the directory (Drop removes it, even on a failed start).
        let _ = tmp.keep();
        let lock = lock_lab_dir(&dir)?;
        let extra_mountpoint = if dir.starts_with("/tmp") {
            None
        } else {
            Some(trixie.join(dir.strip_prefix("/").unwrap_or(&dir)))
        };

        let mut half = HalfLab {
            dir: dir.clone(),
            extra_mountpoint: extra_mountpoint.clone(),
        };
        crate::files::make_layout(&dir)?;
        let keys = Keys::generate(&dir)?;

        // Network: the sshd ports, the proxy in front, the HTTP cache.
        let ports = pick_ports()?;
        let proxy = proxy::Proxy::start(ports.sshd, ports.impostor, opts.latency)?;
        proxy.set_bandwidth(opts.bandwidth);
        let http = http::HttpCache::start(dir.join("upstream/cache"))?;

        let mut fixtures = default_fixtures();
        for f in &opts.fixtures {
            fixtures.retain(|g| g.name != f.name);
            fixtures.push(f.clone());
        }
        let lab = Lab {
            dir: dir.clone(),
            trixie,
            opts,
            nonce: Mutex::new(sys::random_hex(6)),
            fixtures: Mutex::new(fixtures),
            proxy,
            http,
            ports: Mutex::new(ports),
            seasmoke: Mutex::new(None),
            fault: Mutex::new(Fault::None),
            host_key_pub: keys.host_key_pub,
            cache_public_key: keys.cache_public_key,
            builder_public_key: keys.builder_public_key,
            copied_bin: Mutex::new(None),
            extra_mountpoint,
            _lock: lock,
        };
        half.dir = PathBuf::new(); // the Lab's Drop takes over
        drop(half);

        lab.write_files()?;
        lab.write_flake()?;
        lab.start_seasmoke()?;
        Ok(lab)
    }

    /// The lab directory (visible at the same path in every host).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the lab was started with.
    pub fn options(&self) -> &LabOptions {
        &self.opts
    }
}
