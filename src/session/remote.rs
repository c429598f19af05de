//! The builder's side of a session: a few POSIX `sh` scripts run over the probe's ssh
//! connection, and readers for what they print.
//!
//! Layout on the builder, per user: `${XDG_CACHE_HOME:-~/.cache}/nixdispatch/sessions/ID/`
//! (or `${TMPDIR:-/tmp}/nixdispatch-sessions-UID/ID/` when the home is not writable), each
//! directory mode 0700 with `key` (which derivations, [`super::key_of`]), `client`, `started`,
//! `drvs` and `outputs` (one a line), `supervise` (the supervisor script), `pid` (the
//! supervisor's, also its session and process group), `log` (nix's internal-json log),
//! `status` (nix's exit code, once it ended), `result*` (nix's out-links: the gc roots of the
//! outputs until they are copied home), and a marker once the session was used up: `copied`,
//! `shown` (its failure was shown) or `lost`.
//!
//! The supervisor is `setsid nohup sh supervise DIR`, backgrounded alone (a backgrounded list
//! keeps the ssh channel open, NIX-FACTS): it outlives the ssh connection and the client,
//! works wherever Nix and `setsid` (util-linux) are, systemd or not.
//!
//! Quoting: every script is one single-quoted `sh -c` word and holds no `'` and no backslash
//! (checked by a test), so it reads the same in bash, zsh, dash and fish (the user's login
//! shell runs the line). Its arguments are ids ([`super::SessionId`]), keys (hex) and store
//! paths checked by [`shell_word`]: nothing else reaches the line.

use super::id::SessionId;

