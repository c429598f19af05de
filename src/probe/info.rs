//! What the probe asks a builder in one round trip, and how the answer is read back.

use crate::builder::Builder;

/// The shell line that answers everything the probe asks in one round trip. Each answer is
/// fenced by a marker line so that a chatty login shell cannot confuse the parser.
pub(crate) const INFO_SCRIPT: &str = "echo '#nixdispatch-version'; nix-store --version; \
echo '#nixdispatch-ping'; { nix --extra-experimental-features nix-command store info 2>&1 \
|| nix --extra-experimental-features nix-command store ping 2>&1; }; \
echo '#nixdispatch-config'; { nix --extra-experimental-features nix-command config show 2>/dev/null \
|| nix --extra-experimental-features nix-command show-config 2>/dev/null; }; \
echo '#nixdispatch-end'";

/// What the info script printed, read back.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RemoteInfo {
    pub(super) nix_version: Option<String>,
    pub(super) trusted: Option<bool>,
    pub(super) systems: Vec<String>,
    pub(super) features: Vec<String>,
}

impl RemoteInfo {
    pub(crate) fn parse(out: &str) -> RemoteInfo {
        let mut info = RemoteInfo::default();
        let mut section = "";
        let mut system = None;
        let mut extra = Vec::new();
        for line in out.lines() {
            let line = line.trim();
            if let Some(name) = line.strip_prefix("#nixdispatch-") {
                section = match name {
                    "version" => "version",
                    "ping" => "ping",
                    "config" => "config",
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
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        info.systems = system.into_iter().chain(extra).collect();
        info
    }

    pub(super) fn apply(self, status: &mut Builder) {
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
        let out = "Welcome!\n#nixdispatch-version\nnix-store (Nix) 2.26.3\n#nixdispatch-ping\nStore URL: daemon\nVersion: 2.26.3\nTrusted: 1\n#nixdispatch-config\nsystem = x86_64-linux\nextra-platforms = i686-linux\nsystem-features = benchmark big-parallel kvm\n#nixdispatch-end\n";
        let info = RemoteInfo::parse(out);
        assert_eq!(info.nix_version.as_deref(), Some("2.26.3"));
        assert_eq!(info.trusted, Some(true));
        assert_eq!(info.systems, ["x86_64-linux", "i686-linux"]);
        assert_eq!(info.features, ["benchmark", "big-parallel", "kvm"]);
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
