//! The registry through its seams, without a server: requests go in as
//! calls, replies come out of a recording [`Sink`], timers fire when the
//! test says so, file events come from a real inotify watcher on a
//! temporary directory (drained by the test, so nothing races).

use std::path::{Path, PathBuf};
use std::time::Duration;
use verdict_proto::wire::RequestId;

use mio::Token;
use serde_json::{json, Value};
use verdict_core::watch::Watcher;

use super::{Ctx, Registry, Sink, Stats};
use crate::config::Config;
use crate::timers::{Timer, Timers};
use verdict_support::{sleeper, starttime};

/// Every reply, with the connection it went to.
#[derive(Debug, Default)]
struct Recorder(Vec<(Token, Value)>);

impl Sink for Recorder {
    fn send(&mut self, conn: Token, line: &[u8]) {
        let value = serde_json::from_slice(line).expect("replies are JSON lines");
        self.0.push((conn, value));
    }
}

struct World {
    registry: Registry,
    poll: mio::Poll,
    timers: Timers,
    watcher: Watcher,
    config: Config,
    out: Recorder,
    stats: Stats,
    lookups: crate::lookup::Lookups,
    tmp: tempfile::TempDir,
}

const CONN: Token = Token(100);

impl World {
    fn new() -> World {
        let poll = mio::Poll::new().expect("poll");
        let waker = mio::Waker::new(poll.registry(), Token(3)).expect("waker");
        World {
            registry: Registry::default(),
            lookups: crate::lookup::Lookups::start(waker).expect("lookup thread"),
            poll,
            timers: Timers::default(),
            watcher: Watcher::new().expect("inotify"),
            config: Config::parse("", Path::new("test.toml")).expect("defaults"),
            out: Recorder::default(),
            stats: Stats::default(),
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Runs `call` with the registry and a context made of the rest.
    fn with<T>(&mut self, call: impl FnOnce(&mut Registry, &mut Ctx) -> T) -> T {
        let mut ctx = Ctx {
            poll: self.poll.registry(),
            timers: &mut self.timers,
            watcher: &mut self.watcher,
            config: &self.config,
            out: &mut self.out,
            stats: &mut self.stats,
            lookups: &self.lookups,
        };
        call(&mut self.registry, &mut ctx)
    }

    /// A session directory with `files` in it.
    fn session(&self, id: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.tmp.path().join(id);
        std::fs::create_dir(&dir).expect("session dir");
        for (name, contents) in files {
            std::fs::write(dir.join(name), contents).expect("session file");
        }
        dir
    }

    fn wait(&mut self, id: u64, dir: &Path, cap_ms: Option<u64>) {
        let session = dir.to_str().expect("utf-8").to_string();
        self.with(|registry, ctx| {
            registry.wait(ctx, CONN, RequestId::from(id), &session, cap_ms, None)
        })
        .expect("the wait is accepted");
    }

    /// Fires the pending timers `which` selects.
    fn fire(&mut self, which: impl Fn(&Timer) -> bool) {
        let fired = self.timers.fire(which);
        assert!(!fired.is_empty(), "no such timer pending");
        for timer in fired {
            self.with(|registry, ctx| registry.on_timer(ctx, timer));
        }
    }

    /// Hands the file events so far to the registry.
    fn changes(&mut self) {
        let changes = self.watcher.drain();
        self.with(|registry, ctx| registry.on_changes(ctx, changes));
        self.registry.end_round(&mut self.watcher);
    }

    /// Blocks (within a deadline) until a pidfd is readable, then hands
    /// every readable pidfd to the registry, as the server's loop does.
    fn exits(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut events = mio::Events::with_capacity(16);
        let mut fired = Vec::new();
        while fired.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "no pidfd became readable");
            self.poll.poll(&mut events, Some(left)).expect("poll");
            fired.extend(
                events
                    .iter()
                    .map(mio::event::Event::token)
                    .filter(|token| token.0 & super::PIDFD_TAG != 0),
            );
        }
        for token in fired {
            self.with(|registry, ctx| registry.process_exited(ctx, token));
        }
        self.registry.end_round(&mut self.watcher);
    }

