//! The canary: a tiny derivation, unique to this run, built through the nix daemon on its
//! builders only (`--max-jobs 0`). It answers the one question a probe made as the user cannot:
//! will the daemon's builds, with root's ssh, reach the builder?

use crate::machines::Machine;
use crate::settings::Settings;
use std::time::Duration;

/// What the canary build showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Built remotely; the machine the log named (nix's `Build` activity), when it named one.
    Built(Option<String>),
    /// Failed: nix's own error line (the daemon's ssh error when there is one).
    Failed(String),
}

/// Builds the canary through the daemon: on `machine` alone when the daemon honours our
/// builders (trusted), else on the daemon's own builders. Bounded by `limit`.
pub async fn run(settings: &Settings, machine: Option<&Machine>, limit: Duration) -> Outcome {
    let system = machine
        .and_then(|m| {
            (!m.systems.is_empty() && !m.systems.contains(&settings.nix_config().system))
                .then(|| m.systems[0].clone())
        })
        .unwrap_or_else(|| settings.nix_config().system.clone());
    // It goes into a Nix string below: a system name is `arch-os`, nothing else.
    let system = if system
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        system
    } else {
        settings.nix_config().system.clone()
    };
    let nonce = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let expr = format!(
        "derivation {{ name = \"nixdispatch-canary\"; system = \"{system}\"; builder = \"/bin/sh\"; \
         args = [ \"-c\" \"echo {nonce} > $out\" ]; }}"
    );
    let mut cmd = settings.nix().command();
    cmd.args([
        "build",
        "--no-link",
        "--log-format",
        "internal-json",
        "-v",
        "--max-jobs",
        "0",
    ]);
    if let Some(m) = machine {
        cmd.arg("--option")
            .arg("builders")
            .arg(m.to_line_as(settings.nix().version.speed_factor_syntax()));
    }
    cmd.arg("--expr").arg(expr);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let out = match tokio::time::timeout(limit, cmd.output()).await {
        Err(_) => {
            return Outcome::Failed(format!(
                "the canary build did not finish within {}s",
                limit.as_secs()
            ))
        }
        Ok(Err(err)) => return Outcome::Failed(format!("cannot run nix: {err}")),
        Ok(Ok(out)) => out,
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    match read_log(&stderr, out.status.success()) {
        Outcome::Failed(why) if why.contains("failed to start SSH connection") => {
            // The daemon's ssh writes its own words to the daemon's stderr (the journal on
            // NixOS, readable by wheel), never to us.
            match journal_ssh_words().await {
                Some(words) => Outcome::Failed(format!("{why}: {words}")),
                None => Outcome::Failed(why),
            }
        }
        other => other,
    }
}

/// ssh's last error line in nix-daemon's journal, when this user may read it.
async fn journal_ssh_words() -> Option<String> {
    let out = tokio::time::timeout(
        crate::deadlines::LOCAL_CHECK,
        tokio::process::Command::new("journalctl")
            .args([
                "-u",
                "nix-daemon",
                "-n",
                "200",
                "-o",
                "cat",
                "--no-pager",
                "--since",
                "-2min",
            ])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| SSH_WORDS.iter().any(|w| l.contains(w)))
        .map(str::to_owned)
}

/// Reads the canary's internal-json log: where it was built, or the most telling error.
pub fn read_log(stderr: &str, success: bool) -> Outcome {
    let mut machine = None;
    let mut errors: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let Some(json) = line
            .find("@nix ")
            .map(|i| &line[i + 5..])
            .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        else {
            let plain = crate::log::strip_ansi(line).trim().to_owned();
            if !plain.is_empty() {
                errors.push(plain);
            }
            continue;
        };
        match json.get("action").and_then(|a| a.as_str()) {
            Some("start") if json.get("type").and_then(|t| t.as_u64()) == Some(105) => {
                if let Some(m) = json
                    .get("fields")
                    .and_then(|f| f.get(1))
                    .and_then(|m| m.as_str())
                    .filter(|m| !m.is_empty())
                {
                    machine = Some(m.to_owned());
                }
            }
            Some("msg") if json.get("level").and_then(|l| l.as_u64()) <= Some(1) => {
                if let Some(m) = json.get("msg").and_then(|m| m.as_str()) {
                    errors.push(crate::log::strip_ansi(m).trim().to_owned());
                }
            }
            _ => {}
        }
    }
    if success {
        return Outcome::Built(machine);
    }
    Outcome::Failed(telling_error(&errors))
}

