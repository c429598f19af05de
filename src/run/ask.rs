//! `--ask`: the plan shown and a question before building; for `home` and `os` built through
//! nix, what changes between the current and the new generation (`nix store diff-closures`)
//! and a second question before activating. `n` (or anything but `y`/`yes`) leaves
//! everything as it was. Not on a terminal: exit 2 with one line.

use crate::dispatch::Target;
use crate::monitor::Monitor;
use crate::plan::{Mode, Plan};
use crate::settings::Settings;
use crate::{Error, Result};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest `nix store diff-closures` may take before the question is asked without it.
const DIFF_LIMIT: Duration = Duration::from_secs(60);
/// The most lines of the diff shown.
const DIFF_LINES: usize = 200;

/// Shows the plan and asks whether to build it; `Ok(false)` for no. Nothing to build (noop)
/// asks nothing.
pub async fn plan(settings: &Settings, plan: &Plan) -> Result<bool> {
    if !settings.terminal().stdin {
        return Err(Error::input(
            "--ask needs a terminal to answer on, and stdin is not one: run it in a terminal, or drop --ask",
        ));
    }
    for line in crate::render::dry_run::lines(plan) {
        crate::output::stderr_line(&line);
    }
    if plan.mode == Mode::Noop {
        return Ok(true);
    }
    confirm("build it? [y/N] ").await
}

/// Shows what activating `results` changes and asks whether to; `Ok(false)` for no.
pub async fn activation(
    target: &Target,
    results: &[PathBuf],
    monitor: &mut Monitor,
) -> Result<bool> {
    let Some(new) = results.first() else {
        return Ok(true);
    };
    match current_generation(target) {
        Some(old) => {
            monitor.message(&format!(
                "what changes from {} to {}:",
                old.display(),
                new.display()
            ));
            for line in diff_closures(&old, new).await {
                monitor.message(&format!("  {line}"));
            }
        }
        None => monitor.message("no current generation found: all of it is new"),
    }
    monitor.message("activate it? [y/N]");
    confirm("").await
}

/// The generation active now: home-manager's profile, or the running system.
fn current_generation(target: &Target) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match target {
        Target::Home { .. } => {
            // The profile home-manager links (newer layout first), as it finds it.
            let home = std::env::var_os("HOME").map(PathBuf::from)?;
            let user = std::env::var_os("USER").unwrap_or_default();
            vec![
                home.join(".local/state/nix/profiles/home-manager"),
                Path::new("/nix/var/nix/profiles/per-user")
                    .join(user)
                    .join("home-manager"),
            ]
        }
        Target::Os { .. } => vec![
            PathBuf::from("/run/current-system"),
            PathBuf::from("/nix/var/nix/profiles/system"),
        ],
        Target::Build { .. } => Vec::new(),
    };
    candidates.into_iter().find(|p| p.exists())
}

/// `nix store diff-closures OLD NEW`.
pub fn diff_argv(old: &Path, new: &Path) -> Vec<OsString> {
    vec![
        "nix".into(),
        "--extra-experimental-features".into(),
        "nix-command".into(),
        "store".into(),
        "diff-closures".into(),
        old.as_os_str().to_owned(),
        new.as_os_str().to_owned(),
    ]
}

/// The diff's lines (at most [`DIFF_LINES`]), or one line saying why there are none.
async fn diff_closures(old: &Path, new: &Path) -> Vec<String> {
    let argv = diff_argv(old, new);
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(DIFF_LIMIT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return vec![format!("(nix store diff-closures did not run: {e})")],
        Err(_) => return vec!["(nix store diff-closures took too long)".to_string()],
    };
    if !out.status.success() {
        return vec![format!(
            "(nix store diff-closures failed: {})",
            crate::nix::last_error_line(&String::from_utf8_lossy(&out.stderr))
        )];
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<String> = text.lines().map(crate::log::strip_ansi).collect();
    if lines.is_empty() {
        lines.push("(no version or size changes)".to_string());
    }
    if lines.len() > DIFF_LINES {
        let more = lines.len() - DIFF_LINES;
        lines.truncate(DIFF_LINES);
        lines.push(format!("… {more} more lines"));
    }
    lines
}

/// Asks `question` on the terminal; whether the answer was yes.
async fn confirm(question: &str) -> Result<bool> {
    if !question.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{question}");
        let _ = err.flush();
    }
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| Error::input(format!("--ask: reading the answer failed: {e}")))?
    .map_err(|e| Error::io("reading the answer to --ask", e))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_is_nix_store_diff_closures_of_old_and_new() {
        let argv = diff_argv(
            Path::new("/run/current-system"),
            Path::new("/nix/store/x-new"),
        );
        assert_eq!(
            argv,
            [
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "store",
                "diff-closures",
                "/run/current-system",
                "/nix/store/x-new"
            ]
            .map(OsString::from)
        );
    }
}
