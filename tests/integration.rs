//! fencekit integration tests: real binaries, real peers.

mod agentcmd;
mod metadata;
mod protocol;
