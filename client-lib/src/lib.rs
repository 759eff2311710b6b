//! `verdict-client`: the parts of a verdict client that do not print.
//!
//! Today it holds [`degraded`]: a wait that needs no daemon, for when
//! verdictd cannot be reached or started (a read-only or foreign runtime
//! directory, a sandbox without sockets). It answers what the daemon would
//! answer, with the same rules, from the same events: it never polls.
//!
//! ```no_run
//! use std::time::Duration;
//! use verdict_client::degraded::{wait, Timing};
//!
//! let dir = std::path::Path::new("/home/me/.local/state/cli-sub-agent/proj/sessions/01JD6Z");
//! let verdict = wait(dir, Some(Duration::from_secs(240)), Timing::default())?;
//! println!("{} exit {}", verdict.status, verdict.exit);
//! # Ok::<(), verdict_client::degraded::Error>(())
//! ```
#![warn(missing_docs)]

pub mod degraded;
