//! `verdict` as users run it: many waiters, ids and paths, auto-spawn,
//! reconnection after the daemon dies, and the error exits.

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use rustix::process::Signal;
use verdict_e2e::{finish, output_within, Harness, Run};

const SUCCESS: &str = "status=success exit=0 synthetic=false -->";

#[test]
fn two_hundred_concurrent_waiters_all_get_the_verdict() {
    let h = Harness::start();
    let mut s = h.session("01JFANOUT");
    s.start_process();
    let mut waiters: Vec<_> = (0..200).map(|_| h.spawn_wait(s.path(), &[])).collect();
    h.wait_for_waiters(200);
    let status = h.status();
    assert_eq!(
        (status["sessions"].as_u64(), status["watches"].as_u64()),
        (Some(1), Some(1)),
        "one shared watch: {status}"
    );
    s.write_result("success", 0);
    s.end_process();
    for child in &mut waiters {
        let run = Run::from(finish(child));
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.markers()[0].ends_with(SUCCESS), "{run:?}");
    }
    let status = h.status();
    assert_eq!(
        (status["waiters"].as_u64(), status["watches"].as_u64()),
        (Some(0), Some(0)),
        "watch removed: {status}"
    );
    assert!(status["verdicts_sent"].as_u64() >= Some(200), "{status}");
}

#[test]
fn a_waiter_after_the_end_gets_the_verdict_at_once() {
    let h = Harness::start();
    let mut s = h.session("01JLATE");
    s.start_process();
    s.write_result("success", 0);
    s.end_process();
    let run = h.wait(s.path(), &["--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.json()["elapsed_ms"].as_u64() < Some(1000), "{run:?}");
}

#[test]
fn ids_are_found_under_the_roots_and_relative_paths_work() {
    let h = Harness::start();
    let nested = h.root.join("project").join("sessions").join("01JNESTED");
    std::fs::create_dir_all(&nested).expect("mkdir");
    std::fs::write(
        nested.join("result.toml"),
        "status = \"success\"\nexit_code = 0\n",
    )
    .expect("result");
    let run = h.wait("01JNESTED", &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.markers()[0],
        format!("<!-- CSA:SESSION_WAIT_COMPLETED session=01JNESTED {SUCCESS}")
    );

    let mut relative = h.verdict(&["wait", "./project/sessions/01JNESTED"]);
    relative.current_dir(&h.root);
    assert_eq!(Run::from(output_within(relative)).code, 0);
}

#[test]
fn unknown_sessions_exit_2_naming_the_path() {
    let h = Harness::start();
    let missing = h.root.join("01JNOPE");
    let run = h.wait(missing.to_str().expect("utf8"), &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(missing.to_str().expect("utf8")),
        "{run:?}"
    );
    let run = h.wait("01JNOPE", &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(h.root.to_str().expect("utf8")),
        "the roots searched are named: {run:?}"
    );
}

#[test]
fn bad_invocations_exit_2_and_help_explains_exit_codes() {
    let h = Harness::start();
    assert_eq!(Run::from(output_within(h.verdict(&["wait"]))).code, 2);
    assert_eq!(h.wait("x", &["--cap", "-1"]).code, 2);
    assert_eq!(h.wait("x", &["--cap", "soon"]).code, 2);
    let mut help = std::process::Command::new(verdict_e2e::bin("verdict"));
    help.arg("--help");
    let run = Run::from(output_within(help));
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("124") && run.stdout.contains("kv_warm"),
        "{run:?}"
    );
}

#[test]
fn no_spawn_with_nothing_listening_exits_3() {
    let h = Harness::without_daemon();
    let s = h.session("01JNOSPAWN");
    let run = h.wait(s.path(), &["--no-spawn"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains(h.socket.to_str().expect("utf8")),
        "{run:?}"
    );
    assert!(!h.socket.exists());
}

#[test]
fn wait_starts_the_daemon_which_outlives_the_client() {
    let h = Harness::without_daemon();
    let mut s = h.session("01JSPAWN");
    s.start_process();
    s.write_result("success", 0);
    s.end_process();
    let run = h.wait(s.path(), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    // The spawned daemon is still serving after its client exited.
    let pid = h.locked_pid().expect("spawned daemon holds the lock");
    assert_eq!(h.status()["pid"], pid);
}

#[test]
fn racing_clients_start_exactly_one_daemon() {
    let h = Harness::without_daemon();
    let mut s = h.session("01JRACE");
    s.start_process();
    let mut waiters: Vec<_> = (0..8).map(|_| h.spawn_wait(s.path(), &[])).collect();
    h.wait_for_waiters(8);
    let daemon = h.status()["pid"].clone();
    s.write_result("success", 0);
    s.end_process();
    for child in &mut waiters {
        assert_eq!(Run::from(finish(child)).code, 0);
    }
    assert_eq!(h.status()["pid"], daemon, "one daemon served everyone");
    // The daemons that lost the start-up race left no error in the log.
    let mut log = h.socket.as_os_str().to_owned();
    log.push(".log");
    let log = std::fs::read_to_string(std::path::PathBuf::from(log)).unwrap_or_default();
    assert!(!log.contains("already serving"), "{log}");
}

#[test]
fn daemon_killed_mid_wait_clients_reconnect_and_get_the_verdict() {
    let mut h = Harness::start();
    let mut s = h.session("01JKILLED");
    s.start_process();
    let mut waiters: Vec<_> = (0..20)
        .map(|_| h.spawn_wait(s.path(), &["--cap", "600"]))
        .collect();
    h.wait_for_waiters(20);
    let mut daemon = h.take_daemon();
    daemon.kill().expect("SIGKILL the daemon");
    daemon.wait().expect("reap");
    // The clients start a new daemon and wait again.
    h.wait_for_waiters(20);
    s.write_result("success", 0);
    s.end_process();
    for child in &mut waiters {
        let run = Run::from(finish(child));
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.markers()[0].ends_with(SUCCESS), "{run:?}");
    }
}

#[test]
fn reconnect_asks_only_for_the_remaining_cap() {
    let mut h = Harness::start();
    let mut s = h.session("01JREMAIN");
    s.start_process();
    let mut waiting = h.spawn_wait(s.path(), &["--cap", "4", "--json"]);
    h.wait_for_waiters(1);
    // Let a good part of the cap pass (a 1 s wait on another session),
    // so that asking the next daemon for the whole cap again would show.
    let mut other = h.session("01JREMAINOTHER");
    other.start_process();
    assert_eq!(h.wait(other.path(), &["--cap", "1"]).code, 0);
    let mut daemon = h.take_daemon();
    daemon.kill().expect("SIGKILL the daemon");
    daemon.wait().expect("reap");
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 0, "{run:?}");
    let verdict = run.json();
    assert_eq!(verdict["outcome"], "kv_warm");
    // elapsed_ms counts from the client's start, like the marker: the
    // second daemon was asked only for what was left of the 4 s cap, so
    // the whole wait took 4 s, not 1 s + 4 s.
    let elapsed = verdict["elapsed_ms"].as_u64().expect("elapsed_ms");
    assert!((4000..4800).contains(&elapsed), "{verdict}");
    assert!(run.markers()[0].contains("elapsed=4s"), "{run:?}");
}

#[test]
fn a_removed_session_directory_exits_1() {
    let h = Harness::start();
    let mut s = h.session("01JREMOVED");
    s.start_process();
    let mut waiting = h.spawn_wait(s.path(), &[]);
    h.wait_for_waiters(1);
    std::fs::remove_dir_all(&s.dir).expect("remove session dir");
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("removed"), "{run:?}");
}

