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

mod bmc;
mod demo;
mod esxi;
mod esxi_hosts;
mod evacuate;
mod faults;
mod hostile_ipmi;
mod hostile_protocol;
mod ipmi_transport;
mod kvmguest;
mod kvmguest_hostfence;
mod kvmsim_virsh;
mod manpages;
mod messages;
mod metadata;
mod migration;
mod ocf;
mod pacemaker_bmc;
mod pacemaker_esxi;
mod pacemaker_esxi_hosts;
mod pacemaker_evacuate;
mod pacemaker_fake;
mod pacemaker_kvmguest;
mod pacemaker_smoke;
mod protocol;
mod regression;
mod ssh_vimcmd;
mod sshcmd;
mod support;

// The helpers keep their historical paths (`crate::sim::…`, `crate::util::…`, `crate::ipmisim::…`,
// `crate::ipmi17::…`, `crate::kvmsim::…`, `crate::agentcmd::…`) for every test module.
use support::{agentcmd, ipmi17, ipmisim, kvmsim, sim, util};
