//! The socket protocol spoken raw (PROTOCOL.md): what a client in any language
//! sees line by line.

use serde_json::json;
use verdict_e2e::Harness;

#[test]
fn ping_status_and_garbage_keep_the_connection_usable() {
    let h = Harness::start();
    let mut c = h.connect();
    c.send(r#"{"v":1,"id":1,"op":"ping"}"#);
    assert_eq!(c.recv(), json!({"v":1,"id":1,"event":"pong"}));
    c.send("this is not json");
    let reply = c.recv();
    assert_eq!(
        (reply["event"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    c.send_raw(b"\xff\xfe\n");
    assert_eq!(c.recv()["code"], "bad_request");
    c.send(r#"{"v":1,"id":"x","op":"wait"}"#);
    let reply = c.recv();
    assert_eq!(
        (reply["id"].as_str(), reply["code"].as_str()),
        (Some("x"), Some("bad_request"))
    );
    c.send(r#"{"v":2,"id":3,"op":"ping"}"#);
    assert_eq!(c.recv()["code"], "unsupported_version");
    c.send(r#"{"v":1,"id":4,"op":"ping","unknown_field":[1,2]}"#);
    assert_eq!(c.recv()["event"], "pong");
    c.send(r#"{"v":1,"id":5,"op":"status"}"#);
    let status = c.recv();
    assert_eq!(status["event"], "status");
    assert_eq!(status["connections"], 1);
}

#[test]
fn watching_comes_before_the_verdict_and_ids_are_echoed() {
    let h = Harness::start();
    let mut s = h.session("01JWIRE");
    s.start_process();
    let mut c = h.connect();
    c.wait("a", s.path(), 0);
    c.send(r#"{"v":1,"id":"b","op":"wait","session":"01JWIRE","cap_ms":0}"#);
    for id in ["a", "b"] {
        let watching = c.recv();
        assert_eq!(
            (watching["event"].as_str(), watching["id"].as_str()),
            (Some("watching"), Some(id))
        );
        assert_eq!(
            watching["dir"],
            std::fs::canonicalize(&s.dir)
                .expect("canon")
                .to_str()
                .expect("utf8")
        );
    }
    s.write_result("failure", 4);
    s.end_process();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let verdict = c.recv();
        assert_eq!(verdict["event"], "verdict");
        assert_eq!(
            (
                verdict["status"].as_str(),
                verdict["exit_code"].as_i64(),
                verdict["exit"].as_i64()
            ),
            (Some("failure"), Some(4), Some(1))
        );
        assert_eq!(verdict["summary"], "did the thing");
        ids.push(verdict["id"].as_str().expect("id").to_string());
    }
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
}

#[test]
fn cancel_stops_a_wait_and_only_that_one() {
    let h = Harness::start();
    let mut s = h.session("01JCANCEL");
    s.start_process();
    let mut c = h.connect();
    c.wait("1", s.path(), 0);
    assert_eq!(c.recv()["event"], "watching");
    c.wait("2", s.path(), 0);
    assert_eq!(c.recv()["event"], "watching");
    c.send(r#"{"v":1,"id":3,"op":"cancel","target":"1"}"#);
    assert_eq!(
        c.recv(),
        json!({"v":1,"id":3,"event":"cancelled","target":"1"})
    );
    c.send(r#"{"v":1,"id":4,"op":"cancel","target":"1"}"#);
    assert_eq!(c.recv()["code"], "bad_request");
    s.write_result("success", 0);
    s.end_process();
    let verdict = c.recv();
    assert_eq!(
        (verdict["id"].as_str(), verdict["event"].as_str()),
        (Some("2"), Some("verdict"))
    );
    // Nothing for the cancelled wait follows: the next reply is the pong.
    c.send(r#"{"v":1,"id":5,"op":"ping"}"#);
    assert_eq!(c.recv()["id"], 5);
}

#[test]
fn a_duplicate_wait_id_is_refused() {
    let h = Harness::start();
    let s = h.session("01JDUP");
    let mut c = h.connect();
    c.wait("9", s.path(), 0);
    assert_eq!(c.recv()["event"], "watching");
    c.wait("9", s.path(), 0);
    assert_eq!(c.recv()["code"], "bad_request");
}

#[test]
fn a_line_too_long_is_answered_then_the_connection_closes() {
    let h = Harness::start();
    let mut c = h.connect();
    let long = format!(
        r#"{{"v":1,"id":1,"op":"ping","pad":"{}"}}"#,
        "x".repeat(200 * 1024)
    );
    // The daemon answers after 64 KiB and closes: the rest of our write
    // may fail with EPIPE, which is not what this test is about.
    c.send_may_be_cut(format!("{long}\n").as_bytes());
    assert_eq!(c.recv()["code"], "line_too_long");
    assert!(c.is_closed());
    // Others are unaffected.
    let mut other = h.connect();
    other.send(r#"{"v":1,"id":1,"op":"ping"}"#);
    assert_eq!(other.recv()["event"], "pong");
}

#[test]
fn the_cap_fires_per_waiter() {
    let h = Harness::start();
    let mut s = h.session("01JCAPS");
    s.start_process();
    let mut c = h.connect();
    c.wait("long", s.path(), 0);
    c.wait("short", s.path(), 50);
    assert_eq!(c.recv()["event"], "watching");
    assert_eq!(c.recv()["event"], "watching");
    let kv = c.recv();
    assert_eq!(
        (
            kv["id"].as_str(),
            kv["outcome"].as_str(),
            kv["exit"].as_i64()
        ),
        (Some("short"), Some("kv_warm"), Some(0))
    );
    s.end_process();
    let done = c.recv();
    assert_eq!(
        (done["id"].as_str(), done["outcome"].as_str()),
        (Some("long"), Some("completed"))
    );
}

#[test]
fn the_socat_shell_client_from_protocol_md_works() {
    if std::process::Command::new("socat")
        .arg("-V")
        .output()
        .is_err()
    {
        panic!("socat is not installed; .ci/run installs it");
    }
    let h = Harness::start();
    let mut s = h.session("01JSOCAT");
    s.start_process();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/shell/verdict-wait.sh");
    let mut command = std::process::Command::new("sh");
    command
        .arg(&script)
        .arg(s.path())
        .env("VERDICT_SOCKET", &h.socket);
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    h.wait_for_waiters(1);
    s.write_stdout();
    s.write_packet("failure", 9);
    s.end_process();
    let output = verdict_e2e::finish(&mut child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let verdict: serde_json::Value = serde_json::from_str(stdout.trim()).expect("verdict line");
    assert_eq!(
        (verdict["exit_code"].as_i64(), verdict["source"].as_str()),
        (Some(9), Some("packet"))
    );
    // The half-closed connection was closed after its verdict.
    h.wait_for_waiters(0);
    verdict_e2e::eventually("the connection to close", || {
        (h.status()["connections"] == 1).then_some(())
    });
}
