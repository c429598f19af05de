//! A validated store path: `/nix/store/<32 chars of nix-base32>-<name>`.
//!
//! Store paths enter nixdispatch from nix's JSON output, from binary-cache narinfo files and
//! from builders' stores; parsing them once, where they enter, means the planner can compare,
//! sort and hash them without re-checking, and a malformed path from a remote host is an error
//! with a cause rather than a silent mismatch. The store directory is kept apart from the base
//! name so stores other than `/nix/store` parse too.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The length of a store path's hash part, in nix-base32 characters (160 bits).
pub const HASH_LEN: usize = 32;

/// The longest name nix accepts after the hash and the dash.
pub const MAX_NAME_LEN: usize = 211;

/// The characters of nix's base-32 alphabet (no `e`, `o`, `u`, `t`).
const NIX_BASE32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Why a string is not a store path. Each variant names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorePathError {
    /// The path is not absolute or has no store directory before its base name.
    #[error("{0:?} is not a store path: it must look like /nix/store/<hash>-<name>")]
    NotAbsolute(String),
    /// The base name is too short to hold a hash, a dash and a name.
    #[error("{0:?} is not a store path: its base name must be <32-character hash>-<name>")]
    TooShort(String),
    /// The hash part contains a character outside nix-base32.
    #[error("{path:?} is not a store path: {found:?} is not a nix-base32 character in its hash")]
    BadHash {
        /// The whole path.
        path: String,
        /// The first bad character.
        found: char,
    },
    /// No dash between hash and name.
    #[error("{0:?} is not a store path: a dash must follow the 32-character hash")]
    NoDash(String),
    /// The name contains a character nix does not allow.
    #[error("{path:?} is not a store path: {found:?} is not allowed in a store path name (only A-Z a-z 0-9 + - . _ ? =)")]
    BadNameChar {
        /// The whole path.
        path: String,
        /// The first bad character.
        found: char,
    },
    /// The name is empty, too long, or one of the names nix reserves.
    #[error("{path:?} is not a store path: {why}")]
    BadName {
        /// The whole path.
        path: String,
        /// What is wrong with the name.
        why: String,
    },
}

impl From<StorePathError> for crate::Error {
    fn from(err: StorePathError) -> Self {
        crate::Error::Input(err.to_string())
    }
}

/// A full store path, validated: store directory, 32-character nix-base32 hash, dash, name.
///
/// Ordered, hashed and compared as its string, so sorting store paths sorts them as nix prints
/// them. Serialised as the plain string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorePath {
    full: String,
    /// Byte offset of the base name (just after the last `/`).
    base: usize,
}

impl StorePath {
    /// Parses a path as nix prints it in JSON and narinfo: a full store path, or (newer nix
    /// versions, narinfo `References`) a base name that lives in `store_dir`.
    pub fn parse_in(store_dir: &str, text: &str) -> Result<StorePath, StorePathError> {
        if text.starts_with('/') {
            StorePath::parse(text)
        } else {
            StorePath::parse(&format!("{store_dir}/{text}"))
        }
    }

    /// Parses and validates a full store path such as
    /// `/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1`.
    pub fn parse(text: &str) -> Result<StorePath, StorePathError> {
        let slash = match text.rfind('/') {
            Some(i) if i > 0 && text.starts_with('/') => i,
            _ => return Err(StorePathError::NotAbsolute(text.to_owned())),
        };
        let dir = &text[..slash];
        if dir.ends_with('/') {
            return Err(StorePathError::NotAbsolute(text.to_owned()));
        }
        let base = &text[slash + 1..];
        // Byte-wise checks are safe here: every accepted byte is ASCII, and a non-ASCII byte is
        // reported through the `char` that starts at it.
        if base.len() < HASH_LEN + 2 {
            return Err(StorePathError::TooShort(text.to_owned()));
        }
        if let Some(found) = base.chars().take(HASH_LEN).find(|c| !is_base32_char(*c)) {
            return Err(StorePathError::BadHash {
                path: text.to_owned(),
                found,
            });
        }
        if base.as_bytes().get(HASH_LEN) != Some(&b'-') {
            return Err(StorePathError::NoDash(text.to_owned()));
        }
        check_name(&base[HASH_LEN + 1..]).map_err(|problem| match problem {
            NameProblem::Char(found) => StorePathError::BadNameChar {
                path: text.to_owned(),
                found,
            },
            NameProblem::Other(why) => StorePathError::BadName {
                path: text.to_owned(),
                why,
            },
        })?;
        Ok(StorePath {
            full: text.to_owned(),
            base: slash + 1,
        })
    }

