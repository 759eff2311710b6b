//! Scenarios 6–8: the path from an exit to a waiter, against its floors.
//!
//! - **Two-hop floor.** Any design where a daemon tells a waiter costs at
//!   least two wake-ups: the kernel wakes the watcher (pidfd readable), the
//!   watcher writes to a socket, the kernel wakes the waiter. The relay
//!   (`verdict-bench --relay SOCKET`) does exactly that and nothing else;
//!   it is read by the same protocol client as verdictd.
//! - **File-event path.** A session with no `daemon.pid` whose
//!   `daemon-completion.toml` is renamed into place, watched by verdict and
//!   by an `inotifywait` process on the same event.
//! - **Syscalls.** `strace -c` attached to verdictd (all threads) while it
//!   sets waits up, and while it answers exits, divided by the count.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::peers;
use crate::stats::{table, Samples};
use crate::world::{Client, Session, World};
use crate::Plan;

/// `verdict-bench --relay SOCKET`: for each connection, read a pid, open
/// its pidfd, say `watching`, block until it is readable, write one line.
pub fn relay_child(args: &[String]) -> ! {
    let code = match args.first().map(|socket| relay(Path::new(socket))) {
        Some(Ok(())) => 0,
        Some(Err(err)) => {
            eprintln!("verdict-bench --relay: {err:#}");
            1
        }
        None => {
            eprintln!("usage: verdict-bench --relay SOCKET");
            2
        }
    };
    std::process::exit(code)
}

fn relay(socket: &Path) -> Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    let listener = UnixListener::bind(socket)?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        if line.is_empty() {
            continue; // a probe: connected and went away
        }
        let pid = line.trim().parse::<i32>().context("pid")?;
        let pid = rustix::process::Pid::from_raw(pid).context("pid 0")?;
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        stream.write_all(b"{\"event\":\"watching\"}\n")?;
        poll(&mut [PollFd::new(&fd, PollFlags::IN)], None)?;
        stream.write_all(b"{\"event\":\"verdict\",\"exit\":0}\n")?;
    }
    Ok(())
}

/// The relay process, listening.
pub struct Relay {
    child: Child,
    socket: std::path::PathBuf,
}

impl Relay {
    pub fn start(world: &World) -> Result<Relay> {
        let socket = world.tmp.path().join("relay.sock");
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--relay")
            .arg(&socket)
            .stdin(Stdio::null())
            .spawn()
            .context("start the relay")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                bail!("the relay did not start listening");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(Relay { child, socket })
    }

    /// A client told of `session`'s exit by the relay.
    pub fn watch(&self, session: &Session) -> Result<Client> {
        let mut client = Client::connect(&self.socket)?;
        client.send(&session.pid().to_string())?;
        if client.recv()?["event"] != "watching" {
            bail!("the relay did not say watching");
        }
        Ok(client)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Scenario 7: the file-event path, verdict next to `inotifywait`.
pub fn file_events(plan: &Plan) -> Result<()> {
    if !peers::have("inotifywait", "--help") {
        println!("\n(scenario 7 skipped: inotify-tools is not installed)");
        return Ok(());
    }
    let mut world = World::start()?;
    let (mut ours, mut theirs, mut missed) = (Vec::new(), Vec::new(), 0);
    for _ in 0..plan.peer_events {
        let dir = world.bare_session()?;
        let mut client = world.client()?;
        client.watch(dir.to_str().context("path")?)?;
        let (mut shell, done) = peers::inotify_waiter(&dir)?;
        let t0 = Instant::now();
        verdict_support::write_atomic(
            &dir,
            "daemon-completion.toml",
            "exit_code = 0\nstatus = \"success\"\n",
        );
        ours.push(client.verdict()? - t0);
        match done.join().ok().flatten() {
            Some(at) => theirs.push(at.saturating_duration_since(t0)),
            None => missed += 1,
        }
        let _ = shell.wait();
    }
    table(
        "7. File-event path: `daemon-completion.toml` renamed in, no process (rename → waiter knows)",
        &[
            Samples::new("verdict (protocol client)", ours, 0),
            Samples::new("`inotifywait` shell waiter", theirs, missed),
        ],
    );
    Ok(())
}

/// `strace -c -f` attached to `pid` while `during` runs: (calls, top rows).
fn strace_count(
    pid: u32,
    during: impl FnOnce() -> Result<()>,
) -> Result<(u64, Vec<(String, u64)>)> {
    let out = tempfile::NamedTempFile::new()?;
    let mut strace = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out.path())
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("start strace")?;
    let mut stderr = BufReader::new(strace.stderr.take().context("stderr")?);
    let mut line = String::new();
    // strace says "Process N attached" (with "with K threads" when there
    // are several) once every thread is attached.
    loop {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            bail!("strace exited before attaching");
        }
        if line.contains("attached") {
            break;
        }
    }
    let ran = during();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(strace.id() as i32).context("strace pid")?,
        rustix::process::Signal::INT,
    )?;
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    strace.wait()?;
    ran?;
    let report = std::fs::read_to_string(out.path())?;
    let mut total = 0;
    let mut rows = Vec::new();
    for line in report.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if fields.len() < 5 || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let calls = fields[3].parse::<u64>().unwrap_or(0);
        let name = fields[fields.len() - 1].to_string();
        if name == "total" {
            total = calls;
        } else {
            rows.push((name, calls));
        }
    }
    rows.sort_by_key(|row| std::cmp::Reverse(row.1));
    Ok((total, rows))
}

/// Scenario 8: syscalls verdictd makes per wait set up and per verdict.
pub fn syscalls(plan: &Plan) -> Result<()> {
    if !peers::have("strace", "-V") {
        println!("\n(scenario 8 skipped: strace is not installed)");
        return Ok(());
    }
    let mut world = World::start()?;
    let daemon = world.daemon_pid();
    let n = plan.peer_events.max(1);
    let mut sessions: Vec<Session> = (0..n).map(|_| world.session()).collect::<Result<_>>()?;
    let mut clients = Vec::new();
    let (setup, setup_rows) = strace_count(daemon, || {
        for session in &sessions {
            let mut client = world.client()?;
            client.watch(session.path())?;
            clients.push(client);
        }
        Ok(())
    })?;
    let (exit, exit_rows) = strace_count(daemon, || {
        for (session, client) in sessions.iter_mut().zip(&mut clients) {
            session.write_result()?;
            session.exit()?;
            client.verdict()?;
            session.reap();
        }
        Ok(())
    })?;
    let per = |calls: u64| calls as f64 / n as f64;
    let top = |rows: &[(String, u64)]| {
        rows.iter()
            .take(8)
            .map(|(name, calls)| format!("{name} {:.1}", per(*calls)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("\n### 8. Syscalls by verdictd (strace -c -f, {n} sessions one after another)\n");
    println!("| step | syscalls each | most frequent (per step) |");
    println!("|---|---|---|");
    println!(
        "| connect + `wait` → `watching` (live session) | {:.1} | {} |",
        per(setup),
        top(&setup_rows)
    );
    println!(
        "| `result.toml` renamed in, process exits → verdict written | {:.1} | {} |",
        per(exit),
        top(&exit_rows)
    );
    Ok(())
}
