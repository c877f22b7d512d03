//! Transports: `ssh` (libssh2 sessions with host-key checking, and running one remote command),
//! `ipmi` (IPMI 1.5 and 2.0 RMCP+ sessions), `net` (a deadline-bounded resolver both share),
//! `crypto` (the HMAC both use).

pub(crate) mod crypto;
pub mod ipmi;
pub mod net;
pub mod ssh;
