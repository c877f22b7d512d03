//! Integration tests (one test crate; each module is one area).

mod bmc_lib;
mod ipmi17;
mod ipmisim;
