//! Bad input: a matrix of malformed session files, and hostile or broken
//! clients. Each gets the answer the rules and the protocol prescribe, and
//! a well-behaved client next to them is never starved.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use verdict_e2e::{raise_fd_limit, rss_kib, Client, Harness, Session};

enum Bad {
    Bytes(Vec<u8>),
    Fifo,
    Directory,
    DevZero,
    Loop,
}

fn malformed_cases() -> Vec<(&'static str, Bad)> {
    use Bad::*;
    let deep = |open: &str| {
        format!(
            "status = \"x\"\nexit_code = 0\nx = {}",
            open.repeat(100_000)
        )
        .into_bytes()
    };
    let mut big = b"status = \"success\"\nexit_code = 0\n".to_vec();
    big.resize(20 * 1024 * 1024, b'#');
    vec![
        ("empty", Bytes(Vec::new())),
        ("binary", Bytes((0u8..=255).cycle().take(4096).collect())),
        ("truncated", Bytes(b"status = \"succ".to_vec())),
        (
            "wrong_types",
            Bytes(b"status = 1\nexit_code = \"0\"\n".to_vec()),
        ),
        (
            "missing_fields",
            Bytes(b"summary = \"no status, no code\"\n".to_vec()),
        ),
        (
            "too_big_int",
            Bytes(b"status = \"success\"\nexit_code = 99999999999\n".to_vec()),
        ),
        (
            "too_small_int",
            Bytes(b"status = \"success\"\nexit_code = -99999999999\n".to_vec()),
        ),
        (
            "float_code",
            Bytes(b"status = \"success\"\nexit_code = 0.5\n".to_vec()),
        ),
        ("twenty_mb", Bytes(big)),
        ("deep_arrays", Bytes(deep("["))),
        ("deep_tables", Bytes(deep("{a="))),
        (
            "invalid_utf8",
            Bytes(b"status = \"\xff\xfe\"\nexit_code = 0\n".to_vec()),
        ),
        ("fifo", Fifo),
        ("directory", Directory),
        ("symlink_dev_zero", DevZero),
        ("symlink_loop", Loop),
    ]
}

fn plant(dir: &std::path::Path, name: &str, bad: &Bad) {
    let path = dir.join(name);
    match bad {
        Bad::Bytes(bytes) => std::fs::write(&path, bytes).expect("write"),
        Bad::Fifo => verdict_e2e::mkfifo(&path),
        Bad::Directory => std::fs::create_dir(&path).expect("mkdir"),
        Bad::DevZero => std::os::unix::fs::symlink("/dev/zero", &path).expect("symlink"),
        Bad::Loop => {
            std::os::unix::fs::symlink(dir.join("loop-b"), &path).expect("symlink");
            std::os::unix::fs::symlink(&path, dir.join("loop-b")).expect("symlink");
        }
    }
}

