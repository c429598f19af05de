//! The declarative set-up (flake.nix, nix/): every .nix file parses; the plain Nix functions of
//! nix/lib.nix give the expected machines entries, store URI, ssh configuration, TOML and
//! assertions (`nix-instantiate --eval --strict --json`, no nixpkgs needed); the NixOS and
//! home-manager modules wire them up (evaluated with tests/nix/harness.nix, a stub of nixpkgs'
//! lib); and, on the lab, the ssh configuration the module writes for root bounds plain nix
//! against a tarpit, notices a silent link, and shares one connection between runs.

mod common;

use nixdispatch::machines::parse_machines;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `nix-instantiate --eval --strict --json` of `expr`, with `lib` bound to nix/lib.nix.
fn eval(expr: &str) -> Value {
    let full = format!(
        "let lib = import {}/nix/lib.nix; in {expr}",
        repo().display()
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", &full])
        .env("NIX_CONFIG", "build-users-group =")
        .output()
        .expect("nix-instantiate runs (Debian: apt-get install nix-bin)");
    assert!(
        out.status.success(),
        "nix-instantiate failed on\n{full}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nix-instantiate prints JSON")
}

/// Like [`eval`], for an expression that must fail; returns nix's error text.
fn eval_error(expr: &str) -> String {
    let full = format!(
        "let lib = import {}/nix/lib.nix; in {expr}",
        repo().display()
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", &full])
        .env("NIX_CONFIG", "build-users-group =")
        .output()
        .expect("nix-instantiate runs");
    assert!(!out.status.success(), "{full} evaluated");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn string(v: Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// seasmoke as the README declares it.
fn seasmoke() -> String {
    format!(
        r#"{{ hostName = "seasmoke"; address = "192.0.2.10"; port = 2222; sshUser = "nixbuild";
            sshKey = "/root/.ssh/nix+build"; systems = [ "x86_64-linux" "aarch64-linux" ];
            maxJobs = 8; speedFactor = 2; supportedFeatures = [ "big-parallel" ];
            mandatoryFeatures = [ "kvm" ]; publicHostKey = "{HOST_KEY} root@seasmoke";
            publicKey = "seasmoke-1:aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBrZXk="; }}"#
    )
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if name == "target" || name == ".git" || name == "fuzz" {
                continue;
            }
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "nix") {
                files.push(path);
            }
        }
    }
    walk(repo(), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(repo()).unwrap_or(f).display().to_string())
        .collect();
    for expected in [
        "flake.nix",
        "nix/lib.nix",
        "nix/nixos.nix",
        "nix/home-manager.nix",
        "nix/package.nix",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} is missing: {names:?}"
        );
    }
    for file in &files {
        let out = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(file)
            .env("NIX_CONFIG", "build-users-group =")
            .output()
            .expect("nix-instantiate runs");
        assert!(
            out.status.success(),
            "{} does not parse: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn base64_matches_the_standard_encoding_both_ways() {
    let samples = [
        "",
        "a",
        "ab",
        "abc",
        "abcd",
        HOST_KEY,
        "ssh-rsa AAAAB3Nza+/== x@y",
    ];
    let list = samples
        .iter()
        .map(|s| serde_json::to_string(s).expect("json"))
        .collect::<Vec<_>>()
        .join(" ");
    let got = eval(&format!(
        "map (s: {{ enc = lib.base64Encode s; dec = lib.base64Decode (lib.base64Encode s); }}) [ {list} ]"
    ));
    for (i, s) in samples.iter().enumerate() {
        assert_eq!(got[i]["enc"], json!(b64(s)), "base64 of {s:?}");
        assert_eq!(got[i]["dec"], json!(s), "round trip of {s:?}");
    }
    assert!(eval_error(r#"lib.base64Decode "not base64!""#).contains("is not base64"));
}

#[test]
fn machines_line_is_what_nixpkgs_writes_and_nixdispatch_reads_back() {
    let line = string(eval(&format!("lib.machinesLine {}", seasmoke())));
    let key64 = b64(HOST_KEY);
    assert_eq!(
        line,
        format!(
            "ssh-ng://nixbuild@seasmoke x86_64-linux,aarch64-linux /root/.ssh/nix+build 8 2 \
             big-parallel,kvm kvm {key64}"
        )
    );
    let machines = parse_machines(&line, "the module's machines line", &mut |_| None)
        .unwrap_or_else(|e| panic!("nixdispatch rejects the module's line: {e}"));
    let m = &machines[0];
    assert_eq!(m.uri, "ssh-ng://nixbuild@seasmoke");
    assert_eq!(m.systems, ["x86_64-linux", "aarch64-linux"]);
    assert_eq!(m.ssh_key.as_deref(), Some("/root/.ssh/nix+build"));
    assert_eq!((m.max_jobs, m.speed_factor), (8, 2.0));
    assert_eq!(m.mandatory_features, ["kvm"]);
    assert_eq!(
        m.decode_host_key().ok().flatten().as_deref(),
        Some(HOST_KEY)
    );

    // A builder with nothing but the required fields: dashes, as nixpkgs writes them.
    let bare = string(eval(
        r#"lib.machinesLine { hostName = "h"; systems = [ "x86_64-linux" ]; }"#,
    ));
    assert_eq!(bare, "ssh-ng://h x86_64-linux - 1 1 - - -");
}

/// The daemon takes an extra substituter from an untrusted user only when it is, character for
/// character, in `trusted-substituters`: the module's URI must be the one nixdispatch passes.
#[test]
fn store_uri_is_the_one_nixdispatch_passes_per_run() {
    for builder in [
        seasmoke(),
        r#"{ hostName = "h"; systems = [ "x86_64-linux" ]; }"#.to_owned(),
        r#"{ hostName = "h"; sshUser = "u"; sshKey = "/k+e&y=%"; systems = [ "x86_64-linux" ]; }"#
            .to_owned(),
        format!(
            r#"{{ hostName = "h"; systems = [ "x86_64-linux" ]; publicHostKey = "{}"; }}"#,
            b64(HOST_KEY)
        ),
    ] {
        let got = eval(&format!(
            "{{ line = lib.machinesLine {builder}; uri = lib.storeUri {builder}; }}"
        ));
        let line = string(got["line"].clone());
        let machines = parse_machines(&line, "test", &mut |_| None).expect("parses");
        assert_eq!(got["uri"], json!(machines[0].store_uri()), "for {builder}");
    }
    assert_eq!(
        eval(&format!("lib.storeUri {}", seasmoke())),
        json!(format!(
            "ssh-ng://nixbuild@seasmoke?ssh-key=/root/.ssh/nix%2Bbuild&base64-ssh-public-host-key={}",
            b64(HOST_KEY).replace('=', "%3D").replace('+', "%2B")
        ))
    );
}

#[test]
fn host_key_may_be_given_as_the_line_or_its_base64() {
    let got = eval(&format!(
        r#"map (k: {{ b64 = lib.hostKeyBase64 {{ hostName = "h"; publicHostKey = k; }};
                     line = lib.hostKeyLine {{ hostName = "h"; publicHostKey = k; }}; }})
           [ "{HOST_KEY}" "{HOST_KEY} comment" "{}" ]"#,
        b64(HOST_KEY)
    ));
    for entry in got.as_array().expect("list") {
        assert_eq!(entry["b64"], json!(b64(HOST_KEY)));
        assert_eq!(entry["line"], json!(HOST_KEY));
    }
    let known = string(eval(&format!(
        r#"lib.knownHosts [ {} {{ hostName = "nokey"; systems = [ ]; }} ]"#,
        seasmoke()
    )));
    assert_eq!(known, format!("seasmoke {HOST_KEY}\n"));
}