    /// The events sent for request `id`, in order (`watching` left out).
    fn replies(&self, id: u64) -> Vec<&Value> {
        self.out
            .0
            .iter()
            .map(|(_, reply)| reply)
            .filter(|reply| reply["id"] == id && reply["event"] != "watching")
            .collect()
    }

    fn only_reply(&self, id: u64) -> &Value {
        let replies = self.replies(id);
        assert_eq!(replies.len(), 1, "{:?}", self.out.0);
        replies[0]
    }
}

/// `daemon.pid` naming this test process (with its start time: pids wrap
/// quickly here, and a reused pid must not pass for the writer).
fn alive() -> (&'static str, String) {
    let pid = std::process::id() as i32;
    ("daemon.pid", format!("{pid} {}\n", starttime(pid)))
}

/// `daemon.pid` naming a process that has exited and been reaped (the
/// harness's stand-in session process, ended).
fn dead() -> (&'static str, String) {
    let (mut child, record) = sleeper();
    child.kill().expect("kill");
    child.wait().expect("reap");
    ("daemon.pid", record)
}

const RESULT_OK: (&str, &str) = ("result.toml", "status = \"success\"\nexit_code = 0\n");

#[test]
fn the_cap_answers_kv_warm_while_alive_and_timeout_when_nothing_runs() {
    let mut w = World::new();
    let (name, pid) = alive();
    let live = w.session("01JLIVE", &[(name, &pid)]);
    let empty = w.session("01JEMPTY", &[]);
    w.wait(1, &live, Some(60_000));
    w.wait(2, &empty, Some(60_000));
    assert!(w.replies(1).is_empty() && w.replies(2).is_empty());
    w.fire(|timer| matches!(timer, Timer::Cap(_)));
    let (kv, timeout) = (w.only_reply(1), w.only_reply(2));
    assert_eq!(
        (&kv["outcome"], &kv["exit"]),
        (&json!("kv_warm"), &json!(0)),
        "{kv}"
    );
    assert_eq!(
        (&timeout["outcome"], &timeout["exit"]),
        (&json!("timeout"), &json!(124)),
        "{timeout}"
    );
    assert_eq!((w.registry.waiters(), w.registry.sessions()), (0, 0));
}

#[test]
fn a_finished_session_is_answered_at_once_and_keeps_nothing() {
    let mut w = World::new();
    let done = w.session("01JDONE", &[RESULT_OK]);
    w.wait(1, &done, None);
    let verdict = w.only_reply(1);
    assert_eq!(
        (&verdict["status"], &verdict["exit"]),
        (&json!("success"), &json!(0)),
        "{verdict}"
    );
    w.registry.end_round(&mut w.watcher);
    assert_eq!((w.registry.waiters(), w.registry.watches()), (0, 0));
    assert_eq!(w.stats.verdicts_sent, 1);
}

#[test]
fn a_result_then_the_exit_through_the_watcher_and_the_pidfd() {
    let mut w = World::new();
    let (mut child, record) = sleeper();
    let dir = w.session("01JLATER", &[("daemon.pid", &record)]);
    w.wait(1, &dir, None);
    // Alive with a result is not final (rule C0): the process must end.
    std::fs::write(dir.join("result.toml"), RESULT_OK.1).expect("write");
    w.changes();
    assert!(w.replies(1).is_empty(), "{:?}", w.out.0);
    child.kill().expect("kill");
    child.wait().expect("reap");
    w.exits();
    assert_eq!(w.only_reply(1)["status"], "success");
}

#[test]
fn cancel_and_a_dropped_connection_release_everything() {
    let mut w = World::new();
    let (name, pid) = alive();
    let dir = w.session("01JCANCEL", &[(name, &pid)]);
    w.wait(1, &dir, None);
    w.wait(2, &dir, None);
    assert_eq!(
        (
            w.registry.waiters(),
            w.registry.sessions(),
            w.registry.watches()
        ),
        (2, 1, 1)
    );
    assert!(w.with(|registry, ctx| registry.cancel(ctx, CONN, &RequestId::from(1))));
    assert!(
        !w.with(|registry, ctx| registry.cancel(ctx, CONN, &RequestId::from(1))),
        "twice"
    );
    assert_eq!(w.registry.waiters(), 1);
    w.with(|registry, ctx| registry.drop_conn(ctx, CONN));
    w.registry.end_round(&mut w.watcher);
    assert_eq!(
        (
            w.registry.waiters(),
            w.registry.sessions(),
            w.registry.watches()
        ),
        (0, 0, 0)
    );
    assert!(
        w.replies(1).is_empty() && w.replies(2).is_empty(),
        "no verdicts: {:?}",
        w.out.0
    );
    assert_eq!(w.registry.conn_waits(CONN), 0);
}

