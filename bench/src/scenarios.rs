//! Scenarios 1, 2 and 2b of BENCHMARKS.md: single-waiter latency and
//! fan-out (peers on the same events are in `compare.rs`, cost in
//! `cost.rs`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::{Events, Interest, Poll, Token};

use crate::floor::Relay;
use crate::stats::{human, table, table_against, Samples};
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
    // The relay and verdictd take turns, with the result landing ahead of
    // the exit and back to back, so that all four see the same noise.
    let relay = Relay::start(&world)?;
    let mut rows: [Vec<Duration>; 4] = Default::default();
    let mut sessions = world.aged_sessions(4 * plan.latency_events)?.into_iter();
    while let Some(mut session) = sessions.next() {
        for back_to_back in [false, true] {
            let mut client = world.client()?;
            client.watch(session.path())?;
            let t0 = session.finish(back_to_back)?;
            rows[2 * usize::from(back_to_back)].push(client.verdict()? - t0);

            session = sessions.next().context("sessions")?;
            let mut client = relay.watch(&session)?;
            let t0 = session.finish(back_to_back)?;
            rows[1 + 2 * usize::from(back_to_back)].push(client.verdict()? - t0);
            if !back_to_back {
                session = sessions.next().context("sessions")?;
            }
        }
    }
    drop(relay);
    let [protocol, relayed, protocol_b2b, relayed_b2b] = rows;
    let mut process = Vec::new();
    for _ in 0..plan.latency_events {
        let mut session = world.session()?;
        let mut child = verdict_wait(&world, &session)?;
        world.wait_for_waiters(1)?;
        let t0 = session.finish(false)?;
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
        let t0 = session.finish(false)?;
        let status = child.wait()?;
        alone.push(t0.elapsed());
        if !status.success() {
            bail!("verdict wait --no-daemon exited with {status}");
        }
    }
    let lead = format!("{} ms", crate::world::LEAD.as_millis());
    table_against(
        &format!("1. Single waiter: session exit → verdict (result {lead} before the exit)"),
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
            Samples::new("verdictd → protocol client", protocol, 0),
            Samples::new("`verdict wait` process (to its exit)", process, 0),
            Samples::new(
                "`verdict wait --no-daemon` process, degraded mode (to its exit)",
                alone,
                0,
            ),
        ],
        1,
    );
    table(
        "1b. Single waiter, the worst case: result and exit back to back",
        &[
            Samples::new("two-hop floor (relay)", relayed_b2b, 0),
            Samples::new("verdictd → protocol client", protocol_b2b, 0),
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

/// `per_session` waits on each of `sessions`, each its own connection,
/// with every `watching` read, as a real waiter does before its verdict.
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
    for socket in &mut sockets {
        read_watching(socket, 1)?;
    }
    Ok(sockets)
}

/// Reads `n` replies from `socket`, each of them `watching`, and nothing
/// past them (nothing else is sent before the event).
pub fn read_watching(socket: &mut UnixStream, n: usize) -> Result<()> {
    socket.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut byte = [0u8; 1];
    let mut line = Vec::new();
    for _ in 0..n {
        line.clear();
        while byte[0] != b'\n' || line.is_empty() {
            if socket.read(&mut byte).context("read a watching reply")? == 0 {
                bail!("the connection closed before `watching`");
            }
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        byte[0] = 0;
        const WATCHING: &[u8] = b"\"event\":\"watching\"";
        if !line.windows(WATCHING.len()).any(|w| w == WATCHING) {
            bail!("expected watching, got {}", String::from_utf8_lossy(&line));
        }
    }
    socket.set_read_timeout(None)?;
    Ok(())
}

/// When each reader's verdict arrived, relative to `t0`: first, median, last.
fn spread(t0: Instant, mut times: Vec<Instant>) -> [Duration; 3] {
    times.sort();
    let at = |i: usize| times[i] - t0;
    [at(0), at(times.len() / 2), at(times.len() - 1)]
}

/// Rounds of each fan-out size, taking turns with its floor.
const FANOUT_ROUNDS: usize = 3;

/// Scenario 2: many waiters on one session, and many sessions at once,
/// each against its floor in the same run: the relay (the same number of
/// connections, the same readers) and, for many sessions, the kernel.
pub fn fanout(plan: &Plan) -> Result<()> {
    let mut world = World::start()?;
    let relay = Relay::start(&world)?;
    println!("\n### 2. Fan-out: one event, many waiters (each waiter its own connection; result {} ms before the exit; median of {FANOUT_ROUNDS} rounds)\n", crate::world::LEAD.as_millis());
    println!(
        "| waiters | sessions | who | first verdict | median | last verdict | last vs floor |"
    );
    println!("|---|---|---|---|---|---|---|");
    let report = |waiters: usize, sessions: usize, rows: &[(&str, Vec<[Duration; 3]>)]| {
        let median = |runs: &[[Duration; 3]], i: usize| {
            let mut v: Vec<Duration> = runs.iter().map(|r| r[i]).collect();
            v.sort();
            v[v.len() / 2]
        };
        let floor = median(&rows[0].1, 2).as_secs_f64().max(1e-9);
        // The kernel row knows only when the last pidfd turned readable.
        let shown = |d: Duration| if d.is_zero() { "—".into() } else { human(d) };
        for (who, runs) in rows {
            println!(
                "| {waiters} | {sessions} | {who} | {} | {} | {} | {:.2}× |",
                shown(median(runs, 0)),
                shown(median(runs, 1)),
                human(median(runs, 2)),
                median(runs, 2).as_secs_f64() / floor
            );
        }
    };
    for &n in &plan.fanout {
        let (mut ours, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..FANOUT_ROUNDS {
            let mut aged = world.aged_sessions(2)?;
            let mut session = aged.pop().context("session")?;
            let readers = Readers::new(relay.waits(&[&session], n)?)?;
            let t0 = session.finish(false)?;
            floor.push(spread(t0, collect_verdicts(readers, 1)?));
            let mut session = aged.pop().context("session")?;
            let readers = Readers::new(open_waits(&world, &[&session], n)?)?;
            let t0 = session.finish(false)?;
            ours.push(spread(t0, collect_verdicts(readers, 1)?));
        }
        report(
            n,
            1,
            &[("relay (fan-out floor)", floor), ("verdictd", ours)],
        );
    }
    let n = plan.many_sessions;
    let (mut kernel, mut floor, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..FANOUT_ROUNDS {
        let mut sessions = world.aged_sessions(3 * n)?;
        let third = |sessions: &mut Vec<Session>| sessions.split_off(sessions.len() - n);
        let mut batch = third(&mut sessions);
        for session in &batch {
            session.write_result()?;
        }
        std::thread::sleep(crate::world::LEAD);
        let last = crate::floor::exits(&mut batch, kill_all)?;
        kernel.push([Duration::ZERO, Duration::ZERO, last]);
        let mut batch = third(&mut sessions);
        let refs: Vec<&Session> = batch.iter().collect();
        let readers = Readers::new(relay.waits(&refs, 1)?)?;
        floor.push(many_end(&mut batch, readers)?);
        let mut batch = third(&mut sessions);
        let refs: Vec<&Session> = batch.iter().collect();
        let readers = Readers::new(open_waits(&world, &refs, 1)?)?;
        ours.push(many_end(&mut batch, readers)?);
    }
    report(
        n,
        n,
        &[
            (
                "kernel: the kills → every pidfd readable (no daemon)",
                kernel,
            ),
            ("relay", floor),
            ("verdictd", ours),
        ],
    );
    Ok(())
}

/// Ends every one of `sessions` (results first, [`crate::world::LEAD`]
/// before the kills); when each reader got its verdict.
fn many_end(sessions: &mut [Session], readers: Readers) -> Result<[Duration; 3]> {
    for session in sessions.iter() {
        session.write_result()?;
    }
    std::thread::sleep(crate::world::LEAD);
    let t0 = Instant::now();
    kill_all(sessions)?;
    Ok(spread(t0, collect_verdicts(readers, 1)?))
}

fn kill_all(sessions: &mut [Session]) -> Result<()> {
    for session in sessions {
        session.kill()?;
    }
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
    for socket in &mut sockets {
        read_watching(socket, each)?;
    }
    let rss = rss_kib(daemon);
    let readers = Readers::new(sockets)?;
    for session in &sessions {
        session.write_result()?;
    }
    std::thread::sleep(crate::world::LEAD);
    let t0 = Instant::now();
    kill_group(group)?;
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
    let first = world.session_in_group(0)?;
    let group = first.pid() as i32;
    let mut sessions = vec![first];
    for _ in 1..n {
        sessions.push(world.session_in_group(group)?);
    }
    crate::floor::exits(&mut sessions, |_| kill_group(group))
}

fn kill_group(group: i32) -> Result<()> {
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(group).context("group")?,
        rustix::process::Signal::KILL,
    )?;
    Ok(())
}
