//! fencekit integration tests: real binaries, real peers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::string_slice,
    missing_docs,
    reason = "test code: a panic is a test failure"
)]

mod agentcmd;
mod bmc;
mod bmc_lib;
mod demo;
mod esxi;
mod esxi_lib;
mod evacuate;
mod faults;
mod hostile_ipmi;
mod hostile_protocol;
mod ipmi17;
mod ipmisim;
mod kvm_lib;
mod kvmguest;
mod kvmsim;
mod metadata;
mod ocf;
mod pacemaker_bmc;
mod pacemaker_esxi;
mod pacemaker_evacuate;
mod pacemaker_fake;
mod pacemaker_kvmguest;
mod pacemaker_smoke;
mod protocol;
mod regression;
mod sim;
mod sshcmd;
mod util;
