//! `nixdispatch build` behind a shell alias: each `nix build` command line of the table, run as
//! `nix build …` and as `nixdispatch build …` by the same lab client, gives the same exit code,
//! the same stdout, the same result links and the same results (`--dry-run` excepted: its
//! stderr is nixdispatch's plan).

mod common;

use common::{bin, lab, run_limited, Run, BOUND};
use nixdispatch_lab::{skip_unless_root, ClientNix, Lab, LabOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One row: the words after `nix build` (with `{f}` for the lab's flake, `{dir}` for a plain
/// directory with `default.nix` and a flake with a default package, `{spec}` for seasmoke's
/// machines line); nixdispatch's words when they differ (nixdispatch only spelling); whether
/// it runs with Nix 2.8 too; whether to compare stdout and links (not for `--dry-run`).
struct Row {
    nix: &'static str,
    nixdispatch: Option<&'static str>,
    on_2_8: bool,
    compare_output: bool,
}

const fn row(nix: &'static str) -> Row {
    Row {
        nix,
        nixdispatch: None,
        on_2_8: true,
        compare_output: true,
    }
}

const TABLE: &[Row] = &[
    row("{f}#hello"),
    row("{f}#hello --no-link"),
    row("--no-link {f}#chain --print-out-paths"),
    row("{f}#wide -o out --json"),
    row("-L {f}#hello {f}#chain --out-link two"),
    row("{f}#hello --json --print-out-paths --no-link"),
    row("{f}#fail"),
    row("{f}#fail {f}#hello --keep-going --no-link"),
    row("-f {dir}/default.nix hello -I x={dir} --arg a 1 --argstr b c --no-link --print-out-paths"),
    row("--impure --expr (builtins.getFlake\"{f}\").packages.x86_64-linux.hello -o expr"),
    row("-j 1 --cores 1 -L {f}#hello --option substituters '' --no-link --print-out-paths"),
    row("{f}#hello --rebuild --no-link"),
    row("path:{dir}/uses#x --override-input dep path:{dir}/depB --no-link --print-out-paths"),
    row("path:{dir}/uses#x --no-link --print-out-paths --no-write-lock-file"),
    row("-v {f}#hello --no-link --print-out-paths --quiet -L"),
    row("--builders {spec} -j0 {f}#chain --no-link --print-out-paths"),
    row("--option builders {spec} --max-jobs 0 {f}#hello --json --no-link"),
    row("--offline {f}#hello -Lj2 --no-link --connect-timeout 2 --no-fallback"),
    Row {
        nix: "--no-link --print-out-paths",
        nixdispatch: None,
        on_2_8: true,
        compare_output: true,
    },
    Row {
        nix: "{f}#hello --no-link --print-out-paths",
        nixdispatch: Some("{f}#hello -- --no-link --print-out-paths"),
        on_2_8: true,
        compare_output: true,
    },
    Row {
        nix: "{f}#chain --dry-run",
        nixdispatch: None,
        on_2_8: true,
        compare_output: false,
    },
];

/// The words of a row, placeholders filled. Words are split on spaces; `''` is the empty word.
fn words(line: &str, lab: &Lab, dir: &Path) -> Vec<String> {
    let spec = lab.builder_spec().replace(' ', "\u{1}");
    line.replace("{f}", &lab.flake())
        .replace("{dir}", &dir.display().to_string())
        .replace("{spec}", &spec)
        .split(' ')
        .map(|w| {
            if w == "''" {
                String::new()
            } else {
                w.replace('\u{1}', " ")
            }
        })
        .collect()
}

/// `nix build --json`'s timing fields differ from run to run by nature (2.19+ prints them for
/// what it built in that run); every other byte must match.
fn normalised_stdout(stdout: &str) -> String {
    let line = |l: &str| match serde_json::from_str::<serde_json::Value>(l) {
        Ok(serde_json::Value::Array(mut items)) => {
            for item in &mut items {
                if let Some(obj) = item.as_object_mut() {
                    for key in ["startTime", "stopTime", "cpuUser", "cpuSystem"] {
                        obj.remove(key);
                    }
                }
            }
            serde_json::to_string(&items).unwrap_or_default()
        }
        _ => l.to_owned(),
    };
    stdout.split('\n').map(line).collect::<Vec<_>>().join("\n")
}

/// The symlinks in `dir`, name to target.
fn links(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            found.insert(entry.file_name().to_string_lossy().into_owned(), target);
        }
    }
    found
}

