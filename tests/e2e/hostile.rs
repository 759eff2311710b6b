//! The shared daemon's promise under hostile or careless use: one client,
//! one file or one typo never hurts another waiter. Each test here failed
//! before the rule it holds (a bound, one opener, one owner) was built.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustix::process::Signal;
use verdict_e2e::{rss_kib, signal, Harness, DEADLINE};

#[test]
fn a_client_that_keeps_its_socket_full_neither_stalls_others_nor_grows_the_daemon() {
    let h = Harness::start();
    let daemon = h.status()["pid"].as_u64().expect("pid") as u32;
    // A client whose requests are all there at once, far more than one
    // turn's worth: the daemon used to read every byte available before
    // answering anything, holding the loop and growing with the input.
    // A send buffer of 256 MiB (root may force one) holds them all while
    // the daemon is stopped, so the flood is there in full when it wakes.
    let mut flooder = UnixStream::connect(&h.socket).expect("connect");
    force_send_buffer(&flooder, 256 << 20);
    flooder.set_nonblocking(true).expect("nonblocking");
    let block: Vec<u8> = b"{\"v\":1,\"id\":1,\"op\":\"ping\"}\n"
        .iter()
        .copied()
        .cycle()
        .take(1 << 20)
        .collect();
    signal(daemon as i32, Signal::STOP);
    let mut queued = 0usize;
    while queued < 192 << 20 {
        match flooder.write(&block) {
            Ok(n) => queued += n,
            Err(_) => break,
        }
    }
    signal(daemon as i32, Signal::CONT);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(daemon), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        slowest = slowest.max(h.ping_latency());
    }
    // It never reads its replies: dropped once 1 MiB of them is pending.
    verdict_e2e::eventually("the flooding client to be dropped", || {
        (h.status()["connections"] == 1).then_some(())
    });
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "flood: {} MiB queued at once, slowest ping {slowest:?}, daemon peak RSS {peak} KiB",
        queued >> 20
    );
    assert!(
        peak < 64 * 1024,
        "the daemon grew to {peak} KiB reading one client's flood"
    );
    assert!(slowest < DEADLINE, "a ping took {slowest:?}");
}

/// Sets `stream`'s send buffer to `bytes`: past the system's limit as
/// root (`SO_SNDBUFFORCE`), else as far as the limit allows.
fn force_send_buffer(stream: &UnixStream, bytes: i32) {
    use std::os::fd::AsRawFd;
    for option in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
        // SAFETY: a valid socket fd and a pointer to an int of the size given.
        let set = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if set == 0 {
            return;
        }
    }
}

