//! doctor: the builder's signing key, read over the probe's connection, and the exact line that
//! makes this machine trust it.
//!
//! A builder's store serves substitutes only when its paths are signed by a key in this machine's
//! `trusted-public-keys`. nixdispatch's NixOS `builderHost` creates the key pair and publishes the
//! public half at [`PUBLISHED_KEY`] (`publicKeyPath` in nix/lib.nix).

use super::{ok, warn, Check};
use crate::probe::Connection;
use std::time::Duration;

/// Where `programs.nixdispatch.builderHost` leaves the builder's public signing key.
pub const PUBLISHED_KEY: &str = "/etc/nixdispatch/signing-key.pub";

/// The published key, else the public half of the builder's own `secret-key-files` where the
/// ssh user may read them (root's login, a hand-made set-up). Prints nothing when neither.
fn script() -> String {
    format!(
        "cat {PUBLISHED_KEY} 2>/dev/null || \
         for f in $(nix --extra-experimental-features nix-command show-config 2>/dev/null | sed -n 's/^secret-key-files = //p'); do \
         nix --extra-experimental-features nix-command key convert-secret-to-public < \"$f\" 2>/dev/null; echo; done"
    )
}

/// The public signing keys the builder publishes (`NAME:BASE64`), at most a few, each checked
/// for shape so that nothing else the remote host prints reaches the terminal.
pub async fn published_keys(conn: &Connection, timeout: Duration) -> Vec<String> {
    let Ok(Ok(out)) = tokio::time::timeout(timeout, conn.session().shell(script()).output()).await
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(8192)]).into_owned();
    let mut keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| is_public_key(l))
        .map(str::to_owned)
        .collect();
    keys.dedup();
    keys.truncate(4);
    keys
}

/// `NAME:BASE64` with a plain name and an ed25519-sized key.
fn is_public_key(text: &str) -> bool {
    let Some((name, key)) = text.split_once(':') else {
        return false;
    };
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && (40..=100).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

/// What doctor says about a builder that publishes `published` while this machine trusts
/// `trusted`: nothing when it publishes no key.
pub fn finding(host: &str, published: &[String], trusted: &[String]) -> Option<Check> {
    let first = published.first()?;
    if let Some(key) = published.iter().find(|k| trusted.contains(k)) {
        let name = key.split(':').next().unwrap_or(key);
        return Some(ok(format!(
            "builder {host} signs with {name}, which this machine trusts"
        )));
    }
    let name = first.split(':').next().unwrap_or(first);
    Some(warn(
        format!(
            "builder {host} signs with {name}, which this machine does not trust: nix refuses substitutes from its store"
        ),
        format!(
            "set publicKey = \"{first}\"; for {host} in programs.nixdispatch.builders (NixOS), or add this line to nix.conf: extra-trusted-public-keys = {first}"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "seasmoke-1:aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBrZXkgYXQgYWxsIQ==";

    #[test]
    fn an_untrusted_key_comes_with_the_line_to_paste() {
        let c = finding("seasmoke", &[KEY.to_owned()], &["other-1:AAAA".to_owned()])
            .expect("a finding");
        assert_eq!(c.level.to_string(), "warn");
        assert!(c.what.contains("signs with seasmoke-1"), "{}", c.what);
        let fix = c.fix.unwrap_or_default();
        assert!(fix.contains(&format!("publicKey = \"{KEY}\";")), "{fix}");
        assert!(
            fix.ends_with(&format!("extra-trusted-public-keys = {KEY}")),
            "{fix}"
        );
    }

    #[test]
    fn a_trusted_key_is_ok_and_no_key_says_nothing() {
        let c = finding("seasmoke", &[KEY.to_owned()], &[KEY.to_owned()]).expect("a finding");
        assert_eq!(c.level.to_string(), "ok");
        assert!(finding("seasmoke", &[], &[KEY.to_owned()]).is_none());
    }

    #[test]
    fn only_key_shaped_lines_count() {
        assert!(is_public_key(KEY));
        for bad in [
            "",
            "no colon",
            "seasmoke-1:short",
            "sea smoke:aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBrZXkgYXQgYWxsIQ==",
            "\u{1b}[31m:aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBrZXkgYXQgYWxsIQ==",
            "seasmoke-1:aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBrZXkgYXQgYWxsIQ==\u{7}",
        ] {
            assert!(!is_public_key(bad), "{bad:?}");
        }
    }
}
