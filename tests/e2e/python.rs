//! The stdlib-only Python client against the real daemon, side by side with
//! `verdict wait`: same exit codes, byte-identical marker lines.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use verdict_e2e::{bin, finish, output_within, Harness, Run, Session};

fn client_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/python/verdict_client.py")
}

/// The Python client with our binaries first on PATH (it starts
/// `verdictd` from PATH when nothing listens).
fn python(h: &Harness, args: &[&str]) -> Command {
    let mut command = verdict_e2e::python_client(h, args);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(bin("verdictd").parent().expect("bin dir").to_path_buf())
        .chain(std::env::split_paths(&path));
    command.env("PATH", std::env::join_paths(dirs).expect("PATH"));
    command
}

/// `python3` in the harness's environment, with our binaries first on PATH.
fn python3(h: &Harness) -> Command {
    let mut command = Command::new("python3");
    command.stdin(Stdio::null());
    h.isolate(&mut command);
    // The client starts `verdictd` from PATH when nothing listens.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(bin("verdictd").parent().expect("bin dir").to_path_buf())
        .chain(std::env::split_paths(&path));
    command.env("PATH", std::env::join_paths(dirs).expect("PATH"));
    command
}

/// Runs both clients on `session` and checks they agree; returns the code.
fn side_by_side(h: &Harness, session: &str, extra: &[&str]) -> i32 {
    let rust = h.wait(session, extra);
    let mut args = vec!["wait", session];
    args.extend_from_slice(extra);
    let py = Run::from(output_within(python(h, &args)));
    assert_eq!(
        py.code, rust.code,
        "exit codes differ\nrust: {rust:?}\npython: {py:?}"
    );
    assert_eq!(
        py.stderr, rust.stderr,
        "stderr differs (sentence and markers)"
    );
    if extra.contains(&"--json") {
        // Timings differ between two runs; everything else must not.
        let timeless = |run: &Run| {
            let mut value = run.json();
            value.as_object_mut().map(|o| o.remove("elapsed_ms"));
            value
        };
        assert_eq!(timeless(&py), timeless(&rust), "--json output differs");
    } else {
        assert_eq!(py.stdout, rust.stdout, "stdout differs");
    }
    rust.code
}

fn dead_session(h: &Harness, id: &str) -> Session {
    let mut s = h.session(id);
    s.start_process();
    s.end_process();
    s
}

#[test]
fn python_and_rust_clients_agree_on_every_rule() {
    let h = Harness::start();
    let c1 = dead_session(&h, "01JPYC1");
    c1.write_result("success", 0);
    c1.write_packet("signal", 143);
    assert_eq!(side_by_side(&h, c1.path(), &["--json"]), 0);

    let c1f = dead_session(&h, "01JPYC1F");
    c1f.write_result("failure", 3);
    assert_eq!(side_by_side(&h, "01JPYC1F", &[]), 1);

    let c2 = dead_session(&h, "01JPYC2");
    c2.write_stdout();
    c2.write_packet("signal", 143);
    assert_eq!(side_by_side(&h, c2.path(), &["--json"]), 1);

    let c3 = dead_session(&h, "01JPYC3");
    c3.write_packet("success", 0);
    assert_eq!(side_by_side(&h, c3.path(), &[]), 1);

    let c4 = dead_session(&h, "01JPYC4");
    assert_eq!(side_by_side(&h, c4.path(), &["--json"]), 1);

    let mut k = h.session("01JPYK");
    k.start_process();
    assert_eq!(side_by_side(&h, k.path(), &["--cap", "0.2"]), 0);

    let t = h.session("01JPYT");
    assert_eq!(side_by_side(&h, "01JPYT", &["--cap", "0.2"]), 124);
    drop(t);

    let missing = h.root.join("01JPYMISSING");
    assert_eq!(side_by_side(&h, missing.to_str().expect("utf8"), &[]), 2);

    let mut relative = h.verdict(&["wait", "./01JPYC1F"]);
    relative.current_dir(&h.root);
    let mut py_relative = python(&h, &["wait", "./01JPYC1F"]);
    py_relative.current_dir(&h.root);
    let (rust, py) = (
        Run::from(output_within(relative)),
        Run::from(output_within(py_relative)),
    );
    assert_eq!((py.code, py.stderr), (rust.code, rust.stderr));
}

