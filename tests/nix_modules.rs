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

/// Runs `nix-instantiate --eval --strict --json` on `expr` with `lib` bound to nix/lib.nix;
/// returns the whole expression and nix's output.
fn instantiate(expr: &str) -> (String, std::process::Output) {
    let full = format!(
        "let lib = import {}/nix/lib.nix; in {expr}",
        repo().display()
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", &full])
        .env("NIX_CONFIG", "build-users-group =")
        .output()
        .expect("nix-instantiate runs (Debian: apt-get install nix-bin)");
    (full, out)
}

/// `nix-instantiate --eval --strict --json` of `expr`, with `lib` bound to nix/lib.nix.
fn eval(expr: &str) -> Value {
    let (full, out) = instantiate(expr);
    assert!(
        out.status.success(),
        "nix-instantiate failed on\n{full}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("nix-instantiate prints JSON")
}

/// Like [`eval`], for an expression that must fail; returns nix's error text.
fn eval_error(expr: &str) -> String {
    let (full, out) = instantiate(expr);
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
            if name == "target" || name == ".git" {
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

/// The settings as NixOS writes them into nix.conf (`key = v1 v2`), read back by this machine's
/// nix like NixOS's own `checkConfig`: no unknown setting, and the store URI intact (the daemon
/// compares it with the one nixdispatch passes character for character).
#[test]
fn nix_conf_takes_the_settings_as_written() {
    let settings = eval(&format!(
        r#"lib.clientNixSettings [ {} ] // lib.builderHostNixSettings {{ trustedUsers = [ "nixbuild" ]; signingKeyFile = "/var/lib/nixdispatch/signing-key"; }}"#,
        seasmoke()
    ));
    let mut conf = String::from("build-users-group =\n");
    for (key, value) in settings.as_object().expect("attrs") {
        let text = match value {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().expect("string").to_owned())
                .collect::<Vec<_>>()
                .join(" "),
            Value::Bool(b) => b.to_string(),
            other => panic!("unexpected {other}"),
        };
        conf += &format!("{key} = {text}\n");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("nix.conf"), &conf).expect("write");
    let out = Command::new("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "show-config",
            "--json",
        ])
        .env("NIX_CONF_DIR", dir.path())
        .env_remove("NIX_CONFIG")
        .output()
        .expect("nix runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("unknown setting"),
        "{conf}\n{stderr}"
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        shown["trusted-substituters"]["value"],
        json!([eval(&format!("lib.storeUri {}", seasmoke()))])
    );
    assert_eq!(shown["builders-use-substitutes"]["value"], json!(true));
    assert_eq!(
        shown["secret-key-files"]["value"],
        json!(["/var/lib/nixdispatch/signing-key"])
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
    let long = eval(
        r#"lib.failedAssertions { ssh.controlDir = "/var/lib/a-rather-long-directory-name/for-ssh-sockets"; }"#,
    );
    assert!(long.to_string().contains("too long"), "{long}");
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

/// Runs `cmd` (without nix's build users), asserting it succeeds, its stderr shown if not;
/// returns its stdout.
fn succeeds(mut cmd: Command) -> String {
    let out = cmd
        .env("NIX_CONFIG", "build-users-group =")
        .output()
        .expect("it runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script` with sh (see [`succeeds`]).
fn sh(script: &str) {
    let mut sh = Command::new("sh");
    sh.args(["-c", script]);
    succeeds(sh);
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
    let run = || sh(&script);
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

    // signExisting: a new key signs what the store already holds (a scratch store here).
    let store = dir.path().join("store");
    let nix = |args: &[&str]| -> String {
        let mut nix = Command::new("nix");
        nix.arg("--store")
            .arg(&store)
            .args(["--extra-experimental-features", "nix-command"])
            .args(args);
        succeeds(nix).trim().to_owned()
    };
    let file = dir.path().join("held");
    std::fs::write(&file, "held before the key existed\n").expect("write");
    let held = nix(&["store", "add-file", &file.display().to_string()]);
    let script = string(eval(&format!(
        r#"lib.signingKeyScript {{ signingKeyFile = "{0}/k2"; publicKeyFile = "{0}/k2.published";
             keyName = "builder-2"; signExisting = true; nix = "nix --store {1}"; }}"#,
        dir.path().display(),
        store.display()
    )));
    sh(&script);
    let sigs = nix(&["path-info", "--sigs", &held]);
    assert!(sigs.contains("builder-2:"), "{held} is not signed: {sigs}");
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

// ----- on the lab: what root's ssh configuration buys plain nix -------------------------------
//
// The lab's client runs nix as root, single-user, so nix's own ssh (build hook and ssh-ng store)
// is root's ssh. `NIX_SSHOPTS=-F FILE` makes that ssh read exactly the text lib.sshConfig
// writes (as the NixOS module puts it in /etc/ssh/ssh_config), with the builder's machines line
// from lib.machinesLine. The baseline in each test is the same nix with the lab's own ssh config
// (host key pinned, nothing else), where a tarpit or a silent link hangs nix (NIX-FACTS).

use common::{lab_or_skip, lab_with, run_limited, Background, Nixdispatch, BOUND};
use nixdispatch_lab::{ClientNix, Fault, Fixture, Lab, LabOptions};
use std::time::{Duration, Instant};

/// The declared set-up of the lab's seasmoke: its machines line and root's ssh config file.
struct Declared {
    line: String,
    ssh_config: PathBuf,
}

/// Writes what the module would write for seasmoke into `LABDIR/d-NAME/`, with these
/// ssh timings, and returns the machines line and the config file.
fn declare(lab: &Lab, name: &str, timings: &str) -> Declared {
    // Short: a unix socket path holds at most 107 bytes (see the controlDir assertion).
    let dir = lab.dir().join(format!("d-{name}"));
    let control = dir.join("c");
    std::fs::create_dir_all(&control).expect("mkdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let builder = format!(
        r#"{{ hostName = "seasmoke"; address = "127.0.0.1"; port = {port}; sshUser = "root";
             sshKey = "{key}"; systems = [ "x86_64-linux" ]; maxJobs = 2;
             publicHostKey = "{host_key}"; substitute = false; }}"#,
        port = lab.builder_port(),
        key = lab.dir().join("client_key").display(),
        host_key = lab.builder_host_key().trim(),
    );
    let got = eval(&format!(
        r#"let b = {builder}; in {{
             failed = lib.failedAssertions {{ builders = [ b ]; }};
             line = lib.machinesLine b;
             known = lib.knownHosts [ b ];
             ssh = lib.sshConfig ({{ builders = [ b ]; knownHostsFile = "{known}"; controlDir = "{control}"; }} // {timings});
           }}"#,
        known = dir.join("known_hosts").display(),
        control = control.display(),
    ));
    assert_eq!(got["failed"], json!([]));
    std::fs::write(dir.join("known_hosts"), string(got["known"].clone())).expect("write");
    let ssh_config = dir.join("ssh_config");
    std::fs::write(&ssh_config, string(got["ssh"].clone())).expect("write");
    Declared {
        line: string(got["line"].clone()),
        ssh_config,
    }
}

/// Plain `nix build --no-link --builders LINE ARGS...` as vermax: with `declared`, its
/// machines line, and root's ssh reads the declared config; otherwise the lab's own line and
/// config.
fn plain_nix(lab: &Lab, v: ClientNix, declared: Option<&Declared>, args: &[&str]) -> Command {
    let mut cmd = lab.client_command(v, "nix");
    let line = declared.map_or_else(|| lab.builder_spec(), |d| d.line.clone());
    cmd.args(["build", "--no-link", "--builders", &line])
        .args(args);
    if let Some(d) = declared {
        cmd.env("NIX_SSHOPTS", format!("-F {}", d.ssh_config.display()));
    }
    cmd
}

/// Two plain nix runs of a 3-derivation chain open ONE ssh connection between them: the first
/// run's build hook starts the control master, it persists, and every later session rides it.
/// The lab's own config (no master) opens one per derivation.
#[test]
fn declared_ssh_config_shares_one_connection_between_runs() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let before = lab.builder_connections();
    let chain = lab.flake_ref("chain");
    let args = ["--max-jobs", "0", &chain];
    let run = run_limited(plain_nix(&lab, ClientNix::V2_8, None, &args), BOUND);
    assert_eq!(run.code, Some(0), "{run:?}");
    let baseline = lab.builder_connections() - before;
    assert!(
        baseline >= 2,
        "the lab's own config opened {baseline} connections"
    );

    for v in [ClientNix::V2_8, ClientNix::V2_26] {
        let declared = declare(&lab, v.version(), "{ }");
        let before = lab.builder_connections();
        for _ in 0..2 {
            lab.renew_nonce().expect("new nonce");
            let chain = lab.flake_ref("chain");
            let args = ["--max-jobs", "0", &chain];
            let run = run_limited(plain_nix(&lab, v, Some(&declared), &args), BOUND);
            assert_eq!(run.code, Some(0), "Nix {}: {run:?}", v.version());
            assert!(
                run.stderr.contains("on 'ssh-ng://root@seasmoke'"),
                "{run:?}"
            );
        }
        assert_eq!(
            lab.builder_connections() - before,
            1,
            "Nix {}: two runs of 3 remote builds each should share one connection (the lab's \
             own config opened {baseline} for one run)",
            v.version()
        );
    }
}

/// A builder that accepts TCP and never answers: with the declared ConnectTimeout (2 s) plain
/// nix gives up on it and builds locally; with the lab's own config it is still waiting (at 12 s,
/// or whenever ours ended if later).
#[test]
fn declared_connect_timeout_bounds_plain_nix_against_a_tarpit() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let declared = declare(&lab, "tarpit", "{ connectTimeout = 2; }");
    // The fresh client store is opened once before the two runs share it: two nix 2.8
    // processes creating its database at once can fail with "SQLite database ... is busy".
    let opened = lab
        .client_command(ClientNix::V2_8, "nix-store")
        .args(["--gc", "--print-roots"])
        .output()
        .expect("nix-store runs");
    assert!(opened.status.success(), "{opened:?}");
    lab.set_fault(Fault::Tarpit);
    let (chain, hello) = (lab.flake_ref("chain"), lab.flake_ref("hello"));
    let mut baseline = Background::start(plain_nix(&lab, ClientNix::V2_8, None, &[&chain]));
    let ours = plain_nix(&lab, ClientNix::V2_8, Some(&declared), &[&hello]);
    // A hang bound (the baseline never ends), generous for a loaded 2-core machine.
    let run = run_limited(ours, Duration::from_secs(90));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("timed out"), "{run:?}");
    eprintln!(
        "declared ConnectTimeout 2: plain nix against the tarpit built locally in {:?}",
        run.elapsed
    );
    assert_eq!(
        baseline.exit_by(baseline.started + Duration::from_secs(12)),
        None,
        "the baseline should still hang on the tarpit: {:#?}",
        baseline.seen
    );
}