/// Functions every script starts with.
const PRELUDE: &str = r#"set -u
nl="
"
nd_bases() {
  printf "%s$nl" "${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/nixdispatch/sessions"
  printf "%s$nl" "${TMPDIR:-/tmp}/nixdispatch-sessions-$(id -u)"
}
nd_base() {
  nd_bases | while IFS= read -r b; do
    if mkdir -p "$b" 2>/dev/null && chmod 700 "$b" 2>/dev/null && [ -w "$b" ]; then
      printf "%s$nl" "$b"; break
    fi
  done
}
nd_all() {
  nd_bases | while IFS= read -r b; do
    for d in "$b"/*; do if [ -f "$d/key" ]; then printf "%s$nl" "$d"; fi; done
  done
}
nd_find() {
  nd_bases | while IFS= read -r b; do
    if [ -f "$b/$1/key" ]; then printf "%s$nl" "$b/$1"; break; fi
  done
}
nd_alive() {
  p=$(cat "$1/pid" 2>/dev/null) || return 1
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null && grep -q "${1##*/}" "/proc/$p/cmdline" 2>/dev/null
}
nd_group() {
  for f in /proc/[0-9]*/stat; do
    s=$(cat "$f" 2>/dev/null) || continue
    set -- $1 ${s##*) }
    if [ "$2" != Z ] && [ "$4" = "$1" ]; then return 0; fi
    set -- "$1"
  done
  return 1
}
nd_state() {
  if [ -f "$1/status" ]; then
    if [ "$(cat "$1/status")" = 0 ]; then echo done; else echo failed; fi
  elif [ -f "$1/lost" ]; then echo lost
  elif nd_alive "$1"; then echo running
  elif [ -f "$1/pid" ]; then echo lost
  else echo running
  fi
}
nd_prune() {
  nd_all | while IFS= read -r d; do
    s=$(nd_state "$d")
    if [ "$s" = running ]; then continue; fi
    if [ -n "$(find "$d/key" -mmin +10080 2>/dev/null)" ]; then rm -rf -- "$d"
    elif [ -f "$d/copied" ] || [ -f "$d/shown" ] || [ "$s" = lost ]; then printf "%s$nl" "$d"; fi
  done | sort -r | tail -n +21 | while IFS= read -r d; do rm -rf -- "$d"; done
}
"#;

/// What the supervisor runs, written to `DIR/supervise`: nix's build of every wanted output,
/// its log and exit code into the session directory, out-links as gc roots. It builds as many
/// derivations at once as the machines line's maxJobs (`DIR/jobs`), as nix's build hook would
/// have sent there: the builder's own `max-jobs` (1 by default) would run them one by one.
const SUPERVISOR: &str = r#"d=$1
echo $$ > "$d/pid.new" && mv -f "$d/pid.new" "$d/pid"
set --
while IFS= read -r i; do set -- "$@" "$i"; done < "$d/drvs"
jobs=$(cat "$d/jobs" 2>/dev/null || echo 1)
nix --extra-experimental-features "nix-command flakes" build --max-jobs "$jobs" --out-link "$d/result" --log-format internal-json -v "$@" >> "$d/log" 2>&1 < /dev/null
echo $? > "$d/status.new"
mv -f "$d/status.new" "$d/status""#;

/// `KEY ID CLIENT JOBS N DRV^OUTS... OUTPUT...`: joins the unfinished session of the same key, or
/// starts one. Prints `lost ID` for each session of the key that died unfinished, then
/// `joined ID STATE`, `started ID` or `error WHY`.
const START: &str = r#"key=$1; id=$2; client=$3; jobs=$4; n=$5; shift 5
base=$(nd_base)
if [ -z "$base" ]; then echo "error no writable directory for sessions on the builder (tried ~/.cache and ${TMPDIR:-/tmp})"; exit 0; fi
if ! command -v setsid > /dev/null 2>&1; then echo "error setsid (util-linux) is not on the builder"; exit 0; fi
lock="$base/.lock"
nd_unlock() { rmdir "$lock" 2>/dev/null; }
i=0
while ! mkdir "$lock" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
trap nd_unlock EXIT
found=$(nd_all | while IFS= read -r d; do
  if [ "$(cat "$d/key" 2>/dev/null)" != "$key" ]; then continue; fi
  if [ -f "$d/copied" ] || [ -f "$d/shown" ] || [ -f "$d/lost" ]; then continue; fi
  s=$(nd_state "$d")
  if [ "$s" = lost ]; then touch "$d/lost"; echo "lost ${d##*/}"; continue; fi
  echo "joined ${d##*/} $s"; break
done)
if [ -n "$found" ]; then printf "%s$nl" "$found"; fi
if printf "%s$nl" "$found" | grep -q "^joined "; then exit 0; fi
nd_prune
d="$base/$id"
if ! mkdir -m 700 "$d"; then echo "error cannot create $d on the builder"; exit 0; fi
printf "%s$nl" "$key" > "$d/key"
printf "%s$nl" "$client" > "$d/client"
printf "%s$nl" "$jobs" > "$d/jobs"
date -u +%Y-%m-%dT%H:%M:%SZ > "$d/started"
: > "$d/drvs"; : > "$d/outputs"; : > "$d/log"
i=0
for a in "$@"; do
  i=$((i + 1))
  if [ "$i" -le "$n" ]; then printf "%s$nl" "$a" >> "$d/drvs"; else printf "%s$nl" "$a" >> "$d/outputs"; fi
done
cat > "$d/supervise" <<"NIXDISPATCH_EOF"
@SUPERVISOR@
NIXDISPATCH_EOF
cd "$d" || exit 0
setsid nohup sh "$d/supervise" "$d" > /dev/null 2>&1 < /dev/null &
i=0
while [ ! -s "$d/pid" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if [ -s "$d/pid" ]; then echo "started $id"; else echo "error the session did not start on the builder"; fi
"#;

/// `ID`: the session's log from its start, followed until nix ends (a poll of its size every
/// 0.2 s: `tail --pid` would wait forever on a supervisor nobody reaps, a zombie), then
/// `@nixdispatch-session STATE [STATUS]`; `@nixdispatch-session gone` when the builder has no
/// such session.
const FOLLOW: &str = r#"d=$(nd_find "$1")
if [ -z "$d" ]; then echo "@nixdispatch-session gone"; exit 0; fi
off=0
while :; do
  last=0
  if [ -f "$d/status" ] || ! nd_alive "$d"; then last=1; fi
  size=$(wc -c 2>/dev/null < "$d/log" || echo 0)
  size=$((size + 0))
  if [ "$size" -gt "$off" ]; then
    tail -c +$((off + 1)) "$d/log" | head -c $((size - off))
    off=$size
  fi
  if [ "$last" = 1 ]; then break; fi
  sleep 0.2
done
echo
echo "@nixdispatch-session $(nd_state "$d") $(cat "$d/status" 2>/dev/null)"
"#;

/// No arguments: every session, `S ID STATE STARTED KEY LOGLINES CLIENT`, then `C` when it
/// is used up (copied home, failure shown, found lost), `D DRV` and `O OUTPUT` lines.
const LIST: &str = r#"nd_all | while IFS= read -r d; do
  lines=$(wc -l 2>/dev/null < "$d/log" || echo 0)
  echo "S ${d##*/} $(nd_state "$d") $(cat "$d/started" 2>/dev/null || echo -) $(cat "$d/key") $((lines + 0)) $(cat "$d/client" 2>/dev/null)"
  if [ -f "$d/copied" ] || [ -f "$d/shown" ] || [ -f "$d/lost" ]; then echo C; fi
  sed "s/^/D /" "$d/drvs" 2>/dev/null
  sed "s/^/O /" "$d/outputs" 2>/dev/null
done
exit 0
"#;

/// `ID`: stops the session's whole process group (SIGTERM, so that nix stops its builds; a
/// job a non-interactive shell backgrounded ignores SIGINT; SIGKILL after 10 s) and removes
/// its directory with its gc roots. Prints `cancelled` or `unknown`.
const CANCEL: &str = r#"d=$(nd_find "$1")
if [ -z "$d" ]; then echo unknown; exit 0; fi
if [ ! -f "$d/status" ] && nd_alive "$d"; then
  p=$(cat "$d/pid")
  kill -s TERM -- "-$p" 2>/dev/null || kill -s TERM "$p" 2>/dev/null
  i=0
  while nd_group "$p" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  kill -s KILL -- "-$p" 2>/dev/null
fi
rm -rf -- "$d"
echo cancelled
"#;

/// `ID MARK`: the session is used up (`copied` home, or its failure `shown`): its gc roots go,
/// the directory stays for `sessions` until pruned.
const FINISH: &str = r#"d=$(nd_find "$1")
if [ -z "$d" ]; then exit 0; fi
rm -f -- "$d"/result "$d"/result-*
case "$2" in copied|shown) touch "$d/$2" ;; esac
echo ok
"#;

/// The scripts nixdispatch runs on a builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// [`START`].
    Start,
    /// [`FOLLOW`].
    Follow,
    /// [`LIST`].
    List,
    /// [`CANCEL`].
    Cancel,
    /// [`FINISH`].
    Finish,
}