#[test]
fn python_no_spawn_exits_3_and_as_a_module_returns_the_verdict() {
    let h = Harness::without_daemon();
    let s = h.session("01JPYMOD");
    s.write_result("success", 0);
    let run = Run::from(output_within(python(&h, &["wait", s.path(), "--no-spawn"])));
    assert_eq!(run.code, 3, "{run:?}");

    // As a module: it starts the daemon from PATH and returns a dict.
    let script = format!(
        "import sys; sys.path.insert(0, {dir:?}); import verdict_client as v; \
         r = v.wait({session:?}, cap=5, socket={socket:?}); print(r['outcome'], r['status'], r['exit'])",
        dir = client_py().parent().expect("dir").to_str().expect("utf8"),
        session = s.path(),
        socket = h.socket.to_str().expect("utf8"),
    );
    let mut module = python3(&h);
    module.args(["-c", &script]);
    let run = Run::from(output_within(module));
    assert_eq!(
        (run.code, run.stdout.trim()),
        (0, "completed success 0"),
        "{run:?}"
    );
}

#[test]
fn python_client_reconnects_when_the_daemon_restarts() {
    let mut h = Harness::start();
    let mut s = h.session("01JPYRESTART");
    s.start_process();
    let mut child = python(&h, &["wait", s.path(), "--cap", "600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    h.wait_for_waiters(1);
    let mut daemon = h.take_daemon();
    daemon.kill().expect("kill daemon");
    daemon.wait().expect("reap");
    h.wait_for_waiters(1);
    s.write_result("success", 0);
    s.end_process();
    let run = Run::from(finish(&mut child));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.markers(), ["<!-- CSA:SESSION_WAIT_COMPLETED session=01JPYRESTART status=success exit=0 synthetic=false -->"]);
}

#[test]
fn python_wait_many_and_events() {
    let h = Harness::start();
    let a = h.session("01JPYMANYA");
    a.write_result("success", 0);
    let b = h.session("01JPYMANYB");
    b.write_result("failure", 1);
    let dir = client_py()
        .parent()
        .expect("dir")
        .to_str()
        .expect("utf8")
        .to_string();
    let socket = h.socket.to_str().expect("utf8").to_string();
    let script = format!(
        r#"
import sys
sys.path.insert(0, {dir:?})
import verdict_client as v
for r in v.wait_many([{a:?}, {b:?}, "01JPYNOSUCH"], socket={socket:?}):
    print("many", r["_session"].rsplit("/", 1)[-1], r.get("exit", r.get("code")))
first = next(v.wait_many([{a:?}, {b:?}], mode="any", socket={socket:?}))
print("any", first["outcome"])
"#,
        a = a.path(),
        b = b.path(),
    );
    let mut many = python3(&h);
    many.args(["-c", &script]);
    let run = Run::from(output_within(many));
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.contains(&"many 01JPYMANYA 0"), "{run:?}");
    assert!(lines.contains(&"many 01JPYMANYB 1"), "{run:?}");
    assert!(
        lines.contains(&"many 01JPYNOSUCH unknown_session"),
        "{run:?}"
    );
    assert!(lines.contains(&"any completed"), "{run:?}");

    // events(): a new session's start and end, as the script prints them.
    let events = format!(
        r#"
import sys
sys.path.insert(0, {dir:?})
import verdict_client as v
for n, event in enumerate(v.events(under=[{root:?}], socket={socket:?})):
    print(event["event"], event["session"], flush=True)
    if n == 1:
        break
"#,
        root = h.root.to_str().expect("utf8"),
    );
    std::fs::create_dir_all(h.root.join("proj/sessions")).expect("sessions dir");
    let mut child = python3(&h)
        .args(["-c", &events])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    verdict_e2e::eventually("the Python subscription", || {
        (h.try_status()?["subscribers"] == 1).then_some(())
    });
    let mut session = h.session("proj/sessions/01JPYEVENT");
    session.start_process();
    let timeout = std::time::Duration::from_secs(20);
    assert_eq!(
        rx.recv_timeout(timeout).expect("a line"),
        "started 01JPYEVENT"
    );
    session.write_result("success", 0);
    session.end_process();
    assert_eq!(
        rx.recv_timeout(timeout).expect("a line"),
        "verdict 01JPYEVENT"
    );
    assert_eq!(finish(&mut child).status.code(), Some(0));
}

