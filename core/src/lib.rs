//! The session engine of verdict, shared by `verdictd` and the client's
//! degraded mode: reading a session directory's files ([`files`],
//! [`snapshot`]), finding its processes ([`liveness`]), finding it by id
//! ([`resolve`]), watching it ([`watch`]), the completion-verdict rules as
//! a pure function ([`rules`]), and the one state machine that drives them
//! for one session ([`track`]).
//!
//! Deciding a verdict from a session directory:
//!
//! ```
//! use verdict_core::rules::{decide, Decision, Liveness, Phase};
//! use verdict_core::snapshot::Snapshot;
//! use verdict_proto::Exit;
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("result.toml"), "status = \"success\"\nexit_code = 0\n")?;
//! let snapshot = Snapshot::read(dir.path());
//! match decide(&snapshot, Liveness::Unknown, Phase::default()) {
//!     Decision::Verdict(v) => assert_eq!((v.status.as_str(), v.exit()), ("success", Exit::Success)),
//!     other => panic!("expected a verdict, got {other:?}"),
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

pub mod files;
pub mod liveness;
pub mod paths;
pub mod resolve;
pub mod rules;
pub mod snapshot;
pub mod track;
pub mod watch;
