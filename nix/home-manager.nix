# home-manager module: programs.nixdispatch (option names fixed in the project's CONTRACT.md).
#
# A thin wrapper over ./lib.nix: the package, the user's config file
# (~/.config/nixdispatch/config.toml, which wins over the system-wide one) and optional aliases.
{ config, lib, pkgs, ... }:

let
  ndlib = import ./lib.nix;
  cfg = config.programs.nixdispatch;
  inherit (lib) mkOption mkEnableOption mkIf types literalExpression;
in
{
  options.programs.nixdispatch = {
    enable = mkEnableOption "nixdispatch, the nix build front end that picks substitute, remote or local per run";

    package = mkOption {
      type = types.package;
      default = pkgs.nixdispatch;
      defaultText = literalExpression "pkgs.nixdispatch";
      description = "The nixdispatch package (the flake's homeManagerModules.default sets it).";
    };

    settings = mkOption {
      type = types.attrsOf types.anything;
      default = { };
      example = { connect-timeout = 5; via = "nh"; };
      description = ''
        The user's config file, ~/.config/nixdispatch/config.toml. A flag wins, then the
        environment, then this file, then the system-wide /etc/nixdispatch/config.toml, then the
        default.
      '';
    };

    shellAliases = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = { hms = "nixdispatch home switch"; nos = "nixdispatch os switch"; };
      description = "Shell aliases for nixdispatch commands (added to home.shellAliases).";
    };
  };

  config = mkIf cfg.enable {
    home.packages = [ cfg.package ];
    xdg.configFile."nixdispatch/config.toml" = mkIf (cfg.settings != { }) {
      text = ndlib.toTOML cfg.settings;
    };
    home.shellAliases = cfg.shellAliases;
  };
}
