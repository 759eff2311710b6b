//! Scenario 4 of BENCHMARKS.md: what the daemon costs (memory, wake-ups
//! while idle) and what a client costs to start.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::stats::{human, Samples};
use crate::world::World;
use crate::Plan;
use verdict_support::{ctx_switches, rss_kib};

fn idle_rate(pid: u32, seconds: u64) -> f64 {
    let before = ctx_switches(pid);
    std::thread::sleep(Duration::from_secs(seconds));
    (ctx_switches(pid) - before) as f64 / seconds as f64
}

fn median_run(runs: usize, mut command: impl FnMut() -> Command) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let status = command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        times.push(start.elapsed());
        if !status.success() {
            bail!("a timed command failed: {status}");
        }
    }
    Ok(Samples::new("", times, 0).p50())
}

/// Scenario 4: what the daemon and the client cost.
pub fn cost(plan: &Plan) -> Result<()> {
    let mut world = World::start()?;
    let pid = world.daemon_pid();
    world.status()?;
    let idle_rss = rss_kib(pid);
    let idle_switches = idle_rate(pid, plan.idle_seconds);
    let mut sessions = Vec::new();
    for i in 0..plan.cost_sessions {
        let dir = world.root.join(format!("01JIDLE{i:06}"));
        std::fs::create_dir(&dir)?;
        sessions.push(dir);
    }
    let mut sockets = Vec::new();
    for i in 0..plan.cost_waiters {
        let mut socket = UnixStream::connect(&world.socket)?;
        let dir = sessions[i % sessions.len()].display().to_string();
        socket.write_all(
            format!("{{\"v\":1,\"id\":1,\"op\":\"wait\",\"session\":\"{dir}\",\"cap_ms\":0}}\n")
                .as_bytes(),
        )?;
        sockets.push(socket);
    }
    world.wait_for_waiters(plan.cost_waiters as u64)?;
    let busy_rss = rss_kib(pid);
    let busy_switches = idle_rate(pid, plan.idle_seconds);
    drop(sockets);

    let mut done = world.session()?;
    done.write_result()?;
    done.exit()?;
    done.reap();
    let verdict = world.bin_dir.join("verdict");
    let socket = world.socket.clone();
    let path = done.path().to_string();
    let wait_run = median_run(plan.client_runs, || {
        let mut c = Command::new(&verdict);
        c.args(["wait", &path, "--no-spawn", "--socket"])
            .arg(&socket);
        c
    })?;
    let version_run = median_run(plan.client_runs, || {
        let mut c = Command::new(&verdict);
        c.arg("--version");
        c
    })?;
    let mut connect = Vec::new();
    for _ in 0..plan.client_runs {
        let start = Instant::now();
        let mut client = world.client()?;
        client.watch(done.path())?;
        connect.push(start.elapsed());
    }
    let connect = Samples::new("", connect, 0).p50();
    let size =
        |name: &str| std::fs::metadata(world.bin_dir.join(name)).map_or(0, |m| m.len()) / 1024;

    println!("\n### 4. Cost\n");
    println!("| what | measured |");
    println!("|---|---|");
    println!("| daemon RSS, idle | {:.1} MiB |", idle_rss as f64 / 1024.0);
    println!(
        "| daemon RSS, {} waiters on {} sessions | {:.1} MiB |",
        plan.cost_waiters,
        plan.cost_sessions,
        busy_rss as f64 / 1024.0
    );
    println!("| daemon context switches per second, idle, no waiters | {idle_switches:.1} |");
    println!(
        "| daemon context switches per second, {} waiters idle | {busy_switches:.1} |",
        plan.cost_waiters
    );
    println!(
        "| connect → `watching` (protocol, median) | {} |",
        human(connect)
    );
    println!(
        "| `verdict wait` on a finished session, spawn → exit (median) | {} |",
        human(wait_run)
    );
    println!(
        "| `verdict --version`, spawn → exit (median: process start-up alone) | {} |",
        human(version_run)
    );
    println!(
        "| `verdict wait` own work (difference of the two) | {} |",
        human(wait_run.saturating_sub(version_run))
    );
    println!(
        "| binary size: verdict / verdictd | {} KiB / {} KiB |",
        size("verdict"),
        size("verdictd")
    );
    Ok(())
}
