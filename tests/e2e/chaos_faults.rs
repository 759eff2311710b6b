//! Faults: lost inotify events, the watch limit, the daemon killed under
//! hundreds of clients, PID reuse and zombies, vanished directories, other
//! users, and leaks over 100,000 wait cycles.

use std::collections::HashMap;

use rustix::process::Signal;
use verdict_e2e::{
    daemons_serving, fd_count, finish, inotify_watches, raise_fd_limit, rss_kib, signal, Harness,
    Run, Session,
};

fn daemon_pid(h: &Harness) -> u32 {
    h.status()["pid"].as_u64().expect("pid") as u32
}

#[test]
fn inotify_queue_overflow_loses_no_verdict() {
    let h = Harness::start();
    let pid = daemon_pid(&h);
    let mut client = h.connect();
    // Sessions with no process: only file events can tell their end, so a
    // lost event is only recovered by the rescan after the overflow.
    let quiet: Vec<Session> = (0..4)
        .map(|i| h.session(&format!("01JOVFQUIET{i}")))
        .collect();
    let mut live: Vec<Session> = (0..2)
        .map(|i| h.session(&format!("01JOVFLIVE{i}")))
        .collect();
    live.iter_mut().for_each(|s| {
        s.start_process();
    });
    for s in quiet.iter().chain(&live) {
        client.wait(&s.id, s.path(), 0);
        assert_eq!(client.recv()["event"], "watching");
    }
    signal(pid as i32, Signal::STOP);
    let max_queued = verdict_e2e::inotify_max_queued_events();
    // Each new file is at least two events (create, close-write).
    for i in 0..max_queued {
        let dir = &quiet[i % quiet.len()].dir;
        std::fs::write(dir.join(format!("flood-{i}")), b"x").expect("flood");
    }
    quiet[0].write_result("success", 0);
    quiet[1].write_result("failure", 5);
    quiet[2].write_stdout();
    quiet[2].write_packet("signal", 143);
    quiet[3].write_packet("success", 0);
    live[0].write_result("success", 0);
    live.iter_mut().for_each(Session::end_process);
    signal(pid as i32, Signal::CONT);
    let verdicts = client.verdicts(6);
    let got = |id: &str| {
        let v = &verdicts[id];
        (
            v["status"].as_str().unwrap_or("").to_string(),
            v["exit_code"].as_i64(),
            v["synthetic"].as_bool(),
        )
    };
    assert_eq!(
        got("01JOVFQUIET0"),
        ("success".into(), Some(0), Some(false))
    );
    assert_eq!(
        got("01JOVFQUIET1"),
        ("failure".into(), Some(5), Some(false))
    );
    assert_eq!(
        got("01JOVFQUIET2"),
        ("signal".into(), Some(143), Some(false))
    );
    assert_eq!(
        got("01JOVFQUIET3"),
        ("failure".into(), Some(1), Some(false))
    );
    assert_eq!(got("01JOVFLIVE0"), ("success".into(), Some(0), Some(false)));
    assert_eq!(got("01JOVFLIVE1"), ("failure".into(), Some(1), Some(true)));
    let status = h.status();
    eprintln!("overflow: 6/6 verdicts right, status {status}");
    assert!(
        status["queue_overflows"].as_u64() >= Some(1),
        "the flood overflowed the queue: {status}"
    );
}

#[test]
fn past_max_watches_sessions_are_polled_and_still_answered() {
    let h = Harness::with_config("max_watches = 1\n");
    let mut client = h.connect();
    let first = h.session("01JWATCHED");
    let second = h.session("01JPOLLED");
    client.wait("first", first.path(), 0);
    client.wait("second", second.path(), 0);
    assert_eq!(client.recv()["event"], "watching");
    assert_eq!(client.recv()["event"], "watching");
    let status = h.status();
    assert_eq!(
        (status["watches"].as_u64(), status["polled"].as_u64()),
        (Some(1), Some(1)),
        "{status}"
    );
    second.write_result("success", 0);
    first.write_result("failure", 2);
    let verdicts = client.verdicts(2);
    assert_eq!(verdicts["first"]["exit_code"], 2);
    assert_eq!(verdicts["second"]["exit_code"], 0);
}

