//! What can go wrong in a lab, as one error type.

use std::fmt;

/// Why a lab could not start or an operation failed.
#[derive(Debug)]
pub enum LabError {
    /// Not running as root. The lab needs root (mount namespaces, chroot, sshd).
    NotRoot,
    /// Something `scripts/lab-deps` installs is missing.
    Missing(String),
    /// Anything else, with the command's output when there was one.
    Failed(String),
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::NotRoot => write!(
                f,
                "the nixdispatch lab needs root (mount namespaces, chroot, sshd); run as root"
            ),
            LabError::Missing(m) => write!(f, "{m} is missing: run scripts/lab-deps as root"),
            LabError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for LabError {}

impl From<std::io::Error> for LabError {
    fn from(e: std::io::Error) -> Self {
        LabError::Failed(e.to_string())
    }
}

pub(crate) type Result<T, E = LabError> = std::result::Result<T, E>;

/// A [`LabError::Failed`] with `msg`.
pub(crate) fn failed(msg: impl Into<String>) -> LabError {
    LabError::Failed(msg.into())
}
