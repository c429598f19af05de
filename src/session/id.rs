//! Session ids and keys: generated here, never taken from a remote host or the user into a
//! shell line without passing [`SessionId::parse`].

use sha2::{Digest, Sha256};
use std::fmt;

/// The name of one session: its directory on the builder and what `attach`/`cancel` take.
/// Lower-case letters, digits and `-` only, so it is safe in any shell word and any path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

/// The longest id accepted from the user or a builder.
const MAX_ID: usize = 64;

impl SessionId {
    /// A fresh id: the UTC date and time it was made (so ids sort by age) and 8 hex digits of
    /// a hash of the time, this process and `key`, so two clients starting at once differ.
    pub fn generate(key: &str) -> SessionId {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut hash = Sha256::new();
        hash.update(now.as_nanos().to_le_bytes());
        hash.update(std::process::id().to_le_bytes());
        hash.update(key.as_bytes());
        let digest = hash.finalize();
        let tail: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        SessionId(format!("{}-{tail}", compact_utc(now.as_secs())))
    }

    /// An id as the user or a builder gave it; `Err` with the reason when it cannot be one.
    pub fn parse(text: &str) -> Result<SessionId, String> {
        let ok = !text.is_empty()
            && text.len() <= MAX_ID
            && !text.starts_with('-')
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(SessionId(text.to_owned()))
        } else {
            Err(format!(
                "{text:?} is not a session id (ids are lower-case letters, digits and '-'; \
                 `nixdispatch sessions` lists them)"
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What identifies "the same derivations" across runs and clients: a hash of the sorted,
/// de-duplicated `DRV^OUTPUTS` installables a session builds.
pub fn key_of(installables: &[String]) -> String {
    let mut sorted: Vec<&str> = installables.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut hash = Sha256::new();
    for i in sorted {
        hash.update(i.as_bytes());
        hash.update(b"\n");
    }
    hash.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `YYYYMMDD-HHMMSS` of a Unix time, UTC.
fn compact_utc(secs: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// The UTC calendar date and time of a Unix time (Howard Hinnant's days-from-civil inverse).
pub(crate) fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3_600) as u32,
        (rem % 3_600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_differ() {
        let a = SessionId::generate("k");
        let b = SessionId::generate("k2");
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.as_str()), Ok(a.clone()));
        assert_eq!(a.as_str().len(), "20261204-170000-0123abcd".len());
    }

    #[test]
    fn ids_with_anything_a_shell_reads_are_refused() {
        for bad in [
            "",
            "-rf",
            "a b",
            "a;b",
            "A",
            "../x",
            "a'b",
            "$(x)",
            "a\nb",
            &"a".repeat(65),
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(SessionId::parse("20261204-170000-0123abcd").is_ok());
    }

    #[test]
    fn the_key_ignores_order_and_repeats() {
        let a = key_of(&["b^out".into(), "a^out".into()]);
        let b = key_of(&["a^out".into(), "b^out".into(), "a^out".into()]);
        assert_eq!(a, b);
        assert_ne!(a, key_of(&["a^out".into()]));
    }

    #[test]
    fn civil_time_is_right() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        // 2026-12-04T17:00:00Z
        assert_eq!(civil(1_796_403_600), (2026, 12, 4, 17, 0, 0));
        assert_eq!(compact_utc(951_782_400), "20000229-000000");
    }
}
