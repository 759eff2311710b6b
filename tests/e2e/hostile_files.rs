//! Session files an outsider controls: a crowded `locks/`, a FIFO swapped
//! in under `stdout.log`, links to files outside the session, and file
//! times that disagree with what the daemon saw happen. Each test here
//! failed before the rule it holds was built.

use std::time::{Duration, SystemTime};

use verdict_e2e::{output_within, python_client, Harness, Session};

#[test]
fn stale_files_in_locks_never_hide_a_live_tool() {
    let h = Harness::start();
    // daemon.pid names a process that is gone; the tool itself still
    // runs, known only from its lock file, among 1,000 stale files (the
    // scan used to stop at the first 64 entries, before filtering).
    let s = Session::ended(&h, "01JCROWDEDLOCKS");
    let locks = s.dir.join("locks");
    std::fs::create_dir(&locks).expect("locks");
    let old = SystemTime::now() - Duration::from_secs(3600);
    for i in 0..1000 {
        let name = if i % 2 == 0 {
            format!("stale-{i}.tmp")
        } else {
            format!("tool-{i}.lock")
        };
        let path = locks.join(name);
        // Dead pids: stale locks of tools long gone.
        std::fs::write(&path, "{\"pid\": 4194303}").expect("stale lock");
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_modified(old).expect("age the stale lock");
    }
    let (mut tool, _) = verdict_e2e::sleeper();
    let lock = format!("{{\"pid\": {}, \"tool\": \"codex\"}}", tool.id());
    std::fs::write(locks.join("codex.lock"), lock).expect("live lock");
    let run = h.wait(s.path(), &["--cap", "1", "--json"]);
    let _ = tool.kill();
    let _ = tool.wait();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("\"outcome\":\"kv_warm\""),
        "a live tool is alive at the cap: {run:?}"
    );
}

#[test]
fn a_fifo_swapped_in_for_stdout_log_never_hangs_a_finished_wait() {
    let h = Harness::start();
    let s = Session::ended(&h, "01JFIFOSWAP");
    s.write_result("success", 0);
    let log = s.dir.join("stdout.log");
    let fifo = s.dir.join(".fifo");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Swap a FIFO and a regular file under the name, as fast as the kernel
    // exchanges two names, while clients copy the output: a client that
    // checks the name and then opens it blocks on the FIFO for ever.
    std::fs::write(&log, "output\n").expect("stdout.log");
    verdict_e2e::mkfifo(&fifo);
    let swapper = {
        let (log, fifo, stop) = (log.clone(), fifo.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &fifo,
                    rustix::fs::CWD,
                    &log,
                    rustix::fs::RenameFlags::EXCHANGE,
                )
                .expect("exchange");
                swaps += 1;
            }
            swaps
        })
    };
    for _ in 0..100 {
        // Each must end: `finish` fails the test past its deadline.
        let run = h.wait(s.path(), &[]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    for _ in 0..20 {
        let out = output_within(python_client(&h, &["wait", s.path()]));
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    eprintln!("fifo swap: {swaps} swaps while 120 clients copied the output");
}

#[test]
fn session_files_are_not_followed_through_links_and_notes_never_quote_them() {
    let h = Harness::start();
    let secret = h.tmp.path().join("credentials");
    std::fs::write(&secret, "hunter2-SECRET-TOKEN\nexit_code = 0\n").expect("secret");
    let mut client = h.connect();

    // A `.complete` linked to a credentials file: its first line used to
    // be quoted into every waiter's notes.
    let linked = Session::ended(&h, "01JLINKEDCOMPLETE");
    std::os::unix::fs::symlink(&secret, linked.dir.join(".complete")).expect("symlink");
    client.wait("linked", linked.path(), 0);

    // A `result.toml` linked to a good result elsewhere is refused too.
    let good = h.tmp.path().join("good.toml");
    std::fs::write(&good, "status = \"success\"\nexit_code = 0\n").expect("good");
    let borrowed = Session::ended(&h, "01JLINKEDRESULT");
    std::os::unix::fs::symlink(&good, borrowed.dir.join("result.toml")).expect("symlink");
    client.wait("borrowed", borrowed.path(), 0);

    // A parse error names the line and column, not the value.
    let typed = Session::ended(&h, "01JBADTYPE");
    typed.write(
        "result.toml",
        "status = \"success\"\nexit_code = \"hunter2-SECRET-TOKEN\"\n",
    );
    typed.write_packet("failure", 3);
    client.wait("typed", typed.path(), 0);

    let verdicts = client.verdicts(3);
    for (id, v) in &verdicts {
        let text = v.to_string();
        assert!(!text.contains("hunter2"), "{id}: content leaked: {text}");
    }
    let v = &verdicts["linked"];
    assert_eq!(v["reason"], "died_without_result", "{v}");
    assert!(
        v["notes"]
            .to_string()
            .contains(".complete is a symbolic link"),
        "{v}"
    );
    let v = &verdicts["borrowed"];
    assert_eq!(v["exit"], 1, "a linked result is not the session's: {v}");
    assert!(
        v["notes"]
            .to_string()
            .contains("result.toml is a symbolic link"),
        "{v}"
    );
    let v = &verdicts["typed"];
    assert_eq!(
        (v["source"].as_str(), v["exit_code"].as_i64()),
        (Some("packet"), Some(3)),
        "{v}"
    );
    assert!(v["notes"].to_string().contains("line 2, column 13"), "{v}");

    // stdout.log may be a link (csa copies it), to a regular file.
    let copied = Session::ended(&h, "01JLINKEDOUTPUT");
    copied.write_result("success", 0);
    let output = h.tmp.path().join("output.txt");
    std::fs::write(&output, "the answer\n").expect("output");
    std::os::unix::fs::symlink(&output, copied.dir.join("stdout.log")).expect("symlink");
    let run = h.wait(copied.path(), &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("the answer\n"), "{run:?}");
    let devnull = Session::ended(&h, "01JLINKEDDEVICE");
    devnull.write_result("success", 0);
    std::os::unix::fs::symlink("/dev/zero", devnull.dir.join("stdout.log")).expect("symlink");
    let run = h.wait(devnull.path(), &[]);
    assert_eq!(
        run.code, 0,
        "a device is not copied, and nothing hangs: {run:?}"
    );
}

#[test]
fn a_result_the_daemon_saw_arrive_wins_over_a_clock_that_stepped_back() {
    let h = Harness::start();
    let mut s = h.session("01JCLOCKSTEP");
    s.start_process();
    // daemon.pid written before the clock stepped back an hour: its mtime
    // is in the future of every file written from now on.
    let pid_file = std::fs::File::options()
        .write(true)
        .open(s.dir.join("daemon.pid"))
        .expect("open daemon.pid");
    pid_file
        .set_modified(SystemTime::now() + Duration::from_secs(3600))
        .expect("set mtime");
    let mut client = h.connect();
    client.wait("w", s.path(), 0);
    assert_eq!(client.recv()["event"], "watching");
    s.write_result("success", 0);
    s.end_process();
    let v = client.verdicts(1).remove("w").expect("verdict");
    assert_eq!(
        (v["source"].as_str(), v["exit"].as_i64()),
        (Some("result"), Some(0)),
        "a result written while the daemon watched is fresh: {v}"
    );
}