/// What ssh says when it fails, as it says it.
const SSH_WORDS: [&str; 7] = [
    "Host key verification failed",
    "Permission denied",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "Could not resolve hostname",
    "Connection refused",
    "Connection timed out",
    "Load key",
];

/// The error line that says what really went wrong: ssh's own words first, then nix's
/// "cannot build on" line, then the first error.
fn telling_error(errors: &[String]) -> String {
    let lines: Vec<&str> = errors
        .iter()
        .flat_map(|e| e.lines())
        .map(|l| l.trim().trim_start_matches("error:").trim())
        .filter(|l| !l.is_empty())
        .collect();
    let pick = lines
        .iter()
        .find(|l| SSH_WORDS.iter().any(|s| l.contains(s)))
        .or_else(|| lines.iter().find(|l| l.contains("cannot build on")))
        .or_else(|| lines.iter().find(|l| l.contains("failed")))
        .or_else(|| lines.first());
    pick.map(|l| (*l).to_owned())
        .unwrap_or_else(|| "the canary build failed without a message".to_owned())
}

/// The fix for a canary error, naming the NixOS option or the command to run.
pub fn fix_for(error: &str, machine: Option<&Machine>) -> String {
    let host = machine
        .and_then(|m| m.uri.ssh())
        .map(|ssh| ssh.host.as_str())
        .unwrap_or("the builder")
        .to_owned();
    let key = machine
        .and_then(|m| m.ssh_key.clone())
        .unwrap_or_else(|| "/root/.ssh/id_ed25519".to_owned());
    let lower = error.to_lowercase();
    if lower.contains("host key verification failed")
        || lower.contains("identification has changed")
    {
        format!(
            "give root the builder's host key: `sudo ssh -i {key} {host} true` once and accept it, \
             or set nix.buildMachines.*.publicHostKey (the machines line's 8th field, base64 of the \
             host's public key) or programs.ssh.knownHosts on NixOS"
        )
    } else if lower.contains("permission denied") {
        format!(
            "authorize root's key {key}.pub on {host} (users.users.<name>.openssh.authorizedKeys.keys \
             there), and check nix.buildMachines.*.sshKey / sshUser"
        )
    } else if lower.contains("could not resolve") {
        format!("make {host} resolve for root (networking.hosts, or programs.ssh.extraConfig with a HostName)")
    } else if lower.contains("failed to start ssh connection") {
        format!(
            "root's ssh to {host} does not start: ssh's own words are in the daemon's log \
             (`journalctl -u nix-daemon -n 20`, or run `sudo ssh -i {key} {host} true`); when it \
             says \"Host key verification failed\", set nix.buildMachines.*.publicHostKey or \
             programs.ssh.knownHosts; \"Permission denied\": authorize {key}.pub on {host}"
        )
    } else if lower.contains("refused") || lower.contains("timed out") {
        format!("check that {host}'s sshd is up and reachable from this machine")
    } else {
        format!("run `sudo ssh -i {key} {host} nix-store --version` to see root's ssh fail the same way, and fix what it says")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_names_the_machine_from_the_build_activity() {
        let log = "@nix {\"action\":\"start\",\"id\":1,\"level\":3,\"type\":105,\"text\":\"building\",\"fields\":[\"/nix/store/x.drv\",\"ssh-ng://root@seasmoke\",1,1]}\n";
        assert_eq!(
            read_log(log, true),
            Outcome::Built(Some("ssh-ng://root@seasmoke".into()))
        );
    }

    #[test]
    fn failure_prefers_ssh_words_over_the_manual() {
        let log = "@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"error: cannot build on 'ssh-ng://root@seasmoke': error: failed to start SSH connection to 'root@seasmoke': Host key verification failed.\"}\n\
                   @nix {\"action\":\"msg\",\"level\":0,\"msg\":\"error: see https://nixos.org/manual/nix/stable/advanced-topics/distributed-builds.html\"}\n";
        match read_log(log, false) {
            Outcome::Failed(e) => assert!(e.contains("Host key verification failed"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(fix_for("Host key verification failed.", None).contains("publicHostKey"));
    }
}
