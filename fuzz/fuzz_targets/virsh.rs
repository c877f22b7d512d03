//! Every virsh output parser: `data[0]` picks the exit status (none, 0, 1, other), the rest
//! is stdout and stderr split at the first NUL; `locate` over the domstate answers.
#![no_main]

use fencekit::device::virsh::{self, Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let exit = match sel % 4 {
        0 => None,
        1 => Some(0),
        2 => Some(1),
        _ => Some(i32::from(sel)),
    };
    let (stdout, stderr) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let r = Reply::new(exit, stdout, stderr);
    let _ = virsh::parse_domstate(&r);
    let _ = virsh::parse_destroy(&r);
    let _ = virsh::parse_start(&r);
    let _ = virsh::parse_name_list(&r);
    let _ = virsh::parse_list_table(&r);
    let _ = virsh::parse_dominfo(&r);
    let text = String::from_utf8_lossy(stdout);
    let _ = virsh::looks_like_id_or_uuid(&text);
    let answers = vec![
        ("h1".to_string(), virsh::HostView::from_dominfo(&r)),
        (
            "h2".to_string(),
            virsh::HostView::from_dominfo(&Reply::new(Some(0), stderr, stdout)),
        ),
    ];
    let _ = virsh::locate("guest", &answers);
});