    /// The whole path, as nix prints it.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The store directory, e.g. `/nix/store`.
    pub fn store_dir(&self) -> &str {
        &self.full[..self.base - 1]
    }

    /// The base name, `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.full[self.base..]
    }

    /// The 32-character hash part: what binary caches key their `.narinfo` files by.
    pub fn hash_part(&self) -> &str {
        &self.full[self.base..self.base + HASH_LEN]
    }

    /// The name after the hash, e.g. `hello-2.12.1` or `hello-2.12.1.drv`.
    pub fn name(&self) -> &str {
        &self.full[self.base + HASH_LEN + 1..]
    }

    /// Whether this is a derivation file (its name ends in `.drv`).
    pub fn is_derivation(&self) -> bool {
        self.name().ends_with(".drv")
    }

    /// A short name for people: the name without hash, and without `.drv` for derivations
    /// (`hello-2.12.1`), as progress lines and reasons show it.
    pub fn display_name(&self) -> &str {
        short_name(self.as_str())
    }
}

/// The short name of a store path given as text, for display and summary keys: without store
/// directory and hash, and without `.drv` for derivations (`/nix/store/<hash>-hello-2.12.drv` →
/// `hello-2.12`), as [`StorePath::display_name`]. Text from a log is not validated first:
/// anything that does not look like a store path keeps its last `/` part (`.drv` dropped).
pub fn short_name(text: &str) -> &str {
    let base = text.rsplit('/').next().unwrap_or(text);
    let name = match base.split_once('-') {
        Some((hash, name)) if hash.len() == HASH_LEN && !name.is_empty() => name,
        _ => base,
    };
    // A name that is only ".drv" keeps it, rather than displaying as nothing.
    name.strip_suffix(".drv")
        .filter(|s| !s.is_empty())
        .unwrap_or(name)
}

/// Splits an output selector off an installable-like path: `/nix/store/…-x.drv^out` and the
/// older `…!out` give the path and `Some("out")`; a plain path gives itself and `None`.
///
/// Nix prints and accepts both spellings (`!` up to 2.14, `^` since), so both are taken.
pub fn strip_output_suffix(text: &str) -> (&str, Option<&str>) {
    match text.rfind(['^', '!']) {
        Some(i) if !text[..i].contains(['^', '!']) => (&text[..i], Some(&text[i + 1..])),
        _ => (text, None),
    }
}

fn is_base32_char(c: char) -> bool {
    c.is_ascii() && NIX_BASE32.contains(&(c as u8))
}

enum NameProblem {
    Char(char),
    Other(String),
}

fn check_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Other("its name is empty".into()));
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(*c)))
    {
        return Err(NameProblem::Char(found));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::Other(format!(
            "its name is {} characters long; nix allows at most {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if name == "." || name == ".." || name.starts_with(".-") || name.starts_with("..-") {
        return Err(NameProblem::Other(format!(
            "nix reserves the name {name:?}"
        )));
    }
    Ok(())
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.full, f)
    }
}

impl std::str::FromStr for StorePath {
    type Err = StorePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StorePath::parse(s)
    }
}

impl AsRef<str> for StorePath {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

impl Serialize for StorePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for StorePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        StorePath::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1";

