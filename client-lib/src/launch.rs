//! Any command as a session in csa's layout (`verdict run`): the session
//! directory, `daemon.pid` naming a supervisor, the command's output in
//! `stdout.log` and `stderr.log`, and at its end `daemon-completion.toml`
//! with its exit code (128 + the signal when one killed it). A
//! `result.toml` the command writes itself (`$VERDICT_SESSION_DIR`) still
//! wins, as the rules say. A command that exits 0 without printing
//! anything gets a `result.toml` saying so (else rule C3 would call its
//! silent success a failure).
//!
//! The supervisor is a process of its own, in a session of its own, so that
//! it survives the caller's terminal closing and the caller itself being
//! killed; `daemon.pid` names it, so that its exit, after the packet is in
//! place, is the session's end.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use verdict_core::files;

/// Where a new session goes.
#[derive(Debug, Clone)]
pub enum Place {
    /// This directory.
    Dir(PathBuf),
    /// `ROOT/sessions/<ID>`.
    Root(PathBuf),
    /// Where csa puts the current project's sessions:
    /// `$XDG_STATE_HOME/cli-sub-agent/<cwd without its leading />/sessions/<ID>`.
    Project,
}

/// The environment variables a command run as a session gets.
pub const SESSION_DIR_VAR: &str = "VERDICT_SESSION_DIR";
/// …and its id.
pub const SESSION_ID_VAR: &str = "VERDICT_SESSION_ID";

/// A fresh ULID (48-bit milliseconds, 80 random bits, Crockford base 32),
/// as csa names its sessions.
pub fn ulid() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut random = [0u8; 10];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut urandom| std::io::Read::read_exact(&mut urandom, &mut random));
    if read.is_err() {
        // Not secret, only distinct: the clock's nanoseconds and the pid.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        random[..4].copy_from_slice(&nanos.to_le_bytes());
        random[4..8].copy_from_slice(&std::process::id().to_le_bytes());
    }
    let bits = (millis & ((1 << 48) - 1)) << 80
        | random.iter().fold(0u128, |a, b| a << 8 | u128::from(*b));
    (0..26)
        .rev()
        .map(|i| ALPHABET[((bits >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// The directory of a new session at `place` named `id` (a fresh ULID when
/// none), made; an existing non-empty directory is refused.
pub fn make_dir(place: &Place, id: Option<&str>) -> Result<(String, PathBuf), String> {
    let id = match id {
        Some(id) if id.is_empty() || id.contains('/') || id.starts_with('.') => {
            return Err(format!(
                "--id {id:?} cannot name a session directory: give a name without '/' that does not start with '.'"
            ))
        }
        Some(id) => id.to_string(),
        None => ulid(),
    };
    let dir = match place {
        Place::Dir(dir) => dir.clone(),
        Place::Root(root) => root.join("sessions").join(&id),
        Place::Project => {
            let cwd = std::env::current_dir()
                .map_err(|err| format!("cannot tell the current directory: {err}"))?;
            let root = verdict_core::paths::default_session_roots()
                .into_iter()
                .next()
                .ok_or("neither $XDG_STATE_HOME nor $HOME is set: give --dir or --root")?;
            let project = cwd.strip_prefix("/").unwrap_or(&cwd).to_path_buf();
            root.join(project).join("sessions").join(&id)
        }
    };
    let dir = if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir()
            .map_err(|err| format!("cannot tell the current directory: {err}"))?
            .join(dir)
    };
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|err| format!("cannot make {}: {err}", parent.display()))?;
    }
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let empty = std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_none());
            if !empty {
                return Err(format!(
                    "{} exists and is not empty: a session directory must be new",
                    dir.display()
                ));
            }
        }
        Err(err) => return Err(format!("cannot make {}: {err}", dir.display())),
    }
    let id = match place {
        Place::Dir(_) => dir
            .file_name()
            .map_or(id, |name| name.to_string_lossy().into_owned()),
        _ => id,
    };
    Ok((id, dir))
}

