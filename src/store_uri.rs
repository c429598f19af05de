//! One store URI (`ssh-ng://builder@seasmoke:2222?compress=true`, `daemon`, `file:///srv`),
//! parsed once where it enters (a machines line, `--builder`) and carried parsed from there:
//! its scheme, and for ssh stores the user, host and port ssh is given.
//!
//! The text stays exactly as the user wrote it (after nix's own normalisation: a bare host gets
//! `ssh://`), because messages, nix's `--builders` and the contract's JSON print it.

use serde::Serialize;
use std::fmt;

/// A validated store URI: the text as written, and its parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreUri {
    text: String,
    ssh: Option<SshAddress>,
}

/// Where ssh connects for an `ssh://` or `ssh-ng://` store: what ssh gets as `-l`, the host
/// and `-p`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshAddress {
    /// The user before `@` (`builder` in `ssh-ng://builder@seasmoke`), if any.
    pub user: Option<String>,
    /// The host (`seasmoke`, or `::1` without its brackets).
    pub host: String,
    /// The port after `:`, if any.
    pub port: Option<u16>,
}

impl SshAddress {
    /// The arguments that end an ssh command line for this address: `-p PORT`, `-l USER` when
    /// the URI names them, then `--` and the host (ssh's own config decides the rest).
    pub fn destination_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(port) = self.port {
            args.extend(["-p".to_owned(), port.to_string()]);
        }
        if let Some(user) = &self.user {
            args.extend(["-l".to_owned(), user.clone()]);
        }
        args.extend(["--".to_owned(), self.host.clone()]);
        args
    }
}

impl StoreUri {
    /// Parses a store URI as nix reads it (a word without `://` that is not a local store word
    /// is an ssh host), refusing what nix cannot open or what ssh could take for an option. The
    /// error is one clause naming the URI and the fix.
    pub fn parse(text: &str) -> Result<StoreUri, String> {
        let text = if text.contains("://") || is_local_store_word(text) {
            text.to_owned()
        } else {
            format!("ssh://{text}")
        };
        let mut ssh = None;
        if let Some((scheme, _)) = text.split_once("://") {
            if scheme.is_empty()
                || !scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
            {
                return Err(format!(
                    "{text:?} has no valid scheme: write e.g. ssh-ng://HOST or ssh://HOST"
                ));
            }
            if !KNOWN_SCHEMES.contains(&scheme) {
                return Err(format!(
                    "{text:?}: nix knows no store scheme {scheme:?}: write ssh-ng://HOST or ssh://HOST"
                ));
            }
            if is_ssh_scheme(scheme) {
                ssh = Some(parse_ssh_authority(&text).map_err(|why| format!("{text:?}: {why}"))?);
            }
        }
        Ok(StoreUri { text, ssh })
    }

    /// The URI as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The store type: `ssh`, `ssh-ng`, another URI scheme, or `local`/`daemon`/`auto` for the
    /// store words and paths that nix does not treat as ssh hosts.
    pub fn scheme(&self) -> &str {
        if let Some((scheme, _)) = self.text.split_once("://") {
            return scheme;
        }
        if self.text.starts_with("daemon") {
            "daemon"
        } else if self.text.starts_with("auto") {
            "auto"
        } else {
            "local"
        }
    }

    /// Where ssh connects, for `ssh://` and `ssh-ng://` stores; `None` for every other store.
    pub fn ssh(&self) -> Option<&SshAddress> {
        self.ssh.as_ref()
    }

    /// The short name people know the store by, the contract's JSON `host`: the host name
    /// without user or port for ssh URIs, the URI itself otherwise.
    pub fn host_label(&self) -> &str {
        self.ssh.as_ref().map_or(&self.text, |s| s.host.as_str())
    }

    /// The query after `?` (`compress=true`), if any.
    pub fn query(&self) -> Option<&str> {
        self.text.split_once('?').map(|(_, q)| q)
    }
}

