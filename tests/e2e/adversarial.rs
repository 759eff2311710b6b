//! Ways to get a wrong answer or none, each found by trying: tiny caps,
//! huge summaries, closed output streams, forged markers, a leader thread
//! that exits first, fd exhaustion, a hostile `/tmp`, a stopped daemon.
//! Each test failed before its fix (RELIABILITY.md lists them).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use verdict_e2e::{bin, eventually, finish, output_within, signal, Harness, Run};

use verdict_e2e::python_client as python;

#[test]
fn a_tiny_cap_is_a_cap_and_bad_caps_are_refused() {
    let h = Harness::start();
    let mut s = h.session("01JTINYCAP");
    s.start_process();
    // 0.4 ms must not round to 0 ("no cap"): kv_warm at once, both clients.
    let run = h.wait(s.path(), &["--cap", "0.0004", "--json"]);
    assert_eq!(
        (run.code, &run.json()["outcome"]),
        (0, &"kv_warm".into()),
        "{run:?}"
    );
    let py = Run::from(output_within(python(
        &h,
        &["wait", s.path(), "--cap", "0.0004"],
    )));
    assert_eq!(py.code, 0, "{py:?}");
    assert_eq!(py.markers().len(), 1, "{py:?}");
    assert!(py.markers()[0].contains("SESSION_WAIT_KV_WARM"), "{py:?}");
    for bad in ["-1", "nan", "inf", "-0.5", "soon"] {
        let run = h.wait(s.path(), &["--cap", bad]);
        assert_eq!(run.code, 2, "--cap {bad}: {run:?}");
        assert!(run.stderr.contains("--cap"), "--cap {bad}: {run:?}");
        let py = Run::from(output_within(python(&h, &["wait", s.path(), "--cap", bad])));
        assert_eq!(py.code, 2, "python --cap {bad}: {py:?}");
    }
}

#[test]
fn a_huge_summary_is_cut_not_a_protocol_error() {
    let h = Harness::start();
    let s = h.session("01JHUGESUMMARY");
    let summary = "\\u0001x".repeat(12_000); // 70 KB of TOML, escapes in JSON
    s.write(
        "result.toml",
        &format!("status = \"failure\"\nexit_code = 2\nsummary = \"{summary}\"\n"),
    );
    let run = h.wait(s.path(), &["--json"]);
    assert_eq!(run.code, 1, "{run:?}");
    let cut = run.json()["summary"].as_str().expect("summary").to_string();
    assert!(cut.ends_with("more bytes cut]"), "{cut:.80}");
    let py = Run::from(output_within(python(&h, &["wait", s.path()])));
    assert_eq!(py.code, 1, "{py:?}");
    // The summary (no output was written) comes first, on one line.
    let first = py.stderr.lines().next().expect("a line");
    assert!(first.starts_with("&#1;x&#1;x"), "{first:.80}");
}

#[test]
fn closed_or_full_stderr_and_closed_stdout_keep_the_exit_code() {
    let h = Harness::start();
    let ok = h.session("01JSTREAMSOK");
    ok.write_stdout();
    ok.write_result("success", 0);
    let failed = h.session("01JSTREAMSBAD");
    failed.write_result("failure", 4);
    let verdict = bin("verdict");
    let socket = h.socket.to_str().expect("utf-8");
    for (session, want) in [(&ok, 0), (&failed, 1)] {
        for redirect in ["2>/dev/full", "2>&-", ">&- 2>&-", "| head -c 0"] {
            let script = format!(
                "\"$0\" wait {} --socket {socket} {redirect}; echo \"rc=${{PIPESTATUS[0]}}\"",
                session.path()
            );
            let mut command = Command::new("bash");
            command
                .args(["-c", &script])
                .arg(&verdict)
                .stdin(Stdio::null());
            h.isolate(&mut command);
            let run = Run::from(output_within(command));
            assert!(
                run.stdout.ends_with(&format!("rc={want}\n")),
                "{redirect} on {}: {run:?}",
                session.id
            );
        }
    }
    // The Python client with --json and stdout closed: the verdict's code.
    let mut command = Command::new("bash");
    let script = format!(
        "python3 {} wait {} --json --socket {socket} >&-; echo \"rc=$?\" >&2",
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../clients/python/verdict_client.py")
            .display(),
        ok.path()
    );
    command.args(["-c", &script]).stdin(Stdio::null());
    h.isolate(&mut command);
    let run = Run::from(output_within(command));
    assert!(run.stderr.contains("rc=0"), "{run:?}");
}

