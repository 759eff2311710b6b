//! The golden corpus (`tests/fixtures/csa-1445/`, recorded from the real
//! `csa session wait` at cli-sub-agent PR #1445 on session directories
//! written by csa's own code), replayed through `verdict wait` by path, by
//! id from the project, by id prefix from elsewhere, by id without the
//! daemon (degraded mode: the same rules, no verdictd), through the Python
//! client, and as `csa session wait --session ID` itself, through a `csa`
//! symlink to verdict (csa's command names in every line, so csa's lines
//! are compared as they are). Each session is laid out as csa lays it out, under
//! `$XDG_STATE_HOME/cli-sub-agent/<project path>/sessions/<ID>`, with the
//! recorded file ages and a real process for `alive` cases.
//!
//! Where csa's answer depends only on the files, stdout must equal
//! `csa.stdout` byte for byte, stderr must carry the same marker and hint
//! lines (csa's command names replaced by verdict's) and the exit code
//! must match. Where csa's answer hangs on its 30-second file-age
//! heuristics, verdict answers from the files and the process alone, as
//! COMPATIBILITY.md says case by case ([`own_answer`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime};

use verdict_e2e::{copy_tree, finish, write_atomic, Harness, Run};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/csa-1445")
}

/// verdict's answer where csa's depends on file ages:
/// (status, the wait's exit code, synthetic).
fn own_answer(case: &str) -> Option<(&'static str, i32, bool)> {
    match case {
        // An exit-0 packet with empty or whitespace-only output fails,
        // whatever its age (csa: success while fresh).
        "f" | "g" | "f-aged" => Some(("failure", 1, false)),
        // A packet's failure is the packet's, not synthetic, whatever its age.
        "d-aged" => Some(("failure", 1, false)),
        // Real output with an exit-0 packet succeeds, whatever its age.
        "h-aged" => Some(("success", 0, false)),
        // daemon.pid's process is provably gone and nothing was written
        // (csa: alive at the cap while the files are fresh).
        "i" => Some(("failure", 1, true)),
        // A legacy `.complete` with 143 is a signal (csa at #1445 ignored it).
        "n" => Some(("signal", 1, false)),
        _ => None,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// `before.ages`: file name → age in seconds at the start of the wait.
fn ages(case: &Path) -> Vec<(String, f64)> {
    read(&case.join("before.ages"))
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?.trim_start_matches("./").to_string();
            let age = words.next()?.strip_prefix("age_at_wait_start=")?;
            Some((name, age.trim_end_matches('s').parse().ok()?))
        })
        .collect()
}

/// A process that has exited and been reaped, as `daemon.pid` names it.
fn dead_pid_record() -> String {
    let (mut child, record) = verdict_e2e::sleeper();
    child.kill().expect("kill");
    child.wait().expect("reap");
    record
}

struct Replay {
    h: Harness,
    case: PathBuf,
    name: String,
    id: String,
    dir: PathBuf,
    project: PathBuf,
    process: Option<verdict_e2e::Sleeper>,
}

impl Replay {
    /// Lays the case's session out as csa does, ages and process included.
    fn new(name: &str) -> Replay {
        let h = Harness::start();
        let case = corpus().join(name);
        let csa_stdout = read(&case.join("csa.stdout")) + &read(&case.join("csa.stderr"));
        let id = csa_stdout
            .split("session=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the session id in csa's marker")
            .to_string();
        let project = std::fs::canonicalize(h.tmp.path())
            .expect("canonical tmp")
            .join("csa-golden-proj");
        std::fs::create_dir_all(&project).expect("project dir");
        let key = project.to_str().expect("utf-8").trim_start_matches('/');
        let dir = h
            .tmp
            .path()
            .join("home/state/cli-sub-agent")
            .join(key)
            .join("sessions")
            .join(&id);
        copy_tree(&case.join("before"), &dir);
        let liveness = read(&case.join("liveness"));
        let mut process = None;
        match liveness.trim() {
            "dead" => std::fs::write(dir.join("daemon.pid"), dead_pid_record()).expect("pid"),
            "alive" => {
                let (child, record) = verdict_e2e::sleeper();
                std::fs::write(dir.join("daemon.pid"), record).expect("pid");
                process = Some(child);
            }
            other => assert_eq!(other, "none", "liveness of {name}"),
        }
        let now = SystemTime::now();
        for (file, age) in ages(&case) {
            let mtime = now - Duration::from_secs_f64(age);
            std::fs::File::options()
                .write(true)
                .open(dir.join(&file))
                .and_then(|f| f.set_modified(mtime))
                .unwrap_or_else(|err| panic!("age {file}: {err}"));
        }
        Replay {
            h,
            case,
            name: name.into(),
            id,
            dir,
            project,
            process,
        }
    }

