//! `nix build`'s own flags, as typed after `nixdispatch build`: which word is a flag, which words
//! are its values, which are installables, and what of it the plan must know.
//!
//! nix's argument parser takes a flag's values as the next words whatever they look like
//! (`--arg n -1`), joins short flags (`-Lvj8`, `-oresult`), and refuses `--flag=value`. So the
//! words can only be told apart by knowing how many values each flag takes: [`VALUED_LONG`] is
//! that list, read from `nix __dump-args` (2.8) and `nix __dump-cli` (2.26, 2.34) on the lab's
//! Nix versions. A flag not in it takes no value, except `--extra-SETTING` (always one): nix's
//! unknown future settings are mostly booleans, and a wrong guess there only moves one word.

use std::ffi::{OsStr, OsString};

/// nix's long flags that take values (any command's, settings included), with how many.
/// Everything else that starts with `--` takes none.
pub const VALUED_LONG: &[(&str, usize)] = &[
    ("access-tokens", 1),
    ("allowed-impure-host-deps", 1),
    ("allowed-uris", 1),
    ("allowed-users", 1),
    ("arg", 2),
    ("arg-from-file", 2),
    ("arg-from-stdin", 1),
    ("argstr", 2),
    ("bash-prompt", 1),
    ("bash-prompt-prefix", 1),
    ("bash-prompt-suffix", 1),
    ("build-dir", 1),
    ("build-hook", 1),
    ("build-poll-interval", 1),
    ("build-users-group", 1),
    ("builders", 1),
    ("commit-lock-file-summary", 1),
    ("commit-lockfile-summary", 1),
    ("connect-timeout", 1),
    ("cores", 1),
    ("diff-hook", 1),
    ("download-attempts", 1),
    ("download-buffer-size", 1),
    ("download-speed", 1),
    ("eval-attrset-update-layer-rhs-threshold", 1),
    ("eval-profile-file", 1),
    ("eval-profiler", 1),
    ("eval-profiler-frequency", 1),
    ("eval-store", 1),
    ("eval-system", 1),
    ("experimental-features", 1),
    ("expr", 1),
    ("external-builders", 1),
    ("extra-access-tokens", 1),
    ("extra-allowed-impure-host-deps", 1),
    ("extra-allowed-uris", 1),
    ("extra-allowed-users", 1),
    ("extra-build-hook", 1),
    ("extra-experimental-features", 1),
    ("extra-extra-platforms", 1),
    ("extra-hashed-mirrors", 1),
    ("extra-ignored-acls", 1),
    ("extra-impure-env", 1),
    ("extra-nix-path", 1),
    ("extra-platforms", 1),
    ("extra-plugin-files", 1),
    ("extra-sandbox-paths", 1),
    ("extra-secret-key-files", 1),
    ("extra-substituters", 1),
    ("extra-system-features", 1),
    ("extra-trusted-public-keys", 1),
    ("extra-trusted-substituters", 1),
    ("extra-trusted-users", 1),
    ("file", 1),
    ("flake-registry", 1),
    ("gc-reserved-space", 1),
    ("hashed-mirrors", 1),
    ("http-connections", 1),
    ("id-count", 1),
    ("ignored-acls", 1),
    ("impure-env", 1),
    ("include", 1),
    ("inputs-from", 1),
    ("json-log-path", 1),
    ("lint-absolute-path-literals", 1),
    ("lint-short-path-literals", 1),
    ("lint-url-literals", 1),
    ("log-format", 1),
    ("log-lines", 1),
    ("max-build-log-size", 1),
    ("max-call-depth", 1),
    ("max-free", 1),
    ("max-jobs", 1),
    ("max-silent-time", 1),
    ("max-substitution-jobs", 1),
    ("min-free", 1),
    ("min-free-check-interval", 1),
    ("nar-buffer-size", 1),
    ("narinfo-cache-meta-ttl", 1),
    ("narinfo-cache-negative-ttl", 1),
    ("narinfo-cache-positive-ttl", 1),
    ("netrc-file", 1),
    ("nix-path", 1),
    ("option", 2),
    ("out-link", 1),
    ("output-lock-file", 1),
    ("override-flake", 2),
    ("override-input", 2),
    ("plugin-files", 1),
    ("post-build-hook", 1),
    ("pre-build-hook", 1),
    ("profile", 1),
    ("reference-lock-file", 1),
    ("repeat", 1),
    ("sandbox-build-dir", 1),
    ("sandbox-dev-shm-size", 1),
    ("sandbox-paths", 1),
    ("secret-key-files", 1),
    ("ssl-cert-file", 1),
    ("stalled-download-timeout", 1),
    ("start-id", 1),
    ("store", 1),
    ("substituters", 1),
    ("system", 1),
    ("system-features", 1),
    ("tarball-ttl", 1),
    ("timeout", 1),
    ("trusted-public-keys", 1),
    ("trusted-substituters", 1),
    ("trusted-users", 1),
    ("update-input", 1),
    ("upgrade-nix-store-path-url", 1),
    ("user-agent-suffix", 1),
    ("warn-large-path-threshold", 1),
];