/// A stand-in daemon on `socket` that answers each connection's first
/// line with `reply`, for `count` connections.
fn fake_daemon(socket: &std::path::Path, replies: Vec<String>) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(socket).expect("bind");
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        for reply in replies {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = std::io::BufReader::new(stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = reader.get_mut().write_all(reply.as_bytes());
        }
    })
}

#[test]
fn a_malformed_reply_is_exit_3_in_the_python_client() {
    let h = Harness::without_daemon();
    let s = h.session("01JMALFORMEDREPLY");
    let watching = format!(
        "{{\"v\":1,\"id\":1,\"event\":\"watching\",\"session\":\"01JMALFORMEDREPLY\",\"dir\":\"{}\",\"cap_ms\":0}}\n",
        s.path()
    );
    let bad = [
        "[1,2,3]\n".to_string(),
        format!("{watching}{{\"v\":1,\"id\":1,\"event\":\"verdict\"}}\n"),
        format!(
            "{watching}{{\"v\":1,\"id\":1,\"event\":\"verdict\",\"outcome\":\"completed\",\"session\":\"x\",\"status\":\"success\",\"exit\":256}}\n"
        ),
        format!(
            "{watching}{{\"v\":1,\"id\":1,\"event\":\"verdict\",\"outcome\":\"completed\",\"session\":\"x\",\"status\":\"success\",\"exit\":\"0\"}}\n"
        ),
    ];
    for reply in bad {
        let _ = std::fs::remove_file(&h.socket);
        let server = fake_daemon(&h.socket, vec![reply.clone()]);
        let out = output_within(verdict_e2e::python_client(
            &h,
            &["wait", s.path(), "--cap", "0", "--no-spawn"],
        ));
        server.join().expect("fake daemon");
        assert_eq!(out.status.code(), Some(3), "{reply:?}: {out:?}");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("Traceback"),
            "{reply:?}: {out:?}"
        );
        // The Rust client agrees.
        let _ = std::fs::remove_file(&h.socket);
        let server = fake_daemon(&h.socket, vec![reply.clone()]);
        let run = Run::from(output_within(h.verdict(&[
            "wait",
            s.path(),
            "--cap",
            "0",
            "--no-spawn",
        ])));
        server.join().expect("fake daemon");
        assert_eq!(run.code, 3, "{reply:?}: {run:?}");
    }
}

#[test]
fn the_drop_in_is_executable_and_exports_what_it_offers() {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(client_py())
        .expect("client")
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        "verdict_client.py is not executable: {mode:o}"
    );
    let h = Harness::without_daemon();
    let mut check = python3(&h);
    check
        .env("PYTHONPATH", client_py().parent().expect("dir"))
        .args([
            "-c",
            "import verdict_client as v; missing = [n for n in ('wait', 'wait_many', 'events', 'socket_path') if n not in v.__all__]; assert not missing, missing",
        ]);
    let run = verdict_e2e::Run::from(verdict_e2e::output_within(check));
    assert_eq!(run.code, 0, "{run:?}");
}
