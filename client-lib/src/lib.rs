//! `verdict-client`: wait for agent sessions' completion verdicts from
//! Rust, through verdictd or, when no daemon can run, by itself.
//!
//! - [`Client`]: connect to verdictd (starting it if nobody listens),
//!   [`wait`](Client::wait) for one session,
//!   [`wait_many`](Client::wait_many) for several on one connection,
//!   [`status`](Client::status). Reconnection with what is left of the
//!   cap, and a deadline for a daemon that stops answering, are built in.
//! - [`Verdict`]: the answer, its [`exit`](Verdict::exit) code and
//!   what `verdict wait` prints for it; [`markers`] has csa's lines.
//! - [`degraded`]: the wait without a daemon that [`Client`] falls back
//!   to (a read-only or foreign runtime directory, a sandbox without
//!   sockets). It answers what the daemon would answer, with the same
//!   rules, from the same events: it never polls.
//!
//! ```no_run
//! use verdict_client::{Cap, Client, Options};
//!
//! let mut client = Client::connect(Options::default())?;
//! let verdict = client.wait("01KM4Q", Cap::Default)?;
//! println!("{} ended: {} (exit {})", verdict.session(), verdict.event.status, verdict.exit());
//! std::process::exit(verdict.exit().code());
//! # Ok::<(), verdict_client::Error>(())
//! ```
//!
//! Without a daemon (this example runs as a test):
//!
//! ```
//! use verdict_client::{Cap, Client, Options};
//!
//! // A session that has finished (here a temporary directory).
//! let session = tempfile::tempdir()?;
//! std::fs::write(session.path().join("result.toml"), "status = \"success\"\nexit_code = 0\n")?;
//!
//! let options = Options { no_daemon: true, ..Options::default() };
//! let mut client = Client::connect(options)?;
//! let path = session.path().to_str().unwrap();
//! let verdict = client.wait(path, Cap::After(std::time::Duration::from_secs(240)))?;
//! assert_eq!(verdict.exit(), verdict_client::Exit::Success);
//! verdict.print_completed(&mut std::io::stdout(), &mut std::io::stderr(), false);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod client;
pub mod connect;
pub mod csa1142;
pub mod daemon;
pub mod degraded;
mod error;
pub mod launch;
pub mod markers;
pub mod sessions;
mod stopper;
pub mod subscribe;
mod verdict;
mod waits;

pub use client::{Cap, Client, Options, Status};
pub use error::{Error, Refusal};
pub use stopper::Stopper;
pub use verdict::{OutputTail, Verdict};
/// The wire types (for replies a caller wants to read field by field).
pub use verdict_proto::wire;
pub use verdict_proto::Exit;
pub use waits::{Mode, Update, Waits, ANSWER_MARGIN, DEFAULT_CAP, MAX_FAILED_RECONNECTS};

/// A session as sent: an id as given; a path (anything with a slash, or a
/// directory here) canonical and absolute, since the daemon does not share
/// our cwd or /proc/self.
pub fn session_arg(session: &str) -> Result<String, String> {
    if session.is_empty() {
        return Err("the session must not be empty; give a session id or directory".into());
    }
    let is_path = session.contains('/')
        || session == "."
        || session == ".."
        || std::path::Path::new(session).is_dir();
    if !is_path {
        return Ok(session.to_string());
    }
    let path = std::fs::canonicalize(session)
        .or_else(|_| std::path::absolute(session))
        .map_err(|err| format!("cannot resolve the path {session}: {err}"))?;
    Ok(path.to_string_lossy().into_owned())
}
