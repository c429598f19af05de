//! Secrets kept off every output: the password of a URI (`https://user:SECRET@host`), the
//! values of nix's `access-tokens` setting, and URI query parameters that name a token or a
//! password. Every place that writes for a person or a program (stdout, the renderers, error
//! lines, `-vv` tracing) passes its text through [`redact`]; see [`crate::output`].
//!
//! It works on text, not on parsed values, because secrets arrive inside free text: nix's own
//! warnings quote substituter URIs, and `-vv` prints whole argv vectors.

use std::borrow::Cow;

/// What a secret is replaced with.
/// (No character that ends a URI, so redacting twice changes nothing.)
pub const MARK: &str = "***";

/// `text` with every secret replaced by [`MARK`]. Cheap when there is nothing to redact.
pub fn redact(text: &str) -> Cow<'_, str> {
    let has_uri = text.contains("://");
    let has_tokens =
        contains_ignore_case(text, "access-tokens") || contains_ignore_case(text, "access_tokens");
    if !has_uri && !has_tokens {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    if has_uri {
        out = redact_uris(&out, 0);
    }
    if has_tokens {
        out = redact_access_tokens(&out);
    }
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Characters that end a URI inside free text (quotes, brackets, blanks).
fn ends_uri(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | '`' | '<' | '>' | '(' | ')' | '[' | ']' | ','
        )
}

/// How deep URIs inside URIs are looked into (a bound, so no input can exhaust the stack).
const MAX_NESTING: usize = 4;

/// Replaces the password of `scheme://user:password@host` and secret query parameters;
/// `depth` is how many URIs this text is nested in.
fn redact_uris(text: &str, depth: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let scheme_start = before[..at]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let web = matches!(
            before[scheme_start..at].to_ascii_lowercase().as_str(),
            "http" | "https" | "s3" | "gs"
        );
        let end = after.find(ends_uri).unwrap_or(after.len());
        let (uri, tail) = after.split_at(end);
        out.push_str(&redact_one_uri(uri, web, depth));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// `uri` is what follows `scheme://`, up to the end of the URI. On the web (`web`) a user name
/// alone is a token too (`https://TOKEN@host`); an ssh user name is not a secret.
fn redact_one_uri(uri: &str, web: bool, depth: usize) -> String {
    let authority_end = uri.find(['/', '?', '#']).unwrap_or(uri.len());
    let (authority, path) = uri.split_at(authority_end);
    let mut out = String::with_capacity(uri.len());
    // The last '@' of the authority ends the user info (a password may contain '@').
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..=colon]);
                    out.push_str(MARK);
                }
                None if web => out.push_str(MARK),
                None => out.push_str(userinfo),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let mut rest = String::with_capacity(path.len());
    match path.find('?') {
        Some(q) => {
            rest.push_str(&path[..=q]);
            let query = &path[q + 1..];
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, _)) if secret_param(name) => format!("{name}={MARK}"),
                    _ => param.to_owned(),
                })
                .collect();
            rest.push_str(&params.join("&"));
        }
        None => rest.push_str(path),
    }
    // A URI inside this one (`https://proxy/?to=https://u:p@h`).
    if depth < MAX_NESTING {
        out.push_str(&redact_uris(&rest, depth + 1));
    } else {
        out.push_str(&rest);
    }
    out
}

/// Query parameters whose value is a secret (`?token=`, `?access_token=`, `?password=`).
fn secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "password", "passwd", "secret"]
        .iter()
        .any(|s| name.contains(s))
        // `secret-key` is the path of a signing key, not the key.
        && name != "secret-key"
}

