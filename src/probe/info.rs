//! What the probe asks a builder in one round trip, and how the answer is read back.

use super::this_machine::StoreIdentity;
use crate::builder::Builder;

/// The shell line that answers everything the probe asks in one round trip. Each answer is
/// fenced by a marker line so that a chatty login shell cannot confuse the parser.
/// `#nixdispatch-identity` carries [`super::this_machine::SCRIPT`]'s answer (a literal here:
/// `concat!` takes no constants).
pub(crate) const INFO_SCRIPT: &str = "echo '#nixdispatch-version'; nix-store --version; \
echo '#nixdispatch-ping'; { nix --extra-experimental-features nix-command store info 2>&1 \
|| nix --extra-experimental-features nix-command store ping 2>&1; }; \
echo '#nixdispatch-config'; { nix --extra-experimental-features nix-command config show 2>/dev/null \
|| nix --extra-experimental-features nix-command show-config 2>/dev/null; }; \
echo '#nixdispatch-identity'; cat /proc/sys/kernel/random/boot_id 2>/dev/null; \
stat -L -c '%d:%i' /nix/store 2>/dev/null; \
echo '#nixdispatch-machines'; grep -v '^ *#' \"${NIX_CONF_DIR:-/etc/nix}/machines\" 2>/dev/null; \
echo '#nixdispatch-end'";

/// What the info script printed, read back.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RemoteInfo {
    pub(super) nix_version: Option<String>,
    pub(super) trusted: Option<bool>,
    pub(super) systems: Vec<String>,
    pub(super) features: Vec<String>,
    /// Its store's identity, to tell whether it is this machine.
    pub(super) store: Option<StoreIdentity>,
    /// Its own `builders` setting names a builder: it may forward what it is given.
    pub(super) has_builders: bool,
    /// The hosts its builders name (`builders` entries and its machines file's lines).
    pub(super) builder_hosts: Vec<String>,
}

