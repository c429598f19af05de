//! Build sessions on a builder: one detached `nix build` there of every wanted output, which
//! outlives the ssh connection and this client; its log streamed back into the same monitor
//! as the build hook's, its outputs copied home in one `nix copy`.
//!
//! This module is the builder's side and the ssh plumbing: ids and keys ([`id`]), the remote
//! layout and scripts ([`remote`]), and the operations over a probe's [`Connection`]. How a
//! run uses a session is [`crate::run`]'s (`run/session.rs`); `sessions`, `attach` and
//! `cancel` are in [`crate::commands`].

mod id;
pub mod remote;

pub use id::{key_of, SessionId};
pub use remote::{Script, Started};

use crate::child::{Invocation, LogStream, Results};
use crate::probe::Connection;
use std::borrow::Cow;
use std::time::Duration;

/// Where a session stands, as `sessions --json` says it (CONTRACT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// nix is building.
    Running,
    /// nix finished and succeeded; its outputs are on the builder.
    Done,
    /// nix finished and failed.
    Failed,
    /// The builder no longer knows it: it restarted, or the session was killed unfinished.
    Lost,
}

impl State {
    /// From the word the scripts print.
    pub fn parse(word: &str) -> Option<State> {
        Some(match word {
            "running" => State::Running,
            "done" => State::Done,
            "failed" => State::Failed,
            "lost" => State::Lost,
            _ => return None,
        })
    }

    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Lost => "lost",
        }
    }
}

/// One session as the builder lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its id.
    pub id: SessionId,
    /// Where it stands.
    pub state: State,
    /// When it started, `YYYY-MM-DDTHH:MM:SSZ` (as the builder's clock says).
    pub started: String,
    /// Which derivations ([`key_of`]).
    pub key: String,
    /// Lines of its log so far.
    pub log_lines: u64,
    /// The host name of the client that started it.
    pub client: String,
    /// It is used up: its outputs were copied home (its gc roots are gone), its failure was
    /// shown, or it was found lost.
    pub copied: bool,
    /// The `DRV^OUTPUTS` installables it builds.
    pub drvs: Vec<String>,
    /// The output paths it makes.
    pub outputs: Vec<String>,
}

impl Listed {
    /// The `.drv` paths, without their outputs.
    pub fn drv_paths(&self) -> Vec<String> {
        self.drvs
            .iter()
            .map(|d| d.split('^').next().unwrap_or(d).to_owned())
            .collect()
    }
}

/// The extra time the start script may take on top of a store query's: it may wait for
/// another client's lock (10 s) and for the supervisor to start (5 s).
const START_EXTRA: Duration = Duration::from_secs(20);

/// The most of a script's answer kept (a list of many sessions with their paths).
const MAX_SCRIPT_ANSWER: usize = 4 * 1024 * 1024;

