//! `verdict events --exec`: a command per session end (and start), with
//! the verdict in its environment and on its stdin; `--jobs` bounds how
//! many run at once, `--timeout` kills one that hangs, and 1,000 sessions
//! ending at once run 1,000 commands, none lost.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use verdict_e2e::{bin, eventually, Harness, Session};

/// `verdict events --socket S [options] --exec sh -c SCRIPT`, with `OUT`
/// in its environment.
/// The `verdict events --exec` process, killed when dropped (a failed
/// assertion must not leave it running).
struct Events(Child);

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn exec_events(h: &Harness, out: &Path, options: &[&str], script: &str) -> Events {
    let mut command = Command::new(bin("verdict"));
    command
        .arg("events")
        .arg("--socket")
        .arg(&h.socket)
        .args(options)
        .args(["--exec", "sh", "-c", script])
        .env("OUT", out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    h.isolate(&mut command);
    command.env("OUT", out);
    let child = Events(command.spawn().expect("verdict events --exec"));
    eventually("the subscription", || {
        (h.try_status()?["subscribers"] == 1).then_some(())
    });
    child
}

fn csa_session(h: &Harness, id: &str) -> Session {
    let mut session = h.session(&format!("proj/sessions/{id}"));
    session.id = id.into();
    session
}

/// Files in `dir`, temp names (starting with `.`) left out.
fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    })
}

fn stop(mut events: Events) -> String {
    let _ = events.0.kill();
    let out = verdict_e2e::finish(&mut events.0);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn each_end_and_start_runs_the_command_with_the_verdict() {
    let h = Harness::start();
    let out = h.tmp.path().join("out");
    std::fs::create_dir(&out).expect("out");
    // Written under temp names, then renamed: a file seen is whole.
    let script = "env | grep '^VERDICT_' | sort > \"$OUT/.e$$\"; cat > \"$OUT/.j$$\"; \
                  mv \"$OUT/.e$$\" \"$OUT/$VERDICT_EVENT.$VERDICT_SESSION.env\"; \
                  mv \"$OUT/.j$$\" \"$OUT/$VERDICT_EVENT.$VERDICT_SESSION.json\"";
    // The project's sessions directory exists, so its new entries are seen.
    std::fs::create_dir_all(h.root.join("proj/sessions")).expect("sessions dir");
    let events = exec_events(&h, &out, &["--on-start"], script);
    let mut s = csa_session(&h, "01JEXEC");
    let pid = s.start_process();
    eventually("the start's command", || {
        out.join("started.01JEXEC.json").exists().then_some(())
    });
    s.write_result("failure", 3);
    s.end_process();
    eventually("both commands", || (files_in(&out) == 4).then_some(()));
    let ended = std::fs::read_to_string(out.join("ended.01JEXEC.env")).expect("ended env");
    for want in [
        "VERDICT_EVENT=ended",
        "VERDICT_SESSION=01JEXEC",
        &format!("VERDICT_DIR={}", s.path()),
        "VERDICT_STATUS=failure",
        "VERDICT_EXIT_CODE=3",
        "VERDICT_WAIT_EXIT=1",
        "VERDICT_SYNTHETIC=false",
        "VERDICT_SUMMARY=did the thing",
    ] {
        assert!(ended.lines().any(|l| l == want), "{want} in {ended}");
    }
    let json = std::fs::read_to_string(out.join("ended.01JEXEC.json")).expect("stdin");
    let verdict: serde_json::Value = serde_json::from_str(json.trim()).expect("the event's JSON");
    assert_eq!(verdict["event"], "verdict", "{verdict}");
    assert_eq!(verdict["exit_code"], 3, "{verdict}");
    let started = std::fs::read_to_string(out.join("started.01JEXEC.env")).expect("started env");
    assert!(started.contains(&format!("VERDICT_PID={pid}")), "{started}");
    stop(events);
}

#[test]
fn jobs_bound_how_many_run_and_a_hanging_command_is_killed_at_the_timeout() {
    let h = Harness::start();
    let out = h.tmp.path().join("out");
    std::fs::create_dir(&out).expect("out");
    // Each run records when it started and ended (nanoseconds, one clock).
    let script = "s=$(date +%s%N); sleep 0.2; echo \"$s $(date +%s%N)\" > \"$OUT/.$$\"; \
         mv \"$OUT/.$$\" \"$OUT/$VERDICT_SESSION\"";
    let events = exec_events(&h, &out, &["--jobs", "2"], script);
    let mut sessions: Vec<Session> = (0..6)
        .map(|i| {
            let mut s = csa_session(&h, &format!("01JJOBS{i}"));
            s.start_process();
            s.write_result("success", 0);
            s
        })
        .collect();
    for s in &mut sessions {
        s.end_process();
    }
    eventually("six runs", || (files_in(&out) == 6).then_some(()));
    let spans: Vec<(u128, u128)> = (0..6)
        .map(|i| {
            let text = std::fs::read_to_string(out.join(format!("01JJOBS{i}"))).expect("span");
            let mut it = text
                .split_whitespace()
                .map(|n| n.parse::<u128>().expect("ns"));
            (it.next().expect("start"), it.next().expect("end"))
        })
        .collect();
    let most = spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(most <= 2, "{most} ran at once with --jobs 2: {spans:?}");
    stop(events);

    let hang_out = h.tmp.path().join("hang");
    std::fs::create_dir(&hang_out).expect("hang");
    let events = exec_events(
        &h,
        &hang_out,
        &["--timeout", "0.3"],
        "echo $$ > \"$OUT/.pid\"; mv \"$OUT/.pid\" \"$OUT/pid\"; exec sleep 3600",
    );
    let mut s = csa_session(&h, "01JHANG");
    s.start_process();
    s.write_result("success", 0);
    s.end_process();
    let pid: i32 = eventually("the hanging command", || {
        std::fs::read_to_string(hang_out.join("pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    eventually("the hanging command to be killed", || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    let stderr = stop(events);
    assert!(stderr.contains("ran past --timeout"), "{stderr}");
}

#[test]
fn a_thousand_sessions_ending_at_once_run_a_thousand_commands() {
    verdict_e2e::raise_fd_limit();
    let h = Harness::start();
    let out = h.tmp.path().join("out");
    std::fs::create_dir(&out).expect("out");
    let mut sessions: Vec<Session> = (0..1000)
        .map(|i| {
            let mut s = csa_session(&h, &format!("01JTHOU{i:04}"));
            s.start_process();
            s.write_result("success", 0);
            s
        })
        .collect();
    let events = exec_events(&h, &out, &[], ": > \"$OUT/$VERDICT_SESSION\"");
    for s in &mut sessions {
        s.end_process();
    }
    eventually("a thousand runs", || (files_in(&out) == 1000).then_some(()));
    let stderr = stop(events);
    assert!(!stderr.contains("queue is full"), "{stderr}");
}
