//! Whether the nix-daemon trusts us, asked of the daemon itself over its socket: the first
//! bytes of nix's worker protocol, where a daemon speaking protocol 1.35 or later (Nix 2.15+)
//! says whether it trusts the connecting user, the very answer `nix store info` prints. It
//! replaces a `nix store info` process (tens of milliseconds of nix's start-up, more on a loaded
//! machine) with one connection and a few words, every run: nothing is cached, so a daemon
//! restarted with other `trusted-users`, a user added to a trusted group, or a new nix all give
//! their new answer at once.
//!
//! Only for the store nix itself would use: `NIX_REMOTE` unset, `daemon`, `auto` or
//! `unix://PATH`, and no `store` in `NIX_CONFIG`; anything else (an older daemon, one that does
//! not say, a socket that does not answer within [`LIMIT`]) returns `None` and the caller asks
//! nix, as before.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WORKER_MAGIC_1: u64 = 0x6e69_7863;
const WORKER_MAGIC_2: u64 = 0x6478_696f;
/// The protocol version we speak: 1.37 (Nix 2.24-2.26). The daemon speaks the lower of its
/// version and ours, and 1.38 would add a feature exchange we have no use for.
const CLIENT_VERSION: u64 = (1 << 8) | 37;
/// The first minor version whose handshake carries the daemon's trust.
const TRUST_MINOR: u64 = 35;
/// The first minor version whose handshake carries the daemon's nix version (before the trust).
const VERSION_MINOR: u64 = 33;
/// The longest a daemon may take to answer (each read and write; the whole ask is bounded by
/// the caller's timeout too).
pub const LIMIT: Duration = Duration::from_secs(3);
/// A daemon's version string longer than this is not a daemon's.
const MAX_STRING: u64 = 4096;

