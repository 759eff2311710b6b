//! End-to-end tests: the real `verdictd` and `verdict` binaries, real
//! session directories, a real process standing in for each session.
//! The harness is the `verdict_e2e` library (`tests/src/lib.rs`).

mod adversarial;
mod chaos_faults;
mod chaos_input;
mod cli;
mod corpus;
mod corpus1142;
mod daemon;
mod degraded;
mod events;
mod events_exec;
mod hostile;
mod hostile_files;
mod library;
mod many;
mod mcp;
mod node;
mod protocol;
mod python;
mod readme;
mod rules;
mod run;
mod ssh;
#[cfg(target_os = "linux")]
mod systemd;
mod top;
mod vectors;
