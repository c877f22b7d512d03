//! Transports: `ssh` (libssh2 sessions with host-key checking), `ipmi` (IPMI 1.5 and 2.0
//! RMCP+ sessions), `net` (a deadline-bounded resolver both share).

pub mod ipmi;
pub mod net;
pub mod ssh;
