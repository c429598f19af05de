//! The numbered vocabularies of nix's internal-json log: activity types, result types and
//! verbosity levels.
//!
//! Nix numbers these in `logging.hh`; forks (Lix) and future versions add numbers of their own,
//! so every enum keeps an `Other(n)` that carries an unknown number through unchanged.
//!
//! Only the numbers that every fork agrees on are named. Upstream Nix (2.34 included) ends at
//! activity 112 / result 108; beyond that the forks disagree (their `logging.hh`):
//!
//! | number | upstream Nix (next) | Determinate Nix | Lix |
//! |---|---|---|---|
//! | activity 113 | `FetchToStore` | unassigned | unassigned |
//! | result 109 | `FetchToStore`'s result | `HashMismatch` | unassigned |
//! | result 110 | unassigned | `BuildResult` (a JSON payload, not `fields`) | unassigned |
//!
//! A log does not say which fork wrote it, so 109, 110 and 113 stay `Other`: the parsed event
//! keeps the number and the fields as they came, and the monitor draws nothing from them rather
//! than something they may not be (tests/monitor.rs replays a real 2.34 log with them mixed in).

use serde::Serialize;

/// Declares a "`#[repr(u64)]`-style" enum: named variants with fixed numbers, plus `Other(u64)`
/// for numbers this version does not know, and the conversions both ways.
macro_rules! numbered {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A number this version of nixdispatch does not know (a newer nix, or a fork).
            Other(u64),
        }

        impl $name {
            /// The number nix uses for this value on the wire.
            pub fn code(self) -> u64 {
                match self {
                    $( $name::$variant => $code, )*
                    $name::Other(code) => code,
                }
            }

            /// The value for a number read from the wire; unknown numbers become `Other`.
            pub fn from_code(code: u64) -> Self {
                match code {
                    $( $code => $name::$variant, )*
                    other => $name::Other(other),
                }
            }
        }

        impl From<u64> for $name {
            fn from(code: u64) -> Self {
                Self::from_code(code)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_u64(self.code())
            }
        }
    };
}

numbered! {
    /// What an activity (a `start` … `stop` span) is doing.
    pub enum ActivityType {
        /// Anything without a type of its own ("querying info about missing paths", evaluation).
        Unknown = 0,
        /// One store path copied between two stores: fields `[path, from, to]`.
        CopyPath = 100,
        /// One download or upload: fields `[uri]`.
        FileTransfer = 101,
        /// The whole realisation of the requested paths; carries `SetExpected` results.
        Realise = 102,
        /// The aggregate of all path copies; carries `Progress` in paths.
        CopyPaths = 103,
        /// The aggregate of all builds; carries `Progress` in derivations.
        Builds = 104,
        /// One derivation build: fields `[drvPath, machine ("" = local), curRound, nrRounds]`.
        Build = 105,
        /// `nix store optimise`.
        OptimiseStore = 106,
        /// `nix store verify`.
        VerifyPaths = 107,
        /// One path fetched from a substituter: fields `[path, substituterURI]`.
        Substitute = 108,
        /// A metadata query on a binary cache: fields `[path, cacheURI]`.
        QueryPathInfo = 109,
        /// The post-build hook of a derivation: fields `[drvPath]`.
        PostBuildHook = 110,
        /// A build waiting for a lock or a build slot.
        BuildWaiting = 111,
        /// Fetching a flake input or other source tree (2.20+).
        FetchTree = 112,
    }
}

numbered! {
    /// What a `result` line reports about its activity.
    pub enum ResultType {
        /// A file hard-linked by store optimisation: fields `[bytes, blocks]`.
        FileLinked = 100,
        /// One line of a builder's output: fields `[line]`.
        BuildLogLine = 101,
        /// A path whose signature is not trusted: fields `[path]`.
        UntrustedPath = 102,
        /// A path whose contents do not match its hash: fields `[path]`.
        CorruptedPath = 103,
        /// The builder entered a phase (`buildPhase`, ...): fields `[phase]`.
        SetPhase = 104,
        /// Progress of the activity: fields `[done, expected, running, failed]`.
        Progress = 105,
        /// How much of a kind of work is expected: fields `[activityType, n]`.
        SetExpected = 106,
        /// One line of the post-build hook's output: fields `[line]`.
        PostBuildLogLine = 107,
        /// A status line of a fetch (2.20+).
        FetchStatus = 108,
    }
}

numbered! {
    /// How important a message or an activity is; nix shows up to `Info` by default.
    pub enum Verbosity {
        /// An error: the run, or part of it, failed.
        Error = 0,
        /// A warning.
        Warn = 1,
        /// A notice.
        Notice = 2,
        /// Normal information (`-v` off).
        Info = 3,
        /// Shown with `-v`.
        Talkative = 4,
        /// Shown with `-vv`.
        Chatty = 5,
        /// Shown with `-vvv`.
        Debug = 6,
        /// Shown with `-vvvv`.
        Vomit = 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers_round_trip() {
        for code in [
            0, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112,
        ] {
            let ty = ActivityType::from_code(code);
            assert!(!matches!(ty, ActivityType::Other(_)), "{code}");
            assert_eq!(ty.code(), code);
        }
        for code in 100..=108 {
            let ty = ResultType::from_code(code);
            assert!(!matches!(ty, ResultType::Other(_)), "{code}");
            assert_eq!(ty.code(), code);
        }
    }

    #[test]
    fn numbers_the_forks_disagree_on_stay_unknown() {
        // Upstream's next FetchToStore (113 / 109), Determinate's HashMismatch (109) and
        // BuildResult (110): ambiguous, so never named.
        assert_eq!(ActivityType::from_code(113), ActivityType::Other(113));
        assert_eq!(ResultType::from_code(109), ResultType::Other(109));
        assert_eq!(ResultType::from_code(110), ResultType::Other(110));
        assert_eq!(ResultType::Other(110).code(), 110);
        // What every fork agrees on stays named.
        assert_eq!(ActivityType::from_code(112), ActivityType::FetchTree);
        assert_eq!(ResultType::from_code(108), ResultType::FetchStatus);
    }

    #[test]
    fn unknown_numbers_pass_through() {
        assert_eq!(ActivityType::from_code(150), ActivityType::Other(150));
        assert_eq!(ActivityType::Other(150).code(), 150);
        assert_eq!(ResultType::from(7), ResultType::Other(7));
        assert_eq!(Verbosity::from(99).code(), 99);
    }
}