#[test]
fn root_ssh_config_bounds_connects_keeps_alive_and_shares_one_connection() {
    let text = string(eval(&format!(
        r#"lib.sshConfig {{ builders = [ {} ]; knownHostsFile = "/etc/nixdispatch/known_hosts"; }}"#,
        seasmoke()
    )));
    assert!(
        text.starts_with(
            "# nixdispatch: builder seasmoke\nMatch originalhost seasmoke localuser root\n"
        ),
        "{text}"
    );
    // What ssh itself makes of it (`ssh -G` resolves the configuration without connecting).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ssh_config");
    std::fs::write(&file, &text).expect("write");
    let resolved = |host: &str| -> String {
        let out = Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(&file)
            .arg(host)
            .output()
            .expect("ssh -G runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let g = resolved("seasmoke");
    // `Match localuser root`: the builder's options apply to root's ssh only.
    if !nixdispatch_lab::skip_unless_root("root_ssh_config (the localuser root part)") {
        for line in [
            "hostname 192.0.2.10",
            "port 2222",
            "user nixbuild",
            "identityfile /root/.ssh/nix+build",
            "identitiesonly yes",
            "userknownhostsfile /etc/nixdispatch/known_hosts",
            "hostkeyalias seasmoke",
            "stricthostkeychecking true",
            "batchmode yes",
            "connecttimeout 5",
            "serveraliveinterval 10",
            "serveralivecountmax 3",
            "controlmaster auto",
            "controlpersist 600",
        ] {
            assert!(
                g.lines().any(|l| l == line),
                "ssh -G seasmoke lacks {line:?}:\n{g}"
            );
        }
        // %C is expanded to a hash of the connection.
        assert!(
            g.lines()
                .any(|l| l.starts_with("controlpath /run/nixdispatch-ssh/")),
            "{g}"
        );
    }
    // Another host is untouched.
    let other = resolved("elsewhere");
    assert!(other.lines().any(|l| l == "hostname elsewhere"));
    assert!(!other.lines().any(|l| l == "controlmaster auto"));

    // forUser = null configures every user; the control master can be turned off.
    let open = string(eval(&format!(
        "lib.sshConfig {{ builders = [ {} ]; forUser = null; controlDir = null; }}",
        seasmoke()
    )));
    assert!(open.contains("Match originalhost seasmoke\n"));
    assert!(!open.contains("ControlMaster"));
}

#[test]
fn nix_settings_trust_the_builder_store_without_making_it_a_substituter() {
    let got = eval(&format!(
        r#"lib.clientNixSettings [ {} {{ hostName = "quiet"; systems = [ "x86_64-linux" ]; substitute = false; }} ]"#,
        seasmoke()
    ));
    let uri = eval(&format!("lib.storeUri {}", seasmoke()));
    assert_eq!(
        got,
        json!({
            "builders-use-substitutes": true,
            "trusted-substituters": [uri],
            "trusted-public-keys": ["seasmoke-1:aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBrZXk="],
        })
    );
    assert_eq!(
        eval(
            r#"lib.builderHostNixSettings { trustedUsers = [ "nixbuild" ]; signingKeyFile = "/var/lib/nixdispatch/signing-key"; }"#
        ),
        json!({"trusted-users": ["nixbuild"], "secret-key-files": ["/var/lib/nixdispatch/signing-key"]})
    );
}

#[test]
fn assertions_name_the_builder_and_the_fix() {
    assert_eq!(
        eval(&format!(
            "lib.failedAssertions {{ builders = [ {} ]; }}",
            seasmoke()
        )),
        json!([])
    );
    let cases: &[(&str, &str)] = &[
        (
            r#"{ hostName = "h"; systems = [ "x86_64-linux" ]; }"#,
            "programs.nixdispatch.builders (h): the builder's store is used as a substituter but publicKey is null",
        ),
        (
            r#"{ hostName = "h"; systems = [ "x86_64-linux" ]; substitute = false; sshKey = ".ssh/id"; }"#,
            "sshKey \".ssh/id\" is relative",
        ),
        (
            r#"{ hostName = "h"; systems = [ "x86_64-linux" ]; substitute = false; sshKey = "/nix/store/abc-key"; }"#,
            "sshKey is in the nix store",
        ),
        (
            r#"{ hostName = "h"; systems = [ "x86_64-linux" ]; substitute = false; sshKey = "/root/my key"; }"#,
            "contains white space",
        ),
        (
            r#"{ hostName = "root@h"; systems = [ "x86_64-linux" ]; substitute = false; }"#,
            "is not a host name",
        ),
        (
            r#"{ hostName = "h"; systems = [ ]; substitute = false; }"#,
            "systems is empty",
        ),
        (
            r#"{ hostName = "h"; systems = [ "x86_64-linux" ]; substitute = false; publicHostKey = "nope!"; }"#,
            "publicHostKey is neither",
        ),
        (
            r#"{ hostName = "h"; systems = [ "x86_64-linux" ]; publicKey = "no-colon"; }"#,
            "is not a nix signing key",
        ),
    ];
    for (builder, message) in cases {
        let failed = eval(&format!(
            "lib.failedAssertions {{ builders = [ {builder} ]; }}"
        ));
        let failed = failed.as_array().expect("list");
        assert!(
            failed.len() == 1 && failed[0].as_str().is_some_and(|m| m.contains(message)),
            "{builder}: expected one failure containing {message:?}, got {failed:?}"
        );
    }
    let twice = eval(&format!(
        "lib.failedAssertions {{ builders = [ {0} {0} ]; }}",
        seasmoke()
    ));
    assert!(twice
        .to_string()
        .contains("seasmoke is declared more than once"));
    let host = eval(
        r#"lib.failedAssertions { builderHost = { enable = true; signingKeyFile = "key"; }; }"#,
    );
    assert!(host
        .to_string()
        .contains("signingKeyFile must be an absolute path"));
}

#[test]
fn settings_become_toml_that_nixdispatch_reads() {
    let text = string(eval(
        r#"lib.toTOML { connect-timeout = 2.5; via = "nh"; n = null; quoted = "a \"b\"\n"; list = [ 1 true "x" ]; table = { inner = { deep = 1; }; flat = false; }; }"#,
    ));
    let parsed: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    let back = serde_json::to_value(&parsed).expect("json");
    assert_eq!(
        back,
        json!({"connect-timeout": 2.5, "via": "nh", "quoted": "a \"b\"\n", "list": [1, true, "x"],
               "table": {"flat": false, "inner": {"deep": 1}}})
    );
    // A float that is whole stays a number nixdispatch's connect-timeout accepts.
    let whole = string(eval("lib.toTOML { connect-timeout = 3.0; }"));
    let value: toml::Value = toml::from_str(&whole).expect("toml");
    assert_eq!(value["connect-timeout"].as_integer(), Some(3));
}

/// The modules, evaluated without nixpkgs (tests/nix/harness.nix).
fn module(file: &str, values: &str) -> Value {
    let expr = format!(
        "import {0}/tests/nix/harness.nix {{ module = {0}/nix/{file}; values = {values}; }}",
        repo().display()
    );
    eval(&expr)
}

#[test]
fn nixos_module_is_a_thin_wrapper_over_the_functions() {
    let values = format!(
        r#"{{ enable = true; settings = {{ connect-timeout = 2; }}; builders = [ {} ];
             ssh.connectTimeout = 4; }}"#,
        seasmoke()
    );
    let got = module("nixos.nix", &values);
    assert_eq!(got["failedAssertions"], json!([]));
    let c = &got["config"];
    let expected = eval(&format!(
        r#"let b = {0}; in {{ m = [ (lib.buildMachine b) ]; s = lib.clientNixSettings [ b ];
             k = lib.knownHosts [ b ];
             ssh = lib.sshConfig {{ builders = [ b ]; connectTimeout = 4; knownHostsFile = "/etc/nixdispatch/known_hosts"; }}; }}"#,
        seasmoke()
    ));
    assert_eq!(c["nix"]["buildMachines"], expected["m"]);
    assert_eq!(c["nix"]["distributedBuilds"], json!(true));
    assert_eq!(c["nix"]["settings"], expected["s"]);
    assert!(c["nix"]["settings"].get("substituters").is_none());
    assert_eq!(c["programs"]["ssh"]["extraConfig"], expected["ssh"]);
    assert!(c["programs"]["ssh"]["extraConfig"]
        .as_str()
        .is_some_and(|t| t.contains("ConnectTimeout 4\n")));
    assert_eq!(
        c["environment"]["etc"]["nixdispatch/known_hosts"]["text"],
        expected["k"]
    );
    assert_eq!(
        c["environment"]["etc"]["nixdispatch/config.toml"]["text"],
        json!("connect-timeout = 2\n")
    );
    assert_eq!(
        c["systemd"]["tmpfiles"]["rules"],
        json!(["d /run/nixdispatch-ssh 0700 root root -"])
    );
    assert_eq!(
        c["environment"]["systemPackages"],
        json!(["PKGS-NIXDISPATCH"])
    );
    assert!(c["systemd"].get("services").is_none());

    // The builder's side.
    let got = module(
        "nixos.nix",
        r#"{ builderHost = { enable = true; trustedUsers = [ "nixbuild" ]; signExisting = true; }; }"#,
    );
    let c = &got["config"];
    assert_eq!(
        c["nix"]["settings"],
        json!({"trusted-users": ["nixbuild"], "secret-key-files": ["/var/lib/nixdispatch/signing-key"]})
    );
    let service = &c["systemd"]["services"]["nixdispatch-signing-key"];
    assert_eq!(service["serviceConfig"]["Type"], json!("oneshot"));
    let script = service["script"].as_str().expect("script");
    assert!(script.contains("--generate-binary-cache-key 'vermax-1'"));
    assert!(script.contains("store sign --all"));
    assert!(
        c.get("environment").is_none(),
        "a builder alone installs nothing: {c}"
    );

    // An impossible builder fails with the message, not with nix's own error later.
    let got = module(
        "nixos.nix",
        r#"{ builders = [ { hostName = "h"; systems = [ "x86_64-linux" ]; sshKey = "id"; } ]; }"#,
    );
    assert_eq!(got["failedAssertions"].as_array().map(Vec::len), Some(2));
}

