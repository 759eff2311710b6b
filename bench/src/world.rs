//! The world a benchmark runs in: release binaries, a private temp dir, a
//! daemon on its own socket, and session directories whose "session
//! process" is a real child (`sleep`) named in `daemon.pid`.
//!
//! The event is always the same: the session renames `result.toml` into
//! place; the harness takes the timestamp; the session exits (SIGKILL).
//! Latencies are measured from that timestamp. For the peer comparison the
//! session also renames `daemon-completion.toml` into place right before it
//! exits (after the timestamp), since file-watching peers need a last file.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A temp dir with a running daemon.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub socket: PathBuf,
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    pub daemon: Child,
    next: u64,
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
        let tmp = tempfile::Builder::new().prefix("verdict-bench").tempdir()?;
        let root = tmp.path().join("sessions");
        std::fs::create_dir(&root)?;
        let socket = tmp.path().join("verdictd.sock");
        std::fs::write(tmp.path().join("none.toml"), "")?;
        let daemon = Command::new(bin_dir.join("verdictd"))
            .arg("--socket")
            .arg(&socket)
            .arg("--config")
            .arg(tmp.path().join("none.toml"))
            .arg("--root")
            .arg(&root)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .context("start verdictd")?;
        let mut world = World {
            tmp,
            socket,
            root,
            bin_dir,
            daemon,
            next: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&world.socket).is_err() {
            if Instant::now() > deadline || world.daemon.try_wait()?.is_some() {
                bail!("verdictd did not start listening");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(world)
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.id()
    }

    /// A new session directory with a live session process.
    pub fn session(&mut self) -> Result<Session> {
        self.next += 1;
        let id = format!("01JBENCH{:08}", self.next);
        let dir = self.root.join(&id);
        std::fs::create_dir(&dir)?;
        Session::start(dir, id)
    }

    /// A new session directory with no process named (no `daemon.pid`).
    pub fn bare_session(&mut self) -> Result<PathBuf> {
        self.next += 1;
        let dir = self.root.join(format!("01JBARE{:08}", self.next));
        std::fs::create_dir(&dir)?;
        write_atomic(&dir, "stdout.log", "benchmark session output\n")?;
        Ok(dir)
    }

    /// A new session whose process joins process group `group` (0: a
    /// new group led by it), so that many sessions can end at once.
    pub fn session_in_group(&mut self, group: i32) -> Result<Session> {
        self.next += 1;
        let id = format!("01JGROUP{:08}", self.next);
        let dir = self.root.join(&id);
        std::fs::create_dir(&dir)?;
        Session::spawn(dir, id, Some(group))
    }

    /// A connected protocol client.
    pub fn client(&self) -> Result<Client> {
        Client::connect(&self.socket)
    }

    /// The daemon's counters.
    pub fn status(&self) -> Result<Value> {
        let mut c = self.client()?;
        c.send(r#"{"v":1,"id":"s","op":"status"}"#)?;
        c.recv()
    }

    /// Waits (bounded) until the daemon holds `n` waiters.
    pub fn wait_for_waiters(&self, n: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.status()?["waiters"].as_u64() != Some(n) {
            if Instant::now() > deadline {
                bail!("the daemon never reached {n} waiters");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A session directory and its process.
pub struct Session {
    pub dir: PathBuf,
    pub id: String,
    child: Child,
}

impl Session {
    pub fn start(dir: PathBuf, id: String) -> Result<Session> {
        Session::spawn(dir, id, None)
    }

    fn spawn(dir: PathBuf, id: String, group: Option<i32>) -> Result<Session> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new("sleep");
        command.arg("3600").stdin(Stdio::null());
        if let Some(group) = group {
            command.process_group(group);
        }
        let child = command.spawn().context("spawn sleep")?;
        let pid = child.id() as i32;
        let start = verdict_proto::liveness::proc_stat(pid)
            .context("read /proc/<pid>/stat")?
            .starttime;
        write_atomic(&dir, "daemon.pid", &format!("{pid} {start}\n"))?;
        write_atomic(&dir, "stdout.log", "benchmark session output\n")?;
        Ok(Session { dir, id, child })
    }

    pub fn path(&self) -> &str {
        self.dir.to_str().unwrap_or("")
    }

    /// The session's result lands (before the exit).
    pub fn write_result(&self) -> Result<()> {
        write_atomic(
            &self.dir,
            "result.toml",
            "status = \"success\"\nexit_code = 0\n",
        )
    }

    /// The session process exits. Returns the timestamp taken right before.
    pub fn exit(&mut self) -> Result<Instant> {
        let t0 = Instant::now();
        self.child.kill()?;
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
        )?;
        self.child.kill()?;
        Ok(t0)
    }

    /// The process's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills without timing (for many sessions at once).
    pub fn kill(&mut self) -> Result<()> {
        Ok(self.child.kill()?)
    }

    pub fn reap(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reap();
    }
}

pub fn write_atomic(dir: &Path, name: &str, contents: &str) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// A blocking NDJSON client.
pub struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Client> {
        let stream = UnixStream::connect(socket).context("connect to verdictd")?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    pub fn send(&mut self, line: &str) -> Result<()> {
        let stream = self.reader.get_mut();
        stream.write_all(line.as_bytes())?;
        stream.write_all(b"\n")?;
        Ok(())
    }

    pub fn recv(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            bail!("verdictd closed the connection");
        }
        Ok(serde_json::from_str(&line)?)
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
