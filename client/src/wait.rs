//! `verdict wait`: send one `wait`, block until its verdict, print what
//! csa's `session wait` prints, and return the exit code. If the daemon
//! goes away mid-wait, reconnect (starting it again if allowed) and wait
//! again with the cap time that is left; the verdict is computed from the
//! session's files, so a restart never changes it. A daemon that stops
//! answering cannot hold the caller past the cap plus [`ANSWER_MARGIN`].

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use verdict_proto::codec::{CodecError, ReplyReader};
use verdict_proto::wire::{ErrorCode, Event, Reply, Request, VerdictEvent, WireOutcome};

use crate::out::{copy_to_stdout, err_line, err_text, out_line};
use crate::{connect, EXIT_BAD_USE, EXIT_UNREACHABLE};
use verdict_client::markers;

/// Reconnections in a row that never reached `watching` before giving up.
pub const MAX_FAILED_RECONNECTS: u32 = 5;
/// How long past the cap a connected daemon may take to answer before the
/// client gives up on it (exit 3).
pub const ANSWER_MARGIN: Duration = Duration::from_secs(5);
/// The daemon's default cap, assumed until it says otherwise.
pub const DEFAULT_CAP: Duration = Duration::from_millis(verdict_proto::wire::DEFAULT_CAP_MS);
/// How often the TTY status line is redrawn.
const TICK: Duration = Duration::from_secs(1);

/// What the user asked for.
#[derive(Debug)]
pub struct WaitArgs {
    /// The session as given on the command line (paths made absolute).
    pub session: String,
    /// Cap in milliseconds; `None` for the daemon's default, 0 for none.
    pub cap_ms: Option<u64>,
    /// Print the verdict object on stdout instead of the session's output.
    pub json: bool,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// Do not start the daemon.
    pub no_spawn: bool,
    /// The caller's working directory: ids are looked up in its project first.
    pub cwd: Option<String>,
    /// Wait without verdictd (degraded mode) from the start.
    pub no_daemon: bool,
}

/// What one connection ended with.
enum Attempt {
    Done(i32),
    /// The connection ended before a verdict; `watched` says whether the
    /// daemon had accepted the wait.
    Lost {
        watched: bool,
        why: String,
    },
}

/// State that lives across reconnections.
struct Wait<'a> {
    args: &'a WaitArgs,
    started: Instant,
    /// The cap in force, once known (0: none).
    cap_ms: Option<u64>,
    /// The session directory, from `watching`.
    dir: Option<PathBuf>,
    status_line: StatusLine,
}

/// Runs the wait and returns the process exit code.
pub fn run(args: &WaitArgs) -> i32 {
    let mut wait = Wait {
        args,
        started: Instant::now(),
        cap_ms: args.cap_ms,
        dir: None,
        status_line: StatusLine::new(),
    };
    if args.no_daemon {
        return wait.degraded(None);
    }
    let mut failures = 0;
    loop {
        let stream = match connect::connect(&args.socket, !args.no_spawn) {
            // Nothing listens and no daemon could be started: wait alone.
            Err(message) if !args.no_spawn => return wait.degraded(Some(&message)),
            Err(message) => return wait.fail(&message, EXIT_UNREACHABLE),
            Ok(stream) => stream,
        };
        match wait.attempt(&stream) {
            Attempt::Done(code) => return code,
            Attempt::Lost { watched, why } => {
                failures = if watched { 1 } else { failures + 1 };
                if wait.past_deadline() {
                    let message = format!(
                        "verdictd at {} did not answer within {}s of the cap ({why}); giving up",
                        args.socket.display(),
                        ANSWER_MARGIN.as_secs()
                    );
                    return wait.fail(&message, EXIT_UNREACHABLE);
                }
                if failures > MAX_FAILED_RECONNECTS {
                    let message = format!(
                        "lost the connection to verdictd at {} ({why}); giving up",
                        args.socket.display()
                    );
                    return wait.fail(&message, EXIT_UNREACHABLE);
                }
            }
        }
    }
}

