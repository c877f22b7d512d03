//! Every vim-cmd output parser on the same text; `find_vm` with each word of the first line
//! as the plug.
#![no_main]

use fencekit::device::vimcmd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let out = String::from_utf8_lossy(data);
    let _ = vimcmd::parse_host_version(&out);
    let _ = vimcmd::parse_fault(&out);
    let _ = vimcmd::parse_power_state(&out);
    let _ = vimcmd::check_power_op(&out);
    let _ = vimcmd::check_reset(&out);
    let _ = vimcmd::parse_registervm(&out);
    let _ = vimcmd::parse_unregister(&out);
    let _ = vimcmd::parse_hostsummary(&out);
    if let Ok(vms) = vimcmd::parse_getallvms(&out) {
        let first = out.lines().next().unwrap_or("");
        for plug in first.split_whitespace().take(8) {
            let _ = vimcmd::find_vm(&vms, plug);
        }
        if let Some(vm) = vms.first() {
            let _ = vimcmd::find_vm(&vms, &vm.name);
        }
    }
});
