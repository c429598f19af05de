# nixdispatch's declarative set-up as plain Nix functions (builtins only, no nixpkgs).
#
# The NixOS and home-manager modules (nixos.nix, home-manager.nix) are thin wrappers over these:
# every string they write (machines entries, the builder's store URI, root's ssh configuration,
# known_hosts, the TOML settings file, nix.conf settings) and every assertion is computed here, so
# that it can be evaluated and tested with `nix-instantiate --eval --strict` where nixpkgs cannot be
# fetched (tests/nix_modules.rs does exactly that).
#
# A builder is an attribute set with the option names of `programs.nixdispatch.builders`:
#   { hostName, sshUser ? null, sshKey ? null, systems ? [ ], maxJobs ? 1, speedFactor ? 1,
#     supportedFeatures ? [ ], mandatoryFeatures ? [ ], publicHostKey ? null, publicKey ? null,
#     address ? null, port ? null, substitute ? true, protocol ? "ssh-ng" }
# `publicHostKey` is either nixpkgs' form (base64 of the host key line, as `base64 -w0
# /etc/ssh/ssh_host_ed25519_key.pub` prints it) or the line itself (`ssh-ed25519 AAAA...`).
let
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    elem
    elemAt
    filter
    foldl'
    genList
    head
    isAttrs
    isBool
    isFloat
    isInt
    isList
    isString
    length
    listToAttrs
    map
    match
    stringLength
    substring
    toJSON
    toString
    ;

  # ----- bytes and characters ----------------------------------------------------------------

  # Printable ASCII, at index (code - 32). Key lines, URIs and paths never need more.
  printable = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
  chars = s: genList (i: substring i 1 s) (stringLength s);
  codeOf = listToAttrs (genList (i: {
    name = substring i 1 printable;
    value = i + 32;
  }) (stringLength printable));
  charOf = code:
    if code >= 32 && code < 127 then
      substring (code - 32) 1 printable
    else
      throw "nixdispatch: a byte ${toString code} is not printable ASCII (a host key line is plain text)";
  byteOf = c: codeOf.${c} or (throw "nixdispatch: ${toJSON c} is not printable ASCII");

  hexDigits = "0123456789ABCDEF";
  hex2 = n: substring (n / 16) 1 hexDigits + substring (n - (n / 16) * 16) 1 hexDigits;

  # ----- base64 (standard alphabet, padded) ----------------------------------------------------

  b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  b64Value = listToAttrs (genList (i: {
    name = substring i 1 b64Alphabet;
    value = i;
  }) 64);
  b64Char = i: substring i 1 b64Alphabet;

  # Groups a list into lists of n (the last one shorter).
  chunks = n: list:
    genList (i:
      let
        start = i * n;
        len = if start + n > length list then length list - start else n;
      in
      genList (j: elemAt list (start + j)) len)
    ((length list + n - 1) / n);

  base64Encode = s:
    concatStringsSep "" (map (group:
      let
        b = group ++ genList (_: 0) (3 - length group);
        n = (elemAt b 0) * 65536 + (elemAt b 1) * 256 + (elemAt b 2);
        c0 = b64Char (n / 262144);
        c1 = b64Char ((n / 4096) - (n / 262144) * 64);
        c2 = b64Char ((n / 64) - (n / 4096) * 64);
        c3 = b64Char (n - (n / 64) * 64);
      in
      if length group == 3 then
        c0 + c1 + c2 + c3
      else if length group == 2 then
        c0 + c1 + c2 + "="
      else
        c0 + c1 + "==") (chunks 3 (map byteOf (chars s))));

  base64Decode = s:
    let
      body = filter (c: c != "=") (chars s);
      values = map (c: b64Value.${c} or (throw "nixdispatch: ${toJSON s} is not base64")) body;
    in
    if match "[A-Za-z0-9+/]*={0,2}" s == null then
      throw "nixdispatch: ${toJSON s} is not base64"
    else
      concatStringsSep "" (map (group:
        let
          v = group ++ genList (_: 0) (4 - length group);
          n = (elemAt v 0) * 262144 + (elemAt v 1) * 4096 + (elemAt v 2) * 64 + (elemAt v 3);
          b0 = n / 65536;
          b1 = (n / 256) - (n / 65536) * 256;
          b2 = n - (n / 256) * 256;
        in
        if length group == 4 then
          charOf b0 + charOf b1 + charOf b2
        else if length group == 3 then
          charOf b0 + charOf b1
        else if length group == 2 then
          charOf b0
        else
          throw "nixdispatch: ${toJSON s} is not base64 (truncated)") (chunks 4 values));

  # ----- URIs ---------------------------------------------------------------------------------

  # The same rule as nixdispatch's own percent-encoding (src/machines.rs): keep ASCII letters,
  # digits and `-._~/`, encode every other byte. Equal strings matter: the daemon accepts a
  # substituter from an untrusted user only when it is, character for character, one of
  # `trusted-substituters`.
  percentEncode = s:
    concatStringsSep "" (map (c:
      if match "[A-Za-z0-9._~/-]" c != null then c else "%" + hex2 (byteOf c)) (chars s));

  # ----- builders -----------------------------------------------------------------------------

  builderDefaults = {
    sshUser = null;
    sshKey = null;
    systems = [ ];
    maxJobs = 1;
    speedFactor = 1;
    supportedFeatures = [ ];
    mandatoryFeatures = [ ];
    publicHostKey = null;
    publicKey = null;
    address = null;
    port = null;
    substitute = true;
    protocol = "ssh-ng";
  };

  # A builder with every optional attribute filled in (module values arrive complete already).
  normaliseBuilder = b: builderDefaults // b;

  keyLinePattern = "((ssh|ecdsa|sk|rsa)-[A-Za-z0-9@.-]+) +([A-Za-z0-9+/]+=*)( .*)?";

  # The host key as nix's machines file wants it: base64 of the "TYPE KEY" line.
  hostKeyBase64 = b:
    let k = (normaliseBuilder b).publicHostKey;
    in
    if k == null then
      null
    else if match keyLinePattern k != null then
      base64Encode (hostKeyLine b)
    else
      k;

  # The host key as a known_hosts entry wants it: "TYPE KEY" (no comment).
  hostKeyLine = b:
    let
      k = (normaliseBuilder b).publicHostKey;
      line = if match keyLinePattern k != null then k else base64Decode k;
      parts = match keyLinePattern line;
    in
    if k == null then
      null
    else if parts == null then
      throw "nixdispatch: the publicHostKey of ${b.hostName} is not a host key line (TYPE KEY) nor its base64"
    else
      "${elemAt parts 0} ${elemAt parts 2}";

  # `ssh-ng://user@host`, as nixpkgs' nix-remote-build.nix writes it into /etc/nix/machines.
  hostUri = b:
    let b' = normaliseBuilder b;
    in "${b'.protocol}://${if b'.sshUser != null then "${b'.sshUser}@" else ""}${b'.hostName}";

  # One `nix.buildMachines` entry (nixpkgs' option names and types).
  buildMachine = b:
    let b' = normaliseBuilder b;
    in {
      inherit (b') hostName sshUser sshKey systems maxJobs speedFactor supportedFeatures mandatoryFeatures protocol;
      publicHostKey = hostKeyBase64 b';
    };

  # The line nixpkgs writes to /etc/nix/machines for that entry (same fields, same order), which
  # nix and nixdispatch then read.
  machinesLine = b:
    let
      m = buildMachine b;
      orDash = list: if list == [ ] then "-" else concatStringsSep "," list;
    in
    concatStringsSep " " [
      (hostUri b)
      (orDash m.systems)
      (if m.sshKey != null then m.sshKey else "-")
      (toString m.maxJobs)
      (toString m.speedFactor)
      (orDash (m.supportedFeatures ++ m.mandatoryFeatures))
      (orDash m.mandatoryFeatures)
      (if m.publicHostKey != null then m.publicHostKey else "-")
    ];

  # The builder's store as a substituter, exactly as nixdispatch passes it per run
  # (`Machine::store_uri` in src/machines.rs): `ssh-ng://user@host?ssh-key=...&base64-ssh-public-host-key=...`.
  storeUri = b:
    let
      m = buildMachine b;
      params =
        (if m.sshKey != null then [ "ssh-key=${percentEncode m.sshKey}" ] else [ ])
        ++ (if m.publicHostKey != null then [ "base64-ssh-public-host-key=${percentEncode m.publicHostKey}" ] else [ ]);
    in
    hostUri b + (if params == [ ] then "" else "?" + concatStringsSep "&" params);

  # ----- ssh ----------------------------------------------------------------------------------

  sshDefaults = {
    # Whose ssh this configures (`Match localuser`); null: every user's.
    forUser = "root";
    # Where the pinned host keys are written (see knownHosts).
    knownHostsFile = "/etc/nixdispatch/known_hosts";
    # The root-only directory of the control sockets.
    controlDir = "/run/nixdispatch-ssh";
    connectTimeout = 5;
    serverAliveInterval = 10;
    serverAliveCountMax = 3;
    controlPersist = "10m";
  };

  # known_hosts lines for the builders that pin a host key, under the alias ssh checks them by
  # (`HostKeyAlias hostName`), so that the address or port may change without a new entry.
  knownHosts = builders:
    concatStringsSep "" (map (b: "${b.hostName} ${hostKeyLine b}\n")
      (filter (b: (normaliseBuilder b).publicHostKey != null) builders));

  # Root's ssh configuration for the builders: what the nix daemon's ssh (builds and
  # substitutions) uses. Bounded connects, keepalives that notice a silent link, one connection
  # kept open between runs, host keys checked strictly (never accept-new).
  #
  # Seen on the lab (tests/nix_modules.rs, OpenSSH 9.2 and trixie's, 2026-11-29):
  # - Nix 2.8 and 2.26 both ride `ControlMaster auto`: the build hook's first ssh becomes the
  #   master, ControlPersist keeps it, and later sessions (also of later nix runs) open no
  #   connection. nix's own `-oUserKnownHostsFile` for a pinned key still matches, thanks to
  #   `HostKeyAlias hostName` (nix writes the known_hosts line under the host name).
  # - `ConnectTimeout` also bounds the banner exchange: a tarpit costs ConnectTimeout, then nix
  #   declines the machine and builds locally (or fails with --max-jobs 0).
  # - A master whose link froze is dropped by its keepalives (Interval x CountMax) and the
  #   sessions riding it end with "unexpected end-of-file": nix fails the build instead of waiting.
  # - A ControlPath that does not fit a unix socket (107 bytes, with ssh's 17-byte temporary
  #   suffix) makes every session fail, not just the sharing: hence the controlDir assertion.
  sshConfig = args:
    let
      o = sshDefaults // args;
      builders = map normaliseBuilder o.builders;
      block = b:
        let
          header =
            if o.forUser == null then
              "Match originalhost ${b.hostName}"
            else
              "Match originalhost ${b.hostName} localuser ${o.forUser}";
          opt = name: value: if value == null then [ ] else [ "  ${name} ${toString value}" ];
        in
        concatStringsSep "\n" (
          [ "# nixdispatch: builder ${b.hostName}" header ]
          ++ opt "HostName" (if b.address != null then b.address else b.hostName)
          ++ opt "Port" b.port
          ++ opt "User" b.sshUser
          ++ opt "IdentityFile" b.sshKey
          ++ (if b.sshKey != null then [ "  IdentitiesOnly yes" ] else [ ])
          ++ (if b.publicHostKey != null then [ "  UserKnownHostsFile ${o.knownHostsFile}" ] else [ ])
          ++ [
            "  HostKeyAlias ${b.hostName}"
            "  StrictHostKeyChecking yes"
            "  UpdateHostKeys no"
            "  BatchMode yes"
          ]
          ++ opt "ConnectTimeout" o.connectTimeout
          ++ opt "ServerAliveInterval" o.serverAliveInterval
          ++ opt "ServerAliveCountMax" o.serverAliveCountMax
          ++ (if o.controlDir == null then [ ] else [
            "  ControlMaster auto"
            "  ControlPath ${o.controlDir}/%C"
            "  ControlPersist ${toString o.controlPersist}"
          ])
        ) + "\n";
    in
    concatStringsSep "\n" (map block builders);

  # ----- nix settings -------------------------------------------------------------------------

  # What the workstation's nix.conf needs for the builders (nix.settings names and types).
  # The builder's store goes to trusted-substituters, never substituters: plain nix does not
  # wait on it, and nixdispatch adds it per run when the builder is alive.
  clientNixSettings = builders':
    let
      builders = map normaliseBuilder builders';
      keys = filter (k: k != null) (map (b: b.publicKey) builders);
    in
    {
      builders-use-substitutes = true;
      trusted-substituters = map storeUri (filter (b: b.substitute) builders);
    }
    // (if keys == [ ] then { } else { trusted-public-keys = keys; });

  # What the builder's nix.conf needs: the workstation's users trusted, and a signing key.
  builderHostNixSettings = { trustedUsers, signingKeyFile, ... }: {
    trusted-users = trustedUsers;
    secret-key-files = [ signingKeyFile ];
  };

  # Where the builder's public signing key is left for `nixdispatch doctor` (read over ssh).
  publicKeyPath = "/etc/nixdispatch/signing-key.pub";

  # The one-shot service's script: create the signing key pair when it is missing, publish the
  # public half, and optionally (signExisting) sign what the store already holds when the key is
  # new. `nix` and `nixStore` are the
  # programs' paths (the module passes the package's).
  signingKeyScript = { signingKeyFile, keyName, nixStore ? "nix-store", nix ? "nix", signExisting ? false, publicKeyFile ? publicKeyPath, ... }:
    ''
      set -eu
      umask 077
      secret=${shellQuote signingKeyFile}
      public=${shellQuote publicKeyFile}
      if [ ! -s "$secret" ]; then
        mkdir -p "$(dirname "$secret")"
        ${nixStore} --generate-binary-cache-key ${shellQuote keyName} "$secret.tmp" "$secret.pub.tmp"
        mv "$secret.pub.tmp" "$secret.pub"
        mv "$secret.tmp" "$secret"
        created=1
      fi
      if [ ! -s "$secret.pub" ]; then
        echo "nixdispatch: $secret exists but $secret.pub does not: restore it, or move both away to make a new pair" >&2
        exit 1
      fi
      mkdir -p "$(dirname "$public")"
      umask 022
      cp "$secret.pub" "$public.tmp"
      chmod 0644 "$public.tmp"
      mv "$public.tmp" "$public"
    ''
    # Once, when the key is new: what the daemon builds later, it signs itself.
    + (if signExisting then ''
      if [ -n "''${created:-}" ]; then
        ${nix} --extra-experimental-features nix-command store sign --all --key-file "$secret"
      fi
    '' else "");

  shellQuote = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";

  # ----- the settings file (TOML) -------------------------------------------------------------

  tomlKey = k: if match "[A-Za-z0-9_-]+" k != null then k else toJSON k;
  tomlValue = path: v:
    if isBool v then
      (if v then "true" else "false")
    else if isInt v || isFloat v then
      toJSON v
    else if isString v then
      toJSON v
    else if isList v then
      "[" + concatStringsSep ", " (map (tomlValue path) v) + "]"
    else if builtins.isPath v then
      toJSON (toString v)
    else
      throw "nixdispatch: settings.${concatStringsSep "." path} cannot be written as TOML (use strings, numbers, booleans, lists or attribute sets)";

  # TOML text for nixdispatch's config file: top-level keys first, then one [table] per nested
  # attribute set (nested again as [a.b]). Null values are left out.
  toTOML = attrs:
    let
      section = path: set:
        let
          names = filter (n: set.${n} != null) (attrNames set);
          plain = filter (n: !(isAttrs set.${n})) names;
          tables = filter (n: isAttrs set.${n}) names;
          lines = map (n: "${tomlKey n} = ${tomlValue (path ++ [ n ]) set.${n}}\n") plain;
          header = if path == [ ] || plain == [ ] then "" else "[${concatStringsSep "." (map tomlKey path)}]\n";
        in
        [ (header + concatStringsSep "" lines) ]
        ++ concatMap (n: section (path ++ [ n ]) set.${n}) tables;
    in
    concatStringsSep "\n" (filter (s: s != "") (section [ ] attrs));

  # ----- assertions ---------------------------------------------------------------------------

  # `{ assertion; message; }` as NixOS's `assertions` wants them, for combinations that cannot
  # work. Each message names the builder and the fix.
  assertions = { builders ? [ ], builderHost ? { enable = false; }, ssh ? { } }:
    let
      bs = map normaliseBuilder builders;
      names = map (b: b.hostName) bs;
      isAbsolute = p: substring 0 1 p == "/";
      perBuilder = b:
        let
          where = "programs.nixdispatch.builders (${b.hostName})";
          hostKeyOk =
            b.publicHostKey == null
            || (builtins.tryEval (builtins.deepSeq (hostKeyLine b) true)).success;
        in
        [
          {
            assertion = match "[A-Za-z0-9._:-]+|\\[[0-9A-Fa-f:.]+]" b.hostName != null;
            message = "${where}: hostName ${toJSON b.hostName} is not a host name: give the bare name (no user@, scheme, port or spaces; use sshUser and port for those)";
          }
          {
            assertion = b.systems != [ ];
            message = "${where}: systems is empty: list what it builds, e.g. systems = [ \"x86_64-linux\" ]";
          }
          {
            assertion = b.sshKey == null || isAbsolute b.sshKey;
            message = "${where}: sshKey ${toJSON b.sshKey} is relative: the nix daemon runs as root in /, give an absolute path such as /root/.ssh/nixbuild";
          }
          {
            assertion = b.sshKey == null || match ".*[[:space:]].*" b.sshKey == null;
            message = "${where}: sshKey ${toJSON b.sshKey} contains white space, which the machines file cannot hold: move or link the key to a path without it";
          }
          {
            assertion = b.sshKey == null || substring 0 11 b.sshKey != "/nix/store/";
            message = "${where}: sshKey is in the nix store, readable by every user: keep the private key outside it, e.g. /root/.ssh/nixbuild";
          }
          {
            assertion = !b.substitute || b.publicKey != null;
            message = "${where}: the builder's store is used as a substituter but publicKey is null, so nix would refuse its unsigned paths: set publicKey to the builder's signing key (`nixdispatch doctor` prints it; enable programs.nixdispatch.builderHost there), or substitute = false";
          }
          {
            assertion = b.publicKey == null || match "[^: ]+:[A-Za-z0-9+/]+=*" b.publicKey != null;
            message = "${where}: publicKey ${toJSON b.publicKey} is not a nix signing key (NAME:BASE64, as in ${publicKeyPath} on the builder)";
          }
          {
            assertion = hostKeyOk;
            message = "${where}: publicHostKey is neither a host key line (ssh-ed25519 AAAA...) nor its base64: copy it from /etc/ssh/ssh_host_ed25519_key.pub on the builder";
          }
          {
            assertion = b.port == null || (isInt b.port && b.port > 0 && b.port < 65536);
            message = "${where}: port ${toJSON b.port} is not a TCP port";
          }
        ];
      duplicates = filter (n: length (filter (m: m == n) names) > 1) names;
      sshOpts = sshDefaults // ssh;
      host = sshDefaults // { enable = false; } // builderHost;
    in
    concatMap perBuilder bs
    ++ [
      {
        assertion = duplicates == [ ];
        message = "programs.nixdispatch.builders: ${concatStringsSep ", " duplicates} is declared more than once: merge the entries (one ssh configuration per host name)";
      }
      {
        assertion = sshOpts.controlDir == null || isAbsolute sshOpts.controlDir;
        message = "programs.nixdispatch.ssh.controlDir ${toJSON sshOpts.controlDir} is relative: give an absolute, root-only directory such as /run/nixdispatch-ssh";
      }
      {
        # ssh binds "DIR/<40 hex of %C>.<16 random>" first; a unix socket path holds 107 bytes,
        # and a master that cannot bind makes the session fail (seen here: nix's remote build
        # then fails with "unexpected end-of-file").
        assertion = sshOpts.controlDir == null || stringLength sshOpts.controlDir <= 49;
        message = "programs.nixdispatch.ssh.controlDir ${toJSON sshOpts.controlDir} is too long for ssh's control sockets (at most 49 characters): pick a shorter directory such as /run/nixdispatch-ssh";
      }
      {
        assertion = !host.enable || (host ? signingKeyFile && isString host.signingKeyFile && isAbsolute host.signingKeyFile);
        message = "programs.nixdispatch.builderHost.signingKeyFile must be an absolute path outside the nix store, e.g. /var/lib/nixdispatch/signing-key";
      }
      {
        assertion = !host.enable || !(host ? signingKeyFile && isString host.signingKeyFile) || substring 0 11 host.signingKeyFile != "/nix/store/";
        message = "programs.nixdispatch.builderHost.signingKeyFile is in the nix store, readable by every user: keep the secret key outside it, e.g. /var/lib/nixdispatch/signing-key";
      }
    ];

  # The messages of the assertions that fail (what NixOS would print), for tests and `nix eval`.
  failedAssertions = args: map (a: a.message) (filter (a: !a.assertion) (assertions args));
in
{
  inherit
    base64Encode
    base64Decode
    percentEncode
    normaliseBuilder
    hostKeyBase64
    hostKeyLine
    hostUri
    buildMachine
    machinesLine
    storeUri
    sshDefaults
    knownHosts
    sshConfig
    clientNixSettings
    builderHostNixSettings
    publicKeyPath
    signingKeyScript
    shellQuote
    toTOML
    assertions
    failedAssertions
    ;
}