#[test]
fn malformed_session_files_get_the_prescribed_verdict_with_a_note() {
    let h = Harness::start();
    let daemon = h.status()["pid"].as_u64().expect("pid") as u32;
    let rss_before = rss_kib(daemon);
    let mut client = h.connect();
    let mut sessions = Vec::new();
    let cases = malformed_cases();
    for (name, bad) in &cases {
        // A broken result.toml: the packet decides (C2).
        let s = Session::ended(&h, &format!("01JBADRESULT-{name}"));
        s.write_stdout();
        s.write_packet("failure", 7);
        plant(&s.dir, "result.toml", bad);
        client.wait(format!("result-{name}"), s.path(), 0);
        sessions.push(s);
        // A broken packet and no result: died without a word (C4).
        let s = Session::ended(&h, &format!("01JBADPACKET-{name}"));
        plant(&s.dir, "daemon-completion.toml", bad);
        client.wait(format!("packet-{name}"), s.path(), 0);
        sessions.push(s);
    }
    let verdicts = client.verdicts(cases.len() * 2);
    for (name, _) in &cases {
        let v = &verdicts[&format!("result-{name}")];
        assert_eq!(
            (v["source"].as_str(), v["exit_code"].as_i64()),
            (Some("packet"), Some(7)),
            "{name}: {v}"
        );
        assert!(
            v["notes"].to_string().contains("result.toml"),
            "{name}: the problem is named: {v}"
        );
        assert!(
            v["elapsed_ms"].as_u64() < Some(1000),
            "{name}: within a second: {v}"
        );
        let v = &verdicts[&format!("packet-{name}")];
        assert_eq!(
            (v["reason"].as_str(), v["exit"].as_i64()),
            (Some("died_without_result"), Some(1)),
            "{name}: {v}"
        );
        assert!(
            v["notes"].to_string().contains("daemon-completion.toml"),
            "{name}: {v}"
        );
        assert!(
            v["elapsed_ms"].as_u64() < Some(1000),
            "{name}: within a second: {v}"
        );
    }
    let rss_after = rss_kib(daemon);
    eprintln!(
        "malformed files: {} cases, daemon RSS {rss_before} KiB -> {rss_after} KiB",
        cases.len() * 2
    );
    assert!(
        rss_after < rss_before + 8 * 1024,
        "the daemon grew: {rss_before} -> {rss_after} KiB"
    );
    client.send(r#"{"v":1,"id":"p","op":"ping"}"#);
    assert_eq!(client.recv()["event"], "pong");
}

/// A normal client is served while attacked: its wait is right, its ping
/// answered within the starvation bound.
fn assert_served(h: &Harness, what: &str) {
    let s = h.session(&format!("01JNORMAL-{what}"));
    s.write_result("success", 0);
    let mut c = h.connect();
    c.wait("w", s.path(), 0);
    let v = c.verdicts(1).remove("w").expect("verdict");
    assert_eq!(v["exit"], 0, "{what}: {v}");
    let latency = h.ping_latency();
    eprintln!("{what}: ping answered in {latency:?}");
    assert!(
        latency < Duration::from_secs(1),
        "{what}: ping took {latency:?}"
    );
}

#[test]
fn garbage_lines_get_errors_and_the_connection_survives() {
    let h = Harness::start();
    let mut c = h.connect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut lines = 0;
    let shapes: [&[u8]; 8] = [
        b"[1,2,3]",
        b"null",
        b"\"just a string\"",
        b"{\"v\":1}",
        b"{\"v\":\"1\",\"id\":1,\"op\":\"ping\"}",
        b"{\"v\":1,\"id\":{},\"op\":7}",
        b"{\"v\":1,\"id\":1,\"op\":\"wait\",\"session\":[]}",
        b"{\"v\":1,\"id\":1,\"op\":\"cancel\"}",
    ];
    let mut batch = Vec::new();
    for i in 0..3000 {
        batch.push(b'g');
        if i % 4 == 0 {
            batch.extend_from_slice(shapes[i / 4 % shapes.len()]);
        } else {
            for _ in 0..(seed % 200) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let byte = (seed & 0xff) as u8;
                batch.push(if byte == b'\n' { b'?' } else { byte });
            }
        }
        batch.push(b'\n');
        lines += 1;
    }
    c.send_raw(&batch);
    for _ in 0..lines {
        let reply = c.recv();
        assert_eq!(reply["event"], "error", "{reply}");
    }
    c.send(r#"{"v":1,"id":"after","op":"ping"}"#);
    assert_eq!(c.recv()["id"], "after");
    assert_served(&h, "after 3000 garbage lines");
}

#[test]
fn slow_and_silent_clients_do_not_starve_others() {
    let h = Harness::start();
    // A client that sends a byte every 100 ms and never a newline.
    let mut slow = UnixStream::connect(&h.socket).expect("connect");
    let dribble = std::thread::spawn(move || {
        for byte in b"{\"v\":1,\"id\":1,\"op\":\"pi".iter().take(15) {
            if slow.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        slow
    });
    // A client that floods pings and never reads a reply: dropped once its
    // unread replies pass the daemon's cap.
    let mut silent = UnixStream::connect(&h.socket).expect("connect");
    silent
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let ping = b"{\"v\":1,\"id\":1,\"op\":\"ping\"}\n".repeat(1000);
    let mut sent = 0usize;
    while sent < 200_000 {
        if silent.write_all(&ping).is_err() {
            break; // the daemon closed it, or stopped reading it
        }
        sent += 1000;
    }
    assert_served(&h, "with a dribbling and a silent client");
    // The silent client was dropped: its stream ends after what was queued.
    silent
        .set_read_timeout(Some(verdict_e2e::DEADLINE))
        .expect("timeout");
    let mut sink = Vec::new();
    let read = silent.read_to_end(&mut sink);
    assert!(
        read.is_ok(),
        "the daemon closed the silent client: {read:?}"
    );
    assert!(
        sink.len() < sent * 30,
        "not every reply was delivered: {} bytes for {sent} pings",
        sink.len()
    );
    let slow = dribble.join().expect("dribbler");
    drop(slow);
    assert_served(&h, "after the dribbler");
}

#[test]
fn thousands_of_idle_connections_and_the_connection_limit() {
    let limit = raise_fd_limit();
    let idle = 5000.min(limit.saturating_sub(200) as usize / 2);
    let h = Harness::with_config(&format!("max_connections = {}\n", idle + 10));
    let conns: Vec<UnixStream> = (0..idle)
        .map(|_| UnixStream::connect(&h.socket).expect("connect"))
        .collect();
    verdict_e2e::eventually("all idle connections accepted", || {
        (h.status()["connections"].as_u64() >= Some(idle as u64)).then_some(())
    });
    assert_served(&h, &format!("with {idle} idle connections"));
    // Past the limit: busy, then closed.
    let extra: Vec<UnixStream> = (0..20)
        .map(|_| UnixStream::connect(&h.socket).expect("connect"))
        .collect();
    let mut busy = 0;
    for mut stream in extra {
        // A refused connection may already be closed: ignore write errors.
        let _ = stream.write_all(b"{\"v\":1,\"id\":1,\"op\":\"ping\"}\n");
        match Client::from_stream(stream).try_recv() {
            Some(reply) if reply["code"] == "busy" => busy += 1,
            _ => {}
        }
    }
    assert!(
        busy >= 10,
        "connections past max_connections get busy: {busy} of 20"
    );
    drop(conns);
    verdict_e2e::eventually("idle connections closed", || {
        (h.status()["connections"] == 1).then_some(())
    });
}

#[test]
fn waits_past_max_waits_are_busy_on_any_connection() {
    let h = Harness::with_config("max_waits = 2\n");
    let mut live = h.session("01JMAXWAITS");
    live.start_process();
    let wait = |id: u32| {
        format!(
            r#"{{"v":1,"id":{id},"op":"wait","session":"{}","cap_ms":0}}"#,
            live.path()
        )
    };
    let mut first = h.connect();
    first.send(&wait(1));
    first.send(&wait(2));
    for _ in 0..2 {
        assert_eq!(first.recv()["event"], "watching");
    }
    // A third wait, on another connection: over the daemon-wide bound.
    let mut second = h.connect();
    second.send(&wait(3));
    let reply = second.recv();
    assert_eq!(
        (reply["event"].clone(), reply["code"].clone()),
        ("error".into(), "busy".into()),
        "{reply}"
    );
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or("")
            .contains("max_waits"),
        "{reply}"
    );
    // The connection stays usable, and a freed slot is taken again.
    first.send(r#"{"v":1,"id":9,"op":"cancel","target":1}"#);
    assert_eq!(first.recv()["event"], "cancelled");
    second.send(&wait(4));
    assert_eq!(second.recv()["event"], "watching");
    live.end_process();
}
