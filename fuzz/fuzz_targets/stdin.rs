//! Pacemaker's stdin input (`key=value` lines) against the full option table.
#![no_main]

use fencekit::protocol::{options, stdin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let table = fencekit_fuzz_table();
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = stdin::parse(&text, &table) else {
        return;
    };
    for v in parsed.values.values() {
        let _ = options::parse_secs(v);
        let _ = stdin::flag_value(v);
    }
    for line in text.lines() {
        if let Some((k, _)) = line.split_once('=') {
            let _ = stdin::resolve(&table, k);
        }
    }
});

include!("table.rs");