/// A link that goes silent mid-build (the tarpit also freezes live connections): the declared
/// keepalive (1 s x 3) ends plain nix's remote build with an error within seconds; the lab's own
/// config leaves it waiting.
#[test]
fn declared_keepalive_notices_a_silent_builder() {
    let Some(lab) = lab_with(|o| o.fixtures = vec![Fixture::slow("slow-baseline", 600)]) else {
        return;
    };
    let declared = declare(
        &lab,
        "ka",
        "{ serverAliveInterval = 1; serverAliveCountMax = 3; }",
    );
    let slow = |attr: &str| ["-L", "--max-jobs", "0", &lab.flake_ref(attr)].map(str::to_owned);
    let slow_on = |declared, attr| {
        let args = slow(attr);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Background::start(plain_nix(&lab, ClientNix::V2_8, declared, &args))
    };
    let mut ours = slow_on(Some(&declared), "slow");
    // One at a time onto the fresh client store: two nix 2.8 processes creating its database at
    // once can fail with "SQLite database ... is busy".
    let limit = Duration::from_secs(60);
    assert!(ours.wait_for("tick", limit), "{:#?}", ours.seen);
    let mut baseline = slow_on(None, "slow-baseline");
    assert!(baseline.wait_for("tick", limit), "{:#?}", baseline.seen);
    lab.set_fault(Fault::Tarpit);
    let silent_since = Instant::now();
    // A hang bound (20 times Interval x CountMax), generous for a loaded 2-core machine.
    let status = ours.exit_by(Instant::now() + Duration::from_secs(60));
    let noticed = silent_since.elapsed();
    assert!(
        status.is_some_and(|s| !s.success()),
        "nix did not end the build on a silent link within 60 s: {status:?} {:#?}",
        ours.seen
    );
    eprintln!("declared keepalive (1 s x 3): nix's remote build ended {noticed:?} after the link went silent");
    assert_eq!(
        baseline.exit_by(Instant::now() + Duration::from_secs(3)),
        None,
        "the baseline should still wait on the silent link (ours ended after {noticed:?}): {:#?}",
        baseline.seen
    );
}

