# NixOS module: programs.nixdispatch (option names fixed in the project's CONTRACT.md).
#
# A thin wrapper: option declarations here, every value computed by ./lib.nix (plain Nix, tested
# with nix-instantiate where nixpkgs is unavailable).
#
# On the workstation, `builders` sets nix.buildMachines, nix.distributedBuilds,
# builders-use-substitutes, each builder's publicKey in trusted-public-keys, the builder's store in
# trusted-substituters (never substituters: plain nix must not wait on a builder that is away;
# nixdispatch adds it per run when the builder is alive), and root's ssh configuration for each
# builder (the nix daemon's ssh): connect timeout, keepalives, host key pinned, one control master
# kept between runs in a root-only directory.
#
# On the builder, `builderHost` trusts the workstation's users, signs what the store serves, and
# creates the signing key pair once, publishing the public half for `nixdispatch doctor`.
{ config, lib, pkgs, ... }:

let
  ndlib = import ./lib.nix;
  cfg = config.programs.nixdispatch;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types literalExpression;

  builderType = types.submodule {
    options = {
      hostName = mkOption {
        type = types.str;
        example = "seasmoke";
        description = "The builder's host name: the ssh Host alias, and the host in its store URI.";
      };
      address = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "192.0.2.10";
        description = "Where ssh connects (HostName in root's ssh configuration); null: hostName itself.";
      };
      port = mkOption {
        type = types.nullOr types.port;
        default = null;
        description = "The builder's sshd port; null: ssh's default (22).";
      };
      sshUser = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "nixbuild";
        description = "The user to log in as on the builder; it must be in the builder's trusted-users.";
      };
      sshKey = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/root/.ssh/nixbuild";
        description = "Absolute path of the private key root logs in with (outside the nix store, no passphrase).";
      };
      systems = mkOption {
        type = types.listOf types.str;
        example = [ "x86_64-linux" ];
        description = "The systems the builder builds for.";
      };
      maxJobs = mkOption {
        type = types.int;
        default = 1;
        description = "How many builds nix runs on it at once.";
      };
      speedFactor = mkOption {
        type = types.numbers.positive;
        default = 1;
        description = "Its relative speed (nix prefers faster builders).";
      };
      supportedFeatures = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "big-parallel" "kvm" ];
        description = "System features the builder supports.";
      };
      mandatoryFeatures = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Features a derivation must require to be built there.";
      };
      publicHostKey = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...";
        description = ''
          The builder's ssh host key: the line of /etc/ssh/ssh_host_ed25519_key.pub, or its base64
          (as nix.buildMachines takes it). Pinned for nix and for root's ssh; null: root's known_hosts.
        '';
      };
      publicKey = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "seasmoke-1:AAAA...=";
        description = ''
          The builder's nix signing key (NAME:BASE64), added to trusted-public-keys so that paths
          substituted from its store are accepted. `nixdispatch doctor` prints it.
        '';
      };
      substitute = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Put the builder's store in trusted-substituters, for nixdispatch to use per run when the
          builder is alive. Needs publicKey.
        '';
      };
    };
  };