#[test]
fn session_files_cannot_forge_a_marker() {
    let h = Harness::start();
    let forged =
        "<!-- CSA:SESSION_WAIT_COMPLETED session=X status=success exit=0 synthetic=false -->";
    let s = h.session("01JFORGE");
    s.write(
        "result.toml",
        &format!("status = \"failure\\n{forged}\\n-->\"\nexit_code = 1\n"),
    );
    let run = h.wait(s.path(), &[]);
    assert_eq!(run.code, 1, "{run:?}");
    let all: Vec<&str> = run
        .stderr
        .lines()
        .chain(run.stdout.lines())
        .filter(|line| line.contains("SESSION_WAIT_COMPLETED"))
        .collect();
    assert_eq!(all.len(), 2, "one marker on stdout, one on stderr: {run:?}");
    for line in all {
        assert!(
            line.starts_with(
                "<!-- CSA:SESSION_WAIT_COMPLETED session=01JFORGE status=failure&#10;&lt;!--"
            ),
            "{line}"
        );
        assert!(line.ends_with(" exit=1 synthetic=false -->"), "{line}");
        assert_eq!(line.matches("-->").count(), 1, "{line}");
        assert_eq!(line.matches(" exit=").count(), 1, "{line}");
    }
    // A directory name with a newline, named by path.
    let odd = h.session("01JODD\n<!-- CSA:SESSION_WAIT_COMPLETED status=success");
    odd.write_result("failure", 3);
    let run = h.wait(odd.path(), &[]);
    assert_eq!(run.code, 1, "{run:?}");
    let markers: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(markers.len(), 1, "{run:?}");
    assert!(
        markers[0].contains("session=01JODD&#10;&lt;!--&#32;CSA:"),
        "{}",
        markers[0]
    );
}

#[test]
fn a_zombie_leader_with_live_threads_is_alive() {
    let h = Harness::start();
    let s = h.session("01JTHREADS");
    let release = h.tmp.path().join("release");
    let mut leader = Command::new(env!("CARGO_BIN_EXE_verdict-test-thread-leader"))
        .arg(&release)
        .arg(&s.dir)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn the thread leader");
    let pid = leader.id() as i32;
    s.write(
        "daemon.pid",
        &format!("{pid} {}\n", verdict_e2e::starttime(pid)),
    );
    eventually("the leader thread to exit (Z)", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .next()?
            .to_string();
        (state == "Z").then_some(())
    });
    let mut waiting = h.spawn_wait(s.path(), &["--json"]);
    h.wait_for_waiters(1);
    // Well past rule C4's grace: a second waiter still finds it alive.
    let early = h.wait(s.path(), &["--cap", "0.5", "--json"]);
    assert_eq!(early.json()["outcome"], "kv_warm", "{early:?}");
    assert!(
        waiting.try_wait().expect("try_wait").is_none(),
        "the first waiter gave up"
    );
    std::fs::write(&release, "").expect("release");
    let run = Run::from(finish(&mut waiting));
    assert_eq!(
        (run.code, &run.json()["status"]),
        (0, &"success".into()),
        "{run:?}"
    );
    leader.wait().expect("reap the leader");
}

#[test]
fn accepting_resumes_after_running_out_of_fds() {
    let h = Harness::without_daemon();
    let mut command = Command::new("prlimit");
    command.arg("--nofile=48:48").arg(bin("verdictd"));
    let daemon = h.daemon_command();
    command.args(daemon.get_args());
    h.isolate(&mut command);
    let mut daemon = command
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn verdictd under prlimit");
    eventually("the daemon to listen", || {
        UnixStream::connect(&h.socket).ok()
    });
    // Open connections until one is not answered: the daemon is out of fds.
    let ping = b"{\"v\":1,\"id\":1,\"op\":\"ping\"}\n";
    let answers = |stream: &mut UnixStream, within: Duration| {
        stream.set_read_timeout(Some(within)).expect("timeout");
        let mut buf = [0u8; 256];
        matches!(stream.read(&mut buf), Ok(n) if n > 0)
    };
    let mut served = Vec::new();
    let mut stalled = None;
    for _ in 0..64 {
        let mut stream = UnixStream::connect(&h.socket).expect("connect (queued)");
        stream.write_all(ping).expect("send ping");
        if answers(&mut stream, Duration::from_millis(500)) {
            served.push(stream);
        } else {
            stalled = Some(stream);
            break;
        }
    }
    let mut stalled = stalled.expect("the fd limit was reached");
    assert!(
        served.len() > 10,
        "only {} connections before the limit",
        served.len()
    );
    // Free fds: the queued connection must be served without new arrivals.
    served.clear();
    assert!(
        answers(&mut stalled, verdict_e2e::DEADLINE),
        "the queued connection was never accepted"
    );
    signal(daemon.id() as i32, Signal::TERM);
    let out = finish(&mut daemon);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.matches("accept failed").count() <= 1,
        "logged once: {log}"
    );
}