/// Replaces the value that follows `access-tokens`: in a nix.conf line (`access-tokens =
/// host=TOKEN ...`, to the end of the line), in an argv (`--option access-tokens "host=TOKEN"`,
/// to the closing quote), or as a flag (`--access-tokens VALUE`).
fn redact_access_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(at) = lower
            .find("access-tokens")
            .or_else(|| lower.find("access_tokens"))
        else {
            break;
        };
        let name_end = at + "access-tokens".len();
        out.push_str(&rest[..name_end]);
        let after = &rest[name_end..];
        // The separator between the name and its value: blanks, '=', ':', ',', quotes.
        let value_start = after
            .find(|c: char| !(c.is_whitespace() || matches!(c, '=' | ':' | ',' | '"' | '\'')))
            .unwrap_or(after.len());
        let separator = &after[..value_start];
        if value_start == after.len() || separator.contains('\n') {
            rest = after;
            continue;
        }
        out.push_str(separator);
        let value = &after[value_start..];
        // The name again (`"access-tokens", "access-tokens=..."`): the next round takes it.
        if value.len() >= 13 && value.as_bytes()[..13].eq_ignore_ascii_case(b"access-tokens")
            || value.len() >= 13 && value.as_bytes()[..13].eq_ignore_ascii_case(b"access_tokens")
        {
            rest = value;
            continue;
        }
        let quote = separator.chars().rev().find(|c| matches!(c, '"' | '\''));
        // Tokens hold no quotes or backslashes: stopping there keeps JSON text valid.
        let value_end = match quote {
            Some(q) => value.find([q, '\n', '\\']).unwrap_or(value.len()),
            None => value.find(['\n', '"', '\'', '\\']).unwrap_or(value.len()),
        };
        out.push_str(MARK);
        rest = &value[value_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_passwords_are_redacted_and_users_kept() {
        assert_eq!(
            redact("warning: 'https://alice:SECRET@cache.example/' does not appear to be a binary cache"),
            "warning: 'https://alice:***@cache.example/' does not appear to be a binary cache"
        );
        assert_eq!(
            redact("ssh-ng://root@seasmoke x86_64-linux"),
            "ssh-ng://root@seasmoke x86_64-linux"
        );
        assert_eq!(redact("\"https://u:p@ss@h/x\""), "\"https://u:***@h/x\"");
        assert_eq!(
            redact("s3://b?region=x&access_token=T0K&profile=p"),
            "s3://b?region=x&access_token=***&profile=p"
        );
        assert_eq!(
            redact("https://proxy/?to=https://u:pw@h/"),
            "https://proxy/?to=https://u:***@h/"
        );
        assert_eq!(
            redact("url 'https://ghp_TOKEN@git.example/x'"),
            "url 'https://***@git.example/x'"
        );
        assert_eq!(
            redact("file:///c?secret-key=/etc/key"),
            "file:///c?secret-key=/etc/key"
        );
    }

    #[test]
    fn access_tokens_are_redacted_in_argv_and_config_text() {
        let argv = r#"["nix", "build", "--option", "access-tokens", "github.com=ghp_SECRET other=X", "--json"]"#;
        let shown = redact(argv);
        assert!(
            !shown.contains("SECRET") && !shown.contains("=X"),
            "{shown}"
        );
        assert!(shown.ends_with(r#"", "--json"]"#), "{shown}");
        let conf = "access-tokens = github.com=ghp_SECRET\nsubstituters = x";
        assert_eq!(redact(conf), "access-tokens = ***\nsubstituters = x");
        assert_eq!(
            redact("--access-tokens github.com=SECRET"),
            "--access-tokens ***"
        );
        assert_eq!(redact("access-tokens"), "access-tokens");
        let json = r#"{"event":"message","text":"access-tokens = a=SECRET\nnext"}"#;
        let shown = redact(json);
        assert_eq!(
            shown,
            r#"{"event":"message","text":"access-tokens = ***\nnext"}"#
        );
        assert!(serde_json::from_str::<serde_json::Value>(&shown).is_ok());
    }

    #[test]
    fn cases_the_property_tests_found() {
        // A scheme after a multi-byte character once sliced inside it.
        assert_eq!(redact("\u{13460}://"), "\u{13460}://");
        // The name twice once hid the value from redaction.
        let shown = redact("access-tokens@\"access-tokens \"access-tokens\", \"h=SECRET\"");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn deeply_nested_uris_do_not_exhaust_the_stack() {
        let text = "a://".repeat(100_000);
        assert_eq!(redact(&text).len(), text.len());
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(redact("building foo"), Cow::Borrowed(_)));
    }
}
