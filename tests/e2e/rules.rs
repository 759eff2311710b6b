//! Every verdict rule (README.md, "How a verdict is decided") through `verdict wait`: exit code and the
//! exact marker line, each scenario run twice: through verdictd, and
//! without it (`--no-daemon`, degraded mode), with the same answers.
//! Only the grace-period scenario is the daemon's alone: its length is a
//! daemon setting, and degraded mode uses the defaults.

use std::ops::Deref;
use std::process::Child;
use std::time::{Duration, SystemTime};

use verdict_e2e::{eventually, finish, inotify_watches, Harness, Run};

fn completed(id: &str, status: &str, exit: i32, synthetic: bool) -> String {
    format!("<!-- CSA:SESSION_WAIT_COMPLETED session={id} status={status} exit={exit} synthetic={synthetic} -->")
}

/// Where a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Through a running verdictd.
    Daemon,
    /// `verdict wait --no-daemon`: no daemon anywhere.
    Alone,
}

/// A harness and the way waits are made in it.
struct World {
    h: Harness,
    way: Way,
}

impl Deref for World {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

impl World {
    fn new(way: Way) -> World {
        let h = match way {
            Way::Daemon => Harness::start(),
            Way::Alone => Harness::without_daemon(),
        };
        World { h, way }
    }

    fn args<'a>(&self, session: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["wait", session];
        args.extend_from_slice(extra);
        if self.way == Way::Alone {
            args.push("--no-daemon");
        }
        args
    }

    fn wait(&self, session: &str, extra: &[&str]) -> Run {
        Run::from(verdict_e2e::output_within(
            self.h.verdict(&self.args(session, extra)),
        ))
    }

    fn spawn_wait(&self, session: &str, extra: &[&str]) -> Child {
        self.h
            .verdict(&self.args(session, extra))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn verdict")
    }

    /// A new session where csa puts them, so that its id is found with or
    /// without a daemon.
    fn session(&self, id: &str) -> verdict_e2e::Session {
        self.h.csa_session("project", id)
    }

    /// Returns once the wait of `child` is watching the session.
    fn armed(&self, child: &Child) {
        match self.way {
            Way::Daemon => self.h.wait_for_waiters(1),
            Way::Alone => eventually("the wait to watch the session", || {
                (inotify_watches(child.id()) >= 1).then_some(())
            }),
        }
    }

    /// The process whose inotify instance watches for the wait of `child`.
    fn watcher_pid(&self, child: &Child) -> u32 {
        match self.way {
            Way::Daemon => self.h.daemon_pid().expect("the daemon's pid"),
            Way::Alone => child.id(),
        }
    }

    /// The wait of `child` has not answered yet.
    fn still_waiting(&self, child: &mut Child) -> bool {
        let daemon_holds_it = match self.way {
            Way::Daemon => self.h.status()["waiters"] == 1,
            Way::Alone => true,
        };
        daemon_holds_it && child.try_wait().expect("try_wait").is_none()
    }
}

/// Each scenario as a test through the daemon and one without it.
macro_rules! both_ways {
    ($($scenario:ident),* $(,)?) => {
        mod through_the_daemon {
            $(#[test]
            fn $scenario() {
                super::$scenario(&super::World::new(super::Way::Daemon));
            })*
        }
        mod without_a_daemon {
            $(#[test]
            fn $scenario() {
                super::$scenario(&super::World::new(super::Way::Alone));
            })*
        }
    };
}

both_ways!(
    c1_result_success_beats_a_sigterm_packet,
    c1_result_failure_beats_a_success_packet,
    c0_a_result_is_not_final_while_the_process_lives,
    c2_packet_fallback_with_output,
    c3_empty_exit_zero_packet_fails_closed,
    c4_died_without_a_word,
    c5_and_t_unknown_process_times_out_at_the_cap,
    k_live_process_at_the_cap_is_kv_warm,
    stale_result_from_an_earlier_run_is_ignored,
    pid_reuse_is_a_dead_process,
    legacy_complete_and_malformed_result_are_handled,
    a_fifo_named_result_toml_does_not_hang_anything,
    a_result_written_in_place_without_a_rename_is_seen_when_closed,
    a_directory_replaced_mid_wait_is_watched_again,
    the_exit_finds_the_result_already_read,
    a_result_inside_an_existing_output_dir_is_seen_at_the_exit,
    a_lock_taken_inside_an_existing_locks_dir_keeps_the_session_running,
);

