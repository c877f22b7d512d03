//! Integration tests: one test crate, one module per area.

mod pacemaker_smoke;
mod util;