    /// The five ways of asking, started at once: (what, child).
    fn spawn_waits(&self) -> Vec<(String, Child)> {
        let dir = self.dir.to_str().expect("utf-8");
        let prefix = self.id[..12].to_lowercase();
        let rust = |session: &str, cwd: &Path, extra: &[&str]| {
            let mut args = vec!["wait", session, "--cap", "3"];
            args.extend_from_slice(extra);
            let mut command = self.h.verdict(&args);
            command
                .current_dir(cwd)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command.spawn().expect("spawn verdict")
        };
        let mut python =
            verdict_e2e::python_client(&self.h, &["wait", &self.id, "--cap", "3", "--no-spawn"]);
        python
            .current_dir(&self.project)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        vec![
            (
                "as csa (a symlink), by id from the project".into(),
                self.as_csa(),
            ),
            ("by path".into(), rust(dir, self.h.tmp.path(), &[])),
            (
                "by id from the project".into(),
                rust(&self.id, &self.project, &[]),
            ),
            (
                format!("by prefix {prefix} from elsewhere"),
                rust(&prefix, self.h.tmp.path(), &[]),
            ),
            (
                "without the daemon (--no-daemon), by id from the project".into(),
                rust(&self.id, &self.project, &["--no-daemon"]),
            ),
            (
                "python by id".into(),
                python.spawn().expect("spawn python3"),
            ),
        ]
    }

    /// `csa session wait --session ID` as the corpus ran it, through a
    /// `csa` symlink to verdict (default profile), csa's config giving the
    /// 3 s cap (`[kv_cache] long_poll_seconds`).
    fn as_csa(&self) -> Child {
        let config = self.h.tmp.path().join("home/config/cli-sub-agent");
        std::fs::create_dir_all(&config).expect("csa config dir");
        std::fs::write(
            config.join("config.toml"),
            "[kv_cache]\nlong_poll_seconds = 3\n",
        )
        .expect("csa config");
        let mut command = self.h.csa(&["session", "wait", "--session", &self.id]);
        command
            .current_dir(&self.project)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.spawn().expect("spawn csa (verdict)")
    }

