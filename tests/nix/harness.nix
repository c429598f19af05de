# Evaluates a NixOS or home-manager module of this project WITHOUT nixpkgs, for
# tests/nix_modules.rs: a stub of the few `lib` functions the modules use, option defaults filled
# in the way the module system fills them, and the module's `config` resolved (mkIf, mkMerge).
# It checks the glue; the values themselves come from nix/lib.nix, which is tested directly.
#
#   import ./harness.nix { module = ../../nix/nixos.nix; values = { builders = [ ... ]; }; }
#   => { cfg; config; failedAssertions; }
{ module, values, hostName ? "vermax" }:

let
  inherit (builtins) isAttrs isList mapAttrs foldl' filter attrNames listToAttrs;

  type = name: { _type = "type"; inherit name; };
  lib = rec {
    mkOption = o: { _type = "option"; } // o;
    mkEnableOption = d: mkOption { type = types.bool; default = false; description = d; };
    mkIf = cond: content: { _type = "if"; inherit cond content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkDefault = v: v;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    optional = c: x: if c then [ x ] else [ ];
    types = {
      str = type "str";
      bool = type "bool";
      int = type "int";
      port = type "port";
      package = type "package";
      anything = type "anything";
      lines = type "lines";
      ints.positive = type "positive";
      numbers.positive = type "positive number";
      nullOr = t: t;
      listOf = elemType: { _type = "listOf"; inherit elemType; };
      attrsOf = elemType: { _type = "attrsOf"; inherit elemType; };
      submodule = m: { _type = "submodule"; inherit (m) options; };
    };
  };

  isOption = v: isAttrs v && (v._type or null) == "option";

  # Option values: the given ones over the defaults, submodule list elements filled too.
  fill = options: given:
    mapAttrs (name: opt:
      if isOption opt then
        let
          v = if given ? ${name} then given.${name} else opt.default or (throw "option ${name} has no default and no value");
          t = opt.type or { };
        in
        if (t._type or null) == "listOf" && (t.elemType._type or null) == "submodule" then
          map (fill t.elemType.options) v
        else
          v
      else
        fill opt (given.${name} or { }))
    options;

  isFalseIf = v: isAttrs v && (v._type or null) == "if" && !v.cond;

  resolve = v:
    if isAttrs v && (v._type or null) == "if" then
      (if v.cond then resolve v.content else { })
    else if isAttrs v && (v._type or null) == "merge" then
      foldl' merge { } (map resolve v.contents)
    else if isAttrs v && !(v ? _type) then
      mapAttrs (_: resolve) (removeFalse v)
    else
      v;

  removeFalse = set: listToAttrs (map (n: { name = n; value = set.${n}; }) (filter (n: !isFalseIf set.${n}) (attrNames set)));

  merge = a: b:
    a // mapAttrs (name: bv:
      if !(a ? ${name}) then
        bv
      else if isAttrs a.${name} && isAttrs bv then
        merge a.${name} bv
      else if isList a.${name} && isList bv then
        a.${name} ++ bv
      else
        throw "the module defines ${name} twice") b;

  pkgs = {
    nixdispatch = "PKGS-NIXDISPATCH";
    coreutils = "PKGS-COREUTILS";
  };
  config = {
    programs.nixdispatch = cfg;
    networking.hostName = hostName;
    nix.package = "PKGS-NIX";
  };
  evaluated = import module { inherit config lib pkgs; };
  cfg = fill evaluated.options.programs.nixdispatch values;
  resolved = resolve evaluated.config;
in
{
  inherit cfg;
  config = resolved;
  failedAssertions = map (a: a.message) (filter (a: !a.assertion) (resolved.assertions or [ ]));
}
