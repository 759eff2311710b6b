//! The world a benchmark runs in: the shared test support
//! (`verdict-support`: a daemon on its own socket in a private temp dir,
//! session directories whose "session process" is a real child named in
//! `daemon.pid`, a raw protocol client), over the release binaries, with
//! the timestamps the benchmarks take.
//!
//! The event is always the same: the session renames `result.toml` into
//! place, [`LEAD`] before its exit as csa's sessions do (or back to back,
//! the worst case); the harness takes the timestamp; the session exits
//! (SIGKILL). Latencies are measured from that timestamp. For the peer
//! comparison the session also renames `daemon-completion.toml` into place
//! right before it exits (after the timestamp), since file-watching peers
//! need a last file.
//!
//! Sessions are made ahead of time and aged past the 2 s in which a
//! file's stamp is too recent to trust (see `verdict_core::files`), as
//! real sessions, minutes old when they end, are.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use verdict_support::{write_atomic, Harness};

/// How long before its exit a session's `result.toml` lands, as in csa
/// (the result is written, then the process tears down).
pub const LEAD: Duration = Duration::from_millis(3);

/// Older than this, a session's files are past the racy-stamp window.
pub const AGE: Duration = Duration::from_millis(2_100);

/// A temp dir with a running daemon (the harness's fields, by `Deref`).
pub struct World {
    harness: Harness,
    /// Where the release binaries are.
    pub bin_dir: PathBuf,
    next: u64,
}

impl Deref for World {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.harness
    }
}

impl World {
    pub fn start() -> Result<World> {
        let exe = std::env::current_exe()?;
        let bin_dir = exe
            .parent()
            .context("bench binary has no directory")?
            .to_path_buf();
        for name in ["verdictd", "verdict"] {
            if !bin_dir.join(name).is_file() {
                bail!(
                    "{} is missing: run `cargo build --release` first",
                    bin_dir.join(name).display()
                );
            }
        }
        Ok(World {
            harness: Harness::start(),
            bin_dir,
            next: 0,
        })
    }

    pub fn daemon_pid(&self) -> u32 {
        self.harness.daemon_pid().unwrap_or(0)
    }

    fn next_dir(&mut self, prefix: &str) -> PathBuf {
        self.next += 1;
        self.root.join(format!("{prefix}{:08}", self.next))
    }

    /// A new session directory with a live session process.
    pub fn session(&mut self) -> Result<Session> {
        self.session_in(None, "01JBENCH")
    }

    /// `n` new sessions, returned once the youngest is older than the
    /// racy-stamp window ([`AGE`]).
    pub fn aged_sessions(&mut self, n: usize) -> Result<Vec<Session>> {
        let sessions = (0..n).map(|_| self.session()).collect::<Result<Vec<_>>>()?;
        std::thread::sleep(AGE);
        Ok(sessions)
    }

    /// A new session directory with no process named (no `daemon.pid`).
    pub fn bare_session(&mut self) -> Result<PathBuf> {
        let session = verdict_support::Session::create(self.next_dir("01JBARE"));
        session.write("stdout.log", "benchmark session output\n");
        Ok(session.dir.clone())
    }

    /// A new session whose process joins process group `group` (0: a
    /// new group led by it), so that many sessions can end at once.
    pub fn session_in_group(&mut self, group: i32) -> Result<Session> {
        self.session_in(Some(group), "01JGROUP")
    }

    fn session_in(&mut self, group: Option<i32>, prefix: &str) -> Result<Session> {
        let mut inner = verdict_support::Session::create(self.next_dir(prefix));
        inner.start_process_in_group(group);
        inner.write("stdout.log", "benchmark session output\n");
        Ok(Session { inner })
    }

    /// A connected protocol client.
    pub fn client(&self) -> Result<Client> {
        Client::connect(&self.socket)
    }

    /// The daemon's counters.
    pub fn status(&self) -> Result<Value> {
        Ok(self.harness.status())
    }

    /// Waits (bounded) until the daemon holds `n` waiters.
    pub fn wait_for_waiters(&self, n: u64) -> Result<()> {
        self.harness.wait_for_waiters(n);
        Ok(())
    }
}

/// A session directory and its process.
pub struct Session {
    inner: verdict_support::Session,
}

impl Deref for Session {
    type Target = verdict_support::Session;
    fn deref(&self) -> &verdict_support::Session {
        &self.inner
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut verdict_support::Session {
        &mut self.inner
    }
}

impl Session {
    /// The session's result lands (before the exit).
    pub fn write_result(&self) -> Result<()> {
        self.write("result.toml", "status = \"success\"\nexit_code = 0\n");
        Ok(())
    }

    /// The session's result lands, and [`LEAD`] later the process exits.
    /// Returns the timestamp taken right before the exit.
    pub fn finish(&mut self, back_to_back: bool) -> Result<Instant> {
        self.write_result()?;
        if !back_to_back {
            std::thread::sleep(LEAD);
        }
        self.exit()
    }

    /// The session process exits. Returns the timestamp taken right before.
    pub fn exit(&mut self) -> Result<Instant> {
        let t0 = Instant::now();
        self.kill_process();
        Ok(t0)
    }

    /// The session's last acts for file-watching peers: the completion
    /// packet, then the exit. Returns the timestamp taken right before them.
    pub fn finish_with_packet(&mut self) -> Result<Instant> {
        let t0 = Instant::now();
        write_atomic(
            &self.dir,
            "daemon-completion.toml",
            "exit_code = 0\nstatus = \"success\"\n",
        );
        self.kill_process();
        Ok(t0)
    }

    /// The process's pid.
    pub fn pid(&self) -> u32 {
        self.inner.pid().unwrap_or(0)
    }

    /// Kills without timing (for many sessions at once).
    pub fn kill(&mut self) -> Result<()> {
        self.kill_process();
        Ok(())
    }
}

/// A blocking NDJSON client with the benchmarks' two steps.
pub struct Client {
    inner: verdict_support::Client,
}

impl Client {
    pub fn connect(socket: &std::path::Path) -> Result<Client> {
        let stream =
            std::os::unix::net::UnixStream::connect(socket).context("connect to verdictd")?;
        Ok(Client {
            inner: verdict_support::Client::from_stream(stream),
        })
    }

    pub fn send(&mut self, line: &str) -> Result<()> {
        self.inner.send(line);
        Ok(())
    }

    pub fn recv(&mut self) -> Result<Value> {
        self.inner
            .try_recv()
            .context("verdictd closed the connection")
    }

    /// Sends a wait and returns once it is `watching`.
    pub fn watch(&mut self, session: &str) -> Result<()> {
        self.send(&format!(
            r#"{{"v":1,"id":1,"op":"wait","session":"{session}","cap_ms":0}}"#
        ))?;
        let reply = self.recv()?;
        if reply["event"] != "watching" {
            bail!("expected watching, got {reply}");
        }
        Ok(())
    }

    /// Blocks until the verdict; returns when it arrived.
    pub fn verdict(&mut self) -> Result<Instant> {
        let reply = self.recv()?;
        let at = Instant::now();
        if reply["event"] != "verdict" || reply["exit"] != 0 {
            bail!("expected a success verdict, got {reply}");
        }
        Ok(at)
    }
}
