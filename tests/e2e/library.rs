//! `verdict-client` driven directly, in this process: the same answers
//! as the binary, through the daemon and without it.

use std::time::Duration;

use verdict_client::{Cap, Client, Error, Mode, Options, Update};
use verdict_e2e::{eventually, Harness};

/// Options for this harness's daemon: nothing is started, nothing falls back.
fn options(h: &Harness) -> Options {
    Options {
        socket: h.socket.clone(),
        spawn: false,
        fallback: false,
        no_daemon: false,
        cwd: None,
    }
}

fn waiters(h: &Harness) -> u64 {
    h.status()["waiters"].as_u64().expect("waiters")
}

#[test]
fn wait_status_and_exit_codes_through_the_daemon() {
    let h = Harness::start();
    let done = h.session("01JLIBDONE");
    done.write_stdout();
    done.write_result("success", 0);
    let failed = h.session("01JLIBFAILED");
    failed.write_result("failure", 4);
    let mut live = h.session("01JLIBLIVE");
    let pid = live.start_process();

    let mut client = Client::connect(options(&h)).expect("connect");
    assert!(client.degraded().is_none());
    let verdict = client.wait(done.path(), Cap::Default).expect("verdict");
    assert!(verdict.is_completed());
    assert_eq!(
        (verdict.exit().code(), verdict.session()),
        (0, "01JLIBDONE")
    );
    assert_eq!(verdict.dir.as_deref(), Some(done.dir.as_path()));
    let json: serde_json::Value = serde_json::from_str(verdict.json()).expect("json line");
    assert_eq!(json["event"], "verdict");

    let verdict = client.wait(failed.path(), Cap::Default).expect("verdict");
    assert_eq!(verdict.exit().code(), 1);
    assert_eq!(verdict.event.exit_code, Some(4));

    let cap = Cap::After(Duration::from_millis(100));
    let verdict = client.wait(live.path(), cap).expect("verdict");
    assert!(verdict.is_running(), "{verdict:?}");
    assert_eq!((verdict.exit().code(), verdict.event.pid), (0, Some(pid)));

    // What `verdict wait` prints, written to buffers.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let verdict = client.wait(done.path(), Cap::Default).expect("verdict");
    verdict.print_completed(&mut out, &mut err, false);
    let out = String::from_utf8(out).expect("utf-8");
    assert!(out.starts_with("some output\n"), "{out}");
    assert!(
        out.ends_with("status=success exit=0 synthetic=false -->\n"),
        "{out}"
    );

    let status = client.status().expect("status");
    assert_eq!(status.counters.waiters, 0);
    assert!(status.counters.verdicts_sent >= 4, "{status:?}");
    live.end_process();
}

#[test]
fn an_unknown_session_is_a_refusal_with_exit_2() {
    let h = Harness::start();
    let mut client = Client::connect(options(&h)).expect("connect");
    let err = client
        .wait("01JNOSUCHSESSION", Cap::Default)
        .expect_err("unknown");
    assert!(matches!(err, Error::Refused(_)), "{err:?}");
    assert_eq!(err.exit().code(), 2);
    assert!(err.to_string().contains("01JNOSUCHSESSION"), "{err}");
}

#[test]
fn wait_many_any_returns_the_first_and_cancels_the_rest() {
    let h = Harness::start();
    let mut sessions = Vec::new();
    for id in ["01JLIBANY1", "01JLIBANY2", "01JLIBANY3"] {
        let mut s = h.session(id);
        s.start_process();
        sessions.push(s);
    }
    let paths: Vec<&str> = sessions.iter().map(|s| s.path()).collect();
    let mut client = Client::connect(options(&h)).expect("connect");
    let mut waits = client.wait_many(&paths, Mode::Any, Cap::Unlimited);
    let mut watching = 0;
    for update in waits.by_ref() {
        if let Update::Watching { .. } = update.expect("update") {
            watching += 1;
        }
        if watching == 3 {
            break;
        }
    }
    sessions[1].write_result("failure", 9);
    sessions[1].end_process();
    let answers: Vec<Update> = waits.by_ref().map(|u| u.expect("update")).collect();
    let [Update::Verdict { index: 1, verdict }] = answers.as_slice() else {
        panic!("one verdict, for the second session: {answers:?}");
    };
    assert_eq!(verdict.event.exit_code, Some(9));
    assert_eq!(waits.exit().code(), 1);
    drop(waits);
    eventually("the other waits to be cancelled", || {
        (waiters(&h) == 0).then_some(())
    });
    sessions[0].end_process();
    sessions[2].end_process();
}

#[test]
fn wait_many_all_answers_everyone_and_combines_the_codes() {
    let h = Harness::start();
    let ok = h.session("01JLIBALLOK");
    ok.write_stdout();
    ok.write_result("success", 0);
    let mut live = h.session("01JLIBALLLIVE");
    live.start_process();
    let sessions = [ok.path(), live.path(), "01JLIBALLUNKNOWN", ok.path()];
    let mut client = Client::connect(options(&h)).expect("connect");
    let cap = Cap::After(Duration::from_millis(300));
    let mut waits = client.wait_many(&sessions, Mode::All, cap);
    let mut answered = Vec::new();
    for update in waits.by_ref() {
        match update.expect("update") {
            Update::Verdict { index, verdict } => answered.push((index, verdict.exit().code())),
            Update::Refused { index, refusal } => answered.push((index, refusal.exit().code())),
            _ => {}
        }
    }
    answered.sort();
    // The same session named twice is answered once.
    assert_eq!(answered, [(0, 0), (1, 0), (2, 2)]);
    assert_eq!(waits.exit().code(), 2);
    live.end_process();
}

#[test]
fn without_a_daemon_the_client_waits_by_itself() {
    let h = Harness::without_daemon();
    let mut s = h.session("01JLIBALONE");
    s.start_process();
    let other = h.session("01JLIBALONE2");
    other.write_result("success", 0);
    let options = Options {
        // Nothing listens here and no daemon can be started in a
        // directory that does not exist.
        socket: h.tmp.path().join("missing/verdictd.sock"),
        spawn: true,
        fallback: true,
        ..options(&h)
    };
    let mut client = Client::connect(options).expect("degraded client");
    let why = client.degraded().expect("degraded").expect("a reason");
    assert!(why.contains("does not exist"), "{why}");
    let cap = Cap::After(Duration::from_millis(200));
    let verdict = client.wait(s.path(), cap).expect("verdict");
    assert!(verdict.is_running(), "{verdict:?}");

    let sessions = [s.path(), other.path()];
    let mut waits = client.wait_many(&sessions, Mode::Any, Cap::Unlimited);
    let mut verdicts = Vec::new();
    for update in waits.by_ref() {
        match update.expect("update") {
            Update::Verdict { index, verdict } => verdicts.push((index, verdict)),
            Update::Degraded { why } => assert!(why.is_some()),
            other => assert!(matches!(other, Update::Watching { .. }), "{other:?}"),
        }
    }
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0].0, 1);
    assert!(verdicts[0].1.is_completed());
    assert_eq!(waits.exit().code(), 0);
    drop(waits);
    s.end_process();

    let err = client.status().expect_err("no daemon to ask");
    assert_eq!(err.exit().code(), 3);
}