/// `nixdispatch doctor` reads the builder's public signing key over its probe connection and
/// prints the exact line that makes this machine trust it (here from seasmoke's own
/// secret-key-files, readable by the lab's root login; a NixOS builder publishes it at
/// /etc/nixdispatch/signing-key.pub, which doctor reads first).
#[test]
fn doctor_prints_the_line_that_trusts_the_builders_signing_key() {
    let Some(lab) = lab_with(|o| o.builder_signs = true) else {
        return;
    };
    let key = lab.builder_public_key().trim().to_owned();
    let doctor = || Nixdispatch::on(&lab).seasmoke().arg("doctor");
    // A config that trusts the lab cache's key only, not the builder's.
    let untrusting = format!(
        "{}trusted-public-keys = {}\n",
        lab.client_nix_config(),
        lab.cache_public_key()
    );
    let run = doctor().env("NIX_CONFIG", untrusting).expect_exit(0);
    assert!(
        run.stdout
            .contains(&format!("extra-trusted-public-keys = {key}")),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(&format!("publicKey = \"{key}\";")),
        "{run:?}"
    );

    let run = doctor().expect_exit(0);
    assert!(run.stdout.contains("which this machine trusts"), "{run:?}");
}

/// nixdispatch itself on the declared set-up: the module's machines line and root's ssh config
/// (probe, builder store queries and nix's substitution all through it), with seasmoke holding
/// the signed result: it substitutes from seasmoke's store, builds nothing.
#[test]
fn nixdispatch_runs_on_the_declared_setup() {
    let Some(lab) = lab_with(|o| o.builder_signs = true) else {
        return;
    };
    let declared = declare(&lab, "nd", "{ }");
    let built = lab
        .build_on_builder(&lab.flake_ref("chain"))
        .expect("seed seasmoke");
    let run = Nixdispatch::on(&lab)
        .builder(&declared.line)
        .plain()
        .arg("build")
        .attr("chain")
        .env(
            "NIX_SSHOPTS",
            format!("-F {}", declared.ssh_config.display()),
        )
        .expect_exit(0);
    assert!(run.stderr.contains("mode: substitute"), "{run:?}");
    assert!(lab.client_has(ClientNix::V2_8, &built[0]), "{run:?}");
}