impl Wait<'_> {
    /// Waits without a daemon (`why` it is unavailable, if it is), for what
    /// is left of the cap, and prints what the daemon path prints.
    fn degraded(&mut self, why: Option<&str>) -> i32 {
        use verdict_client::degraded::{self, Error, Timing};
        use verdict_proto::resolve::{resolve, Index, Root};
        let roots: Vec<Root> = verdict_proto::paths::default_session_roots()
            .into_iter()
            .map(|path| Root { path, poll: false })
            .collect();
        let cwd = self.args.cwd.as_deref();
        let resolved = match resolve(&self.args.session, cwd, &roots, &mut Index::default()) {
            Ok(resolved) => resolved,
            Err((code, message)) => {
                let message = match why {
                    Some(why) => format!("{why}; and without it: {message}"),
                    None => message,
                };
                return self.fail(&message, error_exit(code));
            }
        };
        if let Some(why) = why {
            err_line(&format!(
                "verdict: {why}; waiting without it (degraded mode)"
            ));
        }
        if self.status_line.enabled {
            // Blocked in the wait below: one line, not a ticking one.
            let id = resolved
                .dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            err_text(&format!(
                "\r\x1b[2Kverdict: waiting for {id} without verdictd (degraded mode)"
            ));
        }
        let cap = self
            .remaining_cap()
            .unwrap_or(verdict_proto::wire::DEFAULT_CAP_MS);
        self.cap_ms
            .get_or_insert(verdict_proto::wire::DEFAULT_CAP_MS);
        let cap = (cap > 0).then(|| Duration::from_millis(cap));
        self.dir = Some(resolved.dir.clone());
        match degraded::wait(&resolved.dir, cap, Timing::default()) {
            Ok(verdict) => {
                self.status_line.clear();
                if self.args.json {
                    let reply = Reply::new(1.into(), Event::Verdict(verdict.clone()));
                    let mut line = verdict_proto::codec::encode_line(&reply);
                    line.pop();
                    out_line(&self.with_client_elapsed(&line));
                }
                self.print(&verdict);
                verdict.exit
            }
            Err(Error::NoSession(dir)) => {
                let message = format!(
                    "session directory {} was removed while waiting",
                    dir.display()
                );
                self.fail(&message, 1)
            }
            Err(err) => self.fail(&err.to_string(), EXIT_UNREACHABLE),
        }
    }

    /// When the client stops waiting for a daemon that does not answer:
    /// the cap plus a margin (none without a cap).
    fn deadline(&self) -> Option<Instant> {
        deadline(self.started, self.cap_ms)
    }

    fn past_deadline(&self) -> bool {
        self.deadline().is_some_and(|at| Instant::now() >= at)
    }

    fn fail(&self, message: &str, code: i32) -> i32 {
        self.status_line.clear();
        err_line(&format!("verdict: {message}"));
        code
    }

    /// What is left of the cap, for a (re)connection (0 stays "no cap").
    fn remaining_cap(&self) -> Option<u64> {
        remaining_cap(self.started, self.cap_ms)
    }

    fn attempt(&mut self, stream: &std::os::unix::net::UnixStream) -> Attempt {
        let request = Request::Wait {
            session: self.args.session.clone(),
            cap_ms: self.remaining_cap(),
            cwd: self.args.cwd.clone(),
        };
        let line = verdict_proto::codec::encode_line(&request.to_json(&1.into()));
        if let Err(err) = (&*stream).write_all(&line) {
            return Attempt::Lost {
                watched: false,
                why: err.to_string(),
            };
        }
        let mut reader = ReplyReader::new(stream);
        let mut watched = false;
        loop {
            let timeout = self.read_timeout();
            let _ = stream.set_read_timeout(Some(timeout));
            let (reply, raw) = match reader.read_reply() {
                Ok(Some(pair)) => pair,
                Ok(None) => {
                    return Attempt::Lost {
                        watched,
                        why: "the daemon closed the connection".into(),
                    }
                }
                Err(CodecError::Io(err))
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.past_deadline() {
                        return Attempt::Lost {
                            watched,
                            why: "no answer".into(),
                        };
                    }
                    self.status_line.tick(self.started);
                    continue;
                }
                Err(CodecError::Io(err)) => {
                    return Attempt::Lost {
                        watched,
                        why: err.to_string(),
                    }
                }
                Err(err) => {
                    let message = format!("protocol error: {err}");
                    return Attempt::Done(self.fail(&message, EXIT_UNREACHABLE));
                }
            };
            match reply.event {
                Event::Watching(watching) => {
                    watched = true;
                    // Remember the cap in force so a reconnect asks for the rest.
                    self.cap_ms.get_or_insert(watching.cap_ms);
                    self.dir = Some(PathBuf::from(&watching.dir));
                    self.status_line.watching(&watching.session, watching.pid);
                    self.status_line.tick(self.started);
                }
                Event::Verdict(verdict) => {
                    self.status_line.clear();
                    if self.args.json {
                        out_line(&self.with_client_elapsed(&raw));
                    }
                    self.print(&verdict);
                    return Attempt::Done(verdict.exit);
                }
                Event::Error { code, message } => {
                    self.status_line.clear();
                    if self.args.json {
                        out_line(&String::from_utf8_lossy(&raw));
                    }
                    err_line(&format!("verdict: {message}"));
                    return Attempt::Done(error_exit(code));
                }
                // Replies to requests we never sent: ignore.
                _ => {}
            }
        }
    }

    fn with_client_elapsed(&self, raw: &[u8]) -> String {
        with_elapsed(raw, self.started)
    }

    /// Wake up for the status line, and in time for the deadline.
    fn read_timeout(&self) -> Duration {
        let until_deadline = self
            .deadline()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::MAX);
        let tick = if self.status_line.enabled {
            TICK
        } else {
            Duration::MAX
        };
        // A zero timeout means "block forever" to the socket: never pass it.
        until_deadline
            .min(tick)
            .min(Duration::from_secs(3600))
            .max(Duration::from_millis(1))
    }

    /// Prints what csa prints for this verdict (stdout: the session's
    /// output and the COMPLETED marker; stderr: sentences, markers, hints).
    fn print(&self, verdict: &VerdictEvent) {
        let elapsed = self.started.elapsed().as_secs();
        let cap = markers::seconds(self.cap_ms.unwrap_or(0));
        // The re-wait command names the session as resolved: the full id
        // when the user gave an id or a prefix, else the path.
        let rewait = if self.args.session.starts_with('/') {
            self.args.session.as_str()
        } else {
            verdict.session.as_str()
        };
        match verdict.outcome {
            WireOutcome::Completed => self.print_completed(verdict),
            WireOutcome::KvWarm => {
                for line in markers::kv_warm(&verdict.session, &cap, elapsed, rewait) {
                    err_line(&line);
                }
            }
            WireOutcome::Timeout => {
                for line in markers::timeout(&verdict.session, &cap, elapsed, rewait) {
                    err_line(&line);
                }
            }
        }
    }

    fn print_completed(&self, verdict: &VerdictEvent) {
        print_completed(verdict, self.dir.as_deref(), self.args.json);
    }
}

