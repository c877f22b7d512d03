//! Everything the integration tests use but do not test: the simulated peers and their Rust
//! guards, the runner of the real agent binaries, and the single-node Pacemaker.
//!
//! - [`agentcmd`]: run a built agent with argv or stdin, capture code/stdout/stderr; option
//!   spellings read from the agent's own metadata.
//! - [`fixture`]: the shared SSH-agent setup (a fake host + known_hosts + device options).
//! - [`sim`]: fake free-ESXi hosts (private sshd + simulated `vim-cmd`, `sim/esxi/`) and the
//!   evacuation simulator (`sim/evac.rs`, `sim/esxi/evacsim.py`).
//! - [`kvmsim`]: fake KVM hosts (sshd + real `virsh` + libvirtd test driver, `sim_kvm/`).
//! - [`ipmisim`]: OpenIPMI `ipmi_sim` BMCs and a lossy UDP relay (`sim_ipmi/`).
//! - [`ipmi17`]: a small RMCP+ responder for cipher suite 17 (ipmi_sim has no SHA-256).
//! - [`util::pacemaker`]: a real single-node Pacemaker (machine-wide lock).
//!
//! A peer that cannot be started skips its test with a `skipped: <why>` line, unless
//! [`simulators_required`] (then the test fails). Every helper asks that one function.

// Test-harness code: failing loudly is the point here.
#![allow(dead_code, clippy::panic, clippy::print_stdout)]

pub mod agentcmd;
pub mod fixture;
pub mod ipmi17;
pub mod ipmisim;
pub mod kvmsim;
pub mod sim;
pub mod util;

use std::process::{Command, Stdio};

/// True when a missing simulator or peer must fail the test instead of skipping it:
/// `CI=true` or `FENCE_REQUIRE_SIMULATORS=1` (scripts/test.sh sets the latter).
pub fn simulators_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("FENCE_REQUIRE_SIMULATORS").is_ok_and(|v| v == "1")
}

/// A peer is unavailable for `why`: fails the test when [`simulators_required`], otherwise
/// prints `skipped: <why>` (the caller then returns early).
pub fn skip_or_fail(why: &str) {
    if simulators_required() {
        panic!("simulator required but unavailable: {why}");
    }
    println!("skipped: {why}");
}

/// Whether `prog` is on PATH; when it is not, [`skip_or_fail`] (fails when required).
pub fn have_tool(prog: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip_or_fail(&format!("{prog} is not installed"));
    }
    found
}
