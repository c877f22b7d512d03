//! The RMCP+ login reply matchers (Open Session Response, RAKP 2, RAKP 4, login probe) and
//! session packet unwrapping (RMCP+ every suite, IPMI 1.5 MD5) on one datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fencekit::transport::ipmi::fuzz::login_replies(data));