#[test]
fn killing_the_client_does_not_kill_a_spawned_daemon() {
    let h = Harness::without_daemon();
    let mut s = h.session("01JDETACH");
    s.start_process();
    let mut command = h.verdict(&["wait", s.path()]);
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut client = command.spawn().expect("spawn");
    h.wait_for_waiters(1);
    let pid = h.locked_pid().expect("daemon pid");
    // Signal the client's whole process group, as a terminal's ^C would.
    // SIGTERM rather than SIGINT: a test run started in the background of
    // a non-interactive shell (or under nohup) inherits SIGINT ignored.
    let group = rustix::process::Pid::from_raw(client.id() as i32).expect("pid");
    rustix::process::kill_process_group(group, Signal::TERM).expect("kill group");
    use wait_timeout::ChildExt;
    let status = client
        .wait_timeout(verdict_e2e::DEADLINE)
        .expect("wait for the client");
    assert!(
        status.is_some(),
        "the client outlived the signal to its group"
    );
    h.wait_for_waiters(0);
    assert_eq!(h.status()["pid"], pid);
}

/// `verdict status`'s text, with what varies between runs replaced by
/// placeholders, against `tests/fixtures/snapshots/status.txt`.
#[test]
fn status_text_matches_its_snapshot() {
    let h = Harness::start();
    let mut live = h.session("01JSTATUSTEXT");
    live.start_process();
    let mut waiting = h.spawn_wait(live.path(), &[]);
    h.wait_for_waiters(1);
    let run = Run::from(verdict_e2e::output_within(h.verdict(&["status"])));
    assert_eq!(run.code, 0, "{run:?}");
    let pid = h.status()["pid"].to_string();
    let text = run
        .stdout
        .replace(&h.socket.display().to_string(), "$SOCKET")
        .replace(live.path(), "$SESSION")
        .replace(&format!("(pid {pid})"), "(pid $PID)")
        .replace(env!("CARGO_PKG_VERSION"), "$VERSION");
    let text: String = text
        .lines()
        .map(|line| {
            // The uptime, and the connections (the harness's own status
            // connections may not be closed yet), vary between runs.
            if line.starts_with("  uptime") {
                "  uptime         $UPTIME\n".to_string()
            } else if line.starts_with("  connections") {
                "  connections    $N\n".to_string()
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/snapshots/status.txt");
    if std::env::var_os("VERDICT_BLESS").is_some() {
        std::fs::write(&path, &text).expect("bless the snapshot");
    }
    let want = std::fs::read_to_string(&path).expect("snapshot (VERDICT_BLESS=1 writes it)");
    assert_eq!(
        text, want,
        "verdict status changed; VERDICT_BLESS=1 re-records it"
    );
    live.end_process();
    let _ = verdict_e2e::finish(&mut waiting);
}

#[test]
fn a_file_given_as_a_session_is_called_a_file_and_typos_get_suggestions() {
    let h = Harness::start();
    let s = verdict_e2e::Session::ended(&h, "01JAFILE");
    s.write_result("success", 0);
    let result = s.dir.join("result.toml");
    for extra in [&[][..], &["--no-daemon"][..]] {
        let run = h.wait(result.to_str().expect("utf8"), extra);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(
            run.stderr.contains("is a file, not a session directory"),
            "{run:?}"
        );
        assert!(
            run.stderr
                .contains(&format!("its parent: {}", s.dir.display())),
            "{run:?}"
        );
        assert!(!run.stderr.contains("no such directory"), "{run:?}");
    }
    let run = Run::from(output_within(h.verdict(&["wiat", s.path()])));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("'wait'"), "did you mean: {run:?}");
    let run = Run::from(output_within(h.verdict(&["wait", s.path(), "--jsno"])));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("'--json'"), "did you mean: {run:?}");
}

#[test]
fn a_daemon_that_cannot_start_is_heard_once_with_its_own_reason() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::without_daemon();
    let s = verdict_e2e::Session::ended(&h, "01JNOSTART");
    s.write_result("success", 0);
    let shared = h.tmp.path().join("shared");
    std::fs::create_dir(&shared).expect("dir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let socket = shared.join("verdictd.sock");
    let mut wait = std::process::Command::new(verdict_e2e::bin("verdict"));
    wait.args(["wait", s.path(), "--socket"]).arg(&socket);
    h.isolate(&mut wait);
    let run = Run::from(output_within(wait));
    // Answered without a daemon, with the daemon's reason said once.
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("writable by other users"), "{run:?}");
    assert!(!run.stderr.contains("os error 2"), "{run:?}");
    let log = std::fs::read_to_string(shared.join("verdictd.sock.log")).expect("log");
    assert_eq!(log.lines().count(), 1, "{log}");
}

#[test]
fn stop_names_the_clients_that_would_restart_it_and_and_clients_stops_them() {
    let h = Harness::start();
    let mut events = h
        .verdict(&["events"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("verdict events");
    verdict_e2e::eventually("the subscription", || {
        (h.status()["subscribers"] == 1).then_some(())
    });
    let run = Run::from(output_within(h.verdict(&["stop"])));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("1 client still connected (pid {}", events.id())),
        "{run:?}"
    );
    assert!(run.stdout.contains("verdict stop --and-clients"), "{run:?}");
    // The client starts it again, and says that it undoes a stop.
    verdict_e2e::eventually("a daemon started again by the client", || {
        h.try_status()
            .filter(|status| status["subscribers"] == 1)
            .map(drop)
    });
    let run = Run::from(output_within(h.verdict(&["stop", "--and-clients"])));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("stopped its verdict clients: pid {}", events.id())),
        "{run:?}"
    );
    let out = finish(&mut events);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was stopped with `verdict stop`"),
        "{stderr}"
    );
    // Nothing left to start it again: it stays stopped.
    assert!(verdict_e2e::daemons_serving(&h.socket).is_empty());
}
