//! The typed events one stderr line of nix turns into.

use super::types::{ActivityType, ResultType, Verbosity};
use serde::Serialize;

/// The number nix gives an activity; unique within one nix process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ActivityId(pub u64);

/// One field of a `start` or `result` line: nix sends either numbers or strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Field {
    /// A non-negative integer.
    Int(u64),
    /// A string, or the JSON text of any other value (negative, float, null) so nothing is lost.
    Str(String),
}

impl Field {
    /// The field as text: strings as they are, numbers in decimal.
    pub fn as_text(&self) -> String {
        match self {
            Field::Int(n) => n.to_string(),
            Field::Str(s) => s.clone(),
        }
    }

    /// The field as a number, when it is one (or a string of digits).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Field::Int(n) => Some(*n),
            Field::Str(s) => s.parse().ok(),
        }
    }
}

/// One line of nix's stderr, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An activity began (`"action":"start"`).
    Start(Start),
    /// An activity ended (`"action":"stop"`); nix does not say whether it succeeded.
    Stop {
        /// The activity that ended.
        id: ActivityId,
    },
    /// An activity reported something (`"action":"result"`).
    Result {
        /// The activity reporting.
        id: ActivityId,
        /// What it reported.
        result: ActivityResult,
    },
    /// A log message not tied to an activity (`"action":"msg"`).
    Message(Message),
    /// Anything that is not an `@nix` line nixdispatch understands: ssh warnings, `nh`'s own
    /// output, malformed JSON, unknown actions. Shown to the user as it is, never dropped.
    Plain(String),
}

/// A `start` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The new activity's id.
    pub id: ActivityId,
    /// How verbose a log must be to show it.
    pub level: Verbosity,
    /// nix's own human description, e.g. "building '/nix/store/…drv'" (may be empty).
    pub text: String,
    /// The enclosing activity (2.18+); `None` when absent or 0.
    pub parent: Option<ActivityId>,
    /// What the activity is, with its fields typed.
    pub activity: Activity,
}

/// What an activity does, with the fields nix sends for its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    /// One store path copied from one store to another (substitution, or a copy to or from a
    /// builder). Stores are URIs; the local store is `"local"` or `""` depending on the version.
    CopyPath {
        /// The store path.
        path: String,
        /// The source store.
        from: String,
        /// The destination store.
        to: String,
    },
    /// One download or upload.
    FileTransfer {
        /// What is transferred.
        uri: String,
    },
    /// The whole realisation; its `SetExpected` results give the expected download sizes.
    Realise,
    /// The aggregate of all path copies.
    CopyPaths,
    /// The aggregate of all builds.
    Builds,
    /// One derivation being built.
    Build {
        /// The derivation.
        drv_path: String,
        /// The builder's store URI; empty for a local build.
        machine: String,
        /// The build round (for `--check` / repeated builds).
        cur_round: u64,
        /// How many rounds.
        nr_rounds: u64,
    },
    /// One path fetched from a substituter.
    Substitute {
        /// The store path.
        path: String,
        /// The substituter's URI.
        substituter: String,
    },
    /// A binary-cache metadata query.
    QueryPathInfo {
        /// The store path asked about.
        path: String,
        /// The cache asked.
        cache: String,
    },
    /// A post-build hook running.
    PostBuildHook {
        /// The derivation it runs for.
        drv_path: String,
    },
    /// Any other type, or a known type whose fields did not have the expected shape.
    Other {
        /// The type as sent.
        activity_type: ActivityType,
        /// The fields as sent.
        fields: Vec<Field>,
    },
}

impl Activity {
    /// The wire type of this activity.
    pub fn activity_type(&self) -> ActivityType {
        match self {
            Activity::CopyPath { .. } => ActivityType::CopyPath,
            Activity::FileTransfer { .. } => ActivityType::FileTransfer,
            Activity::Realise => ActivityType::Realise,
            Activity::CopyPaths => ActivityType::CopyPaths,
            Activity::Builds => ActivityType::Builds,
            Activity::Build { .. } => ActivityType::Build,
            Activity::Substitute { .. } => ActivityType::Substitute,
            Activity::QueryPathInfo { .. } => ActivityType::QueryPathInfo,
            Activity::PostBuildHook { .. } => ActivityType::PostBuildHook,
            Activity::Other { activity_type, .. } => *activity_type,
        }
    }
}

/// The `[done, expected, running, failed]` of a `Progress` result: paths for `CopyPaths`,
/// derivations for `Builds`, bytes for `CopyPath` and `FileTransfer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Progress {
    /// Finished so far.
    pub done: u64,
    /// Expected in total (0 when unknown).
    pub expected: u64,
    /// Under way now.
    pub running: u64,
    /// Failed so far.
    pub failed: u64,
}

/// What a `result` line reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivityResult {
    /// Store optimisation linked a file.
    FileLinked {
        /// Bytes saved.
        bytes: u64,
        /// Blocks saved.
        blocks: u64,
    },
    /// One line of a builder's output.
    BuildLogLine(String),
    /// A path with an untrusted signature.
    UntrustedPath(String),
    /// A path whose contents do not match its hash.
    CorruptedPath(String),
    /// The builder entered a phase.
    SetPhase(String),
    /// Progress counters.
    Progress(Progress),
    /// How much of a kind of work to expect (bytes for `CopyPath`/`FileTransfer`, else counts).
    SetExpected {
        /// The kind of work.
        activity_type: ActivityType,
        /// How much.
        expected: u64,
    },
    /// One line of a post-build hook's output.
    PostBuildLogLine(String),
    /// A status line of a fetch.
    FetchStatus(String),
    /// Any other type, or a known type whose fields did not have the expected shape.
    Other {
        /// The type as sent.
        result_type: ResultType,
        /// The fields as sent.
        fields: Vec<Field>,
    },
}

/// A `msg` line: a log message of a given level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// How important it is; `Error` messages make the run count as failed.
    pub level: Verbosity,
    /// The text as nix prints it (may contain ANSI colour codes and newlines).
    pub text: String,
    /// For errors: the message without the "error:" prefix and the trace.
    pub raw: Option<String>,
    /// For errors: the file the error points at.
    pub file: Option<String>,
    /// For errors: the line in that file.
    pub line: Option<u64>,
    /// For errors: the column in that line.
    pub column: Option<u64>,
    /// For errors: the evaluation trace, innermost first, each entry's own message.
    pub trace: Vec<String>,
}
