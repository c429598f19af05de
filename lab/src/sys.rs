//! Small OS helpers: root check, ports, randomness, finding and killing processes by marker.

use std::fs;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// True when this process runs with effective uid 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `n` random bytes as lowercase hex, from /dev/urandom.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = t ^ u128::from(std::process::id());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits until something on 127.0.0.1:`port` accepts a TCP connection and sends an SSH banner.
pub fn wait_for_ssh_banner(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 8];
            if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-") {
                return true;
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Live pids (zombies excluded: they are dead already and wait for their reaper; here the
/// machine's init reaps orphans only about once a second).
fn proc_pids() -> Vec<i32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != std::process::id() as i32 && !is_zombie(p))
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "PID (COMM) STATE ...": COMM may hold spaces and parentheses; STATE follows the last ')'.
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

/// Pids whose environment holds exactly the entry `entry` (e.g. `NIXDISPATCH_LAB=/tmp/...`).
pub fn pids_with_env_entry(entry: &str) -> Vec<i32> {
    proc_pids()
        .into_iter()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|e| e == entry.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// The pid namespace of `pid`, as the kernel names it (`pid:[4026532...]`).
pub fn pid_namespace(pid: i32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Pids living in the pid namespace `ns` (as returned by [`pid_namespace`]).
pub fn pids_in_namespace(ns: &str) -> Vec<i32> {
    proc_pids()
        .into_iter()
        .filter(|&p| pid_namespace(p).as_deref() == Some(ns))
        .collect()
}

/// Direct children of `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|x| x.parse::<i32>().ok()));
            }
        }
    }
    out
}

pub fn kill(pid: i32, sig: i32) {
    // SAFETY: plain syscall; a stale pid only yields ESRCH.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// SIGKILLs every process found by `find` until none is left or `timeout` passes.
/// Returns true when none is left.
pub fn kill_until_gone(find: impl Fn() -> Vec<i32>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = find();
        if pids.is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        for p in pids {
            kill(p, libc::SIGKILL);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion, returning stdout, or an error carrying stderr.
pub fn run(mut cmd: Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Quotes a string for /bin/sh (single quotes).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Writes `text` to `path` and sets the mode.
pub fn write_mode(path: &Path, text: &str, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// A command that, when run, prints `reason` on stderr and exits 127: an error carried to the
/// point where a caller that expects a `Command` runs it. Arguments added later are ignored.
pub fn failing_command(reason: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.args(["-c", "printf '%s\\n' \"$0\" >&2; exit 127", reason]);
    c
}

/// Runs `c` with no input and its output dropped: did it succeed?
pub fn quiet_success(mut c: Command) -> bool {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The non-empty lines of `s`, trimmed.
pub fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_quote_quotes_what_needs_it() {
        assert_eq!(sh_quote("/tmp/a-b"), "/tmp/a-b");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn a_failing_command_says_why_and_exits_127() {
        let mut c = failing_command("cannot copy /x: it's gone");
        let out = c.arg("ignored").output().expect("sh runs");
        assert_eq!(out.status.code(), Some(127));
        assert_eq!(out.stderr, b"cannot copy /x: it's gone\n");
    }
}
