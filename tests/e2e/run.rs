//! `verdict run`: any command a waitable session. A command that succeeds,
//! fails, is killed by a signal, cannot start, or writes its own
//! result.toml; the default place among the project's csa sessions; and a
//! `verdict run --wait` whose caller is killed (the session still
//! completes and is waitable).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use verdict_e2e::{bin, finish, output_within, Harness, Run};

/// `verdict run ARGS`, in the harness's environment.
fn run_command(h: &Harness, args: &[&str]) -> Command {
    let mut command = Command::new(bin("verdict"));
    command.arg("run").args(args).stdin(Stdio::null());
    h.isolate(&mut command);
    command.env("VERDICT_SOCKET", &h.socket);
    command
}

/// Runs `sh -c SCRIPT` as a session under the harness's root: (id, dir).
fn run_sh(h: &Harness, script: &str) -> (String, PathBuf) {
    let root = h.root.to_str().expect("utf8");
    let run = Run::from(output_within(run_command(
        h,
        &["--root", root, "--", "sh", "-c", script],
    )));
    assert_eq!(run.code, 0, "{run:?}");
    parse_started(&run.stdout)
}

/// `ID<TAB>DIR`.
fn parse_started(line: &str) -> (String, PathBuf) {
    let (id, dir) = line.trim().split_once('\t').expect("ID<TAB>DIR");
    assert_eq!(id.len(), 26, "a ULID: {id}");
    (id.to_string(), PathBuf::from(dir))
}

fn verdict_of(h: &Harness, session: &str) -> (i32, Value) {
    let run = h.wait(session, &["--json", "--cap", "30"]);
    let json = serde_json::from_str(run.stdout.lines().next().unwrap_or("null")).expect("json");
    (run.code, json)
}

#[test]
fn commands_that_succeed_fail_are_killed_or_cannot_start_are_sessions() {
    let h = Harness::start();
    let (id, dir) = run_sh(&h, "echo built it; echo warning >&2");
    assert!(dir.starts_with(&h.root), "{}", dir.display());
    let run = h.wait(&id, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("built it"), "{run:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join("stderr.log")).expect("stderr.log"),
        "warning\n"
    );

    let (id, _) = run_sh(&h, "exit 3");
    let (code, verdict) = verdict_of(&h, &id);
    assert_eq!(code, 1, "{verdict}");
    assert_eq!(verdict["exit_code"], 3, "{verdict}");
    assert_eq!(verdict["synthetic"], false, "{verdict}");

    let (_, dir) = run_sh(&h, "kill -TERM $$");
    let (code, verdict) = verdict_of(&h, dir.to_str().expect("utf8"));
    assert_eq!(code, 1, "{verdict}");
    assert_eq!(verdict["exit_code"], 143, "{verdict}");
    assert_eq!(verdict["status"], "signal", "{verdict}");

    let root = h.root.to_str().expect("utf8");
    let run = Run::from(output_within(run_command(
        &h,
        &["--root", root, "--", "/nonexistent/command"],
    )));
    assert_eq!(run.code, 127, "{run:?}");
    assert!(
        run.stderr.contains("cannot run /nonexistent/command"),
        "{run:?}"
    );
}

#[test]
fn a_result_the_command_writes_itself_wins() {
    let h = Harness::start();
    let (id, _) = run_sh(
        &h,
        "printf 'status = \"success\"\\nexit_code = 0\\nsummary = \"mine\"\\n' \
         > \"$VERDICT_SESSION_DIR/result.toml\"; echo out; exit 5",
    );
    let (code, verdict) = verdict_of(&h, &id);
    assert_eq!(code, 0, "{verdict}");
    assert_eq!(verdict["source"], "result", "{verdict}");
    assert_eq!(verdict["summary"], "mine", "{verdict}");
}

#[test]
fn by_default_the_session_is_among_the_projects_csa_sessions() {
    let h = Harness::start();
    let project = h.tmp.path().join("project");
    std::fs::create_dir_all(&project).expect("project");
    let mut command = run_command(&h, &["--id", "01JMYRUN", "--", "true"]);
    command.current_dir(&project);
    let run = Run::from(output_within(command));
    assert_eq!(run.code, 0, "{run:?}");
    let (_, dir) = run.stdout.trim().split_once('\t').expect("ID<TAB>DIR");
    let want = h
        .tmp
        .path()
        .join("home/state/cli-sub-agent")
        .join(project.strip_prefix("/").expect("absolute"))
        .join("sessions/01JMYRUN");
    assert_eq!(Path::new(dir), want);
    // Found by id from the project, as csa finds its sessions.
    let mut wait = h.verdict(&["wait", "01JMYRUN", "--json", "--cap", "30"]);
    wait.current_dir(&project);
    let run = Run::from(output_within(wait));
    assert!(run.stdout.contains("\"exit_code\":0"), "{run:?}");
}

#[test]
fn a_killed_run_wait_caller_leaves_a_session_that_completes() {
    let h = Harness::start();
    let fifo = h.tmp.path().join("go");
    verdict_e2e::mkfifo(&fifo);
    let root = h.root.to_str().expect("utf8");
    let script = format!("read line < '{}'; echo finished $line", fifo.display());
    let mut caller: Child = run_command(&h, &["--wait", "--root", root, "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("verdict run --wait");
    let mut first = String::new();
    BufReader::new(caller.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("ID<TAB>DIR");
    let (id, _) = parse_started(&first);
    h.wait_for_waiters(1);
    // The caller goes; the session does not.
    let _ = caller.kill();
    let _ = finish(&mut caller);
    h.wait_for_waiters(0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .and_then(|mut f| f.write_all(b"now\n"))
        .expect("release the command");
    let run = h.wait(&id, &["--cap", "30"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("finished now"), "{run:?}");
}
