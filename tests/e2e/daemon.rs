//! `verdictd` as a process: its socket, its lock, its signals, its config.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use rustix::process::Signal;
use verdict_e2e::{finish, output_within, signal, Harness, Run};

#[test]
fn socket_is_private_and_removed_on_sigterm() {
    let mut h = Harness::start();
    let mode = std::fs::metadata(&h.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let pid = h.daemon().id() as i32;
    signal(pid, Signal::TERM);
    let status = h.daemon().wait().expect("daemon exits");
    assert!(status.success(), "{status:?}");
    assert!(!h.socket.exists(), "socket removed");
    assert_eq!(h.locked_pid(), None, "lock file removed");
}

#[test]
fn a_second_daemon_on_the_same_socket_refuses_and_leaves_the_first_alone() {
    let h = Harness::start();
    let run = Run::from(output_within(h.daemon_command()));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("already serving"), "{run:?}");
    let mut c = h.connect();
    c.send(r#"{"v":1,"id":1,"op":"ping"}"#);
    assert_eq!(c.recv()["event"], "pong");
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let mut h = Harness::start();
    let mut first = h.take_daemon();
    first.kill().expect("kill");
    first.wait().expect("reap");
    assert!(h.socket.exists(), "SIGKILL leaves the socket file behind");
    h.spawn_daemon();
    let mut c = h.connect();
    c.send(r#"{"v":1,"id":1,"op":"ping"}"#);
    assert_eq!(c.recv()["event"], "pong");
}

#[test]
fn an_unknown_config_key_is_fatal_and_named() {
    let h = Harness::without_daemon();
    std::fs::write(&h.config, "grace_ms = 10\nno_such_key = 1\n").expect("config");
    let run = Run::from(output_within(h.daemon_command()));
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("no_such_key") && run.stderr.contains("line 2"),
        "{run:?}"
    );
    assert!(!h.socket.exists());
}

#[test]
fn a_socket_directory_writable_by_others_is_refused() {
    let h = Harness::without_daemon();
    let open = h.tmp.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let run = Run::from(output_within(h.daemon_command_on(&open.join("v.sock"))));
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("writable by other users"), "{run:?}");
}

#[test]
fn sighup_reloads_and_a_broken_config_keeps_the_old_one() {
    let mut h = Harness::with_config("default_cap_ms = 100\n");
    let s = h.session("01JHUP");
    let pid = h.daemon().id() as i32;
    let cap = |h: &Harness| {
        let mut c = h.connect();
        c.send(&format!(
            r#"{{"v":1,"id":1,"op":"wait","session":"{}"}}"#,
            s.path()
        ));
        c.recv()["cap_ms"].as_u64()
    };
    assert_eq!(cap(&h), Some(100));
    std::fs::write(&h.config, "default_cap_ms = 200\n").expect("config");
    signal(pid, Signal::HUP);
    verdict_e2e::eventually("the new config", || (cap(&h) == Some(200)).then_some(()));
    std::fs::write(&h.config, "default_cap_ms = 300\nbogus = true\n").expect("config");
    signal(pid, Signal::HUP);
    // Still serving, still with the last good config.
    let mut c = h.connect();
    c.send(r#"{"v":1,"id":1,"op":"ping"}"#);
    assert_eq!(c.recv()["event"], "pong");
    assert_eq!(cap(&h), Some(200));
}

#[test]
fn verdict_status_reports_counters() {
    let h = Harness::start();
    let run = Run::from(output_within(h.verdict(&["status", "--json"])));
    assert_eq!(run.code, 0, "{run:?}");
    let status: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("json");
    assert_eq!(status["event"], "status");
    let human = Run::from(output_within(h.verdict(&["status"])));
    assert!(human.stdout.contains("waiters"), "{human:?}");
    let mut stopped = Harness::without_daemon().verdict(&["status"]);
    stopped.stdout(Stdio::piped());
    let mut child = stopped.stderr(Stdio::piped()).spawn().expect("spawn");
    assert_eq!(finish(&mut child).status.code(), Some(3));
}