/// Starts the supervisor of `command` in `dir` (`supervisor` is this
/// program, run as `verdict __supervise`), and returns once `daemon.pid`
/// is in place: `Err` with the reason when the command could not start.
pub fn start(supervisor: &Path, dir: &Path, id: &str, command: &[OsString]) -> Result<u32, String> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(supervisor);
    child
        .arg("__supervise")
        .arg(dir)
        .arg(id)
        .arg("--")
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        child.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into));
    }
    let mut child = child.spawn().map_err(|err| {
        format!(
            "cannot start the supervisor {}: {err}",
            supervisor.display()
        )
    })?;
    let mut said = String::new();
    let _ = child
        .stdout
        .take()
        .map(|mut out| out.read_to_string(&mut said));
    match said.trim().strip_prefix("started ") {
        Some(pid) => pid
            .parse()
            .map_err(|_| format!("the supervisor said {said:?}")),
        None if said.trim().is_empty() => {
            Err("the supervisor exited before starting the command".into())
        }
        None => Err(said.trim().to_string()),
    }
}

/// `verdict __supervise DIR ID -- COMMAND…`: writes `daemon.pid` (itself),
/// runs the command with its output in the session's logs, says `started
/// PID` (or why not) on stdout and closes it, waits, writes the packet.
/// Returns the exit code for the supervisor itself.
pub fn supervise(dir: &Path, id: &str, command: &[OsString]) -> i32 {
    let Some((program, args)) = command.split_first() else {
        return 2;
    };
    let log = |name: &str| std::fs::File::create(dir.join(name));
    let (stdout, stderr) = match (log(files::STDOUT_FILE), log("stderr.log")) {
        (Ok(out), Ok(err)) => (out, err),
        (Err(err), _) | (_, Err(err)) => {
            return tell(&format!(
                "cannot write the logs in {}: {err}",
                dir.display()
            ))
        }
    };
    let record = match verdict_core::liveness::proc_stat(std::process::id() as i32)
        .and_then(|s| s.starttime)
    {
        Some(start) => format!("{} {start}\n", std::process::id()),
        None => format!("{}\n", std::process::id()),
    };
    if let Err(err) = write_atomic(dir, files::PID_FILE, &record) {
        return tell(&format!(
            "cannot write {}: {err}",
            dir.join(files::PID_FILE).display()
        ));
    }
    let spawned = Command::new(program)
        .args(args)
        .env(SESSION_DIR_VAR, dir)
        .env(SESSION_ID_VAR, id)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            let reason = format!("cannot run {}: {err}", program.to_string_lossy());
            let _ = std::fs::write(dir.join("stderr.log"), format!("{reason}\n"));
            let _ = write_packet(dir, 127, "failure", Some(&reason));
            return tell(&reason);
        }
    };
    // The caller has what it waited for; nothing more goes its way.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "started {}", child.id());
    let _ = out.flush();
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }
    let (code, status, reason) = match child.wait() {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(0), _) => (0, "success", None),
                (Some(code), _) => (code, "failure", None),
                (None, Some(signal)) => (
                    128 + signal,
                    "signal",
                    Some(format!("killed by signal {signal}")),
                ),
                (None, None) => (1, "failure", None),
            }
        }
        Err(err) => (
            1,
            "failure",
            Some(format!("cannot wait for the command: {err}")),
        ),
    };
    // Rule C3 fails an exit-0 packet with no output (a session that
    // claims success and says nothing). A quiet command that exited 0 did
    // succeed: say so in a result.toml, unless the command wrote its own.
    let quiet = std::fs::metadata(dir.join(files::STDOUT_FILE)).is_ok_and(|m| m.len() == 0);
    if code == 0 && quiet && !dir.join(files::RESULT_FILE).exists() {
        let summary = format!("{} exited 0 and printed nothing", program.to_string_lossy());
        let result = format!(
            "status = \"success\"\nexit_code = 0\nsummary = {}\n",
            serde_json::to_string(&summary).unwrap_or_else(|_| "\"\"".into())
        );
        let _ = write_atomic(dir, files::RESULT_FILE, &result);
    }
    match write_packet(dir, code, status, reason.as_deref()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Says `message` to the caller (the reason the command did not start).
fn tell(message: &str) -> i32 {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{message}");
    let _ = out.flush();
    1
}

fn write_packet(dir: &Path, code: i32, status: &str, reason: Option<&str>) -> std::io::Result<()> {
    // A JSON string is a TOML basic string (the same escapes).
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
    let mut packet = format!("exit_code = {code}\nstatus = {}\n", quote(status));
    if let Some(reason) = reason {
        packet.push_str(&format!("reason = {}\n", quote(reason)));
    }
    write_atomic(dir, files::PACKET_FILE, &packet)
}

/// Writes `dir/name` to a temp name, then renames it into place.
fn write_atomic(dir: &Path, name: &str, contents: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, dir.join(name))
}
