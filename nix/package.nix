# The nixdispatch package, for `callPackage` (the flake's packages and overlay use it).
{ lib, rustPlatform, installShellFiles }:

let
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);
in
rustPlatform.buildRustPackage {
  pname = "nixdispatch";
  inherit (cargoToml.package) version;

  # Only what cargo needs (the workspace includes the lab crate) and what postInstall installs:
  # never a local target/ directory.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../lab
      ../tests
      ../completions
      ../man
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;
  cargoBuildFlags = [ "--package" "nixdispatch" ];

  nativeBuildInputs = [ installShellFiles ];

  # The test suite runs real nix and sshd in mount namespaces as root (the lab): not in a build
  # sandbox. tests/nix_modules.rs and `just test` run it outside.
  doCheck = false;

  postInstall = ''
    installShellCompletion --cmd nixdispatch \
      --bash completions/nixdispatch.bash \
      --zsh completions/_nixdispatch \
      --fish completions/nixdispatch.fish
    installManPage man/*.1
  '';

  meta = {
    description = cargoToml.package.description;
    license = lib.licenses.mit;
    mainProgram = "nixdispatch";
    platforms = lib.platforms.unix;
  };
}
