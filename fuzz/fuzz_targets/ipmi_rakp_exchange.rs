//! The RMCP+ login exchange (Open Session, RAKP 2, RAKP 4 / probe) against a scripted BMC
//! whose datagrams the fuzzer writes; aborts if a login succeeds without the password proof.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = fencekit::transport::ipmi::fuzz::rakp_exchange(data) {
        panic!("{e}");
    }
});
