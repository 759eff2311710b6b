//! Scenario 3 of BENCHMARKS.md: verdict and its peers (a 1-second poller,
//! an inotifywait loop, watchman) on the same events, in the same run.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::peers::{self, Watchman};
use crate::scenarios::verdict_wait;
use crate::stats::{human, Samples};
use crate::world::World;
use crate::Plan;

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
