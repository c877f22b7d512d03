//! fencekit: fence agents and VM evacuation for Pacemaker clusters.
//!
//! The tree shows the layers; a module uses only its own layer or those below it:
//! - [`protocol`]: the fence-agent contract (the agent trait, the one option table, argv and
//!   stdin input, validation, the action engine, metadata and man page, logging, and `run`, the
//!   only module that prints results and picks exit codes).
//! - [`device`]: device grammars as pure functions over text (`vim-cmd`, `virsh`,
//!   `kvmguests.conf`).
//! - [`transport`]: how bytes reach a device (SSH, IPMI over RMCP/RMCP+, a deadline-bounded
//!   resolver).
//! - [`evacuate`]: the evacuation engine (inventory, host snapshots, the placement planner).

pub mod device;
pub mod evacuate;
pub mod protocol;
pub mod transport;

pub use protocol::agent::{Agent, AgentInfo, Feature, Outlet, PowerState};
pub use protocol::error::{FenceError, FenceResult};
pub use protocol::options::{Kind, OptSpec, Options};
pub use protocol::secret::Secret;
