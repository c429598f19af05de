//! The lab's `bin/` scripts: how each host (the clients, seasmoke, the cache filler) runs a
//! command, in its own mount namespace (and chroot) with its own `/nix`.

use crate::lab::Lab;
use crate::{sid_root, sys, Result, LAB_MARKER_VAR};

/// The mounts a chroot host starts with: its own `/nix`, `/proc`, `/dev`, fresh `/tmp` and `/run`,
/// and the lab directory at its own path. Shell variables: `T` the root, `N` the directory bound
/// on `/nix`, `L` the lab directory.
macro_rules! chroot_mounts {
    () => {
        r#"mount --bind "$N" "$T/nix"
mount -t proc proc "$T/proc"
mount --rbind /dev "$T/dev"
mount -t tmpfs -o mode=1777 tmpfs "$T/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$T/run"
mkdir -p "$T/run/sshd" "$T$L"
mount --bind "$L" "$T$L"
"#
    };
}
pub(crate) use chroot_mounts;

/// The end of a chroot preamble: hostname `H`, then the command in the root `T`, in the
/// caller's directory when the root has it (chroot(1) always changes to `/`).
macro_rules! chroot_exec {
    () => {
        r#"hostname "$H"
exec chroot "$T" /bin/sh -c 'cd "$0" 2>/dev/null || cd /; exec "$@"' "$PWD" "$@""#
    };
}
pub(crate) use chroot_exec;

/// The namespace + chroot preamble shared by seasmoke, the 2.26 client and the cache filler.
/// Arguments: TRIXIE NIXDIR LABDIR HOSTNAME COMMAND...
pub(crate) const CHROOT_SCRIPT: &str = concat!(
    "set -e\nT=$1 N=$2 L=$3 H=$4; shift 4\n",
    chroot_mounts!(),
    chroot_exec!()
);

/// The private-/nix preamble of the 2.8 client. Arguments: NIXDIR HOSTNAME COMMAND...
pub(crate) const HOST_NS_SCRIPT: &str = r#"set -e
mount --bind "$1" /nix
hostname "$2"
shift 2
exec "$@""#;

impl Lab {
    pub(crate) fn write_scripts(&self) -> Result<()> {
        let d = self.dir.display().to_string();
        let q = |s: &str| sys::sh_quote(s);
        let exports = |env: &[(String, String)]| -> String {
            env.iter()
                .map(|(k, v)| format!("  export {k}={}\n", q(v)))
                .collect()
        };
        let trixie = self.trixie.display().to_string();
        let sid = sid_root().display().to_string();
        let builder_root = self.opts.builder_nix.root().display().to_string();
        let header = |what: &str, env: &[(String, String)], host: &str| {
            format!(
                "#!/bin/sh\n# {what}\n# Lab {d} (nixdispatch-lab). Usage: $0 [COMMAND [ARGS...]] (no command: a shell)\n\
                 set -e\n\
                 if [ \"${{{LAB_MARKER_VAR}:-}}\" != {dq} ]; then\n{exports}fi\n\
                 export NIXDISPATCH_LAB_HOST={host}\n\
                 [ \"$#\" -gt 0 ] || set -- /bin/bash\n",
                dq = q(&d),
                exports = exports(env),
            )
        };
        let chroot_exec_in = |root: &str, nixdir: &str, host: &str| {
            format!(
                "[ -x {root}/usr/bin/nix ] || {{ echo \"$0: {root} is missing: run scripts/lab-deps as root\" >&2; exit 2; }}\n\
                 exec unshare --mount --uts --propagation private -- /bin/sh -ec {} sh {root} {} {} {host} \"$@\"\n",
                q(CHROOT_SCRIPT),
                q(nixdir),
                q(&d),
                root = q(root),
            )
        };
        let chroot_exec = |nixdir: &str, host: &str| chroot_exec_in(&trixie, nixdir, host);
        let client_env = self.client_env();
        let scripts = [
            (
                "vermax-2.8",
                header(
                    "vermax, the client, with this machine's Nix 2.8 and the lab's private /nix",
                    &client_env,
                    "vermax-2.8",
                ) + &format!(
                    "exec unshare --mount --uts --propagation private -- /bin/sh -ec {} sh {} vermax \"$@\"\n",
                    q(HOST_NS_SCRIPT),
                    q(&format!("{d}/vermax/nix-2.8"))
                ),
            ),
            (
                "vermax-2.26",
                header(
                    "vermax, the client, with Nix 2.26 and nh (chroot of the trixie root), private /nix",
                    &client_env,
                    "vermax-2.26",
                ) + &chroot_exec(&format!("{d}/vermax/nix-2.26"), "vermax"),
            ),
            (
                "vermax-2.34",
                header(
                    "vermax, the client, with Nix 2.34 and nh (chroot of the sid root), private /nix",
                    &client_env,
                    "vermax-2.34",
                ) + &chroot_exec_in(&sid, &format!("{d}/vermax/nix-2.34"), "vermax"),
            ),
            (
                "seasmoke",
                header(
                    "a command on seasmoke's store and settings, directly (not over ssh)",
                    &self.builder_env(),
                    "seasmoke",
                ) + &chroot_exec_in(&builder_root, &format!("{d}/seasmoke/nix"), "seasmoke"),
            ),
            (
                "upstream",
                header(
                    "a command on the scratch store that fills the lab's binary cache",
                    &self.upstream_env(),
                    "upstream",
                ) + &chroot_exec(&format!("{d}/upstream/nix"), "upstream"),
            ),
        ];
        for (name, text) in scripts {
            sys::write_mode(&self.dir.join("bin").join(name), &text, 0o755)?;
        }
        Ok(())
    }
}
