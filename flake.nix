{
  description = "nixdispatch: nix build and nh, with the cheapest source for every store path (cache, builder's store, remote or local build)";

  # The flake registry's nixpkgs (an indirect reference); pin it with --override-input or a lock file.
  inputs.nixpkgs.url = "nixpkgs";

  outputs =
    { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      # The plain Nix functions the modules are built on (builtins only): machines entries, the
      # builder's store URI, root's ssh configuration, the TOML settings file, assertions.
      lib = import ./nix/lib.nix;

      overlays.default = final: prev: {
        nixdispatch = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (pkgs: {
        nixdispatch = pkgs.callPackage ./nix/package.nix { };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.nixdispatch;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/bin/nixdispatch";
        };
      });

      # The tools of `just` and the lab (nix, sshd, unshare/chroot, debootstrap, nh).
      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages =
            with pkgs;
            [ cargo rustc clippy rustfmt rust-analyzer just nix openssh nh ]
            ++ lib.optionals stdenv.isLinux [ util-linux debootstrap ];
        };
      });

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      });

      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/nixos.nix ];
          programs.nixdispatch.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };

      homeManagerModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/home-manager.nix ];
          programs.nixdispatch.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
    };
}
