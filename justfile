# nixdispatch's everyday commands. `just --list` shows them.

# Build the binary and the lab.
build:
    cargo build --workspace

# The whole suite, lab tests included (root; installs what is missing).
test *ARGS:
    ./scripts/test {{ARGS}}

# Formatting and lints, as CI would want them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Regenerate the committed shell completions.
completions:
    cargo run -q -- completions bash > completions/nixdispatch.bash
    cargo run -q -- completions zsh > completions/_nixdispatch
    cargo run -q -- completions fish > completions/nixdispatch.fish

# Regenerate the committed man pages (man/*.1, clap_mangen; a test fails when they are stale).
man:
    NIXDISPATCH_UPDATE_MAN=1 cargo test -q --test man committed_man_pages_are_current

# The Nix side: parse every .nix file, evaluate nix/lib.nix and the modules (no nixpkgs needed).
nix-check:
    cargo test -q --test nix_modules

# Start the two-host lab for trying commands by hand; it prints how, and stops on Ctrl-C.
lab-up *ARGS:
    ./scripts/lab-deps
    cargo run -q -p nixdispatch-lab -- up {{ARGS}}

# Stop a lab started by `just lab-up` in another terminal.
lab-down:
    cargo run -q -p nixdispatch-lab -- down

# The demo: `nixdispatch home` three times on the lab (builder empty, builder holding it, builder down).
demo:
    ./scripts/demo

# nixdispatch against plain nix, side by side on the lab (root; debug build, about 40 minutes
# on 2 cores), every row of issue 14 with its target; rewrites the generated part of
# BENCHMARKS.md. `just bench --only remote --chains 6 --runs 5` for a part (`--help`: options).
bench *ARGS:
    ./scripts/bench --markdown BENCHMARKS.md {{ARGS}}

# The whole Nix version matrix (client 2.8/2.26/2.34 x builder 2.26/2.34 x nix/nh), beyond the
# cells the default test run covers. Root; installs the lab's roots first.
matrix *ARGS:
    ./scripts/lab-deps
    CI=${CI:-true} cargo test --locked --test matrix -- --include-ignored {{ARGS}}

# Fuzz the parsers (machines file, builder URI, narinfo, nix's log) for SECS seconds each; not
# in CI. cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 allows them on the stable toolchain.
fuzz SECS="180":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    for target in machines builder_uri narinfo; do RUSTC_BOOTSTRAP=1 nice cargo fuzz run -s none "$target" -- -max_total_time={{SECS}} -max_len=4096 || exit 1; done
    mkdir -p fuzz/corpus/log && RUSTC_BOOTSTRAP=1 nice cargo fuzz run -s none log fuzz/corpus/log tests/data -- -max_total_time={{SECS}} -max_len=65536
