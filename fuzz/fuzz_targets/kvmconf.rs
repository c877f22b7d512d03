//! kvmguests.conf maps and the `hosts` option value.
#![no_main]

use fencekit::device::kvmconf;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = kvmconf::parse_bytes(data) {
        let _ = format!("{map:?}");
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(hosts) = kvmconf::parse_hosts(&text) {
        for name in text.split([',', '=', '\n']) {
            let _ = kvmconf::lookup_host(&hosts, name);
        }
    }
    let byte = |i: usize| u32::from(data.get(i).copied().unwrap_or(0));
    let _ = kvmconf::file_problems("/fuzz/kvmguests.conf", byte(1), byte(0) << 1, byte(2));
});