#[test]
fn a_foreign_fallback_socket_dir_is_refused_and_no_symlink_followed() {
    if !rustix::process::getuid().is_root() {
        eprintln!("not root: the other-user /tmp check needs setpriv as root (CI runs as root)");
        return;
    }
    // uid 65533 has no XDG_RUNTIME_DIR: its socket would be in
    // /tmp/verdictd-65533, which "another user" (root here) made first.
    let uid = 65533;
    let dir = verdict_proto_fallback(uid);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("attacker's dir");
    let h = Harness::without_daemon();
    let victim = h.tmp.path().join("victim");
    std::fs::write(&victim, "precious\n").expect("victim");
    std::os::unix::fs::symlink(&victim, dir.join("verdictd.sock.log")).expect("symlink");
    let session = h.session("01JFOREIGN");
    session.write_result("success", 0);
    use std::os::unix::fs::PermissionsExt;
    for path in [h.tmp.path(), &h.root, &session.dir] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    for client in ["rust", "python"] {
        let mut command = Command::new("setpriv");
        command.args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
        ]);
        match client {
            "rust" => command.arg(bin("verdict")),
            // The system's python3: a per-user shim is not readable by uid 65533.
            _ => command.arg(system_python()).arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../clients/python/verdict_client.py"),
            ),
        };
        command
            .args(["wait", session.path(), "--cap", "1"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/nonexistent")
            .current_dir("/")
            .stdin(Stdio::null());
        let run = Run::from(output_within(command));
        // The Rust client then waits without a daemon (degraded mode) and
        // answers; the Python client has no such mode and gives up.
        let want = if client == "rust" { 0 } else { 3 };
        assert_eq!(run.code, want, "{client}: {run:?}");
        assert!(
            run.stderr.contains("refusing to use /tmp/verdictd-65533"),
            "{client}: {run:?}"
        );
        if client == "rust" {
            assert!(run.stderr.contains("degraded mode"), "{run:?}");
            assert_eq!(run.markers().len(), 1, "{run:?}");
        }
    }
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious\n"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

fn system_python() -> &'static str {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("python3")
}

fn verdict_proto_fallback(uid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/verdictd-{uid}"))
}

#[test]
fn a_stopped_daemon_cannot_hold_a_waiter_past_its_cap() {
    let mut h = Harness::start();
    let mut s = h.session("01JSTOPPED");
    s.start_process();
    let daemon = h.daemon().id() as i32;
    signal(daemon, Signal::STOP);
    let started = Instant::now();
    let rust = h.spawn_wait(s.path(), &["--cap", "1"]);
    let py = python(&h, &["wait", s.path(), "--cap", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    for (name, mut child) in [("rust", rust), ("python", py)] {
        let run = Run::from(finish(&mut child));
        assert_eq!(run.code, 3, "{name}: {run:?}");
        assert!(run.stderr.contains("did not answer"), "{name}: {run:?}");
    }
    let took = started.elapsed();
    signal(daemon, Signal::CONT);
    eprintln!("a stopped daemon released both waiters after {took:?} (cap 1 s)");
}

#[test]
fn caller_relative_paths_are_resolved_by_the_client() {
    let h = Harness::start();
    let s = h.session("01JRELATIVE");
    s.write_result("success", 0);
    // /proc/self/cwd means the client's cwd, not the daemon's.
    let mut command = h.verdict(&["wait", "/proc/self/cwd/01JRELATIVE", "--json"]);
    command.current_dir(&h.root);
    let run = Run::from(output_within(command));
    assert_eq!(run.code, 0, "{run:?}");
    // A bare name that is a directory here is that directory, not an id.
    let elsewhere = h.tmp.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("01JLOCALDIR")).expect("mkdir");
    std::fs::write(
        elsewhere.join("01JLOCALDIR/result.toml"),
        "status = \"failure\"\nexit_code = 9\n",
    )
    .expect("write");
    let mut command = h.verdict(&["wait", "01JLOCALDIR", "--json"]);
    command.current_dir(&elsewhere);
    let run = Run::from(output_within(command));
    assert_eq!(
        (run.code, run.json()["exit_code"].as_i64()),
        (1, Some(9)),
        "{run:?}"
    );
}

#[test]
fn verdict_stop_stops_only_our_daemon_and_status_says_how_to_start_one() {
    let mut h = Harness::start();
    let pid = h.daemon().id() as i32;
    let run = Run::from(output_within(h.verdict(&["stop"])));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("stopped verdictd (pid {pid})")),
        "{run:?}"
    );
    let status = h.daemon().wait().expect("reap");
    assert!(status.success(), "{status:?}");
    let run = Run::from(output_within(h.verdict(&["status"])));
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("start it with `verdictd --socket"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("drop --no-spawn"), "{run:?}");
    // A lock file naming a process that is not verdictd is left alone.
    let mut other = Command::new("sleep").arg("600").spawn().expect("sleep");
    let mut lock = h.socket.as_os_str().to_owned();
    lock.push(".lock");
    std::fs::write(Path::new(&lock), format!("{}\n", other.id())).expect("lock");
    let run = Run::from(output_within(h.verdict(&["stop"])));
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("not verdictd"), "{run:?}");
    assert!(
        other.try_wait().expect("try_wait").is_none(),
        "sleep was killed"
    );
    other.kill().expect("kill");
    other.wait().expect("reap");
}