#[test]
fn hundreds_of_clients_survive_a_sigkilled_daemon() {
    raise_fd_limit();
    let mut h = Harness::start();
    let mut ending = h.session("01JMANYEND");
    ending.start_process();
    let mut running = h.session("01JMANYRUN");
    running.start_process();
    let mut enders: Vec<_> = (0..150)
        .map(|_| h.spawn_wait(ending.path(), &["--cap", "600"]))
        .collect();
    let mut cappers: Vec<_> = (0..150)
        .map(|_| h.spawn_wait(running.path(), &["--cap", "4", "--json"]))
        .collect();
    h.wait_for_waiters(300);
    let mut daemon = h.take_daemon();
    daemon.kill().expect("SIGKILL");
    daemon.wait().expect("reap");
    h.wait_for_waiters(300);
    // Daemons that lost the start race go as soon as they see the winner
    // answer (they may still be looking when the clients are all back).
    verdict_e2e::eventually("exactly one new daemon", || {
        (daemons_serving(&h.socket).len() == 1).then_some(())
    });
    ending.write_result("success", 0);
    ending.end_process();
    let mut right = 0;
    for child in &mut enders {
        let run = Run::from(finish(child));
        assert_eq!(run.code, 0, "{run:?}");
        right += 1;
    }
    for child in &mut cappers {
        let run = Run::from(finish(child));
        let verdict = run.json();
        assert_eq!(
            (run.code, verdict["outcome"].as_str()),
            (0, Some("kv_warm")),
            "{run:?}"
        );
        // The new daemon was asked only for what was left of the 4 s cap
        // (`cli::reconnect_asks_only_for_the_remaining_cap` measures it);
        // elapsed_ms counts the whole wait, from the client's start.
        assert!(verdict["elapsed_ms"].as_u64() >= Some(4000), "{verdict}");
        let elapsed = run.markers()[0]
            .split("elapsed=")
            .nth(1)
            .and_then(|r| r.split('s').next())
            .unwrap_or("");
        assert!(
            ["4", "5"].contains(&elapsed),
            "marker counts the whole wait: {run:?}"
        );
        right += 1;
    }
    eprintln!("SIGKILL under load: {right}/300 clients right, one daemon serving");
}

#[test]
fn pid_reuse_zombies_and_garbage_pid_files() {
    let h = Harness::start();
    let mut client = h.connect();
    // A zombie: killed but not reaped by its parent (this test).
    let zombie_session = h.session("01JZOMBIE");
    let mut zombie = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("sleep");
    let zpid = zombie.id() as i32;
    zombie_session.write(
        "daemon.pid",
        &format!("{zpid} {}\n", verdict_e2e::starttime(zpid)),
    );
    client.wait("zombie", zombie_session.path(), 0);
    assert_eq!(client.recv()["event"], "watching");
    signal(zpid, Signal::KILL);
    // A live, unrelated process whose start time does not match.
    let mut reused = h.session("01JREUSED");
    let rpid = reused.start_process();
    reused.write("daemon.pid", &format!("{rpid} 1\n"));
    client.wait("reused", reused.path(), 0);
    let mut garbage = Vec::new();
    for (id, contents) in [
        ("garbage", "not a pid\n"),
        ("zero", "0\n"),
        ("one", "1 1\n"),
        ("init", "1\n"),
    ] {
        let s = h.session(&format!("01JPID{id}"));
        s.write("daemon.pid", contents);
        client.wait(id, s.path(), 300);
        garbage.push(s);
    }
    let verdicts: HashMap<String, serde_json::Value> = client.verdicts(6);
    for id in ["zombie", "reused"] {
        assert_eq!(
            verdicts[id]["reason"], "died_without_result",
            "{id}: {}",
            verdicts[id]
        );
    }
    for id in ["garbage", "zero", "one", "init"] {
        let v = &verdicts[id];
        assert_eq!(
            (v["outcome"].as_str(), v["exit"].as_i64()),
            (Some("timeout"), Some(124)),
            "{id}: {v}"
        );
        assert!(v["notes"].to_string().contains("daemon.pid"), "{id}: {v}");
    }
    zombie.wait().expect("reap the zombie");
}

#[test]
fn directories_renamed_away_and_back_or_replaced() {
    let h = Harness::start();
    let pid = daemon_pid(&h) as i32;
    let mut client = h.connect();
    let away = h.session("01JAWAY");
    let replaced = h.session("01JREPLACED");
    client.wait("away", away.path(), 0);
    client.wait("replaced", replaced.path(), 0);
    assert_eq!(client.recv()["event"], "watching");
    assert_eq!(client.recv()["event"], "watching");
    // Renamed away and straight back: the wait goes on.
    let parked = h.root.join("parked");
    std::fs::rename(&away.dir, &parked).expect("rename away");
    std::fs::rename(&parked, &away.dir).expect("rename back");
    // Replaced while the daemon is stopped: the new directory decides.
    signal(pid, Signal::STOP);
    std::fs::remove_dir_all(&replaced.dir).expect("remove");
    std::fs::create_dir(&replaced.dir).expect("recreate");
    replaced.write_result("failure", 6);
    signal(pid, Signal::CONT);
    away.write_result("success", 0);
    let verdicts = client.verdicts(2);
    assert_eq!(verdicts["away"]["exit_code"], 0, "{}", verdicts["away"]);
    assert_eq!(
        verdicts["replaced"]["exit_code"], 6,
        "{}",
        verdicts["replaced"]
    );
}