impl Script {
    fn body(self) -> String {
        match self {
            Script::Start => START.replace("@SUPERVISOR@", SUPERVISOR),
            Script::Follow => FOLLOW.to_owned(),
            Script::List => LIST.to_owned(),
            Script::Cancel => CANCEL.to_owned(),
            Script::Finish => FINISH.to_owned(),
        }
    }
}

/// `text` as one single-quoted shell word, when it is safe as one in every shell the user may
/// log in with: no quote, no backslash, no control character. Store paths, ids, keys and
/// output names always are; anything else is refused.
pub fn shell_word(text: &str) -> Result<String, String> {
    if text.is_empty()
        || text
            .chars()
            .any(|c| c == '\'' || c == '\\' || c.is_control())
    {
        return Err(format!("{text:?} cannot be passed to the builder's shell"));
    }
    Ok(format!("'{text}'"))
}

/// The remote command line that runs `script` with `args`: `sh -c 'PRELUDE SCRIPT' nixdispatch
/// ARGS...`.
pub fn command_line(script: Script, args: &[&str]) -> Result<String, String> {
    let mut line = format!("sh -c '{PRELUDE}{}' nixdispatch", script.body());
    for a in args {
        line.push(' ');
        line.push_str(&shell_word(a)?);
    }
    Ok(line)
}

/// A `DRV^OUT,OUT` installable for the builder's `nix build`, checked: a valid store path
/// ending in `.drv` and output names nix allows.
pub fn drv_installable(drv: &str, outputs: &[String]) -> Result<String, String> {
    let path = crate::store_path::StorePath::parse(drv).map_err(|e| e.to_string())?;
    if !path.is_derivation() || !plain(drv) {
        return Err(format!(
            "{drv} is not a derivation path the builder's shell can take"
        ));
    }
    let names_ok = !outputs.is_empty()
        && outputs.iter().all(|o| {
            !o.is_empty()
                && o.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b))
        });
    if !names_ok {
        return Err(format!(
            "{drv}: output names {outputs:?} cannot be passed on"
        ));
    }
    Ok(format!("{drv}^{}", outputs.join(",")))
}