#[test]
fn home_manager_module_writes_the_user_file_and_aliases() {
    let got = module(
        "home-manager.nix",
        r#"{ enable = true; settings = { via = "nh"; }; shellAliases = { hms = "nixdispatch home switch"; }; }"#,
    );
    let c = &got["config"];
    assert_eq!(c["home"]["packages"], json!(["PKGS-NIXDISPATCH"]));
    assert_eq!(
        c["xdg"]["configFile"]["nixdispatch/config.toml"]["text"],
        json!("via = \"nh\"\n")
    );
    assert_eq!(
        c["home"]["shellAliases"],
        json!({"hms": "nixdispatch home switch"})
    );
    let off = module("home-manager.nix", "{ }");
    assert_eq!(off["config"], json!({}));
}

#[test]
fn flake_exposes_the_outputs_and_modules() {
    let expr = format!(
        r#"let
             flake = import {0}/flake.nix;
             nixpkgs = {{ lib.genAttrs = names: f: builtins.listToAttrs (map (n: {{ name = n; value = f n; }}) names);
                          legacyPackages = {{ }}; }};
             out = flake.outputs {{ self = out; inherit nixpkgs; }};
             imports = m: (m {{ lib.mkDefault = x: x; pkgs = {{ }}; }}).imports;
           in {{
             outputs = builtins.attrNames out;
             systems = builtins.attrNames out.packages;
             nixos = map toString (imports out.nixosModules.default);
             home = map toString (imports out.homeManagerModules.default);
             lib = out.lib.storeUri {{ hostName = "h"; systems = [ ]; }};
           }}"#,
        repo().display()
    );
    let got = eval(&expr);
    for output in [
        "packages",
        "overlays",
        "apps",
        "devShells",
        "nixosModules",
        "homeManagerModules",
        "lib",
    ] {
        assert!(
            got["outputs"]
                .as_array()
                .is_some_and(|o| o.contains(&json!(output))),
            "flake.nix lacks {output}: {got}"
        );
    }
    assert!(got["systems"].to_string().contains("x86_64-linux"));
    assert_eq!(
        got["nixos"],
        json!([format!("{}/nix/nixos.nix", repo().display())])
    );
    assert_eq!(
        got["home"],
        json!([format!("{}/nix/home-manager.nix", repo().display())])
    );
    assert_eq!(got["lib"], json!("ssh-ng://h"));
}