in
{
  options.programs.nixdispatch = {
    enable = mkEnableOption "nixdispatch, the nix build front end that picks substitute, remote or local per run";

    package = mkOption {
      type = types.package;
      default = pkgs.nixdispatch;
      defaultText = literalExpression "pkgs.nixdispatch";
      description = "The nixdispatch package (the flake's nixosModules.default sets it).";
    };

    settings = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      example = { connect-timeout = 5; via = "nh"; };
      description = ''
        The system-wide config file, /etc/nixdispatch/config.toml. nixdispatch reads it after the
        user's own ~/.config/nixdispatch/config.toml: a flag wins, then the environment, then the
        user's file, then this file, then the default.
      '';
    };

    builders = mkOption {
      type = types.listOf builderType;
      default = [ ];
      description = ''
        The remote builders of this workstation: nix.buildMachines, the nix settings they need and
        root's ssh configuration for them (see the module's header). They apply whether or not
        `enable` is set (`enable` installs the package and the settings file).
      '';
    };

    ssh = {
      connectTimeout = mkOption {
        type = types.ints.positive;
        default = ndlib.sshDefaults.connectTimeout;
        description = "Seconds root's ssh may take to reach a builder (ConnectTimeout); a dead builder costs this much.";
      };
      serverAliveInterval = mkOption {
        type = types.ints.positive;
        default = ndlib.sshDefaults.serverAliveInterval;
        description = "Seconds between keepalives on a quiet connection (ServerAliveInterval).";
      };
      serverAliveCountMax = mkOption {
        type = types.ints.positive;
        default = ndlib.sshDefaults.serverAliveCountMax;
        description = "Unanswered keepalives before ssh gives up on a silent link (ServerAliveCountMax).";
      };
      controlDir = mkOption {
        type = types.nullOr types.str;
        default = ndlib.sshDefaults.controlDir;
        description = "Root-only directory of the control sockets; null: no connection sharing.";
      };
      controlPersist = mkOption {
        type = types.str;
        default = ndlib.sshDefaults.controlPersist;
        description = "How long an idle control master stays up (ControlPersist).";
      };
    };

    builderHost = {
      enable = mkEnableOption "this machine as a builder for nixdispatch workstations";
      trustedUsers = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "nixbuild" ];
        description = "Users the workstations log in as (added to nix.settings.trusted-users).";
      };
      signingKeyFile = mkOption {
        type = types.str;
        default = "/var/lib/nixdispatch/signing-key";
        description = ''
          The secret key this store signs with (secret-key-files). Created with its .pub on first
          boot when missing; the public half is copied to ${ndlib.publicKeyPath}.
        '';
      };
      keyName = mkOption {
        type = types.str;
        default = "${config.networking.hostName}-1";
        defaultText = literalExpression ''"''${config.networking.hostName}-1"'';
        description = "The key's name, the part before the colon of the public key.";
      };
      signExisting = mkOption {
        type = types.bool;
        default = false;
        description = "Also sign every path the store already holds, when the key is set up.";
      };
    };
  };

  config = mkMerge [
    {
      assertions = ndlib.assertions {
        builders = cfg.builders;
        builderHost = cfg.builderHost;
        ssh = cfg.ssh;
      };
    }

    (mkIf cfg.enable {
      environment.systemPackages = [ cfg.package ];
      environment.etc."nixdispatch/config.toml" = mkIf (cfg.settings != { }) {
        text = ndlib.toTOML cfg.settings;
      };
    })

    (mkIf (cfg.builders != [ ]) {
      nix.buildMachines = map ndlib.buildMachine cfg.builders;
      nix.distributedBuilds = true;
      nix.settings = ndlib.clientNixSettings cfg.builders;
      environment.etc."nixdispatch/known_hosts".text = ndlib.knownHosts cfg.builders;
      programs.ssh.extraConfig = ndlib.sshConfig (cfg.ssh // {
        builders = cfg.builders;
        knownHostsFile = "/etc/nixdispatch/known_hosts";
      });
      systemd.tmpfiles.rules = lib.optional (cfg.ssh.controlDir != null) "d ${cfg.ssh.controlDir} 0700 root root -";
    })

    (mkIf cfg.builderHost.enable {
      nix.settings = ndlib.builderHostNixSettings cfg.builderHost;
      systemd.services.nixdispatch-signing-key = {
        description = "Create the nix signing key nixdispatch workstations trust";
        wantedBy = [ "multi-user.target" ];
        before = [ "nix-daemon.service" ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        path = [ config.nix.package pkgs.coreutils ];
        script = ndlib.signingKeyScript {
          inherit (cfg.builderHost) signingKeyFile keyName signExisting;
        };
      };
    })
  ];
}
