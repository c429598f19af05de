//! `nixdispatch`: parse, run, map the outcome to an exit code.

fn main() {
    std::process::exit(nixdispatch::run(std::env::args_os()));
}
