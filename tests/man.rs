//! The committed man pages (`man/`, installed by the flake's package) are generated from the clap
//! command with clap_mangen: this test fails when they are stale, and `just man` (which runs it
//! with `NIXDISPATCH_UPDATE_MAN=1`) writes them again.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Every page: `nixdispatch.1` (with FILES and ENVIRONMENT sections) and one per subcommand.
fn pages() -> BTreeMap<String, Vec<u8>> {
    let mut cmd = nixdispatch::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = BTreeMap::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = clap_mangen::Man::new(sub.clone());
        let mut out = Vec::new();
        man.render(&mut out).expect("render to memory");
        pages.insert(man.get_filename(), out);
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    let render = |out: &mut Vec<u8>| -> std::io::Result<()> {
        man.render_title(out)?;
        man.render_name_section(out)?;
        man.render_synopsis_section(out)?;
        man.render_description_section(out)?;
        man.render_options_section(out)?;
        man.render_subcommands_section(out)?;
        out.write_all(FILES_AND_ENVIRONMENT.as_bytes())?;
        man.render_version_section(out)
    };
    render(&mut out).expect("render to memory");
    pages.insert(man.get_filename(), out);
    pages
}

/// What the clap definitions do not say: where settings come from, in which order.
const FILES_AND_ENVIRONMENT: &str = r#".SH FILES
.TP
\fI~/.config/nixdispatch/config.toml\fR (or \fI$XDG_CONFIG_HOME/nixdispatch/config.toml\fR)
The user's settings: \fBconnect\-timeout\fR = SECS, \fBvia\fR = "nix" or "nh".
.TP
\fI/etc/nixdispatch/config.toml\fR (or \fI$NIXDISPATCH_SYSTEM_CONFIG\fR)
The system\-wide settings, same keys (NixOS: \fBprograms.nixdispatch.settings\fR).
A flag wins, then the environment, then the user's file, then this file, then the default.
.TP
\fI/etc/nix/machines\fR, \fI/etc/nix/nix.conf\fR
nix's own builders and substituters, read through \fBnix show\-config\fR / \fBnix config show\fR.
.SH ENVIRONMENT
.TP
\fBNIX_SSHOPTS\fR
Extra ssh options, for probes as for nix's own ssh.
.TP
\fBNIX_CONFIG\fR
nix settings, as nix reads them.
.TP
\fBNO_COLOR\fR
When set and not empty, no colours.
.TP
\fBNIXDISPATCH_SYSTEM_CONFIG\fR
The path of the system\-wide config file.
"#;

#[test]
fn committed_man_pages_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = pages();
    if std::env::var_os("NIXDISPATCH_UPDATE_MAN").is_some() {
        std::fs::create_dir_all(&dir).expect("create man/");
        for entry in std::fs::read_dir(&dir).expect("read man/").flatten() {
            if entry.path().extension().is_some_and(|e| e == "1") {
                std::fs::remove_file(entry.path()).expect("remove a stale page");
            }
        }
        for (name, text) in &pages {
            std::fs::write(dir.join(name), text).expect("write a page");
        }
        return;
    }
    let mut committed: Vec<String> = std::fs::read_dir(&dir)
        .expect("man/ is committed")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    committed.sort();
    let generated: Vec<String> = pages.keys().cloned().collect();
    assert_eq!(
        committed, generated,
        "man/ has other pages than the commands: run `just man` and commit"
    );
    for (name, text) in &pages {
        let on_disk = std::fs::read(dir.join(name)).expect("a committed page");
        assert!(
            &on_disk == text,
            "man/{name} is stale: run `just man` and commit"
        );
    }
}

#[test]
fn man_page_names_every_contract_command() {
    let pages = pages();
    let main = String::from_utf8_lossy(&pages["nixdispatch.1"]).into_owned();
    for cmd in common::CONTRACT_COMMANDS {
        assert!(
            pages.contains_key(&format!("nixdispatch-{cmd}.1")),
            "no page for {cmd}"
        );
        assert!(main.contains(cmd), "nixdispatch.1 does not list {cmd}");
    }
    assert!(main.contains(".SH FILES") && main.contains("/etc/nixdispatch/config.toml"));
}