/// nix's short flags that take one value (`-o PATH`, `-I PATH`, `-f FILE`, `-j N`); the value
/// may be joined (`-j8`). The others (`-L`, `-v`) take none.
pub const VALUED_SHORT: &[char] = &['o', 'I', 'f', 'j'];

/// How many values nix's long flag `--NAME` takes.
pub fn long_arity(name: &str) -> usize {
    VALUED_LONG
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| usize::from(name.starts_with("extra-")))
}

/// How nixdispatch's own options are spelled, for telling them apart from nix's after `build`.
pub trait OwnOptions {
    /// `Some(takes_a_value)` when `--NAME` is nixdispatch's.
    fn long(&self, name: &str) -> Option<bool>;
    /// `Some(takes_a_value)` when `-C` is nixdispatch's.
    fn short(&self, c: char) -> Option<bool>;
}

/// The words after `build`, sorted: nixdispatch's own options and the installables (for clap),
/// and nix's flags with their values, in the order typed (passed to nix).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sorted {
    /// nixdispatch's options (with their values) and the installables.
    pub ours: Vec<OsString>,
    /// nix's flags and their values.
    pub nix: Vec<OsString>,
}

/// The words that mean the same to nixdispatch and to nix: `-v`/`-q` raise or lower both.
fn shared_long(name: &str) -> Option<&'static str> {
    match name {
        "verbose" => Some("--verbose"),
        "quiet" => Some("--quiet"),
        _ => None,
    }
}

/// Names that nixdispatch has in front of the subcommand but that mean nix's flag after
/// `build` (CONTRACT.md): nix's result JSON, nix's binary-cache connect timeout.
pub const NIX_WINS: &[&str] = &["json", "connect-timeout"];

