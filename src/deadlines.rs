//! Every bound a run puts on a wait that depends on the options, worked out in one place from
//! `--connect-timeout`, so that two waits on the same kind of thing never disagree (README,
//! "Never waiting forever", lists them). Fixed bounds that do not scale with the link (a child's
//! grace after SIGINT, a cache batch) stay beside the code they bound.

use std::time::Duration;

/// The bounds of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// One builder probe: connection and first command together (`--connect-timeout`).
    pub connect: Duration,
    /// One store query over a connection the probe opened: several times the connect timeout
    /// (a slow link stays usable), at least ten seconds (a busy builder's database).
    pub query: Duration,
    /// A question the nix daemon answers with root's ssh (it connects, then asks): its own
    /// connection and one query, with room for the daemon's start-up.
    pub through_daemon: Duration,
    /// doctor's canary build through the daemon: a few connections and a tiny build.
    pub canary: Duration,
}

/// A local command that answers at once or not at all (`sudo -n true`, `journalctl`).
pub const LOCAL_CHECK: Duration = Duration::from_secs(5);

impl Deadlines {
    /// The bounds for a connect timeout of `connect`.
    pub fn new(connect: Duration) -> Deadlines {
        Deadlines {
            connect,
            query: (connect * 5).max(Duration::from_secs(10)),
            through_daemon: connect * 2 + Duration::from_secs(10),
            canary: connect * 4 + Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bound_grows_with_the_connect_timeout_and_queries_get_at_least_ten_seconds() {
        let d = Deadlines::new(Duration::from_secs(3));
        assert_eq!(d.query, Duration::from_secs(15));
        assert_eq!(d.through_daemon, Duration::from_secs(16));
        assert_eq!(d.canary, Duration::from_secs(72));
        let short = Deadlines::new(Duration::from_secs(1));
        assert_eq!(short.query, Duration::from_secs(10));
        assert!(short.through_daemon > short.connect);
    }
}
