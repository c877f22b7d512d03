//! `vm-evacuate`: when a free-ESXi host dies, fence it through its BMC and restart its VMs
//! elsewhere. All logic is in `fencekit::evacuate` (see `fencekit::evacuate::cli`).

use std::process::ExitCode;

use fencekit::evacuate::cli::{main_with, stderr_is_terminal, Io};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        tty: stderr_is_terminal(),
    };
    ExitCode::from(main_with(args, &mut io))
}