/// The daemon socket nix would connect to in this environment; `None` when nix would use
/// another store (then only nix can say).
pub fn socket_path(
    nix_remote: Option<&str>,
    socket_env: Option<&str>,
    nix_config: Option<&str>,
) -> Option<PathBuf> {
    if nix_config.is_some_and(|c| {
        c.lines().any(|l| {
            l.trim_start()
                .strip_prefix("store")
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
    }) {
        return None;
    }
    let default = || {
        PathBuf::from(
            socket_env
                .filter(|s| !s.is_empty())
                .unwrap_or("/nix/var/nix/daemon-socket/socket"),
        )
    };
    match nix_remote.map(str::trim) {
        None | Some("" | "daemon" | "auto") => Some(default()),
        Some(other) => {
            let path = other.strip_prefix("unix://")?;
            // Store parameters (`?...`) are nix's to read.
            (path.starts_with('/') && !path.contains('?')).then(|| PathBuf::from(path))
        }
    }
}

/// The daemon's answer at `socket`: `Some(true)`/`Some(false)` when it said, `None` when it
/// did not (older than 1.35, "unknown", or no answer).
pub async fn ask(socket: PathBuf) -> Option<bool> {
    let asked = tokio::task::spawn_blocking(move || ask_blocking(&socket));
    match tokio::time::timeout(LIMIT + Duration::from_secs(1), asked).await {
        Ok(Ok(Ok(answer))) => answer,
        Ok(Ok(Err(err))) => {
            tracing::debug!(%err, "the daemon did not say whether it trusts us; asking nix");
            None
        }
        _ => None,
    }
}

fn ask_blocking(socket: &Path) -> std::io::Result<Option<bool>> {
    let mut conn = UnixStream::connect(socket)?;
    conn.set_read_timeout(Some(LIMIT))?;
    conn.set_write_timeout(Some(LIMIT))?;
    handshake(&mut conn)
}

/// The handshake up to the daemon's trust, on any stream (a socket; a buffer in tests).
pub fn handshake(conn: &mut (impl Read + Write)) -> std::io::Result<Option<bool>> {
    conn.write_all(&WORKER_MAGIC_1.to_le_bytes())?;
    conn.flush()?;
    if read_u64(conn)? != WORKER_MAGIC_2 {
        return Err(std::io::Error::other("not a nix daemon"));
    }
    let daemon = read_u64(conn)?;
    if daemon >> 8 != 1 {
        return Err(std::io::Error::other("an unknown protocol"));
    }
    let minor = (daemon & 0xff).min(CLIENT_VERSION & 0xff);
    if minor < TRUST_MINOR {
        return Ok(None);
    }
    let mut hello = Vec::with_capacity(24);
    hello.extend_from_slice(&CLIENT_VERSION.to_le_bytes());
    // No CPU affinity (1.14+), no reserved space (1.11+).
    hello.extend_from_slice(&0u64.to_le_bytes());
    hello.extend_from_slice(&0u64.to_le_bytes());
    conn.write_all(&hello)?;
    conn.flush()?;
    if minor >= VERSION_MINOR {
        skip_string(conn)?;
    }
    Ok(match read_u64(conn)? {
        1 => Some(true),
        2 => Some(false),
        _ => None,
    })
}

fn read_u64(conn: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    conn.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn skip_string(conn: &mut impl Read) -> std::io::Result<()> {
    let len = read_u64(conn)?;
    if len > MAX_STRING {
        return Err(std::io::Error::other("an overlong string"));
    }
    let padded = len.div_ceil(8) * 8;
    let mut buf = vec![0u8; padded as usize];
    conn.read_exact(&mut buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A daemon's side of the handshake: what it sends, and what the client wrote.
    struct Fake {
        input: Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn daemon(minor: u64, version: Option<&str>, trust: Option<u64>) -> Fake {
        let mut v = Vec::new();
        v.extend_from_slice(&WORKER_MAGIC_2.to_le_bytes());
        v.extend_from_slice(&((1u64 << 8) | minor).to_le_bytes());
        if let Some(s) = version {
            v.extend_from_slice(&(s.len() as u64).to_le_bytes());
            v.extend_from_slice(s.as_bytes());
            v.resize(v.len() + (8 - s.len() % 8) % 8, 0);
        }
        if let Some(t) = trust {
            v.extend_from_slice(&t.to_le_bytes());
        }
        Fake {
            input: Cursor::new(v),
            written: Vec::new(),
        }
    }

    #[test]
    fn the_daemon_says_trusted_or_not() {
        for (minor, flag, want) in [
            (37, 1, Some(true)),
            (37, 2, Some(false)),
            (37, 0, None),
            (38, 1, Some(true)),
            (35, 2, Some(false)),
        ] {
            let mut d = daemon(minor, Some("2.26.3"), Some(flag));
            assert_eq!(
                handshake(&mut d).expect("an answer"),
                want,
                "1.{minor} {flag}"
            );
            // Magic, then our version (never above 1.37), no affinity, no reserved space.
            assert_eq!(d.written.len(), 32);
            assert_eq!(d.written[8..16], CLIENT_VERSION.to_le_bytes());
        }
    }

    #[test]
    fn an_older_daemon_does_not_say() {
        let mut d = daemon(34, None, None);
        assert_eq!(handshake(&mut d).expect("no error"), None);
        // Nothing sent after the magic: the daemon is left to see the connection close.
        assert_eq!(d.written.len(), 8);
    }

    #[test]
    fn anything_else_is_an_error_never_a_verdict() {
        let mut wrong = daemon(37, Some("x"), Some(1));
        wrong.input.get_mut()[0] ^= 1;
        assert!(handshake(&mut wrong).is_err());
        let mut cut = daemon(37, Some("2.26.3"), None);
        assert!(handshake(&mut cut).is_err());
        let mut huge = daemon(37, None, None);
        huge.input
            .get_mut()
            .extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(handshake(&mut huge).is_err());
        let mut major = daemon(37, Some("2.26.3"), Some(1));
        major.input.get_mut()[9] = 2;
        assert!(handshake(&mut major).is_err());
    }

    #[test]
    fn only_the_store_nix_would_use() {
        let default = Some(PathBuf::from("/nix/var/nix/daemon-socket/socket"));
        assert_eq!(socket_path(None, None, None), default);
        assert_eq!(socket_path(Some("daemon"), None, None), default);
        assert_eq!(socket_path(Some("auto"), Some(""), None), default);
        assert_eq!(
            socket_path(None, Some("/run/nix.sock"), None),
            Some(PathBuf::from("/run/nix.sock"))
        );
        assert_eq!(
            socket_path(Some("unix:///tmp/s"), None, None),
            Some(PathBuf::from("/tmp/s"))
        );
        for other in [
            "local",
            "ssh-ng://x",
            "unix:///tmp/s?a=b",
            "unix://rel",
            "/some/root",
        ] {
            assert_eq!(socket_path(Some(other), None, None), None, "{other}");
        }
        assert_eq!(socket_path(None, None, Some("store = local\n")), None);
        assert_eq!(socket_path(None, None, Some("  store=daemon")), None);
        assert_eq!(
            socket_path(None, None, Some("substituters = \nstore-dir-x = 1")),
            default
        );
    }

    #[tokio::test]
    async fn a_missing_socket_is_no_answer() {
        let dir = tempfile::tempdir().expect("a directory");
        assert_eq!(ask(dir.path().join("none")).await, None);
    }
}
