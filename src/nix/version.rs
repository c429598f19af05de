//! A Nix (or Lix) version as `nix --version` prints it, and how versions compare; what each
//! version can do is in [`super::capabilities`].

use crate::machines::SpeedFactorSyntax;
use std::cmp::Ordering;
use std::fmt;

/// A Nix (or Lix) version, as `nix --version` prints it.
///
/// Lix forked from Nix 2.18 and numbers itself 2.90+; for choosing flags it counts as 2.18
/// ([`NixVersion::features`]), and `lix` records where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NixVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version (0 when not printed).
    pub patch: u32,
    /// Whether this is Lix.
    pub lix: bool,
}

/// `nix --version` output that names no version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read a version from `nix --version` output {0:?}: is `nix` on PATH really Nix?")]
pub struct VersionError(pub String);

impl From<VersionError> for crate::Error {
    fn from(err: VersionError) -> Self {
        crate::Error::Input(err.to_string())
    }
}

impl NixVersion {
    /// Parses `nix --version` output: `nix (Nix) 2.26.3`, `nix (Nix) 2.8.0`,
    /// `nix (Lix, like Nix) 2.91.1`, `nix (Determinate Nix 3.8.2) 2.30.1`, pre-release suffixes
    /// such as `2.26.0pre20241015_abc` included.
    pub fn parse(text: &str) -> Result<NixVersion, VersionError> {
        let fail = || VersionError(text.trim().to_owned());
        let line = text.lines().next().unwrap_or_default();
        let word = line
            .split_whitespace()
            .rev()
            .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
            .ok_or_else(fail)?;
        let mut numbers = word.split('.').map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = numbers.next().flatten().ok_or_else(fail)?;
        let minor = numbers.next().flatten().ok_or_else(fail)?;
        let patch = numbers.next().flatten().unwrap_or(0);
        Ok(NixVersion {
            major,
            minor,
            patch,
            lix: line.contains("Lix"),
        })
    }

    /// The Nix version whose features this one has: itself, or 2.18.0 for Lix.
    pub fn features(&self) -> (u32, u32, u32) {
        if self.lix {
            (2, 18, 0)
        } else {
            (self.major, self.minor, self.patch)
        }
    }

    /// Whether it has the features of Nix `major.minor` or later.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.features() >= (major, minor, 0)
    }

    /// How it reads a machines entry's speed factor (floats from Nix 2.20).
    pub fn speed_factor_syntax(&self) -> SpeedFactorSyntax {
        if self.at_least(2, 20) {
            SpeedFactorSyntax::Float
        } else {
            SpeedFactorSyntax::Integer
        }
    }
}

impl Ord for NixVersion {
    /// By features first, so that Lix 2.91 sorts with Nix 2.18; then Nix before Lix; then the
    /// printed number.
    fn cmp(&self, other: &Self) -> Ordering {
        (
            self.features(),
            self.lix,
            self.major,
            self.minor,
            self.patch,
        )
            .cmp(&(
                other.features(),
                other.lix,
                other.major,
                other.minor,
                other.patch,
            ))
    }
}

impl PartialOrd for NixVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for NixVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lix {
            write!(f, "Lix {}.{}.{}", self.major, self.minor, self.patch)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Nix 2.26.3 and 2.8.0, for tests elsewhere too.
    pub(crate) const NIX_2_26: NixVersion = NixVersion {
        major: 2,
        minor: 26,
        patch: 3,
        lix: false,
    };
    pub(crate) const NIX_2_8: NixVersion = NixVersion {
        major: 2,
        minor: 8,
        patch: 0,
        lix: false,
    };

    #[test]
    fn versions_parse() {
        let p = |s: &str| NixVersion::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p("nix (Nix) 2.26.3\n"), NIX_2_26);
        assert_eq!(p("nix (Nix) 2.8.0"), NIX_2_8);
        assert_eq!(
            p("nix (Nix) 2.26.0pre20241015_abcdef"),
            NixVersion {
                major: 2,
                minor: 26,
                patch: 0,
                lix: false
            }
        );
        assert_eq!(
            p("nix (Nix) 2.3"),
            NixVersion {
                major: 2,
                minor: 3,
                patch: 0,
                lix: false
            }
        );
        assert_eq!(
            p("nix (Determinate Nix 3.8.2) 2.30.1"),
            NixVersion {
                major: 2,
                minor: 30,
                patch: 1,
                lix: false
            }
        );
        let lix = p("nix (Lix, like Nix) 2.91.1");
        assert_eq!(
            lix,
            NixVersion {
                major: 2,
                minor: 91,
                patch: 1,
                lix: true
            }
        );
        assert_eq!(lix.features(), (2, 18, 0));
        assert_eq!(lix.to_string(), "Lix 2.91.1");
        assert!(NixVersion::parse("command not found").is_err());
        assert!(NixVersion::parse("").is_err());
        assert!(NixVersion::parse("nix (Nix) 2").is_err());
    }

    #[test]
    fn versions_compare_by_features() {
        let lix = NixVersion {
            major: 2,
            minor: 91,
            patch: 1,
            lix: true,
        };
        let nix_2_18 = NixVersion {
            major: 2,
            minor: 18,
            patch: 0,
            lix: false,
        };
        assert!(NIX_2_8 < nix_2_18 && nix_2_18 < lix && lix < NIX_2_26);
        assert!(NIX_2_26.at_least(2, 20) && !NIX_2_8.at_least(2, 9) && NIX_2_8.at_least(2, 8));
        assert!(lix.at_least(2, 18) && !lix.at_least(2, 19));
        assert_eq!(NIX_2_26.speed_factor_syntax(), SpeedFactorSyntax::Float);
        assert_eq!(NIX_2_8.speed_factor_syntax(), SpeedFactorSyntax::Integer);
        assert_eq!(lix.speed_factor_syntax(), SpeedFactorSyntax::Integer);
    }
}
