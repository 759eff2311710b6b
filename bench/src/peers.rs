//! The alternatives verdict replaces, driven on the same events:
//!
//! - a 1-second polling waiter, the way csa's `session wait` works today:
//!   read the session files and check the process once a second;
//! - a shell waiter built on `inotifywait` (inotify-tools), waiting for the
//!   completion packet;
//! - a watchman subscription on the session root (watchman from Debian),
//!   with the default settle and with `settle = 1`.
//!
//! A peer that is not installed is reported as skipped with the reason.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use verdict_core::liveness;
use verdict_core::rules::{decide, Decision, Phase, Snapshot};

/// How often the polling waiter looks, as csa's `session wait` does.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

fn finished(dir: &Path) -> bool {
    let snap = Snapshot::read(dir);
    let live = liveness::observe(dir, snap.pid.value(), &[], true).liveness;
    let phase = Phase {
        cap_fired: false,
        grace_over: true,
        launch_over: false,
    };
    matches!(decide(&snap, live, phase), Decision::Verdict(_))
}

/// A polling waiter on its own thread; yields when it saw the verdict.
pub fn poller(dir: PathBuf, stop: Arc<AtomicBool>) -> JoinHandle<Option<Instant>> {
    std::thread::spawn(move || loop {
        if finished(&dir) {
            return Some(Instant::now());
        }
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    })
}

/// Whether a program can be run.
pub fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

const INOTIFY_WAITER: &str = r#"
d=$1
while [ ! -e "$d/daemon-completion.toml" ]; do
  inotifywait -t 10 -e create -e moved_to -e close_write "$d" >/dev/null 2>&3 || true
done 3>&2
echo done
"#;

/// An `inotifywait` shell waiter, returned once its watch is established.
pub fn inotify_waiter(dir: &Path) -> Result<(Child, JoinHandle<Option<Instant>>)> {
    let mut child = Command::new("sh")
        .args(["-c", INOTIFY_WAITER, "sh"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn the inotifywait waiter")?;
    let mut stderr = BufReader::new(child.stderr.take().context("stderr")?);
    let mut line = String::new();
    loop {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            bail!("inotifywait exited before establishing its watch");
        }
        if line.contains("Watches established") {
            break;
        }
    }
    let stdout = child.stdout.take().context("stdout")?;
    let done = std::thread::spawn(move || {
        let _keep_stderr_open = stderr;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .ok()
            .filter(|n| *n > 0)
            .map(|_| Instant::now())
    });
    Ok((child, done))
}

/// A watchman server watching the session root, with one subscription
/// for completion packets.
pub struct Watchman {
    server: Child,
    commands: BufReader<UnixStream>,
    root: PathBuf,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Watchman {
    /// Starts a private watchman; `settle` in ms (None: watchman's default).
    pub fn start(tmp: &Path, root: &Path, settle: Option<u64>) -> Result<Watchman> {
        let tag = settle.map_or_else(|| "default".to_string(), |ms| ms.to_string());
        let dir = tmp.join(format!("watchman-{tag}"));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("watchman.json");
        let settings = settle.map_or_else(|| json!({}), |ms| json!({ "settle": ms }));
        std::fs::write(&config, settings.to_string())?;
        let sock = dir.join("sock");
        let server = Command::new("watchman")
            .arg("--foreground")
            .arg(format!("--sockname={}", sock.display()))
            .arg(format!("--statefile={}", dir.join("state").display()))
            .arg(format!("--logfile={}", dir.join("log").display()))
            .arg(format!("--pidfile={}", dir.join("pid").display()))
            .arg("--no-save-state")
            .env("WATCHMAN_CONFIG_FILE", &config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start watchman")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match UnixStream::connect(&sock) {
                Ok(stream) => break stream,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(err) => bail!("watchman did not start: {err}"),
            }
        };
        let mut commands = BufReader::new(stream);
        let root_str = root.to_str().context("utf-8 root")?;
        command(&mut commands, &json!(["watch", root_str]))?;
        let mut subscription = BufReader::new(UnixStream::connect(&sock)?);
        let subscribe = json!(["subscribe", root_str, "verdict-bench",
            {"expression": ["name", "daemon-completion.toml"], "fields": ["name"]}]);
        command(&mut subscription, &subscribe)?;
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut line = String::new();
            while subscription.read_line(&mut line).is_ok_and(|n| n > 0) {
                let at = Instant::now();
                if let Ok(pdu) = serde_json::from_str::<Value>(&line) {
                    for name in pdu["files"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if let Some(session) = name.split('/').next() {
                            if let Ok(mut seen) = sink.lock() {
                                seen.entry(session.to_string()).or_insert(at);
                            }
                        }
                    }
                }
                line.clear();
            }
        });
        Ok(Watchman {
            server,
            commands,
            root: root.to_path_buf(),
            seen,
        })
    }

    /// Returns once watchman has caught up with the filesystem.
    pub fn sync(&mut self) -> Result<()> {
        let root = self.root.to_str().context("utf-8 root")?;
        command(
            &mut self.commands,
            &json!(["clock", root, {"sync_timeout": 5000}]),
        )?;
        Ok(())
    }

    /// When the subscription reported `session`'s packet, waiting up to `limit`.
    pub fn seen(&self, session: &str, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = self
                .seen
                .lock()
                .ok()
                .and_then(|seen| seen.get(session).copied())
            {
                return Some(at);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Watchman {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn command(conn: &mut BufReader<UnixStream>, request: &Value) -> Result<Value> {
    let stream = conn.get_mut();
    stream.write_all(request.to_string().as_bytes())?;
    stream.write_all(b"\n")?;
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            bail!("watchman closed the connection");
        }
        let reply: Value = serde_json::from_str(&line)?;
        if reply.get("unilateral").is_some()
            || reply.get("subscription").is_some() && reply.get("subscribe").is_none()
        {
            continue;
        }
        if let Some(error) = reply.get("error") {
            bail!("watchman: {error}");
        }
        return Ok(reply);
    }
}
