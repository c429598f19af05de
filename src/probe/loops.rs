//! Builders that would pass our builds back here: their nix has builders of its own, does not
//! trust us, and one of those builders is this machine (NixOS/nix#10740).

use super::ProbeFailure;
use crate::builder::Builder;

/// Leaves out a builder that would pass our builds back here: it may forward
/// ([`Builder::may_forward`]) and one of its builders is named as this machine is named (our
/// host name, or the name of a builder of ours that is this machine).
pub(super) fn leave_out_loops(builders: &mut [Builder]) {
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_ascii_lowercase();
    let mut here: Vec<String> = builders
        .iter()
        .filter(|b| b.failure() == Some(&ProbeFailure::ThisMachine))
        .map(|b| short(b.machine.uri.ssh().map_or("", |a| a.host.as_str())))
        .collect();
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        here.push(short(name.trim()));
    }
    here.retain(|h| !h.is_empty() && h != "localhost");
    for b in builders
        .iter_mut()
        .filter(|b| b.reachable() && b.may_forward)
    {
        let back = b
            .forwards_to
            .iter()
            .find(|h| here.contains(&short(h)))
            .cloned();
        if let Some(host) = back {
            b.leave_out(ProbeFailure::ForwardsBack(host));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{BuilderId, Status};
    use crate::machines::parse_machines;
    use crate::probe::Identity;

    fn builder(line: &str, i: usize) -> Builder {
        let mut none = |_: &std::path::Path| None;
        let machine = parse_machines(line, "test", &mut none)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        let mut b = Builder::declared(BuilderId(i), machine, Identity::Own("t".into()));
        b.set_status(Status::Verified { connection: None });
        b
    }

    #[test]
    fn a_builder_that_would_pass_builds_back_here_is_left_out() {
        let mut me = builder("ssh-ng://vermax.lan x86_64-linux", 0);
        me.leave_out(ProbeFailure::ThisMachine);
        let mut loops = builder("ssh-ng://seasmoke x86_64-linux", 1);
        loops.may_forward = true;
        loops.forwards_to = vec!["vermax".into()];
        let mut elsewhere = builder("ssh-ng://other x86_64-linux", 2);
        elsewhere.may_forward = true;
        elsewhere.forwards_to = vec!["third".into(), "localhost".into()];
        let mut all = vec![me, loops, elsewhere];
        leave_out_loops(&mut all);
        assert_eq!(
            all[1].failure(),
            Some(&ProbeFailure::ForwardsBack("vermax".into()))
        );
        assert!(!all[1].reachable());
        assert!(all[2].reachable(), "{:?}", all[2].failure());
    }
}
