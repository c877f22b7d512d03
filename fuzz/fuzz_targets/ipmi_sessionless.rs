//! Sessionless IPMI 1.5 / RMCP+ framing, the IPMI response decoder, Get Channel Cipher
//! Suites records, Get Chassis Status data and the checked cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fencekit::transport::ipmi::fuzz::sessionless(data));
