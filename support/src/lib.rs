//! What the end-to-end tests and the benchmarks share: a real `verdictd`
//! on a socket in a temporary directory ([`daemon`]), real session
//! directories with a real child process standing in for the session
//! process ([`session`]), a raw protocol client ([`client`]), and readers
//! of `/proc` ([`proc`]). Every wait here has a deadline; nothing sleeps to
//! synchronise.

pub mod client;
pub mod daemon;
pub mod proc;
pub mod session;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use wait_timeout::ChildExt;

pub use client::Client;
pub use daemon::Harness;
pub use proc::{
    ctx_switches, daemons_serving, fd_count, inotify_max_queued_events, inotify_watches,
    processes_of, raise_fd_limit, rss_kib, running_since, signal, starttime, watches_inode,
};
pub use session::{copy_tree, mkfifo, sleeper, write_atomic, Session, Sleeper};

/// Longest any single step may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Path of one of the workspace's binaries: beside the running executable
/// (a benchmark in `target/release`) or one level up (a test in
/// `target/<profile>/deps`). Built on first use when missing there.
/// `VERDICT_BIN_DIR` names another directory to take them from.
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // Another build's binaries (an older commit's, to see a
        // regression test fail there).
        if let Some(dir) = std::env::var_os("VERDICT_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let exe = std::env::current_exe().expect("test executable path");
        let here = exe.parent().expect("executable dir").to_path_buf();
        let up = here.parent().map(Path::to_path_buf);
        if here.join("verdictd").is_file() {
            return here;
        }
        let dir = up.expect("target dir");
        let built = ["verdictd", "verdict", "verdict-mcp"];
        if !built.iter().all(|name| dir.join(name).is_file()) {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "-p",
                    "verdictd",
                    "-p",
                    "verdict",
                    "-p",
                    "verdict-mcp",
                ])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building the binaries failed");
        }
        dir
    });
    dir.join(name)
}

/// Runs `command` to completion within [`DEADLINE`].
pub fn output_within(command: Command) -> Output {
    output_within_for(command, DEADLINE)
}

/// Runs `command` to completion within `deadline` (a test that gives one
/// process a lot of work).
pub fn output_within_for(mut command: Command, deadline: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    finish_within(&mut child, deadline)
}

/// Waits for a spawned child (with piped output) within [`DEADLINE`].
pub fn finish(child: &mut Child) -> Output {
    finish_within(child, DEADLINE)
}

/// Waits for a spawned child (with piped output) within `deadline`.
pub fn finish_within(child: &mut Child, deadline: Duration) -> Output {
    use std::io::Read;
    // Read the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut buf);
        }
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });
    let status = match child.wait_timeout(deadline).expect("wait") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            panic!("child did not finish within {deadline:?}");
        }
    };
    let stdout = out_thread.join().expect("stdout reader");
    let stderr = err_thread.join().expect("stderr reader");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Retries `check` until it returns `Some`, failing the test after
/// [`DEADLINE`]. For conditions that have no event to wait on.
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The outcome of a finished `verdict` run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 for a signal).
    pub code: i32,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    /// The `SESSION_WAIT_*` marker lines on stderr, in order.
    pub fn markers(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| line.starts_with("<!-- CSA:SESSION_WAIT_"))
            .collect()
    }

    /// The `CALLER_HINT` lines on stderr, in order.
    pub fn hints(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| line.starts_with("<!-- CSA:CALLER_HINT"))
            .collect()
    }

    /// The verdict object printed with `--json`.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:?}"))
    }
}

/// The Python client, `clients/python/verdict_client.py`, run with `args`
/// then `--socket <h's>`, in the harness's environment.
pub fn python_client(h: &Harness, args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python/verdict_client.py"))
        .args(args)
        .arg("--socket")
        .arg(&h.socket)
        .stdin(Stdio::null());
    h.isolate(&mut command);
    command
}
