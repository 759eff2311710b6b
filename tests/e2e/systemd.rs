//! verdictd as a systemd user service: the units verify, socket activation
//! serves clients without a second daemon, and the notify protocol says
//! READY=1, STATUS= and STOPPING=1.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use rustix::process::Signal;
use verdict_e2e::{bin, eventually, finish, output_within, signal, Harness, Run, DEADLINE};

fn installed_units(h: &Harness) -> std::path::PathBuf {
    // `verdict service` takes no --socket: build the command by hand.
    let mut install = Command::new(bin("verdict"));
    install.args(["service", "install"]);
    h.isolate(&mut install);
    let run = Run::from(output_within(install));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("systemctl --user enable --now verdictd.socket"),
        "{run:?}"
    );
    h.tmp.path().join("home/config/systemd/user")
}

#[test]
fn installed_units_point_at_the_binary_and_verify() {
    let h = Harness::without_daemon();
    let dir = installed_units(&h);
    let service = std::fs::read_to_string(dir.join("verdictd.service")).expect("service unit");
    let exec = format!(
        "ExecStart={} --exit-idle-after 3600",
        bin("verdictd").display()
    );
    assert!(service.lines().any(|line| line == exec), "{service}");
    let runtime = h.tmp.path().join("runtime");
    std::fs::create_dir_all(&runtime).expect("runtime dir");
    let mut verify = Command::new("systemd-analyze");
    verify
        .args(["--user", "verify"])
        .arg(dir.join("verdictd.socket"))
        .arg(dir.join("verdictd.service"))
        .env("XDG_RUNTIME_DIR", &runtime);
    let run = Run::from(output_within(verify));
    assert_eq!(run.code, 0, "systemd-analyze --user verify: {run:?}");
}

#[test]
fn socket_activation_serves_clients_and_leaves_the_path_alone() {
    let h = Harness::without_daemon();
    let mut command = Command::new("systemd-socket-activate");
    command
        .arg("-l")
        .arg(&h.socket)
        .arg(bin("verdictd"))
        .arg("--config")
        .arg(&h.config)
        .arg("--root")
        .arg(&h.root);
    h.isolate(&mut command);
    let mut activator = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate");
    eventually("the activated socket", || {
        std::os::unix::net::UnixStream::connect(&h.socket).ok()
    });
    let s = h.session("01JACTIVATED");
    s.write_result("success", 0);
    for _ in 0..2 {
        let run = h.wait(s.path(), &["--no-spawn"]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    assert_eq!(
        h.status()["pid"],
        activator.id(),
        "the activated daemon served both; none was spawned"
    );
    // A daemon started by hand on the same path refuses to take it over.
    let run = Run::from(output_within(h.daemon_command()));
    assert_ne!(run.code, 0, "{run:?}");
    signal(activator.id() as i32, Signal::TERM);
    let status = activator.wait().expect("activated daemon exits");
    assert!(status.success(), "{status:?}");
    assert!(
        h.socket.exists(),
        "the socket belongs to the service manager"
    );
}

fn recv_until(notify: &UnixDatagram, prefix: &str) -> String {
    let mut buf = [0u8; 4096];
    loop {
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|err| panic!("no {prefix} within {DEADLINE:?}: {err}"));
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        if message.lines().any(|line| line.starts_with(prefix)) {
            return message;
        }
    }
}

#[test]
fn notify_protocol_ready_status_stopping() {
    let h = Harness::without_daemon();
    let notify_path = h.tmp.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut command = h.daemon_command();
    command.env("NOTIFY_SOCKET", &notify_path);
    let mut daemon = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("verdictd");
    recv_until(&notify, "READY=1");
    let mut s = h.session("01JNOTIFY");
    s.start_process();
    let mut waiting = h.spawn_wait(s.path(), &[]);
    let status = recv_until(&notify, "STATUS=watching 1 session for 1 waiter");
    assert!(
        status.contains("1 waiter") && !status.contains("waiters"),
        "{status}"
    );
    s.end_process();
    assert_eq!(finish(&mut waiting).status.code(), Some(1));
    signal(daemon.id() as i32, Signal::TERM);
    recv_until(&notify, "STOPPING=1");
    let exit = daemon.wait().expect("daemon exits");
    assert!(exit.success(), "{exit:?}");
    assert!(!h.socket.exists(), "socket removed");
}

#[test]
fn exit_idle_after_waits_for_the_last_waiter() {
    let h = Harness::without_daemon();
    let mut command = h.daemon_command();
    command.args(["--exit-idle-after", "1"]);
    let mut daemon = command
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("verdictd");
    let client = eventually("the daemon to listen", || {
        std::os::unix::net::UnixStream::connect(&h.socket).ok()
    });
    let mut client = verdict_e2e::Client::from_stream(client);
    let mut s = h.session("01JIDLE");
    s.start_process();
    // The wait outlives the idle period: the daemon must still answer it.
    client.send(&format!(
        r#"{{"v":1,"id":1,"op":"wait","session":"{}","cap_ms":1500}}"#,
        s.path()
    ));
    assert_eq!(client.recv()["event"], "watching");
    assert_eq!(client.recv()["outcome"], "kv_warm");
    drop(client);
    let status = eventually("the idle daemon to exit", || {
        daemon.try_wait().expect("try_wait")
    });
    assert!(status.success(), "{status:?}");
    assert!(!h.socket.exists());
}
