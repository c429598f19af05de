//! The one error type of the program, and the exit code each error maps to (CONTRACT.md).

use std::fmt;

/// Everything that ends a run early. Each variant is one line for the user: what went wrong and,
/// where there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: usage, configuration, a malformed builder spec, an installable that does not
    /// evaluate. Exit 2.
    #[error("{0}")]
    Input(String),
    /// The requested mode cannot be honoured. Exit 3.
    #[error("{0}")]
    Impossible(String),
    /// The build or the activation failed. Exit 1.
    #[error("{0}")]
    Failed(String),
    /// Whoever read our stdout closed it (`nixdispatch probe | head -1`): the run ends quietly,
    /// as Unix tools do. Exit 0.
    #[error("stdout was closed")]
    StdoutClosed,
    /// Interrupted by Ctrl-C or SIGTERM. Exit 130.
    #[error("interrupted")]
    Interrupted,
    /// Something in our surroundings failed (a program that would not start, I/O). Exit 1.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error, as CONTRACT.md fixes it.
    pub fn code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            Error::Impossible(_) => 3,
            Error::Failed(_) | Error::Io { .. } => 1,
            Error::Interrupted => 130,
            Error::StdoutClosed => 0,
        }
    }

    /// A bad-input error from anything displayable.
    pub fn input(message: impl fmt::Display) -> Self {
        Error::Input(message.to_string())
    }

    /// An I/O error with what we were doing.
    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
}

/// The result type of the whole program.
pub type Result<T, E = Error> = std::result::Result<T, E>;
