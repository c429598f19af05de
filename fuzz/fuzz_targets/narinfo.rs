//! The narinfo parser, on what any binary cache may answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nixdispatch::sources::narinfo::NarInfo;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = NarInfo::parse(&text, "/nix/store");
});
