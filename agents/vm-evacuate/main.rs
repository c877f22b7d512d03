//! `vm-evacuate`: when a free-ESXi host dies, fence it through its BMC and restart its VMs
//! elsewhere. All logic is in `fencekit::evacuate` (see `fencekit::evacuate::cli`).
//!
//! Invoked as `…/resource.d/<provider>/vm-evacuate` (the installed symlink
//! `/usr/lib/ocf/resource.d/fencekit/vm-evacuate`), or with `OCF_ROOT`/`OCF_RESOURCE_INSTANCE`
//! set and a lone OCF action as argument, it is the OCF resource agent
//! `ocf:fencekit:vm-evacuate` (`fencekit::evacuate::ocf`); otherwise the command line.

use std::ffi::OsString;
use std::process::ExitCode;

use fencekit::evacuate::cli::{main_with, stderr_is_terminal, Io};
use fencekit::evacuate::ocf;

fn main() -> ExitCode {
    let mut all = std::env::args_os();
    let argv0 = all.next().unwrap_or_default();
    let args: Vec<OsString> = all.collect();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    if ocf::is_ocf_invocation(&argv0, &args, &|k| std::env::var_os(k)) {
        let mut io = ocf::Io {
            out: &mut out,
            err: &mut err,
        };
        return ExitCode::from(ocf::main_with(&args, &ocf::Env::from_process(), &mut io));
    }
    let mut io = Io {
        out: &mut out,
        err: &mut err,
        tty: stderr_is_terminal(),
    };
    ExitCode::from(main_with(args, &mut io))
}