    /// For `*-live` cases: the session writes its files, then exits.
    fn finish_live_session(&mut self) {
        let wrote = match self.name.as_str() {
            "a-live" => ("a", "result.toml"),
            "d-live" => ("d", "daemon-completion.toml"),
            _ => return,
        };
        self.h.wait_for_waiters(5);
        let contents = read(&corpus().join(wrote.0).join("before").join(wrote.1));
        write_atomic(&self.dir, wrote.1, &contents);
        let mut child = self.process.take().expect("a live process");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    /// csa's line with csa's commands named as verdict's; `rewait` is how
    /// verdict names the session in its re-wait command.
    fn named(&self, line: &str, rewait: &str, as_csa: bool) -> String {
        if as_csa {
            line.to_string()
        } else {
            self.as_verdict(line, rewait)
        }
    }

    fn as_verdict(&self, line: &str, rewait: &str) -> String {
        line.replace(
            &format!("csa session wait --session {}", self.id),
            &format!("verdict wait {rewait}"),
        )
        .replace("'csa session wait'", "'verdict wait'")
    }

    fn check(&self, how: &str, run: &Run) {
        let what = format!("case {} {how}: {run:?}", self.name);
        // Run as csa, verdict names csa's commands: csa's lines as they are.
        let as_csa = how.starts_with("as csa");
        let rewait = if how == "by path" {
            self.dir.to_str().expect("utf-8").to_string()
        } else {
            self.id.clone()
        };
        let csa_stderr = read(&self.case.join("csa.stderr"));
        let csa_lines = |prefix: &str| -> Vec<String> {
            csa_stderr
                .lines()
                .filter(|line| line.starts_with(prefix))
                .map(|line| self.named(line, &rewait, as_csa))
                .collect()
        };
        match own_answer(&self.name) {
            None => {
                let csa_rc: i32 = read(&self.case.join("csa.rc")).trim().parse().expect("rc");
                assert_eq!(run.code, csa_rc, "exit code, {what}");
                assert_eq!(
                    run.stdout,
                    read(&self.case.join("csa.stdout")),
                    "stdout, {what}"
                );
                assert_eq!(
                    run.markers(),
                    csa_lines("<!-- CSA:SESSION_WAIT_"),
                    "markers, {what}"
                );
                assert_eq!(
                    run.hints(),
                    csa_lines("<!-- CSA:CALLER_HINT"),
                    "hints, {what}"
                );
                if self.name != "k" {
                    // No csa-internal diagnostics: every stderr line is the same.
                    let want: Vec<String> = csa_stderr
                        .lines()
                        .map(|line| self.named(line, &rewait, as_csa))
                        .collect();
                    assert_eq!(
                        run.stderr.lines().collect::<Vec<_>>(),
                        want,
                        "stderr, {what}"
                    );
                }
            }
            Some((status, exit, synthetic)) => {
                let marker = format!(
                    "<!-- CSA:SESSION_WAIT_COMPLETED session={} status={status} exit={exit} synthetic={synthetic} -->",
                    self.id
                );
                let output = read(&self.case.join("before/stdout.log"));
                assert_eq!(run.code, exit, "exit code, {what}");
                assert_eq!(run.stdout, format!("{output}{marker}\n"), "stdout, {what}");
                assert_eq!(run.markers(), [marker], "markers, {what}");
                // The hint is csa's, byte for byte (from case a).
                let hint = read(&corpus().join("a/csa.stderr"))
                    .lines()
                    .find(|line| line.starts_with("<!-- CSA:CALLER_HINT"))
                    .map(|line| self.named(line, &rewait, as_csa))
                    .expect("csa's hint");
                assert_eq!(run.hints(), [hint], "hints, {what}");
            }
        }
    }
}

fn replay(name: &str) {
    let mut replay = Replay::new(name);
    let waits = replay.spawn_waits();
    replay.finish_live_session();
    for (how, mut child) in waits {
        let run = Run::from(finish(&mut child));
        replay.check(&how, &run);
    }
    // verdict writes nothing into session directories (csa writes
    // `.wait.lock`, a synthetic result.toml and retires state.toml).
    for name in [".wait.lock", ".liveness.snapshot", ".reconcile.lock"] {
        assert!(!replay.dir.join(name).exists(), "verdict wrote {name}");
    }
}

macro_rules! cases {
    ($($test:ident => $case:literal,)*) => {$(
        #[test]
        fn $test() {
            replay($case);
        }
    )*};
}

cases! {
    a_success_result_dead => "a",
    b_failure_result_dead => "b",
    d_failure_packet_dead => "d",
    f_empty_exit_zero_packet => "f",
    g_whitespace_exit_zero_packet => "g",
    h_exit_zero_packet_with_output => "h",
    i_nothing_written_dead => "i",
    j_alive_at_the_cap => "j",
    k_no_daemon_pid => "k",
    n_legacy_complete_143 => "n",
    d_aged => "d-aged",
    f_aged => "f-aged",
    h_aged => "h-aged",
    a_live => "a-live",
    d_live => "d-live",
}

#[test]
fn every_case_in_the_corpus_is_replayed() {
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus())
        .expect("corpus")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let source = include_str!("corpus.rs");
    for case in on_disk {
        assert!(
            source.contains(&format!("=> \"{case}\",")),
            "corpus case {case} has no test"
        );
    }
}