impl fmt::Display for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for StoreUri {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl PartialEq<str> for StoreUri {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for StoreUri {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl Serialize for StoreUri {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// The host of any store URI, for display, without judging it: `ssh-ng://root@seasmoke:22?x=y`
/// → `seasmoke`, `http://cache.example.org/sub` → `cache.example.org`, `root@seasmoke` →
/// `seasmoke`, `file:///srv/cache` → itself. Local builds (`""`, `"local"`) → `local`.
pub fn display_host(uri: &str) -> &str {
    if uri.is_empty() || uri == "local" {
        return "local";
    }
    let authority = match uri.split_once("://") {
        // file:///srv/cache and the like: the whole URI is the best name.
        Some((_, rest)) if rest.starts_with('/') => return uri,
        Some((_, rest)) => rest.split(['/', '?']).next().unwrap_or(rest),
        // Machines-file entries without a scheme are ssh hosts: `root@seasmoke`.
        None => uri,
    };
    match split_authority(authority) {
        Ok(parts) if !parts.host.is_empty() => parts.host,
        _ => authority,
    }
}

/// Whether a store URI (as nix logs it, e.g. in a `CopyPath` activity) means this machine's own
/// store: empty, a store word, `unix://…` or a path.
pub fn is_this_machine(uri: &str) -> bool {
    uri.is_empty() || is_store_word(uri) || uri.starts_with("unix://") || uri.starts_with('/')
}

/// `local`, `daemon` or `auto`, alone or with a query: nix's words for this machine's store.
fn is_store_word(uri: &str) -> bool {
    ["auto", "daemon", "local"].iter().any(|w| {
        uri == *w
            || uri
                .strip_prefix(w)
                .is_some_and(|rest| rest.starts_with('?'))
    })
}

/// Store words and paths, which nix does not prefix with `ssh://` (local stores).
fn is_local_store_word(uri: &str) -> bool {
    is_store_word(uri) || uri.starts_with('?') || uri.contains('/')
}

/// The store URI schemes of nix (2.8 to 2.34) and Lix; any other fails in nix with "don't know
/// how to open Nix store".
const KNOWN_SCHEMES: &[&str] = &[
    "ssh",
    "ssh-ng",
    "mounted-ssh-ng",
    "unix",
    "local",
    "daemon",
    "file",
    "http",
    "https",
    "s3",
    "dummy",
    "auto",
    "gs",
];

fn is_ssh_scheme(scheme: &str) -> bool {
    scheme == "ssh" || scheme == "ssh-ng"
}

/// `[user@]host[:port]` split apart, borrowed and not yet judged.
struct Authority<'a> {
    user: Option<&'a str>,
    host: &'a str,
    port: Option<&'a str>,
}

/// Splits an authority at its last `@` and its port colon (`[v6]:port`, `host:port`; a bare
/// IPv6 address keeps its colons); fails only on an unclosed or ill-followed `[`.
fn split_authority(authority: &str) -> Result<Authority<'_>, String> {
    let (user, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("an IPv6 address opened with [ is not closed with ]".into());
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("{after:?} after the IPv6 address is not :PORT")),
            },
        }
    } else {
        match host_port.matches(':').count() {
            0 => (host_port, None),
            1 => match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            },
            // A bare IPv6 address: its colons are not a port separator.
            _ => (host_port, None),
        }
    };
    Ok(Authority { user, host, port })
}

/// Parses `scheme://[user@]host[:port][?query]`, refusing anything ssh could take for an option
/// or that is not one host.
fn parse_ssh_authority(uri: &str) -> Result<SshAddress, String> {
    let rest = uri.split_once("://").map(|(_, rest)| rest).unwrap_or(uri);
    let authority = rest.split('?').next().unwrap_or_default();
    let Authority { user, host, port } = split_authority(authority)?;
    if let Some(user) = user {
        if user.is_empty() {
            return Err("the user name before @ is empty: write USER@HOST, or only HOST".into());
        }
        check_ssh_word(user, "user name")?;
    }
    if host.is_empty() {
        return Err("the host name is empty: write ssh-ng://HOST or USER@HOST".into());
    }
    check_ssh_word(host, "host name")?;
    if host.contains('/') {
        return Err(format!(
            "{host:?} is not a host name: remove the path after it"
        ));
    }
    let port = match port {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => {
                return Err(format!(
                    "port {text:?} is not a port number: write HOST:PORT with PORT from 1 to 65535"
                ))
            }
        },
    };
    Ok(SshAddress {
        user: user.map(str::to_owned),
        host: host.to_owned(),
        port,
    })
}

/// Refuses what ssh would read as an option or as more than one argument.
fn check_ssh_word(word: &str, what: &str) -> Result<(), String> {
    if word.starts_with('-') {
        return Err(format!(
            "the {what} {word:?} starts with \"-\", so ssh could read it as an option: fix the {what}"
        ));
    }
    if let Some(c) = word.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the {what} {word:?} contains {c:?}: fix the {what}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_parts_are_parsed_once() {
        let uri = StoreUri::parse("ssh-ng://builder@seasmoke:2222?compress=true").unwrap();
        assert_eq!(uri, "ssh-ng://builder@seasmoke:2222?compress=true");
        assert_eq!(uri.scheme(), "ssh-ng");
        let ssh = uri.ssh().unwrap();
        assert_eq!(ssh.user.as_deref(), Some("builder"));
        assert_eq!(ssh.host, "seasmoke");
        assert_eq!(ssh.port, Some(2222));
        assert_eq!(uri.host_label(), "seasmoke");
        assert_eq!(uri.query(), Some("compress=true"));
        assert_eq!(
            ssh.destination_args(),
            ["-p", "2222", "-l", "builder", "--", "seasmoke"]
        );
    }

    #[test]
    fn bare_hosts_are_ssh_and_store_words_are_local() {
        let uri = StoreUri::parse("root@[::1]:22").unwrap();
        assert_eq!(uri.as_str(), "ssh://root@[::1]:22");
        assert_eq!(uri.ssh().unwrap().host, "::1");
        for word in ["daemon", "auto", "local", "/srv/store"] {
            let uri = StoreUri::parse(word).unwrap();
            assert!(uri.ssh().is_none(), "{word}");
            assert_eq!(uri.host_label(), word);
        }
        assert_eq!(StoreUri::parse("daemon").unwrap().scheme(), "daemon");
        assert_eq!(StoreUri::parse("/srv/store").unwrap().scheme(), "local");
    }

    #[test]
    fn display_hosts_share_the_authority_split() {
        assert_eq!(display_host(""), "local");
        assert_eq!(display_host("ssh-ng://root@seasmoke:2222?x=y"), "seasmoke");
        assert_eq!(display_host("ssh://[::1]:22"), "::1");
        assert_eq!(
            display_host("http://cache.example.org/sub"),
            "cache.example.org"
        );
        assert_eq!(display_host("file:///tmp/cache"), "file:///tmp/cache");
        assert_eq!(display_host("root@seasmoke"), "seasmoke");
    }
}