/// Sorts the words typed after `build`. `--` is dropped wherever it is (nixdispatch's older
/// spelling put nix's flags after it; nix itself would read what follows as installables, and
/// an installable cannot start with `-` here anyway).
pub fn sort_build_words(words: &[OsString], own: &dyn OwnOptions) -> Sorted {
    let mut sorted = Sorted::default();
    // -v and -q count for both; nix takes them as typed (they cancel out), nixdispatch takes
    // what is left (its -v and -q exclude each other).
    let mut net = 0i32;
    let net_verbosity = &mut net;
    let mut i = 0;
    let take = |i: &mut usize, n: usize, to: &mut Vec<OsString>| {
        for _ in 0..n {
            if let Some(w) = words.get(*i) {
                to.push(w.clone());
                *i += 1;
            }
        }
    };
    while i < words.len() {
        let word = &words[i];
        i += 1;
        let text = word.to_string_lossy();
        if text == "--" {
            continue;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            if let Some(both) = shared_long(name) {
                *net_verbosity += if name == "verbose" { 1 } else { -1 };
                sorted.nix.push(both.into());
            } else if NIX_WINS.contains(&name) {
                sorted.nix.push(word.clone());
                if !inline {
                    take(&mut i, long_arity(name), &mut sorted.nix);
                }
            } else if let Some(takes) = own.long(name) {
                sorted.ours.push(word.clone());
                if takes && !inline {
                    take(&mut i, 1, &mut sorted.ours);
                }
            } else {
                sorted.nix.push(word.clone());
                if !inline {
                    take(&mut i, long_arity(name), &mut sorted.nix);
                }
            }
        } else if text.len() > 1 && text.starts_with('-') {
            *net_verbosity += sort_short_cluster(&text[1..], word, &mut i, words, own, &mut sorted);
        } else {
            sorted.ours.push(word.clone());
        }
    }
    let flag = if net > 0 { "-v" } else { "-q" };
    for _ in 0..net.unsigned_abs().min(10) {
        sorted.ours.push(flag.into());
    }
    sorted
}

/// `-Lvj8`, `-o out`, `-q`: one flag at a time, a value ending the cluster. Returns the
/// count of `-v` minus `-q` in it.
fn sort_short_cluster(
    cluster: &str,
    word: &OsStr,
    i: &mut usize,
    words: &[OsString],
    own: &dyn OwnOptions,
    sorted: &mut Sorted,
) -> i32 {
    let mut net = 0;
    // A cluster of nix's flags alone passes as typed (nix reads it the same way).
    let all_nix = cluster.chars().all(|c| own.short(c).is_none() && c != 'k');
    if all_nix {
        sorted.nix.push(word.to_owned());
        if let Some((pos, _)) = cluster
            .char_indices()
            .find(|(_, c)| VALUED_SHORT.contains(c))
        {
            if pos + 1 == cluster.len() {
                if let Some(v) = words.get(*i) {
                    sorted.nix.push(v.clone());
                    *i += 1;
                }
            }
        }
        return 0;
    }
    for (pos, c) in cluster.char_indices() {
        let rest = &cluster[pos + c.len_utf8()..];
        if c == 'v' || c == 'q' {
            net += if c == 'v' { 1 } else { -1 };
            sorted
                .nix
                .push(if c == 'v' { "--verbose" } else { "--quiet" }.into());
        } else if c == 'k' && own.short('k').is_none() {
            // nix-build's `-k`; nix build spells it --keep-going only.
            sorted.nix.push("--keep-going".into());
        } else if let Some(takes) = own.short(c) {
            sorted.ours.push(format!("-{c}").into());
            if takes {
                push_value(rest, i, words, &mut sorted.ours);
                return net;
            }
        } else {
            sorted.nix.push(format!("-{c}").into());
            if VALUED_SHORT.contains(&c) {
                push_value(rest, i, words, &mut sorted.nix);
                return net;
            }
        }
    }
    net
}

fn push_value(rest: &str, i: &mut usize, words: &[OsString], to: &mut Vec<OsString>) {
    if !rest.is_empty() {
        to.push(rest.into());
    } else if let Some(v) = words.get(*i) {
        to.push(v.clone());
        *i += 1;
    }
}

/// nixdispatch's options, read from its clap definition: the global ones (top level) and those
/// of the `build` subcommand. `--json` and `--connect-timeout` are left out ([`NIX_WINS`]).
struct ClapOptions<'a> {
    commands: [&'a clap::Command; 2],
    /// After `build`: the names in [`NIX_WINS`] are nix's.
    after_build: bool,
}

impl ClapOptions<'_> {
    fn find(&self, matches: impl Fn(&clap::Arg) -> bool) -> Option<bool> {
        self.commands
            .iter()
            .flat_map(|c| c.get_arguments())
            .filter(|a| !a.is_positional())
            .find(|a| matches(a))
            .map(|a| a.get_action().takes_values())
    }
}

