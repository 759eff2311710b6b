//! The four scenarios of BENCHMARKS.md: single-waiter latency, fan-out,
//! peers on the same events, and cost (memory, wake-ups, client start-up).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mio::{Events, Interest, Poll, Token};

use crate::peers::{self, Watchman};
use crate::stats::{human, table, Samples};
use crate::world::{Session, World};
use crate::Plan;
use verdict_support::{ctx_switches, rss_kib};

fn verdict_wait(world: &World, session: &Session) -> Result<std::process::Child> {
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

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Polling,
    VerdictWait,
    Inotifywait,
    Watchman(Option<u64>),
}

impl Peer {
    fn label(self) -> String {
        match self {
            Peer::Polling => "1-second polling waiter (csa `session wait` today)".into(),
            Peer::VerdictWait => "`verdict wait` process (to its exit)".into(),
            Peer::Inotifywait => "`inotifywait` shell waiter".into(),
            Peer::Watchman(None) => "watchman subscription (default settle, 20 ms)".into(),
            Peer::Watchman(Some(ms)) => format!("watchman subscription (settle = {ms} ms)"),
        }
    }
}

/// What one event measured.
struct PeerEvent {
    /// verdict's protocol client.
    verdict: Duration,
    /// The peer (`None`: it never answered).
    peer: Option<Duration>,
    /// A `verdict wait` process on the same event (polling events only).
    process: Option<Duration>,
}

/// One event watched by verdict and by `peer` (and, next to the polling
/// waiter, by a `verdict wait` process too).
fn peer_event(
    world: &mut World,
    peer: Peer,
    watchman: Option<&mut Watchman>,
    rng: &mut Rng,
) -> Result<PeerEvent> {
    let mut session = world.session()?;
    let mut client = world.client()?;
    client.watch(session.path())?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut process = None;
    let mut poller = None;
    let mut shell = None;
    match peer {
        Peer::Polling => {
            poller = Some(peers::poller(session.dir.clone(), Arc::clone(&stop)));
            process = Some(verdict_wait(world, &session)?);
            world.wait_for_waiters(2)?;
        }
        Peer::VerdictWait => {
            process = Some(verdict_wait(world, &session)?);
            world.wait_for_waiters(2)?;
        }
        Peer::Inotifywait => shell = Some(peers::inotify_waiter(&session.dir)?),
        Peer::Watchman(_) => {}
    }
    let mut watchman = watchman;
    if let Some(w) = watchman.as_deref_mut() {
        w.sync()?;
    }
    if peer == Peer::Polling {
        // The event lands at a random point of the poller's 1 s period.
        std::thread::sleep(Duration::from_millis(rng.below(1000)));
    }
    session.write_result()?;
    let t0 = session.finish_with_packet()?;
    let ours = client.verdict()? - t0;
    let process_exit = match process {
        Some(mut child) => {
            child.wait()?;
            Some(Instant::now())
        }
        None => None,
    };
    let theirs = match peer {
        Peer::Polling => poller.and_then(|p| p.join().ok().flatten()),
        Peer::VerdictWait => process_exit,
        Peer::Inotifywait => shell.and_then(|(mut child, done)| {
            let at = done.join().ok().flatten();
            let _ = child.wait();
            at
        }),
        Peer::Watchman(_) => watchman.and_then(|w| w.seen(&session.id, Duration::from_secs(5))),
    };
    session.reap();
    let since = |at: Instant| at.saturating_duration_since(t0);
    Ok(PeerEvent {
        verdict: ours,
        peer: theirs.map(since),
        process: (peer == Peer::Polling)
            .then_some(process_exit.map(since))
            .flatten(),
    })
}

/// Scenario 3: each peer next to verdict, on the same events.
pub fn peers(plan: &Plan) -> Result<()> {
    let mut world = World::start()?;
    let mut kinds = vec![Peer::VerdictWait, Peer::Polling];
    if peers::have("inotifywait", "--help") {
        kinds.push(Peer::Inotifywait);
    } else {
        println!("\n(`inotifywait` skipped: inotify-tools is not installed)");
    }
    if peers::have("watchman", "--version") {
        kinds.extend([Peer::Watchman(None), Peer::Watchman(Some(1))]);
    } else {
        println!("\n(watchman skipped: watchman is not installed)");
    }
    println!(
        "\n### 3. Peers: each next to verdict, on the same events (session exit → waiter knows)\n"
    );
    println!("| peer | events | peer p50 | peer p99 | verdict p50 | verdict p99 | peer ÷ verdict (p50) |");
    println!("|---|---|---|---|---|---|---|");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut polling_runs = None;
    let mut polling_p50 = Duration::ZERO;
    for peer in kinds {
        let mut watchman = match peer {
            Peer::Watchman(settle) => Some(Watchman::start(world.tmp.path(), &world.root, settle)?),
            _ => None,
        };
        let (mut ours, mut theirs, mut missed, mut processes) =
            (Vec::new(), Vec::new(), 0, Vec::new());
        for _ in 0..plan.peer_events {
            let event = peer_event(&mut world, peer, watchman.as_mut(), &mut rng)?;
            ours.push(event.verdict);
            processes.extend(event.process);
            match event.peer {
                Some(latency) => theirs.push(latency),
                None => missed += 1,
            }
        }
        if !processes.is_empty() {
            polling_runs = Some(processes);
        }
        drop(watchman);
        let (ours, theirs) = (
            Samples::new("verdict", ours, 0),
            Samples::new(peer.label(), theirs, missed),
        );
        let missed = if missed > 0 {
            format!(" ({missed} never answered)")
        } else {
            String::new()
        };
        println!(
            "| {} | {}{missed} | {} | {} | {} | {} | {:.0}× |",
            theirs.name,
            ours.count(),
            human(theirs.p50()),
            human(theirs.p99()),
            human(ours.p50()),
            human(ours.p99()),
            theirs.p50().as_secs_f64() / ours.p50().as_secs_f64().max(1e-9)
        );
        if peer == Peer::Polling {
            polling_p50 = theirs.p50();
        }
    }
    if let Some(runs) = polling_runs {
        let runs = Samples::new("", runs, 0);
        println!(
            "\nOn the polling waiter's {} events, a `verdict wait` process (session exit → the process has exited): \
             p50 {}, p99 {}; the polling waiter's p50 is {:.0}× that.",
            runs.count(),
            human(runs.p50()),
            human(runs.p99()),
            polling_p50.as_secs_f64() / runs.p50().as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}

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
