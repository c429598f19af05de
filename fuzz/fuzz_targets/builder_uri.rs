//! The builder-URI parser (`Machine::new`) and everything read from a parsed URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nixdispatch::machines::Machine;

fuzz_target!(|data: &[u8]| {
    let uri = String::from_utf8_lossy(data);
    if let Ok(machine) = Machine::new(&uri) {
        let _ = machine.scheme();
        let _ = machine.ssh_user();
        let _ = machine.ssh_host();
        let _ = machine.ssh_port();
        let _ = machine.host_label();
        let _ = machine.store_uri();
        let _ = machine.decode_host_key();
        let _ = machine.to_line();
    }
});
