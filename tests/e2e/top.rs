//! `verdict top`: `--once` (text and JSON) on known sessions, and the
//! full-screen view in a real terminal (tmux: `send-keys`,
//! `capture-pane`): a running session appears with its pid, ends, and its
//! row shows the status with no key pressed; `f` and `/` filter; `q`
//! gives the terminal back as it was.

use std::process::Command;

use serde_json::Value;
use verdict_e2e::{bin, eventually, output_within, Harness, Run, Session};

fn csa_session(h: &Harness, id: &str) -> Session {
    let mut session = h.session(&format!("proj/sessions/{id}"));
    session.id = id.into();
    session
}

fn top(h: &Harness, args: &[&str]) -> Run {
    let mut command = Command::new(bin("verdict"));
    command.arg("top").args(args).arg("--socket").arg(&h.socket);
    h.isolate(&mut command);
    Run::from(output_within(command))
}

#[test]
fn once_lists_ended_and_running_sessions_as_text_and_json() {
    let h = Harness::start();
    let done = Session::ended(&h, "proj/sessions/01JTOPDONE");
    done.write_result("success", 0);
    let failed = Session::ended(&h, "proj/sessions/01JTOPFAIL");
    failed.write_result("failure", 2);
    let mut live = csa_session(&h, "01JTOPLIVE");
    let pid = live.start_process();
    let run = top(&h, &["--once"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("1 running"), "{run:?}");
    assert!(run.stdout.contains("1 failed"), "{run:?}");
    let line = |id: &str| {
        run.stdout
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} in {run:?}"))
            .to_string()
    };
    assert!(line("01JTOPLIVE").contains(&pid.to_string()), "{run:?}");
    assert!(line("01JTOPLIVE").contains("running"), "{run:?}");
    assert!(line("01JTOPFAIL").contains("failure"), "{run:?}");
    let run = top(&h, &["--once", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let rows: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).expect("row").clone();
    assert_eq!(row("01JTOPFAIL")["exit_code"], 2);
    assert_eq!(row("01JTOPFAIL")["wait_exit"], 1);
    assert_eq!(row("01JTOPDONE")["status"], "success");
    assert_eq!(row("01JTOPLIVE")["state"], "running");
    assert_eq!(row("01JTOPLIVE")["pid"], pid);
    live.end_process();
}

/// The shell line that runs `verdict top` on the harness's daemon, and
/// then says how it exited.
fn top_command(h: &Harness) -> String {
    format!(
        "HOME={} {} top --socket {}; echo top-exit=$?",
        h.tmp.path().join("home").display(),
        bin("verdict").display(),
        h.socket.display()
    )
}

/// A private tmux server running a shell, 100×30.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(h: &Harness) -> Tmux {
        let name = format!(
            "verdict-{}",
            h.tmp.path().file_name().expect("name").to_string_lossy()
        );
        let tmux = Tmux { name };
        let run = tmux.cmd(&["new-session", "-d", "-x", "100", "-y", "30", "sh"]);
        assert!(run.status.success(), "tmux: {run:?}");
        tmux
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.name, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux (scripts/test installs it)")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "0"]).stdout).into_owned()
    }

    fn shows(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        eventually(what, || {
            let screen = self.screen();
            check(&screen).then_some(screen)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn the_full_screen_view_follows_sessions_filters_and_gives_the_terminal_back() {
    let h = Harness::start();
    std::fs::create_dir_all(h.root.join("proj/sessions")).expect("sessions dir");
    let old = Session::ended(&h, "proj/sessions/01JTUIOLD");
    old.write_result("failure", 4);
    verdict_e2e::mkfifo(old.dir.join("stdout.log"));
    let tmux = Tmux::start(&h);
    let command = top_command(&h);
    tmux.keys(&[&command, "Enter"]);
    // The ended session from the first scan, then a new one, live.
    tmux.shows("the old session", |s| {
        s.contains("01JTUIOLD") && s.contains("failure")
    });
    let mut live = csa_session(&h, "01JTUILIVE");
    let output: String = (1..=100).map(|i| format!("output line {i:03}\n")).collect();
    live.write("stdout.log", &output);
    let pid = live.start_process();
    tmux.shows("the running session with its pid", |s| {
        s.lines().any(|l| {
            l.contains("01JTUILIVE") && l.contains("running") && l.contains(&pid.to_string())
        })
    });
    live.write_result("success", 0);
    live.end_process();
    tmux.shows("its end, with no key pressed", |s| {
        s.lines()
            .any(|l| l.contains("01JTUILIVE") && l.contains("success"))
    });
    tmux.keys(&["f"]);
    tmux.shows("failed only", |s| {
        s.contains("01JTUIOLD") && !s.contains("01JTUILIVE")
    });
    tmux.keys(&["f", "/", "L", "I", "V", "E", "Enter"]);
    tmux.shows("filtered by id", |s| {
        s.contains("01JTUILIVE") && !s.contains("01JTUIOLD")
    });
    // Enter: the last lines of its stdout.log, as many as fit; q: back.
    tmux.keys(&["Enter"]);
    tmux.shows("the end of its output", |s| {
        s.contains("01JTUILIVE: stdout.log")
            && s.contains("output line 100")
            && !s.contains("output line 001")
    });
    tmux.keys(&["q"]);
    tmux.shows("the table again", |s| s.contains("PROJECT"));
    // A FIFO for a stdout.log is not opened (it would block the view).
    tmux.keys(&["/", "O", "L", "D", "Enter", "Enter"]);
    tmux.shows("no output for the FIFO", |s| {
        s.contains("01JTUIOLD: stdout.log") && s.contains("(no stdout.log)")
    });
    tmux.keys(&["q"]);
    tmux.keys(&["/", "Enter"]);
    // Smaller, as an 80×24 terminal: still a table with its headings.
    assert!(tmux
        .cmd(&["resize-window", "-t", "0", "-x", "80", "-y", "24"])
        .status
        .success());
    tmux.shows("the table at 80×24", |s| {
        s.contains("PROJECT") && s.contains("01JTUILIVE")
    });
    tmux.keys(&["q"]);
    shell_is_back(&tmux, 0, "back-to-the-shell");
    // Its terminal going away (SIGHUP) ends it too.
    tmux.keys(&[&command, "Enter"]);
    tmux.shows("the view again", |s| s.contains("PROJECT"));
    let _ = tmux.cmd(&["kill-server"]);
    eventually("verdict-top to exit with its terminal", || {
        verdict_e2e::processes_of("verdict-top", &h.socket)
            .is_empty()
            .then_some(())
    });
}

/// `verdict top` exited with `code`, and the shell is back in cooked mode:
/// what is typed is echoed and run, and the view's alternate screen is
/// gone. (Typed only once it has exited: keys sent while it runs are its.)
fn shell_is_back(tmux: &Tmux, code: u8, mark: &str) -> String {
    let exit = format!("top-exit={code}");
    tmux.shows(&exit, |s| s.contains(&exit));
    tmux.keys(&[&format!("echo {mark}"), "Enter"]);
    tmux.shows("the shell", |s| {
        s.lines().filter(|l| l.contains(mark)).count() >= 2 && !s.contains("PROJECT")
    })
}

#[test]
fn a_panic_and_sigterm_give_the_terminal_back() {
    let h = Harness::start();
    let tmux = Tmux::start(&h);
    let command = top_command(&h);
    // A panic after the first frame (a hook of debug builds): the message
    // is printed on the restored terminal, and the exit is Rust's 101.
    tmux.keys(&[&format!("VERDICT_TOP_PANIC=1 {command}"), "Enter"]);
    let screen = shell_is_back(&tmux, 101, "after-the-panic");
    assert!(screen.contains("VERDICT_TOP_PANIC is set"), "{screen}");
    // SIGTERM: restored by the signal thread, and the exit says which
    // signal, as a shell would.
    tmux.keys(&["clear", "Enter"]);
    tmux.keys(&[&command, "Enter"]);
    tmux.shows("the view", |s| s.contains("PROJECT"));
    let pids = verdict_e2e::processes_of("verdict-top", &h.socket);
    assert_eq!(pids.len(), 1, "{pids:?}");
    verdict_e2e::signal(pids[0] as i32, rustix::process::Signal::TERM);
    shell_is_back(&tmux, 143, "after-sigterm");
}

#[test]
fn when_the_daemon_comes_back_the_view_says_so_and_shows_the_end_it_missed() {
    let mut h = Harness::start();
    let mut gone = csa_session(&h, "01JTUIGONE");
    let pid = gone.start_process();
    let tmux = Tmux::start(&h);
    tmux.keys(&[&top_command(&h), "Enter"]);
    tmux.shows("the running session", |s| {
        s.lines()
            .any(|l| l.contains("01JTUIGONE") && l.contains(&pid.to_string()))
    });
    let mut daemon = h.take_daemon();
    daemon.kill().expect("SIGKILL the daemon");
    daemon.wait().expect("reap");
    tmux.shows("that the daemon is gone", |s| s.contains("· retrying: "));
    // It ends while nobody listens: no daemon will ever report it.
    gone.write_result("failure", 7);
    gone.end_process();
    h.spawn_daemon();
    tmux.shows("the reconnect, and the end it missed", |s| {
        s.contains("reconnected")
            && !s.contains("· retrying: ")
            && s.lines()
                .any(|l| l.contains("01JTUIGONE") && l.contains("failure") && l.contains(" 7 "))
    });
    tmux.keys(&["q"]);
}