/// The host of a machines-file line's URI (`ssh-ng://user@host:22?x` → `host`), lower case.
fn line_host(line: &str) -> Option<String> {
    let uri = line.split_whitespace().next()?;
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = rest.split([':', '/', '?']).next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether a `builders` value names a builder: an entry of its own, an `@.../machines` file
/// whose lines (`machines`, nix's default file as the script read it) name one, or any other
/// `@FILE` (not read: taken to name one).
fn names_builders(value: &str, machines: &[&str]) -> bool {
    value
        .split([';', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| match entry.strip_prefix('@') {
            Some(file) if file.ends_with("/machines") => {
                machines.iter().any(|l| !l.trim().is_empty())
            }
            Some(_) => true,
            None => true,
        })
}

impl RemoteInfo {
    pub(crate) fn parse(out: &str) -> RemoteInfo {
        let mut info = RemoteInfo::default();
        let mut section = "";
        let mut system = None;
        let mut extra = Vec::new();
        let mut identity = Vec::new();
        let mut machines = Vec::new();
        let mut builders = String::new();
        for line in out.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix("#nixdispatch-") {
                section = match name {
                    "version" => "version",
                    "ping" => "ping",
                    "config" => "config",
                    "identity" => "identity",
                    "machines" => "machines",
                    _ => "",
                };
                continue;
            }
            match section {
                "version" if info.nix_version.is_none() => {
                    info.nix_version = line
                        .rsplit(' ')
                        .next()
                        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
                        .map(str::to_owned);
                }
                "ping" => {
                    if let Some(v) = line.strip_prefix("Trusted:") {
                        info.trusted = Some(v.trim() == "1");
                    }
                }
                "config" => {
                    if let Some((k, v)) = line.split_once(" = ") {
                        let list = || v.split_whitespace().map(str::to_owned);
                        match k.trim() {
                            "system" => system = Some(v.trim().to_owned()),
                            "extra-platforms" => extra = list().collect(),
                            "system-features" => info.features = list().collect(),
                            "builders" => v.trim().clone_into(&mut builders),
                            _ => {}
                        }
                    }
                }
                "identity" => identity.push(line),
                "machines" => machines.push(line),
                _ => {}
            }
        }
        info.systems = system.into_iter().chain(extra).collect();
        info.store = StoreIdentity::parse(identity.into_iter());
        info.has_builders = names_builders(&builders, &machines);
        info.builder_hosts = builders
            .split([';', '\n'])
            .map(str::trim)
            .filter(|e| !e.starts_with('@'))
            .chain(machines.iter().copied())
            .filter_map(line_host)
            .collect();
        info
    }

    pub(super) fn apply(self, status: &mut Builder) {
        // A builder that does not trust us is handed whole derivations, which its own nix may
        // pass on to its builders (one that trusts us gets `buildDerivation`, which never is).
        status.may_forward = self.has_builders && self.trusted == Some(false);
        if status.may_forward {
            status.forwards_to = self.builder_hosts;
        }
        status.nix_version = self.nix_version;
        status.trusted = self.trusted;
        if !self.systems.is_empty() {
            status.systems = self.systems;
        }
        if !self.features.is_empty() {
            status.features = self.features;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_info_script() {
        let out = "Welcome!\n#nixdispatch-version\nnix-store (Nix) 2.26.3\n#nixdispatch-ping\nStore URL: daemon\nVersion: 2.26.3\nTrusted: 1\n#nixdispatch-config\nbuilders = \nsystem = x86_64-linux\nextra-platforms = i686-linux\nsystem-features = benchmark big-parallel kvm\n#nixdispatch-identity\n6f1c9a8e-2b1f-4e5a-9c7d-1234567890ab\n64768:2623\n#nixdispatch-end\n";
        let info = RemoteInfo::parse(out);
        assert_eq!(info.nix_version.as_deref(), Some("2.26.3"));
        assert_eq!(info.trusted, Some(true));
        assert_eq!(info.systems, ["x86_64-linux", "i686-linux"]);
        assert_eq!(info.features, ["benchmark", "big-parallel", "kvm"]);
        assert_eq!(info.store.map(|s| s.store).as_deref(), Some("64768:2623"));
        assert!(!info.has_builders);
        let forwards = RemoteInfo::parse(
            "#nixdispatch-config\nbuilders = ssh-ng://vermax x86_64-linux\n#nixdispatch-end\n",
        );
        assert!(forwards.has_builders);
        // nix's default, `@/etc/nix/machines`, counts only when the file names a builder.
        let default = "#nixdispatch-config\nbuilders = @/etc/nix/machines\n#nixdispatch-machines\n";
        assert!(!RemoteInfo::parse(default).has_builders);
        let listed = format!("{default}ssh-ng://root@Vermax:22 x86_64-linux\n#nixdispatch-end\n");
        assert!(RemoteInfo::parse(&listed).has_builders);
        assert_eq!(RemoteInfo::parse(&listed).builder_hosts, ["vermax"]);
    }

    #[test]
    fn the_identity_lines_in_the_script_are_this_machine_s() {
        assert!(INFO_SCRIPT.contains(super::super::this_machine::SCRIPT));
    }

    #[test]
    fn only_a_builder_with_builders_that_does_not_trust_us_may_forward() {
        let mut none = |_: &std::path::Path| None;
        let machine = crate::machines::parse_machines("ssh-ng://b x86_64-linux", "t", &mut none)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        let forwards = |trusted: &str, builders: &str| {
            let out = format!(
                "#nixdispatch-ping\nTrusted: {trusted}\n#nixdispatch-config\nbuilders = {builders}\n#nixdispatch-end\n"
            );
            let mut b = Builder::declared(
                crate::builder::BuilderId(0),
                machine.clone(),
                crate::probe::Identity::Own("t".into()),
            );
            RemoteInfo::parse(&out).apply(&mut b);
            b.may_forward
        };
        assert!(forwards("0", "ssh-ng://a x86_64-linux"));
        assert!(!forwards("1", "ssh-ng://a x86_64-linux"));
        assert!(!forwards("0", ""));
    }

    #[test]
    fn old_nix_has_no_trusted_line() {
        let out = "#nixdispatch-version\nnix-store (Nix) 2.8.0\n#nixdispatch-ping\nStore URL: local\n#nixdispatch-config\n#nixdispatch-end\n";
        let info = RemoteInfo::parse(out);
        assert_eq!(info.nix_version.as_deref(), Some("2.8.0"));
        assert_eq!(info.trusted, None);
    }

    #[test]
    fn missing_nix_has_no_version() {
        let out = "#nixdispatch-version\nsh: 1: nix-store: not found\n#nixdispatch-ping\n";
        assert_eq!(RemoteInfo::parse(out).nix_version, None);
    }
}
