//! Scenarios 7 and 8: the file-event path, and the syscalls of the exit
//! path (its floors are in `floor.rs`).
//!
//! - **File-event path.** A session with no `daemon.pid` whose
//!   `daemon-completion.toml` is renamed into place, watched by verdict and
//!   by an `inotifywait` process on the same event.
//! - **Syscalls.** `strace -c` attached to verdictd (all threads) while it
//!   sets waits up, and while it answers exits, divided by the count.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::peers;
use crate::stats::{table, Samples};
use crate::world::{Session, World};
use crate::Plan;

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
    let mut sessions: Vec<Session> = world.aged_sessions(n)?;
    let mut clients = Vec::new();
    let (setup, setup_rows) = strace_count(daemon, || {
        for session in &sessions {
            let mut client = world.client()?;
            client.watch(session.path())?;
            clients.push(client);
        }
        Ok(())
    })?;
    // The result lands while the process runs (csa writes it, then tears
    // down); the exit path is counted on its own.
    let (result, result_rows) = strace_count(daemon, || {
        for session in &sessions {
            session.write_result()?;
        }
        std::thread::sleep(crate::world::LEAD);
        Ok(())
    })?;
    let (exit, exit_rows) = strace_count(daemon, || {
        for (session, client) in sessions.iter_mut().zip(&mut clients) {
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
        "| `result.toml` renamed in (process runs) | {:.1} | {} |",
        per(result),
        top(&result_rows)
    );
    println!(
        "| process exits → verdict written | {:.1} | {} |",
        per(exit),
        top(&exit_rows)
    );
    Ok(())
}