impl OwnOptions for ClapOptions<'_> {
    fn long(&self, name: &str) -> Option<bool> {
        match name {
            "help" | "version" => Some(false),
            n if self.after_build && NIX_WINS.contains(&n) => None,
            n => self.find(|a| {
                a.get_long() == Some(n)
                    || a.get_all_aliases()
                        .is_some_and(|aliases| aliases.contains(&n))
            }),
        }
    }

    fn short(&self, c: char) -> Option<bool> {
        match c {
            'h' | 'V' => Some(false),
            c => self.find(|a| a.get_short() == Some(c)),
        }
    }
}

/// Rewrites a whole command line so that clap can parse it: when the subcommand is `build`,
/// the words after it become nixdispatch's options and installables, `--`, then nix's flags
/// ([`sort_build_words`]). Any other command line is returned as it is.
pub fn sort_argv(command: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    let Some(build) = command.find_subcommand("build") else {
        return args;
    };
    let top = ClapOptions {
        commands: [command, command],
        after_build: false,
    };
    // Find the subcommand: the first word that is neither an option nor an option's value.
    let mut i = 1;
    let mut at = None;
    while i < args.len() {
        let text = args[i].to_string_lossy();
        i += 1;
        if text == "--" {
            return args;
        }
        if let Some(long) = text.strip_prefix("--") {
            if !long.contains('=') && top.long(long) == Some(true) {
                i += 1;
            }
        } else if let Some(cluster) = text.strip_prefix('-').filter(|c| !c.is_empty()) {
            for (pos, c) in cluster.char_indices() {
                if top.short(c) == Some(true) {
                    if pos + c.len_utf8() == cluster.len() {
                        i += 1;
                    }
                    break;
                }
            }
        } else {
            if text == "build" {
                at = Some(i - 1);
            }
            break;
        }
    }
    let Some(at) = at else {
        return args;
    };
    let own = ClapOptions {
        commands: [command, build],
        after_build: true,
    };
    let sorted = sort_build_words(&args[at + 1..], &own);
    let mut out: Vec<OsString> = args[..=at].to_vec();
    out.extend(sorted.ours);
    if !sorted.nix.is_empty() {
        out.push("--".into());
        out.extend(sorted.nix);
    }
    out
}

/// What nixdispatch reads from nix's flags: the ones that change what must happen, and the
/// words to pass on (to the build, and to the evaluation that plans it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NixBuildFlags {
    /// `--json`: print nix's result JSON on stdout.
    pub json: bool,
    /// `--print-out-paths`: print the output paths on stdout.
    pub print_out_paths: bool,
    /// `--dry-run`: build nothing, say what would be built and fetched.
    pub dry_run: bool,
    /// `--rebuild`: build the installables again even though they are valid.
    pub rebuild: bool,
    /// `--offline`: no substituters, no builders.
    pub offline: bool,
    /// `-j N` / `--max-jobs N` (the last one).
    pub max_jobs: Option<String>,
    /// `--builders SPEC` / `--option builders SPEC` (the last one): the builders to use, as
    /// `--builder` gives them.
    pub builders: Option<String>,
    /// `--fallback`: build when a substitute fails.
    pub fallback: bool,
    /// `-f FILE` or `--expr EXPR` was given: installables are attribute paths in it, and no
    /// installable means the whole value, not `.`.
    pub file_or_expr: bool,
    /// The words for `nix build`, minus those nixdispatch carries out itself (`--builders`,
    /// `--dry-run`, `--json`; `--print-out-paths` from Nix 2.9, which knows it).
    pub build: Vec<OsString>,
    /// The words that matter to evaluation, for planning (`-f`, `--expr`, `--arg`,
    /// `--override-input`, `--impure`, `-I`, settings...): the build words minus the ones only
    /// `nix build` takes.
    pub eval: Vec<OsString>,
}

