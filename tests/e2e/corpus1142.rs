//! The csa 0.1.1142 golden corpus (`tests/fixtures/csa-1142/`, recorded
//! from the real `csa session wait` at cli-sub-agent `7aaf3ead` on session
//! directories written by csa's own code), replayed through a `csa`
//! symlink to `verdict` with `VERDICT_CSA=1142`, with the case's own
//! command line (`csa.cmd`), from the project directory, csa's
//! `config.toml` giving `--model-provider golden` its 3 s cap.
//!
//! Exit code, stdout and stderr must equal csa's byte for byte, except
//! what depends on the clock or the host, which [`masked`] blanks on both
//! sides: the `Elapsed:` value, the `Progress:` line's times, file mtimes
//! and `last_accessed` in a synthetic failure's diagnostics, the size of
//! `daemon.pid` (the replay's pid has other digits), csa's memory figures,
//! and the paths of the project and of csa's config. Where csa 1142 hangs on
//! its 30-second file-age windows (a dead session reported alive while its
//! files are fresh), verdict prints at once what csa prints for the aged
//! directory ([`settled_as`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use verdict_e2e::{copy_tree, finish, write_atomic, Harness, Run};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/csa-1142")
}

/// The case whose recording is verdict's answer, where csa's hangs on its
/// 30-second windows: the same directory, aged (for `hv`, `h-aged`'s
/// stderr and exit code; its stdout is the session's log, see `want`).
fn settled_as(case: &str) -> &str {
    match case {
        "d" | "d-live" => "d-aged",
        "f" => "f-aged",
        "h" => "h-aged",
        "i" => "i-aged",
        // `hv-aged` is kept for acceptance; it is `h-aged` with --verbose
        // (see `want`).
        "hv" => "h-aged",
        other => other,
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// The session id a case's command names.
fn session_of(case: &str) -> String {
    let cmd = read(&corpus().join(case).join("csa.cmd"));
    let mut words = cmd.split_whitespace();
    words.find(|w| *w == "--session");
    words.next().expect("--session ID in csa.cmd").to_string()
}

/// Blanks what depends on the clock or the host (see the module doc).
fn masked(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.starts_with("Elapsed: ") {
                return "Elapsed: *".to_string();
            }
            let words: Vec<&str> = line.split(' ').collect();
            let mut out = Vec::with_capacity(words.len());
            for (i, word) in words.iter().enumerate() {
                let previous = i.checked_sub(1).map(|p| words[p]);
                let key = ["mtime=", "last_accessed=", "elapsed=", "last_event="]
                    .into_iter()
                    .find(|key| word.starts_with(key));
                let value = match (key, previous) {
                    (Some(key), _) => format!("{key}*"),
                    (None, Some("MemAvailable:" | "MemTotal:")) => "*".into(),
                    (None, Some("daemon_pid=present")) if word.starts_with("size_bytes=") => {
                        "size_bytes=*".into()
                    }
                    _ => (*word).to_string(),
                };
                out.push(value);
            }
            out.join(" ")
                .replace("earlyoom not running", "earlyoom running")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Replay {
    h: Harness,
    name: String,
    dir: PathBuf,
    project: PathBuf,
    process: Option<verdict_e2e::Sleeper>,
}

impl Replay {
    fn new(name: &str) -> Replay {
        let h = Harness::start();
        let case = corpus().join(name);
        let project = std::fs::canonicalize(h.tmp.path())
            .expect("canonical tmp")
            .join("csa-golden-proj-1142");
        std::fs::create_dir_all(&project).expect("project dir");
        let key = project.to_str().expect("utf-8").trim_start_matches('/');
        let home = h.tmp.path().join("home");
        let dir = home
            .join("state/cli-sub-agent")
            .join(key)
            .join("sessions")
            .join(session_of(name));
        copy_tree(&case.join("before"), &dir);
        let config = home.join("config/cli-sub-agent");
        std::fs::create_dir_all(&config).expect("csa config dir");
        std::fs::write(
            config.join("config.toml"),
            "[kv_cache]\nlong_poll_seconds = 3\n\n[kv_cache.provider_ttls]\ngolden = 3\n",
        )
        .expect("csa config");
        let mut process = None;
        match read(&case.join("liveness")).trim() {
            "alive" => {
                let (child, record) = verdict_e2e::sleeper();
                std::fs::write(dir.join("daemon.pid"), record).expect("pid");
                process = Some(child);
            }
            _ => {
                let (mut child, record) = verdict_e2e::sleeper();
                child.kill().expect("kill");
                child.wait().expect("reap");
                std::fs::write(dir.join("daemon.pid"), record).expect("pid");
            }
        }
        let now = SystemTime::now();
        for line in read(&case.join("before.ages")).lines() {
            let mut words = line.split_whitespace();
            let (Some(file), Some(age)) = (words.next(), words.next()) else {
                continue;
            };
            let age: f64 = age
                .trim_start_matches("age_at_wait_start=")
                .trim_end_matches('s')
                .parse()
                .expect("age");
            std::fs::File::options()
                .write(true)
                .open(dir.join(file.trim_start_matches("./")))
                .and_then(|f| f.set_modified(now - Duration::from_secs_f64(age)))
                .unwrap_or_else(|err| panic!("age {file}: {err}"));
        }
        Replay {
            h,
            name: name.into(),
            dir,
            project,
            process,
        }
    }

    /// `csa …` as the case ran it, through a `csa` symlink to verdict.
    fn spawn(&self) -> Child {
        let cmd = read(&corpus().join(&self.name).join("csa.cmd"));
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        let mut command = self.h.csa(&args);
        command
            .env("VERDICT_CSA", "1142")
            .current_dir(&self.project)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.spawn().expect("spawn csa (verdict)")
    }

    /// For `*-live` cases: the session writes its file, then exits.
    fn finish_live_session(&mut self) {
        let wrote = match self.name.as_str() {
            "a-live" => ("a", "result.toml"),
            "d-live" => ("d-aged", "daemon-completion.toml"),
            _ => return,
        };
        self.h.wait_for_waiters(1);
        let contents = read(&corpus().join(wrote.0).join("before").join(wrote.1));
        write_atomic(&self.dir, wrote.1, &contents);
        let mut child = self.process.take().expect("a live process");
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    /// csa's recording of the case verdict's answer is, in this replay's
    /// terms (its session id, project and config paths), masked.
    fn want(&self, stream: &str) -> String {
        let recorded = settled_as(&self.name);
        if self.name == "hv" && stream == "csa.stdout" {
            // --verbose: the session's stdout.log instead of the summary
            // (the corpus README: "hv-aged prints answer: 42").
            return masked(&read(&corpus().join("hv/before/stdout.log")));
        }
        let text = read(&corpus().join(recorded).join(stream))
            .replace(&session_of(recorded), &session_of(&self.name))
            .replace(
                "/tmp/csa-golden-proj-1142",
                self.project.to_str().expect("utf-8"),
            )
            .replace(
                "/tmp/csa-golden-home-1142/.config",
                self.h
                    .tmp
                    .path()
                    .join("home/config")
                    .to_str()
                    .expect("utf-8"),
            );
        masked(&text)
    }

    fn check(&self, run: &Run) {
        let what = format!("case {}: {run:?}", self.name);
        let rc: i32 = read(&corpus().join(settled_as(&self.name)).join("csa.rc"))
            .trim()
            .parse()
            .expect("rc");
        assert_eq!(run.code, rc, "exit code, {what}");
        assert_eq!(
            masked(&run.stdout),
            self.want("csa.stdout"),
            "stdout, {what}"
        );
        assert_eq!(
            masked(&run.stderr),
            self.want("csa.stderr"),
            "stderr, {what}"
        );
    }
}

fn replay(name: &str) {
    let mut replay = Replay::new(name);
    let mut child = replay.spawn();
    replay.finish_live_session();
    let run = Run::from(finish(&mut child));
    replay.check(&run);
    // verdict writes nothing into session directories (csa writes
    // `.wait.lock`, a reconciled result.toml and retires state.toml).
    for file in [".wait.lock", ".liveness.snapshot", ".reconcile.lock"] {
        assert!(!replay.dir.join(file).exists(), "verdict wrote {file}");
    }
}

macro_rules! cases {
    ($($test:ident => $case:literal,)*) => {
        $(#[test]
        fn $test() {
            replay($case);
        })*

        #[test]
        fn every_case_in_the_corpus_is_replayed() {
            let mut on_disk: Vec<String> = std::fs::read_dir(corpus())
                .expect("corpus")
                .flatten()
                .filter(|e| e.path().join("csa.cmd").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let mut replayed = vec![$($case.to_string()),*];
            replayed.sort();
            assert_eq!(on_disk, replayed);
        }
    };
}

cases! {
    a_success_result => "a",
    a_bare_without_model_provider => "a-bare",
    a_live_result_written_while_waiting => "a-live",
    aj_json => "aj",
    av_verbose_with_empty_output => "av",
    b_failure_result => "b",
    d_failure_packet_fresh => "d",
    d_failure_packet_aged => "d-aged",
    d_live_packet_then_exit => "d-live",
    f_exit_zero_packet_no_output_fresh => "f",
    f_exit_zero_packet_no_output_aged => "f-aged",
    h_exit_zero_packet_with_output_fresh => "h",
    h_exit_zero_packet_with_output_aged => "h-aged",
    hv_verbose_packet_with_output => "hv",
    i_nothing_written_fresh => "i",
    i_nothing_written_aged => "i-aged",
    j_alive_at_the_cap => "j",
    j_bad_model_provider => "j-bad",
    n_legacy_complete_143 => "n",
}

/// A `csa` symlink to verdict first on `PATH`, and a stand-in for the real
/// csa in a later directory: `(dir of the symlink, dir of the stand-in)`.
fn csa_on_path(h: &Harness) -> (PathBuf, PathBuf) {
    let first = h.tmp.path().join("first");
    let later = h.tmp.path().join("later");
    for dir in [&first, &later] {
        std::fs::create_dir_all(dir).expect("bin dir");
    }
    std::os::unix::fs::symlink(verdict_e2e::bin("verdict"), first.join("csa")).expect("symlink");
    (first, later)
}

fn path_of(dirs: &[&Path]) -> std::ffi::OsString {
    std::env::join_paths(
        dirs.iter()
            .copied()
            .chain([Path::new("/usr/bin"), Path::new("/bin")]),
    )
    .expect("PATH")
}

#[test]
fn other_csa_commands_run_the_real_csa_untouched() {
    use std::io::Write;
    let h = Harness::without_daemon();
    let (first, later) = csa_on_path(&h);
    let record = h.tmp.path().join("record");
    let stand_in = later.join("csa");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{0}'\ncat >> '{0}'\nexit 7\n",
            record.display()
        ),
    )
    .expect("stand-in csa");
    std::fs::set_permissions(
        &stand_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mut child = Command::new(first.join("csa"))
        .args(["review", "--diff", "a b", "--", "-x"])
        .env("PATH", path_of(&[&first, &later]))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn csa");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"from stdin\n")
        .expect("write stdin");
    let run = Run::from(finish(&mut child));
    assert_eq!(run.code, 7, "the real csa's exit code: {run:?}");
    assert_eq!(
        read(&record),
        "review\n--diff\na b\n--\n-x\nfrom stdin\n",
        "arguments and stdin, untouched"
    );
    // Without a real csa: said, and 127 (command not found).
    let run = Run::from(verdict_e2e::output_within({
        let mut command = Command::new(first.join("csa"));
        command.arg("review").env("PATH", path_of(&[&first]));
        command
    }));
    assert_eq!(run.code, 127, "{run:?}");
    assert!(run.stderr.contains("no other csa on PATH"), "{run:?}");
}

#[test]
fn verdict_csa_session_wait_answers_as_csa() {
    let replay = Replay::new("a");
    let cmd = read(&corpus().join("a/csa.cmd"));
    let mut command = Command::new(verdict_e2e::bin("verdict"));
    replay.h.isolate(&mut command);
    command
        .arg("csa")
        .args(cmd.split_whitespace().skip(1))
        .env("VERDICT_CSA", "1142")
        .env("VERDICT_SOCKET", &replay.h.socket)
        .current_dir(&replay.project);
    let run = Run::from(verdict_e2e::output_within(command));
    replay.check(&run);
}

#[test]
fn verbose_shows_the_last_mebibyte_of_a_long_log_and_says_so() {
    let replay = Replay::new("hv");
    let log: String = (0..60_000)
        .map(|i| format!("line {i:06} of the answer\n"))
        .collect();
    assert!(log.len() > 1024 * 1024);
    std::fs::write(replay.dir.join("stdout.log"), &log).expect("long log");
    let mut child = replay.spawn();
    let run = Run::from(finish(&mut child));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.len() <= 1024 * 1024,
        "{} bytes",
        run.stdout.len()
    );
    assert!(run.stdout.starts_with("line "), "cut at a line start");
    assert!(log.ends_with(&run.stdout), "the end of the log");
    assert!(
        run.stderr.lines().next().is_some_and(
            |l| l == "[csa] stdout.log exceeded 1048576 bytes; showing bounded tail output"
        ),
        "{}",
        run.stderr
    );
}