fn c1_result_success_beats_a_sigterm_packet(h: &World) {
    let s = h.session("01JC1SUCCESS");
    // The shipped fixture: result success, packet exit 143 (daemon_sigterm).
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/csa-session");
    if fixture.is_dir() {
        for name in [
            "daemon.pid",
            "daemon-completion.toml",
            "stdout.log",
            "result.toml",
        ] {
            s.write(
                name,
                &std::fs::read_to_string(fixture.join(name)).expect("fixture file"),
            );
        }
    } else {
        s.write("daemon.pid", "48213 7731942\n");
        s.write(
            "daemon-completion.toml",
            "exit_code = 143\nstatus = \"signal\"\nreason = \"daemon_sigterm\"\n",
        );
        s.write_result("success", 0);
    }
    let run = h.wait(s.path(), &["--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.markers(),
        [completed("01JC1SUCCESS", "success", 0, false)]
    );
    assert_eq!(run.json()["source"], "result");
}

fn c1_result_failure_beats_a_success_packet(h: &World) {
    let mut s = h.session("01JC1FAIL");
    s.start_process();
    s.write_result("failure", 2);
    s.write_packet("success", 0);
    s.end_process();
    let run = h.wait(&s.id, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.markers(), [completed("01JC1FAIL", "failure", 1, false)]);
}

fn c0_a_result_is_not_final_while_the_process_lives(h: &World) {
    let mut s = h.session("01JC0");
    let pid = s.start_process();
    let mut waiting = h.spawn_wait(s.path(), &[]);
    h.armed(&waiting);
    s.write_result("success", 0);
    // A second waiter with a short cap proves the daemon, having seen the
    // result, still holds the session open: the process is alive.
    let early = h.wait(s.path(), &["--cap", "0.2", "--json"]);
    assert_eq!(early.code, 0, "{early:?}");
    assert_eq!(early.json()["outcome"], "kv_warm");
    assert_eq!(early.json()["pid"], pid);
    assert!(
        waiting.try_wait().expect("try_wait").is_none(),
        "the first waiter must still wait"
    );
    s.end_process();
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.markers(), [completed("01JC0", "success", 0, false)]);
}

fn c2_packet_fallback_with_output(h: &World) {
    let mut s = h.session("01JC2");
    s.start_process();
    let mut waiting = h.spawn_wait(s.path(), &["--json"]);
    h.armed(&waiting);
    s.write_stdout();
    s.write_packet("signal", 143);
    s.end_process();
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.markers(), [completed("01JC2", "signal", 1, false)]);
    assert_eq!(run.json()["source"], "packet");
}

fn c3_empty_exit_zero_packet_fails_closed(h: &World) {
    let mut s = h.session("01JC3");
    s.start_process();
    s.write_packet("success", 0);
    s.end_process();
    let run = h.wait(s.path(), &["--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.markers(), [completed("01JC3", "failure", 1, false)]);
    assert_eq!(run.json()["reason"], "empty_success");
}

fn c4_died_without_a_word(h: &World) {
    let mut s = h.session("01JC4");
    s.start_process();
    let mut waiting = h.spawn_wait(s.path(), &["--json"]);
    h.armed(&waiting);
    s.end_process();
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.markers(), [completed("01JC4", "failure", 1, true)]);
    assert_eq!(run.json()["reason"], "died_without_result");
    assert_eq!(run.json()["source"], "none");
}

#[test]
fn c4_grace_lets_a_late_result_win() {
    let h = Harness::with_config("grace_ms = 60000\n");
    let mut s = h.session("01JC4LATE");
    s.start_process();
    let mut waiting = h.spawn_wait(s.path(), &[]);
    h.wait_for_waiters(1);
    s.end_process();
    // Within the (long) grace period, the result lands after the exit.
    s.write_result("success", 0);
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.markers(), [completed("01JC4LATE", "success", 0, false)]);
}

fn c5_and_t_unknown_process_times_out_at_the_cap(h: &World) {
    let s = h.session("01JC5");
    let run = h.wait(s.path(), &["--cap", "0.3"]);
    assert_eq!(run.code, 124, "{run:?}");
    let marker = format!("<!-- CSA:SESSION_WAIT_TIMEOUT session=01JC5 elapsed=0s status=dead cmd=\"verdict wait {} --json\" -->", s.path());
    assert_eq!(run.markers(), [marker]);
    assert!(
        run.stderr
            .starts_with("Timeout: session 01JC5 did not complete within 0.3s"),
        "{run:?}"
    );
}

