//! The machines-file parser (`builders`, `/etc/nix/machines`, `--builder`): any text, any
//! include contents. Never panics; what it accepts prints back to a line it accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nixdispatch::machines::parse_machines;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first half is the text, the second the contents of every @include.
    let (main, include) = text.split_at(text.floor_char_boundary(text.len() / 2));
    let mut read = |_: &std::path::Path| Some(include.to_owned());
    if let Ok(machines) = parse_machines(main, "fuzz", &mut read) {
        for machine in machines {
            let line = machine.to_line();
            let mut none = |_: &std::path::Path| None;
            let again = parse_machines(&line, "fuzz", &mut none);
            assert!(again.is_ok(), "{line:?} printed from {main:?} does not parse: {again:?}");
        }
    }
});
