//! Test peers started by the integration tests themselves (scripts kept under `tests/sim/`).
//!
//! - [`sshd::EsxiHost`]: a fake free-ESXi host (private OpenSSH sshd on loopback + simulated
//!   `vim-cmd`), see `tests/sim/esxi/`.

// Test-harness code: failing loudly is the point here.
#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

pub mod evac;
pub mod sshd;

/// True when a missing simulator must fail the test instead of skipping it.
pub fn simulators_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("FENCE_REQUIRE_SIMULATORS").is_ok_and(|v| v == "1")
}

/// Skips (prints `skipped: <why>`) or fails, per [`simulators_required`].
pub fn skip_or_fail(why: &str) {
    if simulators_required() {
        panic!("simulator required but unavailable: {why}");
    }
    println!("skipped: {why}");
}
