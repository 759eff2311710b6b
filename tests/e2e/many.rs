//! `verdict wait S1 S2 … --all | --any`: one process, one connection,
//! several sessions.

use verdict_e2e::{eventually, finish, Harness, Run};

/// A finished session: `result.toml` with `status`/`code`, some output.
fn finished(h: &Harness, id: &str, status: &str, code: i32) -> verdict_e2e::Session {
    let s = h.session(id);
    s.write("stdout.log", &format!("output of {id}\n"));
    s.write_result(status, code);
    s
}

fn wait_many(h: &Harness, args: &[&str]) -> Run {
    let mut all = vec!["wait"];
    all.extend_from_slice(args);
    Run::from(verdict_e2e::output_within(h.verdict(&all)))
}

#[test]
fn all_prints_each_session_under_a_header_and_combines_the_codes() {
    let h = Harness::start();
    let a = finished(&h, "01JMANYA", "success", 0);
    let b = finished(&h, "01JMANYB", "failure", 1);
    let run = wait_many(&h, &[a.path(), b.path()]);
    assert_eq!(run.code, 1, "{run:?}");
    for (s, status, exit) in [(&a, "success", 0), (&b, "failure", 1)] {
        let header = format!("==> {} <==\noutput of {}\n", s.id, s.id);
        assert!(run.stdout.contains(&header), "{run:?}");
        let marker = format!(
            "<!-- CSA:SESSION_WAIT_COMPLETED session={} status={status} exit={exit} synthetic=false -->",
            s.id
        );
        assert!(
            run.stdout.contains(&marker) && run.stderr.contains(&marker),
            "{run:?}"
        );
    }
    // Both successful: 0; one session given twice (path and id): answered once.
    let c = finished(&h, "01JMANYC", "success", 0);
    let run = wait_many(&h, &[a.path(), c.path(), "01JMANYC"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.markers().len(), 2, "{run:?}");
    assert_eq!(h.status()["waiters"], 0);
}

#[test]
fn all_at_the_cap_names_only_the_running_sessions_in_the_rewait_command() {
    let h = Harness::start();
    let done = finished(&h, "01JMANYDONE", "success", 0);
    let mut live1 = h.session("01JMANYLIVE1");
    live1.start_process();
    let mut live2 = h.session("01JMANYLIVE2");
    live2.start_process();
    let run = wait_many(
        &h,
        &[done.path(), live1.path(), live2.path(), "--cap", "0.3"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let markers = run.markers();
    assert_eq!(markers.len(), 3, "{run:?}");
    let cmd = format!("cmd=\"verdict wait {} {}\"", live1.path(), live2.path());
    let kv: Vec<_> = markers
        .iter()
        .filter(|m| m.starts_with("<!-- CSA:SESSION_WAIT_KV_WARM"))
        .collect();
    assert_eq!(kv.len(), 2, "{run:?}");
    assert!(kv.iter().all(|m| m.contains(&cmd)), "{run:?}");
    assert_eq!(
        run.hints()
            .iter()
            .filter(|h| h.contains("retry_wait"))
            .count(),
        1,
        "{run:?}"
    );
    // The call named three sessions: its hints do not forbid that, and the
    // finished one's next-session hint comes once, for the call.
    assert!(
        run.hints().iter().all(|h| !h.contains("NEVER batch")),
        "{run:?}"
    );
    assert_eq!(
        run.hints()
            .iter()
            .filter(|h| h.contains("next_session"))
            .count(),
        1,
        "{run:?}"
    );
    // Nothing known to run and nothing written (within the launch grace):
    // no verdict at the cap, so 124.
    let (new1, new2) = (h.session("01JMANYNEW1"), h.session("01JMANYNEW2"));
    let run = wait_many(&h, &[new1.path(), new2.path(), "--cap", "0.3"]);
    assert_eq!(run.code, 124, "{run:?}");
    assert_eq!(run.markers().len(), 2, "{run:?}");
}

#[test]
fn an_unknown_session_is_reported_and_the_others_still_answered() {
    let h = Harness::start();
    let a = finished(&h, "01JMANYKNOWN", "success", 0);
    let run = wait_many(&h, &[a.path(), "01JNOSUCHSESSION", "--json"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("01JNOSUCHSESSION"), "{run:?}");
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{run:?}");
    assert!(lines
        .iter()
        .any(|l| l["event"] == "verdict" && l["session"] == "01JMANYKNOWN"));
    assert!(lines.iter().any(|l| l["code"] == "unknown_session"));
}

#[test]
fn any_returns_at_the_first_completion_and_cancels_the_rest() {
    let h = Harness::start();
    let mut slow = h.session("01JMANYSLOW");
    slow.start_process();
    let mut fast = h.session("01JMANYFAST");
    fast.start_process();
    let mut child = h.spawn_wait(slow.path(), &[fast.path(), "--any", "--cap", "0"]);
    h.wait_for_waiters(2);
    fast.write_result("failure", 1);
    fast.end_process();
    let out = finish(&mut child);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("==> 01JMANYFAST <=="), "{stdout}");
    assert!(!stdout.contains("01JMANYSLOW"), "{stdout}");
    // The slow session's wait is gone from the daemon.
    eventually("the other wait cancelled", || {
        (h.status()["waiters"] == 0).then_some(())
    });
    // At the cap with one still running: KV-warm, 0.
    let run = wait_many(
        &h,
        &[slow.path(), "01JNOSUCHSESSION", "--any", "--cap", "0.2"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.markers().len(), 1, "{run:?}");
}

#[test]
fn json_lines_arrive_in_the_order_sessions_end() {
    let h = Harness::start();
    let mut first = h.session("01JMANYFIRST");
    first.start_process();
    let mut second = h.session("01JMANYSECOND");
    second.start_process();
    let mut child = h.spawn_wait(second.path(), &[first.path(), "--json", "--cap", "0"]);
    h.wait_for_waiters(2);
    first.write_result("success", 0);
    first.end_process();
    eventually("the first verdict sent", || {
        (h.status()["verdicts_sent"] == 1).then_some(())
    });
    second.write_result("success", 0);
    second.end_process();
    let out = finish(&mut child);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let sessions: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let value: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            value["session"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(sessions, ["01JMANYFIRST", "01JMANYSECOND"]);
}
