//! Scenario 5: sessions that stream their output. Real sub-agents append
//! to `stdout.log` the whole time they run; none of those writes can change
//! a verdict, so they must cost the daemon nothing. Measured: the daemon's
//! context switches (all threads) and CPU while live sessions write, next
//! to a 1-second polling waiter per session (threads of one child process,
//! each doing what csa's `session wait` loop does once a second).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::world::World;
use crate::Plan;

/// utime + stime of a process (all threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat[stat.rfind(')')? + 1..].to_string();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // After the state (field 3): utime is field 14, stime field 15.
            let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
            let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0)
}

fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// Context switches per second and CPU % of `pid` while `during` runs.
fn load_of(pid: u32, during: impl FnOnce() -> Result<Duration>) -> Result<(f64, f64)> {
    let (switches, ticks) = (verdict_support::ctx_switches(pid), cpu_ticks(pid));
    let took = during()?.as_secs_f64();
    let switches = (verdict_support::ctx_switches(pid) - switches) as f64 / took;
    let cpu = (cpu_ticks(pid) - ticks) as f64 / ticks_per_second() / took * 100.0;
    Ok((switches, cpu))
}

/// Appends a line to every session's `stdout.log`, `rate` times a second
/// each, for `seconds`.
fn stream(logs: &mut [std::fs::File], rate: u32, seconds: u64) -> Result<Duration> {
    let start = Instant::now();
    let period = Duration::from_secs(1) / rate;
    let mut next = start;
    let mut line = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        for log in logs.iter_mut() {
            writeln!(log, "output line {line}")?;
        }
        line += 1;
        next += period;
        if let Some(pause) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(pause);
        }
    }
    Ok(start.elapsed())
}

/// The polling side: `verdict-bench --poll DIR…` runs one 1-second poller
/// per directory until killed.
pub fn poll_child(dirs: Vec<String>) -> ! {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for dir in dirs {
        crate::peers::poller(dir.into(), stop.clone());
    }
    loop {
        std::thread::park();
    }
}

pub fn streaming(plan: &Plan) -> Result<()> {
    let mut world = World::start()?;
    let daemon = world.daemon_pid();
    let sessions: Vec<_> = (0..plan.stream_sessions)
        .map(|_| world.session())
        .collect::<Result<_>>()?;
    let refs: Vec<_> = sessions.iter().collect();
    let sockets = crate::scenarios::open_waits(&world, &refs, plan.stream_waiters)?;
    let mut logs = sessions
        .iter()
        .map(|s| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(s.dir.join("stdout.log"))
                .context("open stdout.log")
        })
        .collect::<Result<Vec<_>>>()?;
    let (rate, seconds) = (plan.stream_rate, plan.stream_seconds);
    let (verdict_switches, verdict_cpu) = load_of(daemon, || stream(&mut logs, rate, seconds))?;
    drop(sockets);

    let mut pollers = Command::new(std::env::current_exe()?)
        .arg("--poll")
        .args(sessions.iter().map(|s| s.path()))
        .stdin(Stdio::null())
        .spawn()
        .context("start the polling waiters")?;
    let (poll_switches, poll_cpu) = load_of(pollers.id(), || stream(&mut logs, rate, seconds))?;
    let _ = pollers.kill();
    let _ = pollers.wait();

    println!(
        "\n### 5. Streaming sessions: {} live sessions, each appending a line to stdout.log {} times a second for {} s\n",
        plan.stream_sessions, rate, seconds
    );
    println!("| waiter | context switches per second | CPU |");
    println!("|---|---|---|");
    println!(
        "| verdictd, {} waiters per session (all threads) | {verdict_switches:.1} | {verdict_cpu:.2} % |",
        plan.stream_waiters
    );
    println!(
        "| a 1 s polling waiter per session ({} threads) | {poll_switches:.1} | {poll_cpu:.2} % |",
        plan.stream_sessions
    );
    Ok(())
}