/// Only the characters of a store path under a plain store directory.
pub fn plain(path: &str) -> bool {
    path.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+-._?=/".contains(&b))
}

/// What the start script answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A new session runs.
    New(SessionId),
    /// A session of the same derivations was there: running, done or failed.
    Joined(SessionId, super::State),
    /// The builder cannot run sessions, and why.
    Refused(String),
}

/// Reads the start script's answer: the outcome, and the ids of sessions of the same
/// derivations found lost on the way.
pub fn read_started(text: &str) -> (Option<Started>, Vec<SessionId>) {
    let mut lost = Vec::new();
    let mut started = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("lost"), Some(id), _) => lost.extend(SessionId::parse(id).ok()),
            (Some("started"), Some(id), _) => {
                started = SessionId::parse(id).ok().map(Started::New);
            }
            (Some("joined"), Some(id), Some(state)) => {
                if let (Ok(id), Some(state)) = (SessionId::parse(id), super::State::parse(state)) {
                    started = Some(Started::Joined(id, state));
                }
            }
            (Some("error"), _, _) => {
                started = Some(Started::Refused(
                    line.trim_start_matches("error").trim().to_owned(),
                ));
            }
            _ => {}
        }
    }
    (started, lost)
}

/// The last line the follow script prints.
pub const END_MARK: &str = "@nixdispatch-session ";

/// The end of a followed log: `Some((state, status))`, `state` `None` when the builder has no
/// such session (any more).
pub fn read_end(line: &str) -> Option<(Option<super::State>, Option<i32>)> {
    let rest = line.trim_end().strip_prefix(END_MARK)?;
    let mut words = rest.split_whitespace();
    let state = words.next()?;
    if state == "gone" {
        return Some((None, None));
    }
    let status = words.next().and_then(|s| s.parse().ok());
    Some((super::State::parse(state), status))
}

