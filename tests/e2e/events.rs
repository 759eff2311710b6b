//! Subscriptions: the `subscribe` op and `verdict events`.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use verdict_e2e::{eventually, Client, Harness, Session};

/// A session where csa puts them: `<root>/<project>/sessions/<id>`.
fn csa_session(h: &Harness, project: &str, id: &str) -> Session {
    let mut session = h.session(&format!("{project}/sessions/{id}"));
    session.id = id.into();
    session
}

/// The next reply that is not `watching`.
fn next_event(client: &mut Client) -> Value {
    loop {
        let reply = client.recv();
        if reply["event"] != "watching" {
            return reply;
        }
    }
}

fn subscribe(h: &Harness, under: Option<&str>) -> (Client, Value) {
    let mut client = h.connect();
    match under {
        Some(dir) => client.send(&format!(
            r#"{{"v":1,"id":"sub","op":"subscribe","under":["{dir}"]}}"#
        )),
        None => client.send(r#"{"v":1,"id":"sub","op":"subscribe"}"#),
    }
    let reply = client.recv();
    (client, reply)
}

#[test]
fn subscribers_see_new_sessions_start_and_every_running_session_end() {
    let h = Harness::start();
    let done: Vec<Session> = (0..3)
        .map(|i| {
            let s = csa_session(&h, "proj", &format!("01JDONE{i}"));
            s.write_result("success", 0);
            s
        })
        .collect();
    let mut running = csa_session(&h, "proj", "01JRUNNING");
    running.start_process();
    let (mut client, reply) = subscribe(&h, None);
    assert_eq!(reply["event"], "subscribed", "{reply}");
    assert_eq!(reply["live"], 1, "{reply}");
    assert_eq!(reply["roots"][0], h.root.to_str().unwrap());
    let status = h.status();
    // Finished sessions add no watch; the running one is watched.
    assert_eq!(status["watches"], 1, "{status}");
    assert_eq!(status["subscribers"], 1, "{status}");

    let mut new = csa_session(&h, "proj", "01JNEW");
    let pid = new.start_process();
    let started = next_event(&mut client);
    assert_eq!(started["event"], "started", "{started}");
    assert_eq!(started["session"], "01JNEW");
    assert_eq!(started["pid"], pid);

    // An old, finished session touched is not news.
    std::fs::set_permissions(
        &done[0].dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    running.write_result("failure", 1);
    running.end_process();
    let ended = next_event(&mut client);
    assert_eq!(ended["event"], "verdict", "{ended}");
    assert_eq!(ended["session"], "01JRUNNING");
    assert_eq!(ended["exit"], 1);
    assert_eq!(ended["dir"], running.path());

    new.write_result("success", 0);
    new.end_process();
    let ended = next_event(&mut client);
    assert_eq!(ended["session"], "01JNEW", "{ended}");
    assert_eq!(ended["status"], "success");

    // A project that did not exist when the subscription began, made in
    // one go (as csa does: `create_dir_all` of project/sessions/<ID>).
    let mut fresh = csa_session(&h, "a/new/project", "01JFRESHPROJECT");
    fresh.start_process();
    let started = next_event(&mut client);
    assert_eq!(started["event"], "started", "{started}");
    assert_eq!(started["session"], "01JFRESHPROJECT");
    fresh.end_process();
    let ended = next_event(&mut client);
    assert_eq!(ended["session"], "01JFRESHPROJECT", "{ended}");

    client.send(r#"{"v":1,"id":"c","op":"cancel","target":"sub"}"#);
    assert_eq!(client.recv()["event"], "cancelled");
    let status = h.status();
    assert_eq!(status["subscribers"], 0, "{status}");
    assert_eq!(status["sessions"], 0, "{status}");
}

#[test]
fn a_thousand_sessions_ending_together_are_each_reported_once() {
    verdict_e2e::raise_fd_limit();
    let h = Harness::start();
    let mut sessions: Vec<Session> = (0..1000)
        .map(|i| {
            let mut s = csa_session(&h, "big", &format!("01JBIG{i:04}"));
            s.start_process();
            s
        })
        .collect();
    let (mut client, reply) = subscribe(&h, None);
    assert_eq!(reply["live"], 1000, "{reply}");
    for s in &sessions {
        s.write_result("success", 0);
    }
    for s in &mut sessions {
        s.end_process();
    }
    let mut seen = HashSet::new();
    while seen.len() < 1000 {
        let event = next_event(&mut client);
        assert_eq!(event["event"], "verdict", "{event}");
        assert!(
            seen.insert(event["session"].as_str().unwrap().to_string()),
            "reported twice: {event}"
        );
    }
    // Nothing more was queued before the answer to a ping.
    client.send(r#"{"v":1,"id":"p","op":"ping"}"#);
    assert_eq!(client.recv()["event"], "pong");
}

#[test]
fn sessions_and_projects_made_while_inotify_events_were_lost_are_followed() {
    let h = Harness::start();
    let pid = h.daemon_pid().expect("the harness's daemon") as i32;
    let mut running = csa_session(&h, "proj", "01JLOSTRUN");
    running.start_process();
    let (mut client, reply) = subscribe(&h, None);
    assert_eq!(reply["live"], 1, "{reply}");
    // The daemon stopped, its queue filled past the kernel's bound: what
    // is made after that is no event at all.
    verdict_e2e::signal(pid, rustix::process::Signal::STOP);
    let max_queued = verdict_e2e::inotify_max_queued_events();
    for i in 0..max_queued {
        std::fs::write(running.dir.join(format!("flood-{i}")), b"x").expect("flood");
    }
    let mut live = csa_session(&h, "proj", "01JLOSTLIVE");
    let live_pid = live.start_process();
    let done = csa_session(&h, "proj", "01JLOSTDONE");
    done.write_result("failure", 3);
    let other = csa_session(&h, "newproj", "01JLOSTPROJ");
    other.write_result("success", 0);
    verdict_e2e::signal(pid, rustix::process::Signal::CONT);

    let mut seen = std::collections::HashMap::new();
    while seen.len() < 3 {
        let event = next_event(&mut client);
        let key = format!(
            "{} {}",
            event["event"].as_str().unwrap_or(""),
            event["session"]
        );
        assert!(seen.insert(key, event.clone()).is_none(), "twice: {event}");
    }
    assert_eq!(
        seen[r#"started "01JLOSTLIVE""#]["pid"], live_pid,
        "{seen:?}"
    );
    assert_eq!(seen[r#"verdict "01JLOSTDONE""#]["exit_code"], 3, "{seen:?}");
    assert_eq!(seen[r#"verdict "01JLOSTPROJ""#]["exit"], 0, "{seen:?}");
    let status = h.status();
    assert!(status["queue_overflows"].as_u64() >= Some(1), "{status}");
    // And their ends, as any followed session's.
    live.write_result("success", 0);
    live.end_process();
    let ended = next_event(&mut client);
    assert_eq!(ended["session"], "01JLOSTLIVE", "{ended}");
    assert_eq!(ended["exit"], 0, "{ended}");
    running.end_process();
}

#[test]
fn a_subscription_limited_to_a_project_hears_only_that_project() {
    let h = Harness::start();
    let mut mine = csa_session(&h, "mine", "01JMINE");
    let mut other = csa_session(&h, "other", "01JOTHER");
    mine.start_process();
    other.start_process();
    let under = h.root.join("mine");
    let (mut client, reply) = subscribe(&h, Some(under.to_str().unwrap()));
    assert_eq!(reply["live"], 1, "{reply}");
    other.end_process();
    mine.end_process();
    let ended = next_event(&mut client);
    assert_eq!(ended["session"], "01JMINE", "{ended}");

    let (_, refused) = subscribe(&h, Some("/usr"));
    assert_eq!(refused["code"], "bad_request", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("/usr"));
}

#[test]
fn verdict_events_prints_starts_and_ends() {
    let h = Harness::start();
    std::fs::create_dir_all(h.root.join("proj/sessions")).expect("sessions dir");
    let mut child = h
        .verdict(&["events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn verdict events");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    eventually("the subscription", || {
        (h.try_status()?["subscribers"] == 1).then_some(())
    });
    let mut session = csa_session(&h, "proj", "01JCLI");
    let pid = session.start_process();
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("started line");
    assert_eq!(line, format!("started 01JCLI pid {pid} {}", session.path()));
    session.write_result("failure", 3);
    session.end_process();
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("ended line");
    assert_eq!(
        line,
        format!(
            "ended 01JCLI failure exit_code=3 synthetic=false {}",
            session.path()
        )
    );
    let _ = child.kill();
    let _ = child.wait();
    eventually("the subscription dropped", || {
        (h.try_status()?["subscribers"] == 0).then_some(())
    });
}

#[test]
fn a_subscriber_that_stops_reading_is_dropped_and_the_others_still_hear() {
    use std::io::Write;
    let h = Harness::start();
    let mut session = csa_session(&h, "proj", "01JSLOWREADER");
    session.start_process();
    let (mut reader, _) = subscribe(&h, None);
    // The silent subscriber never reads; its unread replies pass the
    // daemon's output bound and it is dropped, subscription and all.
    let mut silent = std::os::unix::net::UnixStream::connect(&h.socket).expect("connect");
    silent
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    silent
        .write_all(b"{\"v\":1,\"id\":\"s\",\"op\":\"subscribe\"}\n")
        .expect("subscribe");
    eventually("two subscribers", || {
        (h.try_status()?["subscribers"] == 2).then_some(())
    });
    let ping = b"{\"v\":1,\"id\":1,\"op\":\"ping\"}\n".repeat(1000);
    for _ in 0..200 {
        if silent.write_all(&ping).is_err() {
            break;
        }
    }
    eventually("the silent subscriber dropped", || {
        (h.try_status()?["subscribers"] == 1).then_some(())
    });
    session.end_process();
    let ended = next_event(&mut reader);
    assert_eq!(ended["session"], "01JSLOWREADER", "{ended}");
}
