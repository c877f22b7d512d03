//! The evacuation engine: when a free-ESXi host dies (or is drained), restart its VMs on the
//! other hosts.
//!
//! Pieces so far, each usable on its own:
//! - [`inventory`]: the user's TOML file (policy, SSH and BMC defaults, hosts, VM settings,
//!   placement constraints), parsed and checked; every error names its line and key.
//! - [`snapshot`]: what a host last showed (its VMs, their power state, memory and datastore,
//!   the host's memory and datastores), serializable so it can be stored and read back once the
//!   host is dead.
//! - [`plan`](mod@plan): a pure, deterministic planner from (inventory, snapshots, failed host,
//!   situation) to a plan: which VM goes where, by which methods, in which tier, or why not.
//! - [`backend`]: what is done to hosts and BMCs ([`backend::HostOps`] over SSH + `vim-cmd`,
//!   [`backend::BmcOps`] over IPMI), behind traits so the engine is tested with fakes.
//! - [`state`] and [`journal`]: the state directory (snapshots, probe history, confirmations,
//!   evacuation records, reports, the engine lock) and the fsynced intent/outcome journal.
//! - [`engine`]: probe, fence and confirm, plan, execute with fallback, return, watch + brake.
//! - [`report`]: the per-VM JSON report and the host result (`ok`, `warning`, `error`).
//! - [`cli`]: the `vm-evacuate` command line.
//! - [`ocf`]: the OCF resource agent `ocf:fencekit:vm-evacuate` (the same program invoked as
//!   `/usr/lib/ocf/resource.d/fencekit/vm-evacuate`), which runs `watch` as a daemon.

pub mod backend;
pub mod cli;
pub mod engine;
pub mod inventory;
pub mod journal;
pub mod ocf;
pub mod plan;
pub mod report;
pub mod snapshot;
pub mod state;

pub use inventory::{Inventory, Method, Scope};
pub use plan::{plan, Plan, Situation};
pub use snapshot::{HostSnapshot, Snapshots, VmPower, VmRecord};