/// When a client that started at `started` with cap `cap_ms` (`None`: the
/// daemon's default; 0: none) stops waiting for a daemon that does not
/// answer: the cap plus [`ANSWER_MARGIN`].
pub fn deadline(started: Instant, cap_ms: Option<u64>) -> Option<Instant> {
    let cap = match cap_ms {
        Some(0) => return None,
        Some(ms) => Duration::from_millis(ms),
        None => DEFAULT_CAP,
    };
    Some(started + cap + ANSWER_MARGIN)
}

/// What is left of cap `cap_ms` since `started`, for a (re)connection: 0
/// stays "no cap", and a positive cap stays positive.
pub fn remaining_cap(started: Instant, cap_ms: Option<u64>) -> Option<u64> {
    let elapsed = started.elapsed().as_millis() as u64;
    cap_ms.map(|cap| {
        if cap == 0 {
            0
        } else {
            cap.saturating_sub(elapsed).max(1)
        }
    })
}

/// The exit code for a wait the daemon refused.
pub fn error_exit(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::UnknownSession | ErrorCode::BadRequest => EXIT_BAD_USE,
        ErrorCode::SessionRemoved => 1,
        _ => EXIT_UNREACHABLE,
    }
}

/// The verdict line with `elapsed_ms` counted from the client's start,
/// like the marker's `elapsed=`: a reconnect must not reset it.
pub fn with_elapsed(raw: &[u8], started: Instant) -> String {
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(mut value) => {
            let elapsed = started.elapsed().as_millis() as u64;
            if let Some(fields) = value.as_object_mut() {
                fields.insert("elapsed_ms".into(), elapsed.into());
            }
            value.to_string()
        }
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}

/// What csa prints for a completed session: its output and the marker on
/// stdout (only the marker's stderr copy with `--json`), a failure's
/// summary when there was no output, the hint.
pub fn print_completed(verdict: &VerdictEvent, dir: Option<&Path>, json: bool) {
    let streamed = !json && dir.is_some_and(stream_output);
    if !streamed {
        if let Some(summary) = markers::failure_summary(verdict) {
            err_line(&summary);
        }
    }
    let marker = markers::completed(verdict);
    if !json {
        out_line(&marker);
    }
    err_line(&marker);
    err_line(&markers::next_session_hint());
    if verdict.synthetic == Some(true) && !streamed {
        err_line(&markers::synthesized(&verdict.session));
    }
}

/// Copies the session's `stdout.log` to stdout, as csa does; true when it
/// held at least one byte.
fn stream_output(dir: &Path) -> bool {
    let path = dir.join(verdict_proto::files::STDOUT_FILE);
    // A FIFO or device put in its place must not block or be read.
    if !std::fs::metadata(&path).is_ok_and(|meta| meta.is_file()) {
        return false;
    }
    match std::fs::File::open(&path) {
        Ok(mut file) => copy_to_stdout(&mut file) > 0,
        Err(err) => {
            err_line(&format!("verdict: cannot read {}: {err}", path.display()));
            false
        }
    }
}

/// The one-line live status on a terminal; silent when stderr is not one.
struct StatusLine {
    enabled: bool,
    session: String,
    pid: Option<i32>,
}

impl StatusLine {
    fn new() -> StatusLine {
        StatusLine {
            enabled: std::io::stderr().is_terminal(),
            session: String::new(),
            pid: None,
        }
    }

    fn watching(&mut self, session: &str, pid: Option<i32>) {
        self.session = session.into();
        self.pid = pid;
    }

    fn tick(&self, started: Instant) {
        if !self.enabled {
            return;
        }
        let process = match self.pid {
            Some(pid) if Path::new(&format!("/proc/{pid}")).exists() => {
                format!("pid {pid} alive")
            }
            Some(pid) => format!("pid {pid} gone"),
            None => "no daemon.pid yet".into(),
        };
        err_text(&format!(
            "\r\x1b[2Kverdict: waiting for {} · {}s · {process}",
            self.session,
            started.elapsed().as_secs()
        ));
    }

    fn clear(&self) {
        if self.enabled {
            err_text("\r\x1b[2K");
        }
    }
}
