//! Scenario 11: `verdict top` against many sessions ending within a
//! second. It runs in a real terminal (tmux); the sessions end with one
//! kill of their process group. Measured: from the kill to the screen
//! saying none runs (it kept up), and the CPU `verdict-top` used meanwhile.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::peers;
use crate::stats::human;
use crate::world::World;
use crate::Plan;

struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
            .context("tmux")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits (bounded) until the screen satisfies `check`.
    fn until(&self, what: &str, mut check: impl FnMut(&str) -> bool) -> Result<Instant> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.cmd(&["capture-pane", "-p", "-t", "0"])?;
            if check(&screen) {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("verdict top never showed {what}:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// User + system CPU of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // After the name: state is field 3, utime 14, stime 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) as f64 / rustix::param::clock_ticks_per_second() as f64
}

pub fn top(plan: &Plan) -> Result<()> {
    if !peers::have("tmux", "-V") {
        println!("\n(scenario 11 skipped: tmux is not installed)");
        return Ok(());
    }
    let world = World::start()?;
    let top_bin = world.bin_dir.join("verdict-top");
    if !top_bin.is_file() {
        bail!("{} is missing: cargo build --release", top_bin.display());
    }
    let sessions = world.root.join("proj/sessions");
    std::fs::create_dir_all(&sessions)?;
    let tmux = Tmux(format!("bench-{}", std::process::id()));
    let shell = format!("{} --socket {}", top_bin.display(), world.socket.display());
    tmux.cmd(&["new-session", "-d", "-x", "120", "-y", "40", &shell])?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Some(pid) = verdict_support::processes_of("verdict-top", &world.socket).first() {
            break *pid;
        }
        if Instant::now() > deadline {
            bail!("verdict-top did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Subscribed before the sessions appear, so that each is followed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while world.status()?["subscribers"] != 1 {
        if Instant::now() > deadline {
            bail!("verdict-top did not subscribe");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = plan.top_sessions;
    let mut procs = Vec::with_capacity(n);
    let mut group = 0;
    for i in 0..n {
        let mut session = verdict_support::Session::create(sessions.join(format!("01JTOP{i:06}")));
        let pid = session.start_process_in_group(Some(group));
        if i == 0 {
            group = pid;
        }
        session.write("result.toml", "status = \"success\"\nexit_code = 0\n");
        procs.push(session);
    }
    let running = format!("· {n} running");
    // Every start shown; if some never are, say how many were (a finding,
    // not a reason to stop measuring the ends).
    let shown = match tmux.until(&running, |s| s.contains(&running)) {
        Ok(_) => n,
        Err(_) => {
            let screen = tmux.cmd(&["capture-pane", "-p", "-t", "0"])?;
            screen
                .split(" running")
                .next()
                .and_then(|head| head.rsplit(' ').next())
                .and_then(|count| count.parse().ok())
                .unwrap_or(0)
        }
    };
    let (cpu0, rss) = (cpu_seconds(pid), verdict_support::rss_kib(pid));
    let t0 = Instant::now();
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(group).context("group")?,
        rustix::process::Signal::KILL,
    )?;
    // When the daemon had sent every verdict, and when the screen had
    // drawn every end: the gap is what verdict-top lagged behind.
    let mut sent = None;
    let done = tmux.until("no running session", |s| {
        if sent.is_none()
            && world
                .status()
                .is_ok_and(|st| st["verdicts_sent"].as_u64() >= Some(n as u64))
        {
            sent = Some(Instant::now());
        }
        s.contains("· 0 running")
    })?;
    let sent = sent.unwrap_or(done);
    let window = done - t0;
    let cpu = cpu_seconds(pid) - cpu0;
    drop(procs);
    println!("\n### 11. `verdict top`: {n} sessions ending at once (one kill of their group), in a 120×40 tmux\n");
    println!("| what | measured |");
    println!("|---|---|");
    println!(
        "| kill → the screen shows 0 running (every end drawn) | {} |",
        human(window)
    );
    println!(
        "| kill → the daemon has sent every verdict | {} |",
        human(sent - t0)
    );
    println!(
        "| verdict-top behind the daemon (its backlog, as time) | {} |",
        human(done.saturating_duration_since(sent))
    );
    println!(
        "| verdict-top CPU in that window | {:.2} s ({:.0} % of one core) |",
        cpu,
        100.0 * cpu / window.as_secs_f64().max(1e-9)
    );
    println!(
        "| verdict-top RSS with {n} rows | {:.1} MiB |",
        rss as f64 / 1024.0
    );
    if shown < n {
        println!(
            "| **starts shown before the kill** | {shown} of {n}: some starts never reached the view |"
        );
    }
    Ok(())
}
