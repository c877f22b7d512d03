//! fencekit: fence agents and VM evacuation for Pacemaker clusters.
//!
//! The tree shows the layers, listed from the bottom up; a module uses only its own layer or
//! those below it:
//! - [`protocol`]: the fence-agent contract (the agent trait, the one option table, argv and
//!   stdin input, validation, the action engine, metadata and man page, logging, and `run`, the
//!   only module that prints results and picks exit codes).
//! - [`transport`]: how bytes reach a device: `ssh/` (the libssh2 session in `mod.rs`,
//!   `known_hosts.rs`, `base64.rs`, and `shell.rs` with quoting, the sudo prefix and
//!   `RemoteShell`, the one way an agent runs a remote command), `ipmi/` (IPMI over RMCP/RMCP+),
//!   `net.rs` (a deadline-bounded resolver) and `crypto.rs` (the HMAC both SSH and IPMI use).
//! - [`device`]: device grammars as pure functions over text (`vimcmd`, `virsh`, `kvmconf`),
//!   and the orchestration across hosts built on them, generic over how one host is asked
//!   (`fanout`: every host at once, silence never an absence; `guests`: where a KVM guest runs,
//!   its absence confirmed by each host's domain list, and acting on it there).
//! - [`evacuate`]: the evacuation engine (inventory, host snapshots, the placement planner,
//!   the engine, its journal and report).
//!
//! An agent (`agents/<name>/main.rs`) is a thin binary over these: its option rows, the
//! `Agent` trait's calls, and nothing the library already does.

pub mod device;
pub mod evacuate;
pub mod protocol;
pub mod transport;

pub use protocol::agent::{Agent, AgentInfo, Feature, Outlet, PowerState};
pub use protocol::error::{FenceError, FenceResult};
pub use protocol::options::{Kind, OptSpec, Options};
pub use protocol::secret::Secret;