#[test]
fn other_users_are_refused_and_symlinked_sessions_are_canonical() {
    let h = Harness::start();
    // A session reached through a symlink is watched at its real place.
    let real = h.session("01JREAL");
    real.write_stdout();
    real.write_packet("failure", 4);
    verdict_e2e::mkfifo(real.dir.join("result.toml"));
    let link = h.tmp.path().join("link-to-session");
    std::os::unix::fs::symlink(&real.dir, &link).expect("symlink");
    let mut client = h.connect();
    client.wait("link", link.to_str().expect("utf8"), 0);
    let watching = client.recv();
    assert_eq!(
        watching["dir"],
        std::fs::canonicalize(&real.dir)
            .expect("canon")
            .to_str()
            .expect("utf8")
    );
    assert_eq!(client.verdicts(1)["link"]["exit_code"], 4);

    if !rustix::process::getuid().is_root() {
        eprintln!("not root: the other-uid check needs setpriv as root (CI runs as root)");
        return;
    }
    // Let uid 65534 reach the socket file; the daemon itself must refuse it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(h.tmp.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod dir");
    std::fs::set_permissions(&h.socket, std::fs::Permissions::from_mode(0o666))
        .expect("chmod socket");
    let mut command = std::process::Command::new("setpriv");
    command
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "socat",
            "-t",
            "20",
            "-",
        ])
        .arg(format!("UNIX-CONNECT:{}", h.socket.display()))
        .stdin(std::process::Stdio::piped());
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"{\"v\":1,\"id\":1,\"op\":\"ping\"}\n")
        .expect("write");
    let run = Run::from(finish(&mut child));
    // socat connected (no connect() error), and the daemon closed the
    // connection without a reply (socat may see its write fail).
    assert!(
        !run.stderr.contains("connect("),
        "uid 65534 could not even connect: {run:?}"
    );
    assert_eq!(run.stdout, "", "the daemon answered another uid: {run:?}");
}

#[test]
fn no_leaks_after_100k_wait_cancel_disconnect_cycles() {
    let h = Harness::start();
    let pid = daemon_pid(&h);
    let sessions: Vec<Session> = (0..20)
        .map(|i| h.session(&format!("01JLEAK{i:02}")))
        .collect();
    let run_cycles = |cycles: usize| {
        let mut done = 0;
        while done < cycles {
            let mut client = h.connect();
            let batch = 500.min(cycles - done);
            let mut lines = String::new();
            for i in 0..batch {
                let s = &sessions[(done + i) % sessions.len()];
                lines.push_str(&format!(
                    r#"{{"v":1,"id":{i},"op":"wait","session":"{}","cap_ms":0}}"#,
                    s.path()
                ));
                lines.push('\n');
                if i % 50 != 49 {
                    lines.push_str(&format!(
                        r#"{{"v":1,"id":"c{i}","op":"cancel","target":{i}}}"#
                    ));
                    lines.push('\n');
                }
            }
            client.send_raw(lines.as_bytes());
            // Every 50th wait is left in flight and dropped with the connection.
            let replies = batch + (batch - batch / 50);
            for _ in 0..replies {
                client.recv();
            }
            done += batch;
        }
    };
    // One monitoring connection stays open, so the daemon's fd count is
    // exact once it reports that connection as the only one.
    let mut monitor = h.connect();
    let mut settled = |h: &Harness| {
        verdict_e2e::eventually("the daemon to settle", || {
            monitor.send(r#"{"v":1,"id":"m","op":"status"}"#);
            let status = monitor.recv();
            (status["connections"] == 1 && status["waiters"] == 0).then_some(())
        });
        // A reply is written during the daemon's round; a second request
        // is handled in a later one, after that round's clean-up.
        monitor.send(r#"{"v":1,"id":"p","op":"ping"}"#);
        monitor.recv();
        let _ = h;
        (fd_count(pid), inotify_watches(pid), rss_kib(pid))
    };
    run_cycles(2_000);
    let before = settled(&h);
    run_cycles(100_000);
    let after = settled(&h);
    let status = h.status();
    eprintln!(
        "leaks: fds {} -> {}, inotify watches {} -> {}, RSS {} -> {} KiB; {status}",
        before.0, after.0, before.1, after.1, before.2, after.2
    );
    assert_eq!(
        (
            status["sessions"].as_u64(),
            status["waiters"].as_u64(),
            status["watches"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(after.0, before.0, "open fds back at baseline");
    assert_eq!((before.1, after.1), (0, 0), "no inotify watch left");
    assert!(
        after.2 < before.2 + 4 * 1024,
        "RSS back near baseline: {} -> {} KiB",
        before.2,
        after.2
    );
}
