//! Scenario `hostile`: a normal client beside clients that try to take the
//! shared daemon from everyone, all at once: flooders that keep their
//! socket full (some never read a reply, some read them all), dribblers
//! that send a byte at a time, clients that never read, and a typo-er
//! asking for unknown ids over a state directory of 10,000 directories.
//! Reported: the normal client's ping round trips and verdict latency, and
//! the daemon's peak RSS. Run it against another build with
//! `VERDICT_BIN_DIR=<dir> verdict-bench --only hostile` (before/after).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::stats::{human, Samples};
use crate::world::World;
use crate::Plan;

const PING: &[u8] = b"{\"v\":1,\"id\":1,\"op\":\"ping\"}\n";

pub fn hostile(plan: &Plan) -> Result<()> {
    let world = World::start()?;
    let daemon = world.daemon_pid();
    for project in 0..100 {
        for sub in 0..100 {
            std::fs::create_dir_all(world.root.join(format!("p{project}/d{sub}")))?;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let socket = world.socket.clone();
    let mut threads = Vec::new();
    let spawn = |threads: &mut Vec<std::thread::JoinHandle<()>>, work: Box<dyn Fn() + Send>| {
        threads.push(std::thread::spawn(work));
    };
    // Flooders that never read: dropped at the daemon's bound, come back.
    for _ in 0..2 {
        let (socket, stop) = (socket.clone(), stop.clone());
        spawn(
            &mut threads,
            Box::new(move || {
                let block: Vec<u8> = PING.iter().copied().cycle().take(1 << 20).collect();
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = UnixStream::connect(&socket) else {
                        continue;
                    };
                    while !stop.load(Ordering::Relaxed) && s.write_all(&block).is_ok() {}
                }
            }),
        );
    }
    // Flooders that read every reply: never dropped, served a share.
    for _ in 0..2 {
        let (socket, stop) = (socket.clone(), stop.clone());
        spawn(
            &mut threads,
            Box::new(move || {
                let Ok(s) = UnixStream::connect(&socket) else {
                    return;
                };
                let mut reader = s.try_clone().expect("clone");
                let reading = {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 1 << 16];
                        while !stop.load(Ordering::Relaxed) {
                            if matches!(reader.read(&mut buf), Ok(0) | Err(_)) {
                                break;
                            }
                        }
                    })
                };
                let block: Vec<u8> = PING.iter().copied().cycle().take(1 << 16).collect();
                let mut s = s;
                while !stop.load(Ordering::Relaxed) && s.write_all(&block).is_ok() {}
                let _ = s.shutdown(std::net::Shutdown::Both);
                let _ = reading.join();
            }),
        );
    }
    // Dribblers: a byte of a line every 10 ms, 50 connections.
    {
        let (socket, stop) = (socket.clone(), stop.clone());
        spawn(
            &mut threads,
            Box::new(move || {
                let mut conns: Vec<UnixStream> = (0..50)
                    .filter_map(|_| UnixStream::connect(&socket).ok())
                    .collect();
                let mut at = 0;
                while !stop.load(Ordering::Relaxed) {
                    for c in &mut conns {
                        let _ = c.write_all(&PING[at % PING.len()..at % PING.len() + 1]);
                    }
                    at += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }),
        );
    }
    // Never-readers: status requests, replies never read, 20 connections.
    {
        let (socket, stop) = (socket.clone(), stop.clone());
        spawn(
            &mut threads,
            Box::new(move || {
                let line = b"{\"v\":1,\"id\":1,\"op\":\"status\"}\n".repeat(64);
                let mut conns: Vec<UnixStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    while conns.len() < 20 {
                        match UnixStream::connect(&socket) {
                            Ok(c) => {
                                let _ = c.set_nonblocking(true);
                                conns.push(c);
                            }
                            Err(_) => break,
                        }
                    }
                    // Dropped by the daemon (a failed write): connect again.
                    conns.retain_mut(|c| match c.write(&line) {
                        Ok(_) => true,
                        Err(err) => err.kind() == std::io::ErrorKind::WouldBlock,
                    });
                    std::thread::sleep(Duration::from_millis(5));
                }
            }),
        );
    }
    // A typo-er: an unknown id every 10 ms.
    {
        let (socket, stop) = (socket.clone(), stop.clone());
        spawn(
            &mut threads,
            Box::new(move || {
                let Ok(mut c) = UnixStream::connect(&socket) else {
                    return;
                };
                let _ = c.set_nonblocking(true);
                let mut n = 0u64;
                let mut sink = vec![0u8; 1 << 16];
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let line = format!(
                        "{{\"v\":1,\"id\":{n},\"op\":\"wait\",\"session\":\"01JTYPO{n}\"}}\n"
                    );
                    let _ = c.write_all(line.as_bytes());
                    while c.read(&mut sink).is_ok_and(|n| n > 0) {}
                    std::thread::sleep(Duration::from_millis(10));
                }
            }),
        );
    }
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = rss(daemon) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    // The normal client: pings, and a session ended now and then.
    let mut world = world;
    let deadline = Instant::now() + plan.hostile_duration;
    let (mut pings, mut verdicts) = (Vec::new(), Vec::new());
    let mut missed = 0;
    let mut pinger = world.client()?;
    let mut round = 0u32;
    while Instant::now() < deadline {
        let start = Instant::now();
        pinger.send(r#"{"v":1,"id":"p","op":"ping"}"#)?;
        match pinger.recv() {
            Ok(_) => pings.push(start.elapsed()),
            Err(_) => {
                missed += 1;
                pinger = world.client()?;
            }
        }
        round += 1;
        if round.is_multiple_of(20) {
            let mut session = world.session()?;
            let mut waiter = world.client()?;
            waiter.watch(session.path())?;
            session.write_result()?;
            let t0 = session.exit()?;
            verdicts.push(waiter.verdict()?.duration_since(t0));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let _ = sampler.join();
    let pings = Samples::new("ping", pings, missed);
    let verdicts = Samples::new("verdict", verdicts, 0);
    println!("\n### Hostile load ({:?})\n", plan.hostile_duration);
    println!("| normal client | n | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for s in [&pings, &verdicts] {
        println!(
            "| {} | {} | {} | {} | {} |",
            s.name,
            s.count(),
            human(s.p50()),
            human(s.p99()),
            human(s.max())
        );
    }
    println!(
        "\ndaemon peak RSS {} KiB; pings without an answer {missed}",
        peak.load(Ordering::Relaxed)
    );
    Ok(())
}

fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}
