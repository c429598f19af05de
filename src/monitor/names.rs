//! Short human names for store URIs, and the derivations an error message names.

/// Whether a store URI in a `CopyPath` activity means this machine's own store (see
/// [`crate::store_uri::is_this_machine`]).
pub fn is_local_store(uri: &str) -> bool {
    crate::store_uri::is_this_machine(uri)
}

/// The host of a builder or store URI, for display: `ssh-ng://root@seasmoke:22?x=y` → `seasmoke`,
/// `http://cache.example.org/sub` → `cache.example.org`. Local builds (`""`, `"local"`) → `local`.
/// The authority is split as [`crate::store_uri`] splits it.
pub fn host_of(uri: &str) -> &str {
    crate::store_uri::display_host(uri)
}

/// Every `/nix/store/…drv` path named in a message (nix quotes them in its errors).
pub fn drv_paths_in(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("/nix/store/") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '`' | '\u{1b}' | ','))
            .unwrap_or(tail.len());
        let candidate = &tail[..end];
        if candidate.ends_with(".drv") {
            found.push(candidate);
        }
        rest = &tail[end.max(1)..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of(""), "local");
        assert_eq!(host_of("ssh-ng://seasmoke"), "seasmoke");
        assert_eq!(
            host_of("ssh-ng://root@seasmoke:2222?compress=true"),
            "seasmoke"
        );
        assert_eq!(host_of("ssh://[::1]:22"), "::1");
        assert_eq!(host_of("http://127.0.0.1:18931"), "127.0.0.1");
        assert_eq!(host_of("file:///tmp/cache"), "file:///tmp/cache");
        assert_eq!(host_of("root@seasmoke"), "seasmoke");
    }

    #[test]
    fn local_stores() {
        assert!(is_local_store("local"));
        assert!(is_local_store(""));
        assert!(!is_local_store("ssh-ng://seasmoke"));
        assert!(!is_local_store("file:///tmp/x"));
    }

    #[test]
    fn drv_paths_in_errors() {
        let text = "builder for '\u{1b}[35;1m/nix/store/9pyk6vw9wk58lwp82vzgrwfsxz9gcqzn-nd-fail.drv\u{1b}[0m' failed";
        assert_eq!(
            drv_paths_in(text),
            vec!["/nix/store/9pyk6vw9wk58lwp82vzgrwfsxz9gcqzn-nd-fail.drv"]
        );
        assert!(drv_paths_in("/nix/store/abc-out and nothing").is_empty());
        assert!(drv_paths_in("/nix/store/").is_empty());
    }
}
