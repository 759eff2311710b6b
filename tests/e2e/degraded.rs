//! Degraded mode: `verdict wait` answers without verdictd when none can be
//! reached or started, with the daemon's rules (the corpus replays every
//! case with `--no-daemon` too; see `corpus.rs`).

use std::path::PathBuf;
use std::process::Stdio;

use verdict_e2e::{bin, finish, output_within, signal, Harness, Run};

/// A copy of `verdict` alone in a directory, and a PATH without
/// `verdictd`: nothing can start a daemon.
fn lonely_verdict(h: &Harness) -> PathBuf {
    let dir = h.tmp.path().join("lonely");
    std::fs::create_dir_all(&dir).expect("dir");
    let copy = dir.join("verdict");
    std::fs::copy(bin("verdict"), &copy).expect("copy verdict");
    copy
}

fn command(h: &Harness, verdict: &PathBuf, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(verdict);
    command
        .args(args)
        .arg("--socket")
        .arg(&h.socket)
        .stdin(Stdio::null());
    h.isolate(&mut command);
    command.env("PATH", "/usr/bin:/bin");
    command
}

#[test]
fn with_no_daemon_to_be_had_the_wait_still_answers() {
    let h = Harness::without_daemon();
    let verdict = lonely_verdict(&h);
    let s = h.session("01JDEGRADEDDONE");
    s.write_stdout();
    s.write_result("failure", 1);
    let run = Run::from(output_within(command(&h, &verdict, &["wait", s.path()])));
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("waiting without it (degraded mode)"),
        "{run:?}"
    );
    assert!(run.stdout.starts_with("some output\n"), "{run:?}");
    assert_eq!(run.markers().len(), 1, "{run:?}");
    // With --no-spawn it is still an error (exit 3): nothing was to be started.
    let run = Run::from(output_within(command(
        &h,
        &verdict,
        &["wait", s.path(), "--no-spawn"],
    )));
    assert_eq!(run.code, 3, "{run:?}");
}

#[test]
fn a_daemon_that_dies_mid_wait_and_cannot_return_is_replaced_by_degraded_mode() {
    let mut h = Harness::start();
    let verdict = lonely_verdict(&h);
    let mut s = h.session("01JDEGRADEDLIVE");
    s.start_process();
    let mut child = command(&h, &verdict, &["wait", s.path(), "--cap", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn verdict");
    h.wait_for_waiters(1);
    let mut daemon = h.take_daemon();
    signal(daemon.id() as i32, rustix::process::Signal::KILL);
    let _ = daemon.wait();
    s.write_result("success", 0);
    s.end_process();
    let run = Run::from(finish(&mut child));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("degraded mode"), "{run:?}");
    assert_eq!(
        run.markers(),
        ["<!-- CSA:SESSION_WAIT_COMPLETED session=01JDEGRADEDLIVE status=success exit=0 synthetic=false -->"],
        "{run:?}"
    );
}

#[test]
fn degraded_mode_keeps_the_cap_and_kv_warm() {
    let h = Harness::without_daemon();
    let mut s = h.session("01JDEGRADEDWARM");
    let pid = s.start_process();
    let run = Run::from(output_within(h.verdict(&[
        "wait",
        s.path(),
        "--no-daemon",
        "--cap",
        "0.3",
        "--json",
    ])));
    assert_eq!(run.code, 0, "{run:?}");
    let verdict = run.json();
    assert_eq!(verdict["outcome"], "kv_warm", "{run:?}");
    assert_eq!(verdict["pid"], pid);
    assert_eq!(h.try_status(), None, "no daemon was started");
}