    fn sp(s: &str) -> StorePath {
        match StorePath::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parts_of_a_valid_path() {
        let p = sp(HELLO);
        assert_eq!(p.as_str(), HELLO);
        assert_eq!(p.store_dir(), "/nix/store");
        assert_eq!(p.hash_part(), "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz");
        assert_eq!(p.name(), "hello-2.12.1");
        assert_eq!(
            p.base_name(),
            "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1"
        );
        assert!(!p.is_derivation());
        assert_eq!(p.display_name(), "hello-2.12.1");
        assert_eq!(p.to_string(), HELLO);
    }

    #[test]
    fn derivations() {
        let p = sp("/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1.drv");
        assert!(p.is_derivation());
        assert_eq!(p.display_name(), "hello-2.12.1");
        // A name that is only ".drv" keeps it, rather than displaying as nothing.
        assert_eq!(
            sp("/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-.drv").display_name(),
            ".drv"
        );
    }

    #[test]
    fn short_names_of_paths_from_a_log() {
        assert_eq!(
            short_name("/nix/store/50h0af3l3gkcw4c385pxvynq15y8zlxs-nd-chain-a.drv"),
            "nd-chain-a"
        );
        assert_eq!(
            short_name("/nix/store/5y6pa3fw8zx4m0g7g1ffvjq23d7dyq1n-nd-big"),
            "nd-big"
        );
        assert_eq!(short_name("weird"), "weird");
        assert_eq!(short_name(""), "");
        assert_eq!(short_name(HELLO), sp(HELLO).display_name());
    }

    #[test]
    fn other_store_dirs() {
        let p = sp("/home/me/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-x");
        assert_eq!(p.store_dir(), "/home/me/nix/store");
        assert_eq!(p.name(), "x");
    }

    #[test]
    fn all_allowed_name_characters() {
        let p = sp("/nix/store/00000000000000000000000000000000-aZ09+-._?=");
        assert_eq!(p.name(), "aZ09+-._?=");
    }

    #[test]
    fn rejections() {
        let bad = [
            "",
            "nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello",
            "/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello",
            "/nix/store/",
            "/nix/store//7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlzXhello",
            "/nix/store/eh7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxl-hello",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hel lo",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-héllo",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello/bin/hello",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-.",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-..",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-.-x",
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-..-x",
            "/nix/store/ééééééééééééééééééééééééééééééééé-x",
        ];
        for text in bad {
            assert!(StorePath::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn name_length_limit() {
        let ok = format!(
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-{}",
            "a".repeat(211)
        );
        let long = format!(
            "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-{}",
            "a".repeat(212)
        );
        assert!(StorePath::parse(&ok).is_ok());
        let err = StorePath::parse(&long)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("at most 211"), "{err}");
    }

    #[test]
    fn base_names_parse_in_a_store_dir() {
        let base = "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1";
        let full = format!("/nix/store/{base}");
        assert_eq!(
            StorePath::parse_in("/nix/store", base).unwrap().as_str(),
            full
        );
        assert_eq!(StorePath::parse_in("/other", &full).unwrap().as_str(), full);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = StorePath::parse("/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-a b")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("' ' is not allowed"), "{err}");
        let err = StorePath::parse("/nix/store/eh7qgvs4kgzsn8a6rb273saxyqh4jxlz-ab")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("'e' is not a nix-base32 character"), "{err}");
    }

    #[test]
    fn ordering_is_by_string() {
        let a = sp("/nix/store/00000000000000000000000000000000-b");
        let b = sp("/nix/store/10000000000000000000000000000000-a");
        assert!(a < b);
    }

    #[test]
    fn serde_as_a_string() {
        let p = sp(HELLO);
        let json = serde_json::to_string(&p).unwrap_or_default();
        assert_eq!(json, format!("\"{HELLO}\""));
        let back: StorePath = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, p);
        assert!(serde_json::from_str::<StorePath>("\"/nix/store/nope\"").is_err());
    }

    #[test]
    fn output_suffixes() {
        let drv = "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello.drv";
        assert_eq!(
            strip_output_suffix(&format!("{drv}^out")),
            (drv, Some("out"))
        );
        assert_eq!(
            strip_output_suffix(&format!("{drv}!dev")),
            (drv, Some("dev"))
        );
        assert_eq!(strip_output_suffix(&format!("{drv}^*")), (drv, Some("*")));
        assert_eq!(strip_output_suffix(drv), (drv, None));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in "\\PC*") {
                let _ = StorePath::parse(&s);
            }

            #[test]
            fn valid_paths_round_trip(
                hash in "[0-9a-df-np-sv-z]{32}",
                name in "[A-Za-z0-9+_?=][A-Za-z0-9+._?=-]{0,60}",
            ) {
                let text = format!("/nix/store/{hash}-{name}");
                let p = StorePath::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(p.as_str(), text.as_str());
                prop_assert_eq!(p.hash_part(), hash.as_str());
                prop_assert_eq!(p.name(), name.as_str());
            }
        }
    }
}
