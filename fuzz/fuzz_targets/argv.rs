//! The command line (argv without argv[0]; NUL separates the words) against the full option
//! table.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use fencekit::protocol::{argv, options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let table = fencekit_fuzz_table();
    let args: Vec<OsString> = data
        .split(|b| *b == 0)
        .map(|w| OsString::from_vec(w.to_vec()))
        .collect();
    if let Ok(parsed) = argv::parse(&args, &table) {
        for v in parsed.values.values() {
            let _ = options::parse_secs(v);
        }
    }
});

include!("table.rs");
