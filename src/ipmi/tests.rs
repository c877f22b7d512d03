//! Unit tests: packet round trips and fuzz-style robustness of every decoder.

use super::*;
