//! The harness for end-to-end tests: a real `verdictd` on a socket in a
//! temporary directory, real session directories with a real child process
//! standing in for the session process, the real `verdict` binary, and a
//! raw protocol client. Every wait here has a deadline; nothing sleeps to
//! synchronise.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use wait_timeout::ChildExt;

/// Longest any single step may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Path of one of the workspace's binaries, built on first use if needed.
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // target/<profile>/deps/e2e-<hash> → target/<profile>
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf();
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
pub fn output_within(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    finish(&mut child)
}

/// Waits for a spawned child (with piped output) within [`DEADLINE`].
pub fn finish(child: &mut Child) -> Output {
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
    let status = match child.wait_timeout(DEADLINE).expect("wait") {
        Some(status) => status,
        None => {
            let _ = child.kill();
            panic!("child did not finish within {DEADLINE:?}");
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

/// A temporary world: a private directory with a socket path, a session
/// root, a config file, and (usually) a running daemon.
#[derive(Debug)]
pub struct Harness {
    /// Everything lives under here; removed on drop.
    pub tmp: TempDir,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// A session root passed with `--root`.
    pub root: PathBuf,
    /// The daemon's config file.
    pub config: PathBuf,
    daemon: Option<Child>,
}

impl Harness {
    /// A harness with a daemon already listening.
    pub fn start() -> Harness {
        Harness::with_config("")
    }

    /// A harness whose daemon reads `config` (TOML).
    pub fn with_config(config: &str) -> Harness {
        let mut harness = Harness::without_daemon();
        std::fs::write(&harness.config, config).expect("write config");
        harness.spawn_daemon();
        harness
    }

    /// A harness with no daemon (for auto-spawn and start-up tests).
    pub fn without_daemon() -> Harness {
        let tmp = tempfile::Builder::new()
            .prefix("verdict-e2e")
            .tempdir()
            .expect("tempdir");
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).expect("root");
        let config = tmp.path().join("verdictd.toml");
        std::fs::write(&config, "").expect("config");
        let socket = tmp.path().join("verdictd.sock");
        Harness {
            tmp,
            socket,
            root,
            config,
            daemon: None,
        }
    }

    /// A `verdictd` command for this world (not started).
    pub fn daemon_command(&self) -> Command {
        self.daemon_command_on(&self.socket)
    }

    /// A `verdictd` command for this world on another socket path.
    pub fn daemon_command_on(&self, socket: &Path) -> Command {
        let mut command = Command::new(bin("verdictd"));
        command
            .arg("--socket")
            .arg(socket)
            .arg("--config")
            .arg(&self.config)
            .arg("--root")
            .arg(&self.root);
        self.isolate(&mut command);
        command
    }

    /// Starts the daemon and waits until it answers a ping.
    pub fn spawn_daemon(&mut self) {
        let child = self
            .daemon_command()
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn verdictd");
        self.daemon = Some(child);
        eventually("the daemon to answer", || self.try_ping().then_some(()));
    }

    /// The daemon child started by this harness.
    pub fn daemon(&mut self) -> &mut Child {
        self.daemon.as_mut().expect("daemon started")
    }

    /// Takes the daemon child out of the harness (the test owns it now).
    pub fn take_daemon(&mut self) -> Child {
        self.daemon.take().expect("daemon started")
    }

    fn try_ping(&self) -> bool {
        let Ok(stream) = UnixStream::connect(&self.socket) else {
            return false;
        };
        let mut client = Client::from_stream(stream);
        client.send(r#"{"v":1,"id":0,"op":"ping"}"#);
        client
            .try_recv()
            .is_some_and(|reply| reply["event"] == "pong")
    }

    /// Keeps child processes away from the real user's state and sockets.
    pub fn isolate(&self, command: &mut Command) {
        let home = self.tmp.path().join("home");
        command
            .env("HOME", &home)
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("VERDICT_SOCKET")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID");
    }

    /// `verdict <args…> --socket <ours>` (not started).
    pub fn verdict(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin("verdict"));
        command
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .stdin(Stdio::null());
        self.isolate(&mut command);
        command
    }

    /// Runs `verdict wait <session> <extra…>` to completion.
    pub fn wait(&self, session: &str, extra: &[&str]) -> Run {
        let mut args = vec!["wait", session];
        args.extend_from_slice(extra);
        Run::from(output_within(self.verdict(&args)))
    }

    /// Starts `verdict wait` in the background.
    pub fn spawn_wait(&self, session: &str, extra: &[&str]) -> Child {
        let mut args = vec!["wait", session];
        args.extend_from_slice(extra);
        self.verdict(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn verdict")
    }

    /// A raw protocol connection.
    pub fn connect(&self) -> Client {
        Client::from_stream(UnixStream::connect(&self.socket).expect("connect to verdictd"))
    }

    /// The daemon's `status` counters.
    pub fn status(&self) -> Value {
        self.try_status().expect("verdictd answers status")
    }

    /// The daemon's `status` counters, or `None` if nothing answers.
    pub fn try_status(&self) -> Option<Value> {
        let mut client = Client::from_stream(UnixStream::connect(&self.socket).ok()?);
        client.send(r#"{"v":1,"id":"s","op":"status"}"#);
        client.try_recv()
    }

    /// Waits until a daemon (perhaps one a client started) holds `n` waiters.
    pub fn wait_for_waiters(&self, n: u64) {
        eventually(&format!("{n} waiters"), || {
            (self.try_status()?["waiters"].as_u64() == Some(n)).then_some(())
        });
    }

    /// A new, empty session directory under the root.
    pub fn session(&self, id: &str) -> Session {
        self.session_at(self.root.join(id))
    }

    /// A new, empty session directory where csa puts them by default:
    /// `$XDG_STATE_HOME/cli-sub-agent/<project>/sessions/<id>`, found by
    /// id with or without a daemon.
    pub fn csa_session(&self, project: &str, id: &str) -> Session {
        let state = self.tmp.path().join("home/state/cli-sub-agent");
        self.session_at(state.join(project).join("sessions").join(id))
    }

    fn session_at(&self, dir: PathBuf) -> Session {
        let id = dir
            .file_name()
            .expect("session id")
            .to_string_lossy()
            .into_owned();
        std::fs::create_dir_all(&dir).expect("session dir");
        Session {
            dir,
            id,
            process: None,
        }
    }

    /// The pid written in the daemon's lock file.
    pub fn locked_pid(&self) -> Option<i32> {
        let mut lock = self.socket.as_os_str().to_owned();
        lock.push(".lock");
        std::fs::read_to_string(PathBuf::from(lock))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // A daemon started by a client (auto-spawn) is not our child: find
        // it through the lock file.
        if let Some(pid) = self.locked_pid() {
            signal(pid, rustix::process::Signal::KILL);
        }
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `sig` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
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

/// One session directory, and the process standing in for the session.
#[derive(Debug)]
pub struct Session {
    /// The directory.
    pub dir: PathBuf,
    /// Its name.
    pub id: String,
    process: Option<Child>,
}

impl Session {
    /// The directory as a string.
    pub fn path(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp path")
    }

    /// Starts a real process and writes `daemon.pid` (`<pid> <starttime>`).
    pub fn start_process(&mut self) -> i32 {
        let (child, record) = sleeper();
        self.write("daemon.pid", &record);
        let pid = child.id() as i32;
        self.process = Some(child);
        pid
    }

    /// Kills the session process and reaps it.
    pub fn end_process(&mut self) {
        let mut child = self.process.take().expect("a session process");
        child.kill().expect("kill session process");
        child.wait().expect("reap session process");
    }

    /// Writes a file the way csa does: to a temp name, then renamed in.
    pub fn write(&self, name: &str, contents: &str) {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write temp file");
        std::fs::rename(&tmp, self.dir.join(name)).expect("rename into place");
    }

    /// Writes `result.toml`.
    pub fn write_result(&self, status: &str, exit_code: i32) {
        let summary = "summary = \"did the thing\"\n";
        self.write(
            "result.toml",
            &format!("status = \"{status}\"\nexit_code = {exit_code}\n{summary}"),
        );
    }

    /// Writes `daemon-completion.toml`.
    pub fn write_packet(&self, status: &str, exit_code: i32) {
        self.write(
            "daemon-completion.toml",
            &format!("exit_code = {exit_code}\nstatus = \"{status}\"\n"),
        );
    }

    /// Writes a non-empty `stdout.log`.
    pub fn write_stdout(&self) {
        self.write("stdout.log", "some output\n");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A stand-in session process (`sleep 600`) and its `daemon.pid` record,
/// `"<pid> <starttime>\n"`.
pub fn sleeper() -> (Child, String) {
    let child = Command::new("sleep")
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let pid = child.id() as i32;
    let record = format!("{pid} {}\n", starttime(pid));
    (child, record)
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

/// Field 22 of `/proc/<pid>/stat`.
pub fn starttime(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 1..];
    rest.split_whitespace()
        .nth(19)
        .and_then(|field| field.parse().ok())
        .expect("starttime field")
}

/// A raw NDJSON connection to the daemon; every read has [`DEADLINE`].
#[derive(Debug)]
pub struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Wraps a connected stream.
    pub fn from_stream(stream: UnixStream) -> Client {
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("read timeout");
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// Sends one line (a newline is added).
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("send to verdictd");
    }

    /// Sends bytes the daemon may stop reading halfway (an oversized line
    /// it refuses and then closes on): a failed write is not an error.
    pub fn send_may_be_cut(&mut self, bytes: &[u8]) {
        let _ = self.reader.get_mut().write_all(bytes);
    }

    /// The next reply, or `None` at end of stream or on error.
    pub fn try_recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("bad reply {line:?}: {err}")),
            ),
        }
    }

    /// The next reply; fails the test at end of stream or after the deadline.
    pub fn recv(&mut self) -> Value {
        self.try_recv()
            .expect("a reply from verdictd within the deadline")
    }

    /// True once the daemon has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        self.try_recv().is_none()
    }
}

/// Resident memory of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc fd")
        .count()
}

/// inotify watches held by `pid`, summed over its inotify instances.
pub fn inotify_watches(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|info| {
            info.lines()
                .filter(|line| line.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

/// Raises this process's open-files limit to its hard limit (tests that
/// open thousands of connections).
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Processes (not zombies) whose command line names `verdictd` and `needle`.
pub fn daemons_serving(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let first = cmdline.split(' ').next().unwrap_or("");
            first.ends_with("verdictd") && cmdline.contains(&needle)
        })
        .collect()
}

impl Session {
    /// A session whose process has already ended (`daemon.pid` names it).
    pub fn ended(harness: &Harness, id: &str) -> Session {
        let mut session = harness.session(id);
        session.start_process();
        session.end_process();
        session
    }
}

impl Client {
    /// Sends a `wait` for `session` with request id `id`.
    pub fn wait(&mut self, id: impl std::fmt::Display, session: &str, cap_ms: u64) {
        self.send(&format!(
            r#"{{"v":1,"id":"{id}","op":"wait","session":"{session}","cap_ms":{cap_ms}}}"#
        ));
    }

    /// Receives replies until `count` waits have a verdict or error;
    /// `watching` replies are skipped. Returns them by id.
    pub fn verdicts(&mut self, count: usize) -> std::collections::HashMap<String, Value> {
        let mut found = std::collections::HashMap::new();
        while found.len() < count {
            let reply = self.recv();
            if reply["event"] == "verdict" || reply["event"] == "error" {
                let id = reply["id"]
                    .as_str()
                    .map_or_else(|| reply["id"].to_string(), str::to_string);
                found.insert(id, reply);
            }
        }
        found
    }
}