#[test]
fn a_dead_process_gets_its_grace_then_a_synthetic_failure() {
    let mut w = World::new();
    // A grace that has run out by the time its timer is fired by hand.
    w.config.grace = Duration::ZERO;
    let (name, pid) = dead();
    let dir = w.session("01JGRACE", &[(name, &pid)]);
    w.wait(1, &dir, None);
    assert!(w.replies(1).is_empty(), "grace first: {:?}", w.out.0);
    w.fire(|timer| matches!(timer, Timer::Session(_)));
    let verdict = w.only_reply(1);
    assert_eq!(verdict["reason"], "died_without_result", "{verdict}");
    assert_eq!(
        (&verdict["synthetic"], &verdict["exit"]),
        (&json!(true), &json!(1))
    );
}

#[test]
fn a_result_within_the_grace_wins() {
    let mut w = World::new();
    let (name, pid) = dead();
    let dir = w.session("01JGRACEWIN", &[(name, &pid)]);
    w.wait(1, &dir, None);
    std::fs::write(dir.join("result.toml"), RESULT_OK.1).expect("write");
    w.changes();
    let verdict = w.only_reply(1);
    assert_eq!(
        (&verdict["status"], &verdict["synthetic"]),
        (&json!("success"), &json!(false))
    );
}

#[test]
fn a_vanished_directory_is_session_removed_after_its_grace() {
    let mut w = World::new();
    w.config.grace = Duration::ZERO;
    let (name, pid) = alive();
    let dir = w.session("01JGONE", &[(name, &pid)]);
    w.wait(1, &dir, None);
    std::fs::remove_dir_all(&dir).expect("remove");
    w.changes();
    assert!(w.replies(1).is_empty(), "it may come back: {:?}", w.out.0);
    w.fire(|timer| matches!(timer, Timer::Session(_)));
    let error = w.only_reply(1);
    assert_eq!(
        (&error["event"], &error["code"]),
        (&json!("error"), &json!("session_removed")),
        "{error}"
    );
    assert_eq!(w.registry.sessions(), 0);
}

#[test]
fn refusals_carry_their_code() {
    let mut w = World::new();
    let (name, pid) = alive();
    let dir = w.session("01JDUP", &[(name, &pid)]);
    w.wait(1, &dir, None);
    let session = dir.to_str().expect("utf-8").to_string();
    let duplicate = w.with(|registry, ctx| {
        registry.wait(ctx, CONN, RequestId::from(1_u64), &session, None, None)
    });
    let err = duplicate.expect_err("same id twice");
    assert_eq!(err.code(), verdict_proto::wire::ErrorCode::BadRequest);
    // An id is looked up off the loop: the wait is parked, and refused
    // when the lookup thread answers (after one rebuild of the index).
    w.with(|registry, ctx| {
        registry.wait(ctx, CONN, RequestId::from(2_u64), "01JNOSUCH", None, None)
    })
    .expect("parked");
    let mut events = mio::Events::with_capacity(4);
    w.poll
        .poll(&mut events, Some(std::time::Duration::from_secs(20)))
        .expect("poll");
    assert!(
        events.iter().any(|e| e.token() == Token(3)),
        "the lookup thread woke the loop"
    );
    w.with(|registry, ctx| registry.looked_up(ctx));
    let error = w.out.0.last().expect("a reply").1.clone();
    assert_eq!(
        (&error["id"], &error["code"]),
        (&json!(2), &json!("unknown_session")),
        "{error}"
    );
    w.config.max_waits = 1;
    let full = w.with(|registry, ctx| {
        registry.wait(
            ctx,
            Token(101),
            RequestId::from(3_u64),
            &session,
            None,
            None,
        )
    });
    assert_eq!(
        full.expect_err("full").code(),
        verdict_proto::wire::ErrorCode::Busy
    );
}
