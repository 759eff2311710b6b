//! Scenarios 1, 2 and 2b of BENCHMARKS.md: single-waiter latency and
//! fan-out (peers on the same events are in `compare.rs`, cost in
//! `cost.rs`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::{Events, Interest, Poll, Token};

use crate::stats::{human, table, Samples};
use crate::world::{Session, World};
use crate::Plan;
use verdict_support::rss_kib;

pub fn verdict_wait(world: &World, session: &Session) -> Result<std::process::Child> {
    verdict_wait_all(world, &[session])
}

/// A quiet `verdict wait` on `sessions` with no cap, on the world's daemon.
pub fn verdict_wait_all(world: &World, sessions: &[&Session]) -> Result<std::process::Child> {
    Command::new(world.bin_dir.join("verdict"))
        .arg("wait")
        .args(sessions.iter().map(|s| s.path()))
        .args(["--cap", "0", "--no-spawn", "--socket"])
        .arg(&world.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawn verdict wait")
}

/// The kernel's part alone: SIGKILL → the process's pidfd is readable, in
/// the harness, no daemon. No waiter can beat it.
fn pidfd_floor(session: &mut Session) -> Result<Duration> {
    use rustix::event::{poll, PollFd, PollFlags};
    let pid = rustix::process::Pid::from_raw(session.pid() as i32).context("pid")?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    let t0 = session.exit()?;
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    poll(&mut fds, None)?;
    Ok(t0.elapsed())
}

/// Scenario 1: one waiter, one event at a time.
pub fn single_waiter(plan: &Plan) -> Result<()> {
    let mut world = World::start()?;
    let mut floor = Vec::new();
    for _ in 0..plan.latency_events {
        let mut session = world.session()?;
        floor.push(pidfd_floor(&mut session)?);
    }
    // The relay and verdictd take turns, so that both see the same noise.
    let relay = crate::exitpath::Relay::start(&world)?;
    let (mut protocol, mut relayed) = (Vec::new(), Vec::new());
    for _ in 0..plan.latency_events {
        let mut session = world.session()?;
        let mut client = world.client()?;
        client.watch(session.path())?;
        session.write_result()?;
        let t0 = session.exit()?;
        protocol.push(client.verdict()? - t0);

        let mut session = world.session()?;
        let mut client = relay.watch(&session)?;
        session.write_result()?;
        let t0 = session.exit()?;
        relayed.push(client.verdict()? - t0);
    }
    drop(relay);
    let mut process = Vec::new();
    for _ in 0..plan.latency_events {
        let mut session = world.session()?;
        let mut child = verdict_wait(&world, &session)?;
        world.wait_for_waiters(1)?;
        session.write_result()?;
        let t0 = session.exit()?;
        let status = child.wait()?;
        process.push(t0.elapsed());
        if !status.success() {
            bail!("verdict wait exited with {status}");
        }
    }
    // Degraded mode: `verdict wait --no-daemon`, no daemon involved; the
    // session ends once the client's inotify watch is armed.
    let mut alone = Vec::new();
    for _ in 0..plan.latency_events {
        let mut session = world.session()?;
        let mut child = Command::new(world.bin_dir.join("verdict"))
            .args(["wait", session.path(), "--cap", "0", "--no-daemon"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn verdict wait --no-daemon")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while verdict_support::inotify_watches(child.id()) == 0 {
            if Instant::now() > deadline {
                bail!("verdict wait --no-daemon never armed its watch");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        session.write_result()?;
        let t0 = session.exit()?;
        let status = child.wait()?;
        alone.push(t0.elapsed());
        if !status.success() {
            bail!("verdict wait --no-daemon exited with {status}");
        }
    }
    table(
        "1. Single waiter: session exit → verdict",
        &[
            Samples::new(
                "kernel floor: SIGKILL → pidfd readable (no daemon)",
                floor,
                0,
            ),
            Samples::new(
                "two-hop floor: pidfd → relay process → one line on a Unix socket",
                relayed,
                0,
            ),
            Samples::new("verdictd → protocol client (in the harness)", protocol, 0),
            Samples::new("`verdict wait` process (to its exit)", process, 0),
            Samples::new(
                "`verdict wait --no-daemon` process, degraded mode (to its exit)",
                alone,
                0,
            ),
        ],
    );
    Ok(())
}

/// Sockets with one wait sent each, registered for reading before the
/// event, so that setting up the poll is not counted in the latency.
struct Readers {
    poll: Poll,
    streams: Vec<(mio::net::UnixStream, Vec<u8>, Option<Instant>)>,
}

impl Readers {
    fn new(sockets: Vec<UnixStream>) -> Result<Readers> {
        let poll = Poll::new()?;
        let mut streams = Vec::with_capacity(sockets.len());
        for (i, socket) in sockets.into_iter().enumerate() {
            socket.set_nonblocking(true)?;
            let mut stream = mio::net::UnixStream::from_std(socket);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)?;
            streams.push((stream, Vec::new(), None::<Instant>));
        }
        Ok(Readers { poll, streams })
    }
}

/// Waits until every reader has `each` verdicts; returns, per reader, when
/// its last one arrived.
fn collect_verdicts(readers: Readers, each: usize) -> Result<Vec<Instant>> {
    let Readers {
        mut poll,
        mut streams,
    } = readers;
    let mut events = Events::with_capacity(4096);
    let mut remaining = streams.len();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut chunk = [0u8; 4096];
    while remaining > 0 {
        if Instant::now() > deadline {
            bail!("{remaining} waiters never got their verdicts");
        }
        poll.poll(&mut events, Some(Duration::from_secs(1)))?;
        for event in events.iter() {
            let (stream, buf, done) = &mut streams[event.token().0];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(err) => return Err(err.into()),
                }
            }
            const VERDICT: &[u8] = b"\"event\":\"verdict\"";
            let count = || buf.windows(VERDICT.len()).filter(|w| *w == VERDICT).count();
            if done.is_none() && count() >= each {
                *done = Some(Instant::now());
                remaining -= 1;
            }
        }
    }
    Ok(streams
        .into_iter()
        .filter_map(|(_, _, done)| done)
        .collect())
}

pub fn open_waits(
    world: &World,
    sessions: &[&Session],
    per_session: usize,
) -> Result<Vec<UnixStream>> {
    let mut sockets = Vec::new();
    for session in sessions {
        for _ in 0..per_session {
            let mut socket = UnixStream::connect(&world.socket)?;
            let line = format!(
                "{{\"v\":1,\"id\":1,\"op\":\"wait\",\"session\":\"{}\",\"cap_ms\":0}}\n",
                session.path()
            );
            socket.write_all(line.as_bytes())?;
            sockets.push(socket);
        }
    }
    world.wait_for_waiters((sessions.len() * per_session) as u64)?;
    Ok(sockets)
}

/// Scenario 2: many waiters on one session, and many sessions at once.
pub fn fanout(plan: &Plan) -> Result<()> {
    let mut world = World::start()?;
    println!("\n### 2. Fan-out: one event, many waiters (each waiter its own connection)\n");
    println!("| waiters | sessions | first verdict | median | last verdict |");
    println!("|---|---|---|---|---|");
    let report = |waiters: usize, sessions: usize, t0: Instant, mut times: Vec<Instant>| {
        times.sort();
        let at = |i: usize| human(times[i] - t0);
        println!(
            "| {waiters} | {sessions} | {} | {} | {} |",
            at(0),
            at(times.len() / 2),
            at(times.len() - 1)
        );
    };
    for &n in &plan.fanout {
        let mut session = world.session()?;
        let readers = Readers::new(open_waits(&world, &[&session], n)?)?;
        session.write_result()?;
        let t0 = session.exit()?;
        report(n, 1, t0, collect_verdicts(readers, 1)?);
    }
    let n = plan.many_sessions;
    let mut sessions: Vec<Session> = (0..n).map(|_| world.session()).collect::<Result<_>>()?;
    let refs: Vec<&Session> = sessions.iter().collect();
    let readers = Readers::new(open_waits(&world, &refs, 1)?)?;
    for session in &sessions {
        session.write_result()?;
    }
    let t0 = Instant::now();
    for session in &mut sessions {
        session.kill()?;
    }
    report(n, n, t0, collect_verdicts(readers, 1)?);
    Ok(())
}

/// Scenario 2b: many waits on many sessions, several waits per
/// connection, every session ending at once (one `kill` of their process
/// group).
pub fn big_fanout(plan: &Plan) -> Result<()> {
    let mut world = World::start()?;
    let daemon = world.daemon_pid();
    let (n, total, each) = (plan.big_sessions, plan.big_waits, plan.big_per_connection);
    let floor = group_exit_floor(&mut world, n)?;
    let first = world.session_in_group(0)?;
    let group = first.pid() as i32;
    let mut sessions = vec![first];
    for _ in 1..n {
        sessions.push(world.session_in_group(group)?);
    }
    let mut sockets = Vec::with_capacity(total / each);
    for c in 0..total / each {
        let mut socket = UnixStream::connect(&world.socket)?;
        let mut lines = String::new();
        for j in 0..each {
            let session = &sessions[(c * each + j) % n];
            lines.push_str(&format!(
                "{{\"v\":1,\"id\":{j},\"op\":\"wait\",\"session\":\"{}\",\"cap_ms\":0}}\n",
                session.path()
            ));
        }
        socket.write_all(lines.as_bytes())?;
        sockets.push(socket);
    }
    world.wait_for_waiters((total / each * each) as u64)?;
    let rss = rss_kib(daemon);
    let readers = Readers::new(sockets)?;
    for session in &sessions {
        session.write_result()?;
    }
    let t0 = Instant::now();
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(group).context("group")?,
        rustix::process::Signal::KILL,
    )?;
    let mut times = collect_verdicts(readers, each)?;
    times.sort();
    println!("\n### 2b. Fan-out at scale: {} waits ({each} per connection) on {n} sessions, all ending at once\n", total / each * each);
    println!("| what | measured |");
    println!("|---|---|");
    println!(
        "| daemon RSS with every wait in flight | {:.1} MiB |",
        rss as f64 / 1024.0
    );
    println!(
        "| kernel floor: kill of a group of {n} sleeps → every pidfd readable (harness, no daemon) | {} |",
        human(floor)
    );
    println!(
        "| kill of the sessions' group → half the connections have all their verdicts | {} |",
        human(times[times.len() / 2] - t0)
    );
    println!(
        "| kill of the sessions' group → every verdict out | {} |",
        human(times[times.len() - 1] - t0)
    );
    Ok(())
}