/// Runs `script` with `args` on the builder behind `conn`, bounded; its stdout, or one line
/// saying why there is none.
pub async fn run_script(
    conn: &Connection,
    script: Script,
    args: &[&str],
) -> Result<String, String> {
    let line = remote::command_line(script, args)?;
    let bound = match script {
        Script::Start | Script::Cancel => conn.query_timeout() + START_EXTRA,
        _ => conn.query_timeout(),
    };
    if !conn.control_path().exists() {
        return Err("the ssh connection to the builder is closed".to_owned());
    }
    let mut command = conn.session().raw_command(line);
    let out = tokio::time::timeout(
        bound,
        crate::sources::remote::output(&mut command, MAX_SCRIPT_ANSWER),
    )
    .await
    .map_err(|_| format!("the builder did not answer within {}s", bound.as_secs()))?
    .map_err(|e| format!("ssh: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.lines().last().unwrap_or("").trim();
        return Err(format!(
            "the builder's shell failed ({}): {err}",
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What starting a session needs: the key, the id to use when none of the key is there, the
/// client's name, the installables and their outputs.
pub struct Request<'a> {
    /// [`key_of`] the installables.
    pub key: &'a str,
    /// The id of a new session.
    pub id: &'a SessionId,
    /// This machine's name, shown by `sessions`.
    pub client: &'a str,
    /// Builds at once on the builder: its machines line's maxJobs (at least 1).
    pub jobs: u32,
    /// `DRV^OUTPUTS`, checked by [`remote::drv_installable`].
    pub installables: &'a [String],
    /// The output paths, checked store paths.
    pub outputs: &'a [String],
}

/// Starts a session, or joins the unfinished one of the same derivations. Returns what the
/// builder answered and the sessions of the same derivations found lost.
pub async fn start(
    conn: &Connection,
    req: &Request<'_>,
) -> Result<(Started, Vec<SessionId>), String> {
    if let Some(bad) = req.outputs.iter().find(|o| !remote::plain(o)) {
        return Err(format!("{bad} cannot be passed to the builder's shell"));
    }
    let client: String = req
        .client
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let n = req.installables.len().to_string();
    let jobs = req.jobs.max(1).to_string();
    let mut args: Vec<&str> = vec![req.key, req.id.as_str(), &client, &jobs, &n];
    args.extend(req.installables.iter().map(String::as_str));
    args.extend(req.outputs.iter().map(String::as_str));
    let text = run_script(conn, Script::Start, &args).await?;
    match remote::read_started(&text) {
        (Some(started), lost) => Ok((started, lost)),
        (None, _) => Err(format!(
            "the builder's answer was not understood: {}",
            text.lines().last().unwrap_or("(nothing)")
        )),
    }
}

/// Every session on the builder behind `conn`.
pub async fn list(conn: &Connection) -> Result<Vec<Listed>, String> {
    Ok(remote::read_list(
        &run_script(conn, Script::List, &[]).await?,
    ))
}

/// The sessions each builder lists, asked while the run's store queries go over the same
/// connections (one round trip and a script there, about 0.15 s at 30 ms), so that a run which
/// must know whether a session of its derivations already exists (nix's build hook, a
/// substitute plan) does not wait for the answer after planning.
#[derive(Debug, Default)]
pub struct Lookahead {
    asked: std::sync::Mutex<std::collections::HashMap<String, Listing>>,
}

/// One builder's listing under way.
type Listing = tokio::task::JoinHandle<Result<Vec<Listed>, String>>;

impl Lookahead {
    /// Starts listing the sessions of each builder with a connection, keyed by its URI.
    pub fn start<'b>(
        builders: impl IntoIterator<Item = (&'b str, &'b std::sync::Arc<Connection>)>,
    ) -> Lookahead {
        let asked = builders
            .into_iter()
            .map(|(uri, conn)| {
                let conn = std::sync::Arc::clone(conn);
                (
                    uri.to_owned(),
                    tokio::spawn(async move { list(&conn).await }),
                )
            })
            .collect();
        Lookahead {
            asked: std::sync::Mutex::new(asked),
        }
    }

    /// The sessions on the builder `uri` over `conn`: the answer started early when there is
    /// one (taken: asked again on a second call), else asked now.
    pub async fn list(&self, uri: &str, conn: &Connection) -> Result<Vec<Listed>, String> {
        let started = self
            .asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uri);
        match started {
            Some(task) => task
                .await
                .unwrap_or_else(|e| Err(format!("listing sessions stopped: {e}"))),
            None => list(conn).await,
        }
    }
}

/// Stops a session and removes it; `Ok(false)` when the builder has no such session.
pub async fn cancel(conn: &Connection, id: &SessionId) -> Result<bool, String> {
    let text = run_script(conn, Script::Cancel, &[id.as_str()]).await?;
    Ok(text.lines().any(|l| l.trim() == "cancelled"))
}

/// Marks a session used up: its outputs were copied home, or its failure was shown.
pub async fn finish(conn: &Connection, id: &SessionId, copied: bool) -> Result<(), String> {
    let mark = if copied { "copied" } else { "shown" };
    run_script(conn, Script::Finish, &[id.as_str(), mark])
        .await
        .map(|_| ())
}

/// The ssh process that follows a session's log to its end, over `conn`'s master (never a new
/// connection: with the master gone it fails at once). Its stdout is nix's log, then the end
/// line ([`remote::read_end`]).
pub fn follow(conn: &Connection, id: &SessionId) -> Result<Invocation, String> {
    let line = remote::command_line(Script::Follow, &[id.as_str()])?;
    let args = vec![
        "-S".into(),
        conn.control_path().as_os_str().to_owned(),
        "-o".into(),
        "ControlMaster=no".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-T".into(),
        "-x".into(),
        "none".into(),
        line.into(),
    ];
    Ok(Invocation {
        log: LogStream::Stdout,
        results: Results::Nothing,
        ..Invocation::plain("ssh", args)
    })
}

/// Cancels a session when dropped while armed: a run interrupted between starting its session
/// and following it (Ctrl-C then ends the run before any child could forward it) leaves
/// nothing running on the builder. Blocking and bounded; over the run's master, when it is
/// still there.
pub struct CancelOnDrop {
    control_path: std::path::PathBuf,
    line: Option<String>,
}

impl CancelOnDrop {
    /// Armed for session `id` over `conn`.
    pub fn new(conn: &Connection, id: &SessionId) -> CancelOnDrop {
        CancelOnDrop {
            control_path: conn.control_path().to_owned(),
            line: remote::command_line(Script::Cancel, &[id.as_str()]).ok(),
        }
    }

    /// Following took over (it cancels on Ctrl-C itself), or the session is to stay.
    pub fn disarm(mut self) {
        self.line = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(line) = self.line.take() else { return };
        if !self.control_path.exists() {
            return;
        }
        let child = std::process::Command::new("ssh")
            .arg("-S")
            .arg(&self.control_path)
            .args([
                "-o",
                "ControlMaster=no",
                "-o",
                "BatchMode=yes",
                "-T",
                "-x",
                "none",
            ])
            .arg(line)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            let t0 = std::time::Instant::now();
            while matches!(child.try_wait(), Ok(None)) {
                if t0.elapsed() > START_EXTRA {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// One line of the builder's log as this client's monitor must read it: a build nix ran on
/// the builder itself (machine `""`) ran on `uri` as far as this client is concerned.
pub fn relocate<'a>(line: &'a str, uri: &str) -> Cow<'a, str> {
    // Only `start` lines of builds (type 105) name a machine.
    if !line.contains("105") || !line.contains("\"start\"") {
        return Cow::Borrowed(line);
    }
    let Some(at) = line.find("@nix ") else {
        return Cow::Borrowed(line);
    };
    let (prefix, json) = line.split_at(at + "@nix ".len());
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json) else {
        return Cow::Borrowed(line);
    };
    let is_build = value.get("action").and_then(|a| a.as_str()) == Some("start")
        && value.get("type").and_then(|t| t.as_u64()) == Some(105);
    let machine = value
        .get_mut("fields")
        .and_then(|f| f.as_array_mut())
        .and_then(|f| f.get_mut(1));
    match machine {
        Some(m) if is_build && m.as_str() == Some("") => {
            *m = serde_json::Value::String(uri.to_owned());
            Cow::Owned(format!("{prefix}{value}"))
        }
        _ => Cow::Borrowed(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_builds_on_the_builder_are_the_builders() {
        let line = r#"@nix {"action":"start","id":1,"level":3,"type":105,"text":"building '/nix/store/x.drv'","fields":["/nix/store/x.drv","",1,1],"parent":0}"#;
        let moved = relocate(line, "ssh-ng://seasmoke");
        assert!(moved.contains(r#""ssh-ng://seasmoke""#), "{moved}");
        assert!(moved.starts_with("@nix {"));
        let remote = line.replace(r#","",1"#, r#","ssh-ng://other",1"#);
        assert_eq!(relocate(&remote, "ssh-ng://seasmoke"), remote.as_str());
        let other = r#"@nix {"action":"result","id":105,"type":101,"fields":["x"]}"#;
        assert_eq!(relocate(other, "ssh-ng://seasmoke"), other);
        assert_eq!(relocate("plain 105 start", "u"), "plain 105 start");
    }

    #[test]
    fn states_read_as_the_contract_names_them() {
        for s in [State::Running, State::Done, State::Failed, State::Lost] {
            assert_eq!(State::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::String(s.as_str().into()))
            );
        }
    }
}
