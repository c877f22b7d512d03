//! Test peers started by the integration tests themselves (scripts kept under
//! `tests/support/sim/`).
//!
//! - [`sshd::EsxiHost`]: a fake free-ESXi host (private OpenSSH sshd on loopback + simulated
//!   `vim-cmd`), see `tests/support/sim/esxi/`.

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

/// The one "simulators required" check and skip, at their historical paths.
#[allow(unused_imports, reason = "a stable path for test modules")]
pub use super::{simulators_required, skip_or_fail};