/// How long the kernel takes to end `n` processes of one group: kill →
/// the last of their pidfds readable, in the harness.
fn group_exit_floor(world: &mut World, n: usize) -> Result<Duration> {
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    let first = world.session_in_group(0)?;
    let group = first.pid() as i32;
    let mut sessions = vec![first];
    for _ in 1..n {
        sessions.push(world.session_in_group(group)?);
    }
    let mut poll = Poll::new()?;
    let mut fds = Vec::with_capacity(n);
    for (i, session) in sessions.iter().enumerate() {
        let pid = Pid::from_raw(session.pid() as i32).context("pid")?;
        let fd = pidfd_open(pid, PidfdFlags::empty())?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&fd)),
            Token(i),
            Interest::READABLE,
        )?;
        fds.push(fd);
    }
    let t0 = Instant::now();
    rustix::process::kill_process_group(
        Pid::from_raw(group).context("group")?,
        rustix::process::Signal::KILL,
    )?;
    let mut events = Events::with_capacity(4096);
    let mut seen = vec![false; n];
    let mut remaining = n;
    while remaining > 0 {
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("{remaining} pidfds never became readable");
        }
        poll.poll(&mut events, Some(Duration::from_secs(1)))?;
        for event in events.iter() {
            if !std::mem::replace(&mut seen[event.token().0], true) {
                remaining -= 1;
            }
        }
    }
    Ok(t0.elapsed())
}
