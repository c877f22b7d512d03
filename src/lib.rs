//! fencekit: fence agents and VM evacuation for Pacemaker clusters.
//!
//! Layout: `options` (the one option table), `stdin`/`argv` (input modes), `metadata`
//! (XML and man page), `engine` (the action engine), `run` (the only module that prints
//! results and picks exit codes), `agent` (the contract agents implement), `error`, `secret`.

pub mod agent;
pub mod error;
pub mod ipmi;
pub mod kvmconf;
pub mod net;
pub mod options;
pub mod secret;
pub mod ssh;
pub mod vimcmd;
pub mod virsh;

pub use agent::{Agent, AgentInfo, Feature, Outlet, PowerState};
pub use error::{FenceError, FenceResult};
pub use options::{Kind, OptSpec, Options};
pub use secret::Secret;
pub mod argv;
pub mod engine;
pub mod log;
pub mod manual;
pub mod metadata;
pub mod run;
pub mod stdin;
pub mod validate;
