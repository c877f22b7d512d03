//! Session packets: wrap/unwrap round trip and integrity (a changed byte of an authenticated
//! packet is never accepted), RMCP+ every suite and IPMI 1.5 MD5.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = fencekit::transport::ipmi::fuzz::session_roundtrip(data) {
        panic!("{e}");
    }
});
