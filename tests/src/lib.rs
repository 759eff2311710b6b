//! The end-to-end tests' harness: the workspace's shared test support
//! (`verdict-support`: the daemon in a temp dir, sessions, a raw client,
//! `/proc` readers), under the name the tests use.

pub use verdict_support::*;