/// The builder's one-shot service, run for real with this machine's nix-store: it makes the key
/// pair once, publishes the public half world-readable, and keeps the pair on later runs.
#[test]
fn signing_key_service_creates_the_pair_once_and_publishes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("state/signing-key");
    let public = dir.path().join("etc/signing-key.pub");
    let script = string(eval(&format!(
        r#"lib.signingKeyScript {{ signingKeyFile = "{}"; publicKeyFile = "{}"; keyName = "seasmoke-1"; }}"#,
        secret.display(),
        public.display()
    )));
    let run = || {
        let out = Command::new("sh")
            .args(["-c", &script])
            .env("NIX_CONFIG", "build-users-group =")
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    let first = std::fs::read_to_string(&public).expect("public key published");
    assert!(first.starts_with("seasmoke-1:"), "{first}");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&public), 0o644);
    assert_eq!(mode(&secret), 0o600);
    run();
    assert_eq!(
        std::fs::read_to_string(&public).expect("public key"),
        first,
        "a second run made a new key"
    );
}

// ----- the system-wide settings file ------------------------------------------------------------

fn nixdispatch_with_files(
    user: Option<&str>,
    system: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let user_dir = dir.path().join("user/nixdispatch");
    std::fs::create_dir_all(&user_dir).expect("mkdir");
    if let Some(text) = user {
        std::fs::write(user_dir.join("config.toml"), text).expect("write");
    }
    let system_file = dir.path().join("system.toml");
    if let Some(text) = system {
        std::fs::write(&system_file, text).expect("write");
    }
    Command::new(common::bin())
        .args(args)
        .env("XDG_CONFIG_HOME", dir.path().join("user"))
        .env("NIXDISPATCH_SYSTEM_CONFIG", &system_file)
        .env("NIX_CONFIG", "build-users-group =\nbuilders =")
        .env_remove("NIX_SSHOPTS")
        .output()
        .expect("nixdispatch runs")
}

#[test]
fn system_config_file_is_read_after_the_users() {
    // The system file alone counts, and its errors name it.
    let out = nixdispatch_with_files(None, Some("via = \"sideways\"\n"), &["probe"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("via = \"sideways\""), "{err}");
    let out = nixdispatch_with_files(None, Some("colour = 1\n"), &["probe"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("system.toml") && err.contains("colour"),
        "{err}"
    );

    // The user's file wins over it, a flag over both.
    let out = nixdispatch_with_files(
        Some("via = \"nix\"\n"),
        Some("via = \"sideways\"\n"),
        &["probe"],
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("sideways"),
        "the user's via did not win: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = nixdispatch_with_files(
        Some("connect-timeout = 0\n"),
        Some("connect-timeout = 2\n"),
        &["probe"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "the user's timeout 0 should win"
    );
    let out = nixdispatch_with_files(
        Some("connect-timeout = 0\n"),
        None,
        &["--connect-timeout", "2", "probe"],
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("connect-timeout"),
        "the flag did not win: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
