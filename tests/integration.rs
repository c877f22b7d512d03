//! Integration tests (one test crate).

mod esxi_lib;
mod sim;
