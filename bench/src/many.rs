//! Scenario 9: many sessions, one call. `verdict wait S1 … S100` (one
//! process, one connection) against 100 `verdict wait` processes, on the
//! same kind of event: every session writes its result and the group is
//! killed at once. Reported: kill → the last client has exited, and the
//! CPU the clients and the daemon used in that window.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::scenarios::verdict_wait_all;
use crate::stats::human;
use crate::world::{Session, World};
use crate::Plan;

/// utime + stime of the waited-for children of this process (fields 16
/// and 17 of `/proc/self/stat`), in clock ticks.
fn children_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            let fields: Vec<String> = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let cutime: u64 = fields.get(16 - 3)?.parse().ok()?;
            let cstime: u64 = fields.get(17 - 3)?.parse().ok()?;
            Some(cutime + cstime)
        })
        .unwrap_or(0)
}

/// One round: `n` sessions, waited on by `processes` clients (1 or n).
/// Returns (kill → last client exited, client CPU, daemon CPU).
fn round(world: &mut World, n: usize, one_process: bool) -> Result<(Duration, Duration, Duration)> {
    let first = world.session_in_group(0)?;
    let group = first.pid() as i32;
    let mut sessions = vec![first];
    for _ in 1..n {
        sessions.push(world.session_in_group(group)?);
    }
    let refs: Vec<&Session> = sessions.iter().collect();
    let mut children = if one_process {
        vec![verdict_wait_all(world, &refs)?]
    } else {
        refs.iter()
            .map(|s| verdict_wait_all(world, std::slice::from_ref(s)))
            .collect::<Result<_>>()?
    };
    world.wait_for_waiters(n as u64)?;
    for session in &sessions {
        session.write_result()?;
    }
    let daemon = world.daemon_pid();
    let (clients_before, daemon_before) = (children_ticks(), crate::streaming::cpu_ticks(daemon));
    let t0 = Instant::now();
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(group).context("group")?,
        rustix::process::Signal::KILL,
    )?;
    for child in &mut children {
        let status = child.wait()?;
        if !status.success() {
            bail!("verdict wait exited with {status}");
        }
    }
    let took = t0.elapsed();
    let tick = |ticks: u64| {
        Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
    };
    let clients = tick(children_ticks() - clients_before);
    let daemon = tick(crate::streaming::cpu_ticks(daemon) - daemon_before);
    Ok((took, clients, daemon))
}

pub fn many(plan: &Plan) -> Result<()> {
    let mut world = World::start()?;
    let n = plan.many_call_sessions;
    let mut rows = Vec::new();
    for one_process in [true, false] {
        let (mut times, mut clients, mut daemon) = (Vec::new(), Duration::ZERO, Duration::ZERO);
        for _ in 0..plan.many_call_rounds {
            let (took, c, d) = round(&mut world, n, one_process)?;
            times.push(took);
            clients += c;
            daemon += d;
        }
        times.sort();
        // CPU is counted in clock ticks (10 ms): the mean over the rounds.
        let rounds = plan.many_call_rounds as u32;
        rows.push((
            one_process,
            (times[times.len() / 2], clients / rounds, daemon / rounds),
        ));
    }
    println!(
        "\n### 9. Many sessions, one call: {n} sessions ending at once ({} rounds: median time, mean CPU)\n",
        plan.many_call_rounds
    );
    println!("| clients | kill → every client exited | clients' CPU | daemon's CPU |");
    println!("|---|---|---|---|");
    for (one_process, (took, clients, daemon)) in rows {
        let label = if one_process {
            format!("one `verdict wait` naming all {n} sessions")
        } else {
            format!("{n} `verdict wait` processes, one session each")
        };
        println!(
            "| {label} | {} | {} | {} |",
            human(took),
            human(clients),
            human(daemon)
        );
    }
    Ok(())
}
