//! fencekit integration tests: real binaries, real peers.
