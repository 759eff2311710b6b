//! Reaching the daemon: connect to its socket and, when nothing listens,
//! start `verdictd` detached in its own session and connect once it is up.
//!
//! When several clients race to start a daemon, the daemon's lock lets one
//! win; the losers exit at once and their clients connect to the winner.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a freshly started daemon may take to listen.
const SPAWN_DEADLINE: Duration = Duration::from_secs(10);
/// Longest pause between two connection attempts while a daemon starts.
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// Daemons one client starts at most while nobody listens.
const MAX_SPAWNS: u32 = 4;

/// Connects to `socket`, starting the daemon first if `spawn` allows.
pub fn connect(socket: &Path, spawn: bool) -> Result<UnixStream, String> {
    check_fallback_dir(socket)?;
    match UnixStream::connect(socket) {
        Ok(stream) => return Ok(stream),
        Err(err) if spawn && nobody_listens(&err) => {}
        Err(err) if nobody_listens(&err) => {
            return Err(format!(
                "verdictd is not running at {} ({err}); start it with `verdictd --socket {} &` \
                 or `verdict service install` (`verdict wait` starts it unless given --no-spawn)",
                socket.display(),
                socket.display()
            ))
        }
        Err(err) => {
            return Err(format!(
                "cannot connect to verdictd at {}: {err}",
                socket.display()
            ))
        }
    }
    let mut child = start_daemon(socket)?;
    let mut spawned = 1;
    let deadline = Instant::now() + SPAWN_DEADLINE;
    let mut pause = Duration::from_millis(1);
    loop {
        match UnixStream::connect(socket) {
            Ok(stream) => return Ok(stream),
            Err(err) if Instant::now() >= deadline => {
                let status = match child.try_wait() {
                    Ok(Some(status)) => format!("it exited with {status}"),
                    _ => "it did not start listening".into(),
                };
                return Err(match last_log_line(socket) {
                    Some(reason) => format!(
                        "started verdictd for {}, but {status}: {reason} (see {})",
                        socket.display(),
                        log_path(socket).display()
                    ),
                    None => format!(
                        "started verdictd for {}, but {status} ({err}); see {}",
                        socket.display(),
                        log_path(socket).display()
                    ),
                });
            }
            Err(_) => {
                let exited = child.try_wait().ok().flatten();
                if let Some(status) = exited.filter(|status| !status.success()) {
                    // It refused to start (not a lost race, which exits
                    // 0): its own reason, once, instead of starting more.
                    let reason =
                        last_log_line(socket).unwrap_or_else(|| format!("it exited with {status}"));
                    return Err(format!(
                        "verdictd could not start on {}: {reason} (its log: {})",
                        socket.display(),
                        log_path(socket).display()
                    ));
                }
                // Our daemon lost the start-up race: the winner may still
                // be binding. If nobody shows up, start another.
                if exited.is_some() && pause >= MAX_PAUSE && spawned < MAX_SPAWNS {
                    child = start_daemon(socket)?;
                    spawned += 1;
                    pause = Duration::from_millis(1);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}

/// The daemon's last word in its log (the end of the file, bounded), its
/// `verdictd: ` prefix taken off.
fn last_log_line(socket: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 4096;
    let mut file = std::fs::File::open(log_path(socket)).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    file.take(TAIL).read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let line = text.lines().rev().find(|line| !line.trim().is_empty())?;
    Some(line.trim().trim_start_matches("verdictd: ").to_string())
}

fn nobody_listens(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

pub use verdict_core::paths::log_path;

/// The `verdictd` next to our own executable, else the one on `PATH`.
pub fn find_daemon() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("verdictd")));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("verdictd"));
    beside
        .into_iter()
        .chain(on_path)
        .find(|candidate| candidate.is_file())
}

/// The shared-`/tmp` fallback directory (`/tmp/verdictd-<uid>`, used when
/// `$XDG_RUNTIME_DIR` is unset) must be ours before anything in it is
/// trusted: another user could have made it first, with a fake daemon or a
/// symlink in it. Created 0700 when missing; other socket paths were chosen
/// by the user and are left alone.
fn check_fallback_dir(socket: &Path) -> Result<(), String> {
    let uid = rustix::process::getuid().as_raw();
    let Some(dir) = socket
        .parent()
        .filter(|dir| *dir == verdict_core::paths::fallback_socket_dir(uid))
    else {
        return Ok(());
    };
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    let refuse = |why: String| {
        Err(format!(
            "refusing to use {}: {why}; remove it, or set XDG_RUNTIME_DIR or --socket",
            dir.display()
        ))
    };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(err) => return refuse(format!("it cannot be created ({err})")),
    };
    if !meta.file_type().is_dir() {
        return refuse("it is not a directory (a symlink?)".into());
    }
    if meta.uid() != uid {
        return refuse(format!("it belongs to uid {}, not to you", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return refuse(format!(
            "its mode is {:o}; it must be private (0700)",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The daemon's log next to its socket: never through a symlink, and
/// only a file of our own.
fn open_log(socket: &Path) -> Stdio {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(log_path(socket));
    match file {
        Ok(file)
            if file
                .metadata()
                .is_ok_and(|m| m.uid() == rustix::process::getuid().as_raw() && m.is_file()) =>
        {
            Stdio::from(file)
        }
        _ => Stdio::null(),
    }
}

fn start_daemon(socket: &Path) -> Result<std::process::Child, String> {
    if let Some(dir) = socket.parent() {
        if !dir.is_dir() {
            return Err(format!(
                "cannot start verdictd: the socket directory {} does not exist; create it or choose another --socket",
                dir.display()
            ));
        }
    }
    if let Some(ago) = crate::daemon::stopped_ago(socket) {
        // Said where the user sees it: this client undoes a `verdict stop`.
        eprintln!(
            "verdict: verdictd on {} was stopped with `verdict stop` {ago} s ago; starting it again \
             for this client (stop the client too, with `verdict stop --and-clients`, or give it \
             --no-spawn to leave the daemon stopped)",
            socket.display()
        );
    }
    let log = open_log(socket);
    let binary = find_daemon().unwrap_or_else(|| PathBuf::from("verdictd"));
    let mut command = Command::new(&binary);
    command
        .arg("--socket")
        .arg(socket)
        .arg("--spawned")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // A process group of its own: Ctrl-C at our terminal (sent to the
    // foreground group) and our death do not reach the daemon, and a
    // terminal hang-up signals only the foreground group.
    command.process_group(0);
    command.spawn().map_err(|err| {
        format!(
            "cannot start {}: {err}; install verdictd or put it on PATH",
            binary.display()
        )
    })
}
