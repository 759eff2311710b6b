//! A temporary world with (usually) a running daemon.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use crate::{bin, eventually, output_within, signal, Client, Run, Session};

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
        crate::proc::started(child.id() as i32);
        self.daemon = Some(child);
        eventually("the daemon to answer", || self.try_ping().then_some(()));
    }

    /// The daemon child started by this harness.
    pub fn daemon(&mut self) -> &mut Child {
        self.daemon.as_mut().expect("daemon started")
    }

    /// The pid of the daemon this harness started.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
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

    /// `csa <args…>` through a `csa` symlink to verdict (in the harness's
    /// `bin/`), isolated like [`Harness::verdict`] and on our socket
    /// through `$VERDICT_SOCKET`, since csa's command line has no
    /// `--socket`.
    pub fn csa(&self, args: &[&str]) -> Command {
        let dir = self.tmp.path().join("bin");
        let csa = dir.join("csa");
        if !csa.exists() {
            std::fs::create_dir_all(&dir).expect("bin dir");
            std::os::unix::fs::symlink(bin("verdict"), &csa).expect("csa symlink");
        }
        let mut command = Command::new(csa);
        self.isolate(&mut command);
        command
            .args(args)
            .env("VERDICT_SOCKET", &self.socket)
            .stdin(Stdio::null());
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

    /// Round-trip time of a ping on a fresh connection (answered within
    /// the deadline, or the test fails).
    pub fn ping_latency(&self) -> std::time::Duration {
        let start = std::time::Instant::now();
        let mut c = self.connect();
        c.send(r#"{"v":1,"id":1,"op":"ping"}"#);
        assert_eq!(c.recv()["event"], "pong");
        start.elapsed()
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

    /// A new, empty session directory at `dir` (named by its last part).
    pub fn session_at(&self, dir: PathBuf) -> Session {
        Session::create(dir)
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
        // it through the lock file, and signal it only if that pid is still
        // a verdictd serving our socket (pids are reused, and as root a
        // stale lock could name anybody's process).
        if let Some(pid) = self.locked_pid().filter(|pid| serves(*pid, &self.socket)) {
            signal(pid, rustix::process::Signal::KILL);
        }
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `pid` is a live `verdictd` (not a zombie) whose command line names
/// `socket`: the check `verdict stop` makes, and the socket besides.
pub fn serves(pid: i32, socket: &Path) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let socket = socket.as_os_str().as_encoded_bytes();
    comm.trim() == "verdictd"
        && crate::proc::try_starttime(pid)
            .is_some_and(|start| crate::proc::running_since(pid, start))
        && cmdline.split(|b| *b == 0).any(|arg| arg == socket)
}
