//! `verdict-client`: the parts of a verdict client that do not print.
//!
//! - [`markers`]: the lines `verdict wait` prints (csa's markers and hints),
//!   so a Rust caller can print exactly the same;
//! - [`degraded`]: a wait that needs no daemon, for when verdictd cannot be
//!   reached or started (a read-only or foreign runtime directory, a
//!   sandbox without sockets). It answers what the daemon would answer,
//!   with the same rules, from the same events: it never polls.
//!
//! The blocking client of verdictd itself (connect, wait, reconnect) still
//! lives in the `verdict` binary.
//!
//! ```
//! use std::time::Duration;
//! use verdict_client::{degraded, markers};
//!
//! // A session that has finished (here a temporary directory).
//! let session = tempfile::tempdir()?;
//! std::fs::write(session.path().join("result.toml"), "status = \"success\"\nexit_code = 0\n")?;
//!
//! let cap = Some(Duration::from_secs(240));
//! let verdict = degraded::wait(session.path(), cap, degraded::Timing::default())?;
//! assert_eq!(verdict.exit, 0);
//! println!("{}", markers::completed(&verdict));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod degraded;
pub mod markers;