#[test]
fn a_directory_renamed_mid_wait_and_waited_again_keeps_its_watch() {
    // No process is known: only file events end these waits (the launch
    // grace is longer than the test's deadline).
    let h = Harness::with_config("launch_grace_ms = 600000\n");
    let old = h.session("01JRENAMEDOLD");
    let mut first = h.connect();
    first.wait("old", old.path(), 0);
    assert_eq!(first.recv()["event"], "watching");
    let new_dir = h.root.join("01JRENAMEDNEW");
    std::fs::rename(&old.dir, &new_dir).expect("rename");
    let mut second = h.connect();
    second.wait("new", new_dir.to_str().expect("utf-8"), 0);
    assert_eq!(second.recv()["event"], "watching");
    // The old name's wait ends (its directory is gone), and with it the
    // watch the kernel shares between the two names used to go.
    let gone = first.verdicts(1).remove("old").expect("reply");
    assert_eq!(gone["code"], "session_removed", "{gone}");
    // Let the daemon finish with the old name (and read what that did to
    // the watch) before the new name gets its result.
    second.send(r#"{"v":1,"id":"p","op":"ping"}"#);
    assert_eq!(second.recv()["event"], "pong");
    verdict_e2e::write_atomic(
        &new_dir,
        "result.toml",
        "status = \"success\"\nexit_code = 0\n",
    );
    let v = second.verdicts(1).remove("new").expect("verdict");
    assert_eq!(
        (v["source"].as_str(), v["exit"].as_i64()),
        (Some("result"), Some(0)),
        "{v}"
    );
}

#[test]
fn subscribers_hear_the_end_of_every_session_that_starts_after_they_subscribed() {
    let h = Harness::start();
    let mut sub = h.connect();
    sub.send(r#"{"v":1,"id":"sub","op":"subscribe"}"#);
    assert_eq!(sub.recv()["event"], "subscribed");
    for round in 0..20 {
        // A project that exists, and one made with its first session, at
        // the depth csa nests them (the project's own path).
        let project = if round % 2 == 0 {
            "known".to_string()
        } else {
            format!("new{round}/home/user/project")
        };
        let mut s = h.session(&format!("{project}/sessions/01JLATE{round}"));
        let pid = s.start_process();
        let mut heard = Vec::new();
        while !heard
            .iter()
            .any(|e: &serde_json::Value| e["event"] == "started")
        {
            heard.push(sub.recv());
        }
        assert_eq!(heard.last().expect("started")["pid"], pid, "{heard:?}");
        s.write_result("success", 0);
        s.end_process();
        let end = sub.recv();
        assert_eq!(
            (end["event"].as_str(), end["session"].as_str()),
            (Some("verdict"), Some(&*format!("01JLATE{round}"))),
            "round {round}: {end}"
        );
        assert_eq!(end["exit"], 0, "{end}");
    }
}

#[test]
fn mistyped_ids_never_walk_the_roots_on_the_loop() {
    let h = Harness::start();
    // A state directory of 10,000 directories: building the index walks
    // them all, and every unknown id used to rebuild it on the loop.
    for project in 0..100 {
        for sub in 0..100 {
            std::fs::create_dir_all(h.root.join(format!("p{project}/d{sub}"))).expect("mkdir");
        }
    }
    let real = h.session("p7/sessions/01JREALSESSION");
    real.write_result("success", 0);
    let mut c = h.connect();
    // Twenty typos, the real id, and a ping, in one write: the ping is
    // answered in the same turn, before any lookup is.
    let mut burst = String::new();
    for typo in 0..20 {
        burst.push_str(&format!(
            "{{\"v\":1,\"id\":\"typo{typo}\",\"op\":\"wait\",\"session\":\"01JTYPO{typo}\"}}\n"
        ));
    }
    burst.push_str("{\"v\":1,\"id\":\"real\",\"op\":\"wait\",\"session\":\"01JREALSESSION\"}\n");
    burst.push_str("{\"v\":1,\"id\":\"p\",\"op\":\"ping\"}\n");
    c.send_raw(burst.as_bytes());
    let first = c.recv();
    assert_eq!(
        first["event"], "pong",
        "the loop answered a lookup first: {first}"
    );
    let answers = c.verdicts(21);
    for typo in 0..20 {
        let error = &answers[&format!("typo{typo}")];
        assert_eq!(error["code"], "unknown_session", "{error}");
    }
    assert_eq!(answers["real"]["exit"], 0, "{}", answers["real"]);
    c.send(r#"{"v":1,"id":"p2","op":"ping"}"#);
    assert_eq!(c.recv()["event"], "pong");
}

#[test]
fn status_fits_one_line_whatever_the_sessions_and_their_paths() {
    let h = Harness::start();
    // 100 sessions waited for, each at a path of about 1,000 bytes: the
    // list alone was 88 KB, past the 64 KiB line limit.
    let deep = "d".repeat(200);
    let sessions: Vec<verdict_e2e::Session> = (0..100)
        .map(|i| {
            let dir = h
                .root
                .join(format!("{deep}/{deep}/{deep}/{deep}/01JLONGPATH{i:03}"));
            let mut s = h.session_at(dir);
            s.start_process();
            s
        })
        .collect();
    let mut c = h.connect();
    for (i, s) in sessions.iter().enumerate() {
        c.wait(i, s.path(), 0);
    }
    h.wait_for_waiters(100);
    let status = h.status();
    let listed = status["watched"].as_array().expect("watched").len() as u64;
    assert!(listed > 0, "{status}");
    assert_eq!(
        listed + status["watched_omitted"].as_u64().unwrap_or(0),
        100,
        "{status}"
    );
    let run = verdict_e2e::Run::from(verdict_e2e::output_within(h.verdict(&["status"])));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("more sessions (not listed)"), "{run:?}");
}

#[test]
fn one_call_waits_on_more_than_four_thousand_sessions() {
    let h = Harness::start();
    // 65 batches of 64: past the old bound of 4,096 waits a connection.
    let sessions: Vec<verdict_e2e::Session> = (0..4160)
        .map(|i| {
            let s = h.session(&format!("01JMANY{i:05}"));
            s.write_result("success", 0);
            s
        })
        .collect();
    let mut args: Vec<&str> = vec!["wait", "--json"];
    args.extend(sessions.iter().map(|s| s.path()));
    // A lot of work for one debug-built process on a loaded machine.
    let run = verdict_e2e::Run::from(verdict_e2e::output_within_for(
        h.verdict(&args),
        Duration::from_secs(120),
    ));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 4160, "one verdict each");
    assert!(!run.stdout.contains("\"busy\""));
}

#[test]
fn the_harness_never_signals_a_process_its_lock_file_names_unless_it_is_its_daemon() {
    let (mut stranger, _) = verdict_e2e::sleeper();
    {
        let h = Harness::without_daemon();
        // A stale lock whose pid now belongs to someone else.
        let mut lock = h.socket.as_os_str().to_owned();
        lock.push(".lock");
        std::fs::write(std::path::Path::new(&lock), format!("{}\n", stranger.id())).expect("lock");
    }
    // A SIGKILL lands within microseconds; half a second is a wide margin
    // for a process that is not to die at all.
    use wait_timeout::ChildExt;
    assert!(
        stranger
            .wait_timeout(Duration::from_millis(500))
            .expect("wait")
            .is_none(),
        "the harness killed a process that was not its daemon"
    );
}

#[test]
fn degraded_mode_waits_on_a_thousand_sessions_with_one_inotify_instance() {
    let h = Harness::without_daemon();
    // Past fs.inotify.max_user_instances (128 by default) when each
    // session had an instance of its own, and past the usual soft limit of
    // open files (1,024) with a pidfd per session.
    let sessions: Vec<verdict_e2e::Session> = (0..1000)
        .map(|i| {
            let mut s = h.session(&format!("01JALONE{i:03}"));
            s.start_process();
            s
        })
        .collect();
    let mut args: Vec<&str> = vec!["wait", "--no-daemon", "--json"];
    args.extend(sessions.iter().map(|s| s.path()));
    let child = h
        .verdict(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("verdict");
    let pid = child.id();
    verdict_e2e::eventually("the waits to be armed", || {
        (verdict_e2e::inotify_watches(pid) == 1000).then_some(())
    });
    let instances = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| target.to_string_lossy().contains("inotify"))
        })
        .count();
    assert_eq!(instances, 1, "one inotify instance for all sessions");
    for s in &sessions {
        s.write_result("success", 0);
    }
    let mut sessions = sessions;
    sessions
        .iter_mut()
        .for_each(verdict_e2e::Session::end_process);
    let mut child = child;
    let run = verdict_e2e::Run::from(verdict_e2e::finish(&mut child));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.lines().count(), 1000);
}

#[test]
fn ids_are_echoed_verbatim_even_past_64_bits() {
    let h = Harness::start();
    let mut c = h.connect();
    c.send_raw(b"{\"v\":1,\"id\":123456789012345678901234567890,\"op\":\"ping\"}\n");
    let line = c.recv_line();
    assert!(
        line.starts_with("{\"v\":1,\"id\":123456789012345678901234567890,"),
        "{line}"
    );
    let s = h.session("01JBIGID");
    s.write_result("success", 0);
    c.send(&format!(
        "{{\"v\":1,\"id\":98765432109876543210,\"op\":\"wait\",\"session\":\"{}\"}}",
        s.path()
    ));
    for _ in 0..2 {
        let line = c.recv_line();
        assert!(
            line.starts_with("{\"v\":1,\"id\":98765432109876543210,"),
            "{line}"
        );
    }
}