/// Reads the list script's answer.
pub fn read_list(text: &str) -> Vec<super::Listed> {
    let mut all: Vec<super::Listed> = Vec::new();
    // The lines after an `S` line that could not be read are not its predecessor's.
    let mut skipping = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("S ") {
            skipping = true;
            let mut words = rest.splitn(6, ' ');
            let (Some(id), Some(state), Some(started), Some(key), Some(lines)) = (
                words.next(),
                words.next(),
                words.next(),
                words.next(),
                words.next(),
            ) else {
                continue;
            };
            let (Ok(id), Some(state)) = (SessionId::parse(id), super::State::parse(state)) else {
                continue;
            };
            skipping = false;
            all.push(super::Listed {
                id,
                state,
                started: started.to_owned(),
                key: key.to_owned(),
                log_lines: lines.trim().parse().unwrap_or(0),
                client: words.next().unwrap_or("").trim().to_owned(),
                copied: false,
                drvs: Vec::new(),
                outputs: Vec::new(),
            });
        } else if let (Some(last), false) = (all.last_mut(), skipping) {
            if line == "C" {
                last.copied = true;
            } else if let Some(drv) = line.strip_prefix("D ") {
                last.drvs.push(drv.to_owned());
            } else if let Some(out) = line.strip_prefix("O ") {
                last.outputs.push(out.to_owned());
            }
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::State;

    #[test]
    fn scripts_hold_no_quote_and_no_backslash() {
        for s in [
            Script::Start,
            Script::Follow,
            Script::List,
            Script::Cancel,
            Script::Finish,
        ] {
            let body = format!("{PRELUDE}{}", s.body());
            assert!(!body.contains('\''), "{s:?}");
            assert!(!body.contains('\\'), "{s:?}");
        }
    }

    /// The scripts' own logic, run by this machine's `sh` on a session directory made here
    /// (no ssh, no nix: pruning and listing only read and remove files).
    #[test]
    fn pruning_keeps_the_newest_twenty_used_up_sessions_and_nothing_older_than_a_week() {
        let home = tempfile::tempdir().unwrap();
        let base = home.path().join(".cache/nixdispatch/sessions");
        for i in 0..25 {
            let d = base.join(format!("20261204-0000{i:02}-aaaaaaaa"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("key"), "k\n").unwrap();
            std::fs::write(d.join("status"), "0\n").unwrap();
            std::fs::write(d.join("copied"), "").unwrap();
        }
        // Done, never copied, but older than a week.
        let old = base.join("20261101-000000-bbbbbbbb");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("key"), "k2\n").unwrap();
        std::fs::write(old.join("status"), "0\n").unwrap();
        let touched = std::process::Command::new("touch")
            .args(["-d", "8 days ago"])
            .arg(old.join("key"))
            .status()
            .unwrap();
        assert!(touched.success());
        // Done, not copied, recent: kept.
        let open = base.join("20261204-010000-cccccccc");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::write(open.join("key"), "k3\n").unwrap();
        std::fs::write(open.join("status"), "1\n").unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{PRELUDE}nd_prune\n{LIST}"))
            .env("HOME", home.path())
            .env("TMPDIR", home.path().join("tmp"))
            .env_remove("XDG_CACHE_HOME")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let listed = read_list(&String::from_utf8_lossy(&out.stdout));
        let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(listed.len(), 21, "{ids:?}");
        assert!(!ids.contains(&"20261101-000000-bbbbbbbb"));
        assert!(!ids.contains(&"20261204-000004-aaaaaaaa"));
        assert!(ids.contains(&"20261204-000005-aaaaaaaa"));
        let failed = listed
            .iter()
            .find(|s| s.id.as_str() == "20261204-010000-cccccccc");
        assert_eq!(
            failed.map(|s| (s.state, s.copied)),
            Some((State::Failed, false))
        );
    }

    #[test]
    fn only_plain_words_reach_the_line() {
        assert_eq!(shell_word("abc").as_deref(), Ok("'abc'"));
        for bad in ["a'b", "a\\b", "a\nb", ""] {
            assert!(shell_word(bad).is_err(), "{bad:?}");
        }
        let line = command_line(Script::Cancel, &["20261204-170000-0123abcd"]).unwrap_or_default();
        assert!(line.starts_with("sh -c 'set -u"));
        assert!(line.ends_with("' nixdispatch '20261204-170000-0123abcd'"));
    }

    #[test]
    fn installables_are_checked_store_paths() {
        let drv = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello.drv";
        assert_eq!(
            drv_installable(drv, &["out".into(), "dev".into()]).as_deref(),
            Ok(format!("{drv}^out,dev").as_str())
        );
        assert!(drv_installable(drv, &[]).is_err());
        assert!(drv_installable(drv, &["a;b".into()]).is_err());
        assert!(drv_installable(
            "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello",
            &["out".into()]
        )
        .is_err());
        assert!(drv_installable("$(reboot).drv", &["out".into()]).is_err());
    }

    #[test]
    fn start_answers_are_read() {
        let (s, lost) = read_started(
            "lost 20261204-170000-00000000\njoined 20261204-170001-00000000 running\n",
        );
        assert_eq!(lost.len(), 1);
        assert!(matches!(s, Some(Started::Joined(_, State::Running))));
        let (s, _) = read_started("started 20261204-170000-0123abcd\n");
        assert!(matches!(s, Some(Started::New(_))));
        let (s, _) = read_started("error setsid (util-linux) is not on the builder\n");
        assert_eq!(
            s,
            Some(Started::Refused(
                "setsid (util-linux) is not on the builder".into()
            ))
        );
        assert_eq!(read_started("garbage; rm -rf /").0, None);
    }

    #[test]
    fn ends_and_lists_are_read() {
        assert_eq!(
            read_end("@nixdispatch-session done 0"),
            Some((Some(State::Done), Some(0)))
        );
        assert_eq!(
            read_end("@nixdispatch-session failed 1\n"),
            Some((Some(State::Failed), Some(1)))
        );
        assert_eq!(read_end("@nixdispatch-session gone"), Some((None, None)));
        assert_eq!(read_end("@nix {}"), None);
        let listed = read_list(
            "S 20261204-170000-0123abcd running 2026-12-04T17:00:00Z abc 12 vermax the laptop\nD /nix/store/x.drv^out\nO /nix/store/x\nC\nS bad!id running - k 0 x\nD /nix/store/y.drv^out\n",
        );
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, State::Running);
        assert_eq!(listed[0].log_lines, 12);
        assert_eq!(listed[0].client, "vermax the laptop");
        assert_eq!(listed[0].drvs, ["/nix/store/x.drv^out"]);
        assert_eq!(listed[0].outputs, ["/nix/store/x"]);
        assert!(listed[0].copied);
    }
}