fn k_live_process_at_the_cap_is_kv_warm(h: &World) {
    let mut s = h.session("01JK");
    s.start_process();
    let run = h.wait("01JK", &["--cap", "0.2"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.markers(),
        ["<!-- CSA:SESSION_WAIT_KV_WARM session=01JK status=alive elapsed=0s action=re-wait cmd=\"verdict wait 01JK\" -->"]
    );
    assert_eq!(run.hints().len(), 1, "{run:?}");
    assert!(run.hints()[0].contains("then call 'verdict wait 01JK' again in a NEW Bash call"));
}

fn stale_result_from_an_earlier_run_is_ignored(h: &World) {
    let mut s = h.session("01JSTALE");
    s.write_result("success", 0);
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(s.dir.join("result.toml"))
        .and_then(|f| f.set_modified(old))
        .expect("age result.toml");
    s.start_process();
    s.write_stdout();
    s.write_packet("failure", 7);
    s.end_process();
    let run = h.wait(s.path(), &["--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.markers(), [completed("01JSTALE", "failure", 1, false)]);
    let notes = run.json()["notes"].to_string();
    assert!(notes.contains("stale"), "{notes}");
}

fn pid_reuse_is_a_dead_process(h: &World) {
    let mut s = h.session("01JREUSE");
    let pid = s.start_process();
    // Same pid, another start time: the process that wrote it is gone.
    let real = verdict_e2e::starttime(pid);
    s.write("daemon.pid", &format!("{pid} {}\n", real + 12345));
    let run = h.wait(s.path(), &["--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["reason"], "died_without_result");
    // The note says what was seen, not "the process exited": the pid runs,
    // with another start time than daemon.pid's, and what the field is.
    let notes = run.json()["notes"].to_string();
    let said = format!(
        "pid {pid} runs but started at {real}, not at {} as daemon.pid says",
        real + 12345
    );
    assert!(notes.contains(&said), "{notes}");
    assert!(notes.contains("field 22 of /proc/"), "{notes}");
    assert!(!notes.contains("the process exited"), "{notes}");
}

fn legacy_complete_and_malformed_result_are_handled(h: &World) {
    let s = h.session("01JLEGACY");
    s.write(
        "result.toml",
        "status = \"success\"\nexit_code = \"zero\"\n",
    );
    s.write("stdout.log", "x\n");
    s.write(".complete", "0\n");
    let run = h.wait(s.path(), &["--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.markers(), [completed("01JLEGACY", "success", 0, false)]);
    let notes = run.json()["notes"].to_string();
    assert!(notes.contains("result.toml is not valid"), "{notes}");
}

fn a_fifo_named_result_toml_does_not_hang_anything(h: &World) {
    let s = h.session("01JFIFO");
    verdict_e2e::mkfifo(s.dir.join("result.toml"));
    s.write("stdout.log", "x\n");
    s.write_packet("failure", 3);
    let run = h.wait(s.path(), &["--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["exit_code"], 3);
    assert!(run.json()["notes"].to_string().contains("FIFO"), "{run:?}");
}

fn a_result_written_in_place_without_a_rename_is_seen_when_closed(h: &World) {
    use std::io::Write;
    let s = h.session("01JINPLACE");
    // No daemon.pid: only file events can end this wait.
    let mut waiting = h.spawn_wait(s.path(), &["--json"]);
    h.armed(&waiting);
    let mut file = std::fs::File::create(s.dir.join("result.toml")).expect("create");
    file.write_all(b"status = \"success\"\n").expect("write");
    file.flush().expect("flush");
    // Half a file is not a verdict: the wait goes on.
    assert!(h.still_waiting(&mut waiting));
    file.write_all(b"exit_code = 0\n").expect("write");
    drop(file); // IN_CLOSE_WRITE
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["source"], "result", "{run:?}");
}

fn a_directory_replaced_mid_wait_is_watched_again(h: &World) {
    let mut old = h.session("01JREPLACED");
    old.start_process();
    let mut waiting = h.spawn_wait(old.path(), &["--json"]);
    h.armed(&waiting);
    // A new directory of the same name, its own process running, moved in
    // where the old one was (the old one moved aside).
    let dir = old.dir.clone();
    let mut new = h.h.session_at(dir.with_file_name("01JREPLACED.new"));
    new.start_process();
    std::fs::rename(&dir, dir.with_file_name("01JREPLACED.old")).expect("move the old aside");
    std::fs::rename(&new.dir, &dir).expect("move the new in");
    new.dir = dir.clone();
    // The old watch follows the old inode: the wait must watch the new one.
    let watcher = h.watcher_pid(&waiting);
    eventually("the new directory to be watched", || {
        verdict_e2e::watches_inode(watcher, &dir).then_some(())
    });
    assert!(
        h.still_waiting(&mut waiting),
        "the new session's process runs"
    );
    new.write_result("success", 0);
    new.end_process();
    old.end_process();
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.markers(),
        [completed("01JREPLACED", "success", 0, false)]
    );
}

/// Who opened what in a directory (inotify `IN_OPEN`): the names.
struct Opens {
    fd: std::os::fd::OwnedFd,
}

impl Opens {
    fn of(dir: &std::path::Path) -> Opens {
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)
            .expect("inotify");
        inotify::add_watch(&fd, dir, inotify::WatchFlags::OPEN).expect("watch");
        Opens { fd }
    }

    /// The names opened since the last call.
    fn names(&mut self) -> Vec<String> {
        let mut buf = [std::mem::MaybeUninit::uninit(); 4096];
        let mut reader = rustix::fs::inotify::Reader::new(&self.fd, &mut buf);
        let mut names = Vec::new();
        while let Ok(event) = reader.next() {
            if let Some(name) = event.file_name() {
                names.push(name.to_string_lossy().into_owned());
            }
        }
        names
    }
}

fn the_exit_finds_the_result_already_read(h: &World) {
    let mut s = h.session("01JAHEAD");
    s.start_process();
    let mut opens = Opens::of(&s.dir);
    let mut waiting = h.spawn_wait(s.path(), &["--json"]);
    h.armed(&waiting);
    opens.names();
    // The result lands while the process runs: it is read then...
    s.write_result("success", 0);
    eventually("the result to be read as it lands", || {
        opens
            .names()
            .iter()
            .any(|n| n == "result.toml")
            .then_some(())
    });
    // ...and the exit's look reads nothing again.
    s.end_process();
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["source"], "result", "{run:?}");
    let opened = opens.names();
    assert!(
        !opened
            .iter()
            .any(|n| n == "result.toml" || n == "daemon.pid"),
        "the exit read again: {opened:?}"
    );
}

fn a_result_inside_an_existing_output_dir_is_seen_at_the_exit(h: &World) {
    let mut s = h.session("01JOUTPUTDIR");
    s.start_process();
    std::fs::create_dir(s.dir.join("output")).expect("output/");
    let mut waiting = h.spawn_wait(s.path(), &["--json"]);
    h.armed(&waiting);
    // Inside output/: no event on the session directory.
    verdict_e2e::write_atomic(
        &s.dir.join("output"),
        "result.toml",
        "status = \"failure\"\nexit_code = 7\n",
    );
    s.end_process();
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.json()["status"], "failure", "{run:?}");
    assert_eq!(run.json()["exit_code"], 7, "{run:?}");
}

fn a_lock_taken_inside_an_existing_locks_dir_keeps_the_session_running(h: &World) {
    let mut s = h.session("01JLOCKSDIR");
    s.start_process();
    std::fs::create_dir(s.dir.join("locks")).expect("locks/");
    let mut waiting = h.spawn_wait(s.path(), &["--json"]);
    h.armed(&waiting);
    // A tool of the session takes its lock (no event on the session
    // directory), the result lands, and the session's process ends first.
    let (mut tool, _) = verdict_e2e::sleeper();
    let lock = format!("{{\"pid\": {}, \"tool\": \"codex\"}}", tool.id());
    std::fs::write(s.dir.join("locks").join("codex.lock"), lock).expect("lock");
    s.write_result("success", 0);
    s.end_process();
    // The tool runs: the session is not over. A short-capped second
    // wait proves it, as in rule C0's test.
    let early = h.wait(s.path(), &["--cap", "0.2", "--json"]);
    assert_eq!(early.json()["outcome"], "kv_warm", "{early:?}");
    assert!(h.still_waiting(&mut waiting), "the tool still runs");
    let _ = tool.kill();
    let _ = tool.wait();
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["outcome"], "completed", "{run:?}");
}