/// `nix build`'s flags that other commands (`nix derivation show`, `nix eval`) refuse.
const BUILD_ONLY: &[&str] = &[
    "--no-link",
    "--out-link",
    "-o",
    "--print-out-paths",
    "--profile",
    "--rebuild",
    "--dry-run",
    "--json",
    "--stdin",
    "--pretty",
    "--no-pretty",
];

impl NixBuildFlags {
    /// Reads nix's words (as [`sort_build_words`] left them). `knows_print_out_paths`: the
    /// local nix has `--print-out-paths` (2.9+); an older one gets it and refuses it as `nix
    /// build` itself would.
    pub fn read(words: &[OsString], knows_print_out_paths: bool) -> NixBuildFlags {
        let mut flags = NixBuildFlags::default();
        let mut i = 0;
        while i < words.len() {
            let word = &words[i];
            let text = word.to_string_lossy().into_owned();
            // The flag and its values, as typed.
            let n = flag_values(&text);
            let end = (i + 1 + n).min(words.len());
            let group: Vec<OsString> = words[i..end].to_vec();
            let value = |k: usize| group.get(k).map(|v| v.to_string_lossy().into_owned());
            i = end;
            let mut to_build = true;
            match text.as_str() {
                "--json" => {
                    flags.json = true;
                    to_build = false;
                }
                "--print-out-paths" => {
                    flags.print_out_paths = true;
                    to_build = !knows_print_out_paths;
                }
                "--dry-run" => {
                    flags.dry_run = true;
                    to_build = false;
                }
                "--rebuild" => flags.rebuild = true,
                "--offline" => flags.offline = true,
                "--fallback" => flags.fallback = true,
                "--no-fallback" => flags.fallback = false,
                "--max-jobs" | "-j" => flags.max_jobs = value(1),
                "--builders" => {
                    flags.builders = value(1);
                    to_build = false;
                }
                "--option" if value(1).as_deref() == Some("builders") => {
                    flags.builders = value(2);
                    to_build = false;
                }
                "--option" if value(1).as_deref() == Some("max-jobs") => flags.max_jobs = value(2),
                "--file" | "-f" | "--expr" => flags.file_or_expr = true,
                t if t.len() > 2 && t.starts_with('-') && !t.starts_with("--") => {
                    // A cluster: -Lf FILE, -ffile, -Lj8, -j 8.
                    let cluster = &t[1..];
                    let valued = cluster
                        .char_indices()
                        .find(|(_, c)| VALUED_SHORT.contains(c));
                    if let Some((pos, c)) = valued {
                        let joined = &cluster[pos + 1..];
                        let value = if joined.is_empty() {
                            value(1)
                        } else {
                            Some(joined.to_owned())
                        };
                        match c {
                            'f' => flags.file_or_expr = true,
                            'j' => flags.max_jobs = value,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
            if to_build {
                flags.build.extend(group.iter().cloned());
                let out_link_cluster = !text.starts_with("--")
                    && text.chars().skip(1).find(|c| VALUED_SHORT.contains(c)) == Some('o');
                let build_only = BUILD_ONLY.contains(&text.as_str()) || out_link_cluster;
                if !build_only {
                    flags.eval.extend(group);
                }
            }
        }
        flags
    }
}

/// How many of the following words are values of this nix flag word.
fn flag_values(word: &str) -> usize {
    if let Some(name) = word.strip_prefix("--") {
        if name.contains('=') {
            0
        } else {
            long_arity(name)
        }
    } else if let Some(cluster) = word.strip_prefix('-') {
        match cluster
            .char_indices()
            .find(|(_, c)| VALUED_SHORT.contains(c))
        {
            Some((pos, _)) if pos + 1 == cluster.len() => 1,
            _ => 0,
        }
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nixdispatch's options after `build`, as clap defines them in the tests' eyes.
    struct Own;
    impl OwnOptions for Own {
        fn long(&self, name: &str) -> Option<bool> {
            match name {
                "builder" | "mode" | "result-file" | "push-to" | "probe-timeout" => Some(true),
                "push" | "no-local-fallback" | "help" => Some(false),
                _ => None,
            }
        }
        fn short(&self, c: char) -> Option<bool> {
            matches!(c, 'v' | 'q' | 'h').then_some(false)
        }
    }

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn sort(words: &[&str]) -> (Vec<String>, Vec<String>) {
        let s = sort_build_words(&os(words), &Own);
        let strs = |v: Vec<OsString>| {
            v.into_iter()
                .map(|w| w.to_string_lossy().into_owned())
                .collect()
        };
        (strs(s.ours), strs(s.nix))
    }

    #[test]
    fn nix_flags_before_and_after_installables_with_or_without_dashes() {
        let want = (
            vec![".#x".to_owned()],
            os(&["--no-link", "-L"])
                .into_iter()
                .map(|w| w.into_string().unwrap())
                .collect::<Vec<_>>(),
        );
        assert_eq!(sort(&[".#x", "--no-link", "-L"]), want);
        assert_eq!(sort(&["--no-link", ".#x", "-L"]), want);
        assert_eq!(sort(&[".#x", "--", "--no-link", "-L"]), want);
        assert_eq!(sort(&["--no-link", "-L", ".#x"]), want);
    }

    #[test]
    fn values_are_taken_by_arity_whatever_they_look_like() {
        let (ours, nix) = sort(&[
            "--option",
            "builders",
            "",
            "--override-input",
            "a",
            "path:/b",
            "--arg",
            "n",
            "-1",
            "-o",
            "out",
            "-j",
            "0",
            ".#x",
            "--argstr",
            "s",
            ".#notinstallable",
            "-I",
            "p",
            "--cores",
            "2",
            "--expr",
            "{ }",
            "-fdefault.nix",
            "--extra-foo",
            "bar",
        ]);
        assert_eq!(ours, vec![".#x"]);
        assert_eq!(nix.len(), 25);
        assert_eq!(nix[nix.len() - 2], "--extra-foo");
    }

    #[test]
    fn names_that_clash_mean_nix_after_build_and_v_q_mean_both() {
        let (ours, nix) = sort(&[
            "--json",
            "--connect-timeout",
            "5",
            "--no-fallback",
            "-v",
            "--quiet",
            ".#x",
        ]);
        assert_eq!(ours, vec![".#x"]);
        assert_eq!(
            nix,
            vec![
                "--json",
                "--connect-timeout",
                "5",
                "--no-fallback",
                "--verbose",
                "--quiet"
            ]
        );
    }

    #[test]
    fn our_options_go_to_clap_with_their_values() {
        let (ours, nix) = sort(&[
            "--result-file",
            "r.json",
            "--push-to=file:///c",
            "--no-local-fallback",
            "--builder",
            "ssh-ng://b x86_64-linux",
            "-L",
            ".#a",
            "--probe-timeout",
            "2",
            "-h",
        ]);
        assert_eq!(
            ours,
            vec![
                "--result-file",
                "r.json",
                "--push-to=file:///c",
                "--no-local-fallback",
                "--builder",
                "ssh-ng://b x86_64-linux",
                ".#a",
                "--probe-timeout",
                "2",
                "-h"
            ]
        );
        assert_eq!(nix, vec!["-L"]);
    }

    #[test]
    fn short_clusters_split_only_when_they_mix() {
        assert_eq!(sort(&["-Lj8", ".#x"]).1, vec!["-Lj8"]);
        assert_eq!(sort(&["-Lo", "out"]).1, vec!["-Lo", "out"]);
        let (ours, nix) = sort(&["-vLj", "4", "-k"]);
        assert_eq!(ours, vec!["-v"]);
        assert_eq!(nix, vec!["--verbose", "-L", "-j", "4", "--keep-going"]);
    }

    #[test]
    fn what_the_plan_reads() {
        let f = NixBuildFlags::read(
            &os(&[
                "--no-link",
                "--json",
                "-j",
                "0",
                "--option",
                "builders",
                "@/tmp/m",
                "--rebuild",
                "--offline",
                "--dry-run",
                "--print-out-paths",
                "-L",
                "--arg",
                "a",
                "1",
                "-ores",
            ]),
            true,
        );
        assert!(f.json && f.dry_run && f.rebuild && f.offline && f.print_out_paths);
        assert_eq!(f.max_jobs.as_deref(), Some("0"));
        assert_eq!(f.builders.as_deref(), Some("@/tmp/m"));
        assert_eq!(
            f.build,
            os(&[
                "--no-link",
                "-j",
                "0",
                "--rebuild",
                "--offline",
                "-L",
                "--arg",
                "a",
                "1",
                "-ores"
            ])
        );
        assert_eq!(
            f.eval,
            os(&["-j", "0", "--offline", "-L", "--arg", "a", "1"])
        );
        assert!(!f.file_or_expr);
        let cluster = NixBuildFlags::read(&os(&["-ofoo", "-Lj8"]), true);
        assert!(!cluster.file_or_expr);
        assert_eq!(cluster.max_jobs.as_deref(), Some("8"));
        assert!(NixBuildFlags::read(&os(&["-Lf", "x.nix"]), true).file_or_expr);
        let old = NixBuildFlags::read(&os(&["--print-out-paths", "-f", "x.nix"]), false);
        assert_eq!(old.build, os(&["--print-out-paths", "-f", "x.nix"]));
        assert!(old.file_or_expr);
        assert_eq!(
            NixBuildFlags::read(&os(&["--builders", "x"]), true)
                .builders
                .as_deref(),
            Some("x")
        );
    }

    fn parse(line: &[&str]) -> crate::cli::Cli {
        let args = std::iter::once("nixdispatch").chain(line.iter().copied());
        crate::cli::Cli::try_parse_args(args.map(OsString::from))
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn the_real_command_line_sorts_and_parses() {
        use crate::cli::Command;
        let cli = parse(&[
            "--json",
            "--builder",
            "ssh-ng://a x86_64-linux",
            "-v",
            "build",
            ".#x",
            "--no-link",
            "--json",
            "--connect-timeout",
            "5",
            "--probe-timeout",
            "2",
            "-o",
            "out",
            "--no-local-fallback",
            "--push-to",
            "file:///c",
            "-q",
            "--",
            "-L",
        ]);
        assert!(cli.global.json);
        assert_eq!(cli.global.connect_timeout, Some(2.0));
        assert!(cli.global.quiet);
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert_eq!(b.installables, vec![".#x"]);
        assert!(b.run.no_local_fallback);
        assert_eq!(b.run.push_to, vec!["file:///c"]);
        assert_eq!(
            b.nix_args,
            os(&[
                "--no-link",
                "--json",
                "--connect-timeout",
                "5",
                "-o",
                "out",
                "--quiet",
                "-L"
            ])
        );
        let cli = parse(&["--connect-timeout", "7", "build"]);
        assert_eq!(cli.global.connect_timeout, Some(7.0));
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert!(b.installables.is_empty() && b.nix_args.is_empty());
        let cli = parse(&[
            "--connect-timeout",
            "7",
            "--progress=plain",
            "build",
            "x",
            "--json",
        ]);
        assert!(!cli.global.json);
        let Command::Build(b) = cli.command else {
            panic!("not build")
        };
        assert_eq!(b.nix_args, os(&["--json"]));
        // Other commands keep the global options where they are.
        let cli = parse(&["plan", "--json", "x"]);
        assert!(cli.global.json);
    }

    #[test]
    fn build_help_is_nixdispatchs() {
        let args = ["nixdispatch", "build", "--no-link", "--help"].map(OsString::from);
        let err = crate::cli::Cli::try_parse_args(args).expect_err("help");
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