/// A directory with `default.nix` (`{ hello = ...; }`) and `flake.nix` (a default package),
/// both carrying the lab's nonce so they are fresh per row.
fn write_plain_dir(lab: &Lab, dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let drv = format!(
        r#"derivation {{ name = "alias-hello"; system = "x86_64-linux"; builder = "/bin/sh";
            nonce = "{}"; args = [ "-c" "echo $nonce > $out" ]; }}"#,
        lab.nonce()
    );
    std::fs::write(dir.join("default.nix"), format!("{{ hello = {drv}; }}\n")).expect("write");
    std::fs::write(
        dir.join("flake.nix"),
        format!("{{ outputs = {{ self }}: {{ packages.x86_64-linux.default = {drv}; }}; }}\n"),
    )
    .expect("write");
    // A flake with an input, and two flakes that input can be (for --override-input).
    for (sub, text) in [
        (
            "uses",
            format!(
                r#"{{ inputs.dep.url = "path:{}/depA";
  outputs = {{ self, dep }}: {{ packages.x86_64-linux.x = derivation {{
    name = "uses-${{dep.word}}"; system = "x86_64-linux"; builder = "/bin/sh";
    nonce = "{}"; args = [ "-c" "echo $nonce > $out" ]; }}; }}; }}
"#,
                dir.display(),
                lab.nonce()
            ),
        ),
        (
            "depA",
            r#"{ outputs = { self }: { word = "a"; }; }"#.to_owned(),
        ),
        (
            "depB",
            r#"{ outputs = { self }: { word = "b"; }; }"#.to_owned(),
        ),
    ] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        std::fs::write(dir.join(sub).join("flake.nix"), text).expect("write");
    }
}

fn run_in(lab: &Lab, v: ClientNix, nixdispatch: bool, cwd: &Path, args: &[String]) -> Run {
    let mut cmd = if nixdispatch {
        lab.nixdispatch(v, bin())
    } else {
        lab.client_command(v, "nix")
    };
    cmd.arg("build").args(args).current_dir(cwd);
    run_limited(cmd, BOUND)
}

fn table_on(v: ClientNix) {
    let lab = lab(LabOptions::default());
    for (i, row) in TABLE.iter().enumerate() {
        if v == ClientNix::V2_8 && !row.on_2_8 {
            continue;
        }
        lab.renew_nonce().expect("fresh paths");
        let base = lab.dir().join(format!("alias/{i}"));
        let plain = base.join("plain");
        write_plain_dir(&lab, &plain);
        let (nd_dir, nix_dir) = (base.join("nixdispatch"), base.join("nix"));
        for d in [&nd_dir, &nix_dir] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        // The no-installable row runs where the flake is.
        let no_installable = !row.nix.contains("{f}") && !row.nix.contains("{dir}");
        let (nd_cwd, nix_cwd) = if no_installable {
            (plain.clone(), plain.clone())
        } else {
            (nd_dir.clone(), nix_dir.clone())
        };
        let nix_words = words(row.nix, &lab, &plain);
        let nd_words = words(row.nixdispatch.unwrap_or(row.nix), &lab, &plain);
        // nixdispatch first, on fresh paths; then nix, which finds them built.
        let nd = run_in(&lab, v, true, &nd_cwd, &nd_words);
        let nix = run_in(&lab, v, false, &nix_cwd, &nix_words);
        let what = format!("{v:?} row {i}: build {}", row.nix);
        assert_eq!(
            nd.code, nix.code,
            "{what}: exit codes differ\nnixdispatch: {nd:?}\nnix: {nix:?}"
        );
        if !row.compare_output {
            assert!(links(&nd_dir).is_empty(), "{what}: --dry-run made links");
            assert!(
                nd.stderr.contains("will be built"),
                "{what}: no plan on stderr: {nd:?}"
            );
            continue;
        }
        assert_eq!(
            normalised_stdout(&nd.stdout),
            normalised_stdout(&nix.stdout),
            "{what}: stdout differs\nnixdispatch: {nd:?}\nnix: {nix:?}"
        );
        if !no_installable {
            assert_eq!(
                links(&nd_dir),
                links(&nix_dir),
                "{what}: result links differ\nnixdispatch: {nd:?}\nnix: {nix:?}"
            );
        }
        for target in links(&nd_dir).values() {
            assert!(
                lab.client_has(v, &target.to_string_lossy()),
                "{what}: {} is not valid",
                target.display()
            );
        }
        if row.nix.contains("{spec}") && nd.code == Some(0) {
            let out = nd.stdout.lines().next().unwrap_or_default().to_owned();
            let out = if out.starts_with('[') {
                serde_json::from_str::<serde_json::Value>(&out).expect("json")[0]["outputs"]["out"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                out
            };
            assert!(
                lab.builder_has(&out),
                "{what}: --builders was not used: seasmoke lacks {out}: {nd:?}"
            );
        }
    }
}

#[test]
fn nix_build_lines_behave_the_same_through_nixdispatch_on_nix_2_8() {
    if skip_unless_root("nix_build_lines_behave_the_same_through_nixdispatch_on_nix_2_8") {
        return;
    }
    table_on(ClientNix::V2_8);
}

#[test]
fn nix_build_lines_behave_the_same_through_nixdispatch_on_nix_2_26() {
    if skip_unless_root("nix_build_lines_behave_the_same_through_nixdispatch_on_nix_2_26") {
        return;
    }
    table_on(ClientNix::V2_26);
}
