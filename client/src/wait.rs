//! `verdict wait S…`: wait through [`verdict_client`] and print what csa's
//! `session wait` prints, then return the exit code.
//!
//! One session prints its output and markers; several print each
//! completed session as one would, under a `==> SESSION <==` header on
//! stdout, as they end. Sessions still running when the cap fires get
//! csa's KV-warm lines at the end, with one re-wait command naming just
//! them. `--all` (the default) ends when every session has an answer;
//! `--any` at the first completed one, cancelling the rest. A refused
//! session (unknown, ambiguous) is reported and the others are still
//! waited for. Reconnection, the deadline and degraded mode are the
//! library's.

use std::io::IsTerminal;
use std::time::Duration;

use verdict_client::markers::Caller;
use verdict_client::wire::WireOutcome;
use verdict_client::{csa1142, markers, Cap, Client, Exit, Mode, Options, Update, Verdict};

use crate::out::{err_line, err_text, out_line, out_text, Stdout};

/// How often the TTY status line is redrawn.
const TICK: Duration = Duration::from_secs(1);

/// What the user asked for.
#[derive(Debug)]
pub struct WaitArgs {
    /// The sessions as given on the command line (paths made absolute).
    pub sessions: Vec<String>,
    /// When several sessions end the call.
    pub mode: Mode,
    /// The cap.
    pub cap: Cap,
    /// Print the verdict objects on stdout instead of the sessions' output.
    pub json: bool,
    /// How to reach the daemon.
    pub options: Options,
    /// Which csa's output to print.
    pub presenter: Presenter,
}

/// Which csa's `session wait` the output is that of.
#[derive(Debug)]
pub enum Presenter {
    /// csa PR #1445: the session's output and the marker on stdout.
    Csa1445 {
        /// Whose command the hints name.
        caller: Caller,
    },
    /// csa 0.1.1142: a compact summary on stdout, markers on stderr.
    Csa1142 {
        /// `--model-provider`.
        provider: String,
        /// The cap its TTL gives.
        cap_secs: u64,
        /// `--verbose`: stdout.log instead of the summary.
        verbose: bool,
        /// Whose command the hints name.
        caller: Caller,
        /// The project (`--cd` in the re-wait command).
        cd: String,
    },
}

impl Presenter {
    /// Prints a completed session's answer (`many`: one of several named
    /// in the call, whose hint comes once, at the end).
    fn completed(&self, verdict: &Verdict, json: bool, many: bool) {
        let (verbose, caller) = match self {
            Presenter::Csa1142 { verbose, .. } => (*verbose, None),
            Presenter::Csa1445 { caller } => (false, Some(*caller)),
        };
        if let Some(caller) = caller {
            let hint = (!many).then(|| markers::next_session_hint(caller));
            let mut err = std::io::stderr();
            verdict.print_completed_with(&mut Stdout, &mut err, json, hint.as_deref());
            return;
        };
        let marker = markers::completed(&verdict.event);
        if json {
            out_line(&csa1142::json(verdict));
        } else if verbose {
            // csa 1142 shows at most the log's last MiB, and says so.
            let printed = match verdict.output_tail(csa1142::MAX_OUTPUT_BYTES) {
                Some(tail) if tail.truncated => {
                    err_line(&csa1142::output_cut_note());
                    out_text(&tail.tail);
                    !tail.tail.is_empty()
                }
                _ => verdict.print_output(&mut Stdout, &mut std::io::stderr()),
            };
            // The marker goes to stdout too when the log printed nothing.
            if !printed {
                out_line(&marker);
            }
        } else {
            out_line(&csa1142::summary(verdict));
        }
        err_line(&marker);
        err_line(csa1142::NEXT_SESSION_HINT);
    }

    /// Prints the lines for the sessions the cap caught.
    fn at_cap(&self, sessions: &[String], caught: &[(usize, Verdict)], cap: &str, elapsed: u64) {
        let (provider, cap_secs, caller, cd) = match self {
            Presenter::Csa1445 { caller } => {
                return print_at_cap(sessions, caught, cap, elapsed, *caller)
            }
            Presenter::Csa1142 {
                provider,
                cap_secs,
                caller,
                cd,
                ..
            } => (provider, cap_secs, *caller, cd),
        };
        let command = match caller {
            Caller::Verdict => "verdict wait --csa 1142",
            Caller::Csa => "csa session wait",
        };
        for (index, verdict) in caught {
            if verdict.is_running() {
                let rewait = format!(
                    "{command} --session {} --model-provider {provider} --cd {}",
                    verdict.session(),
                    csa1142::shell_quote(cd)
                );
                for line in csa1142::kv_warm(verdict, *cap_secs, provider, &rewait) {
                    err_line(&line);
                }
            } else {
                print_at_cap(sessions, &[(*index, verdict.clone())], cap, elapsed, caller);
            }
        }
    }
}

/// Runs the wait and returns the process exit code.
pub fn run(args: WaitArgs) -> Exit {
    let max = verdict_client::wire::MAX_WAITS_PER_CONNECTION;
    if args.sessions.len() > max {
        return crate::fail(verdict_client::Error::Usage(format!(
            "{} sessions named; one call waits on at most {max} (split them over several calls)",
            args.sessions.len()
        )));
    }
    let mut client = match Client::connect(args.options) {
        Ok(client) => client,
        Err(err) => return crate::fail(err),
    };
    let many = args.sessions.len() > 1;
    let mut status_line = StatusLine::new(args.sessions.len());
    let mut waits = client.wait_many(&args.sessions, args.mode, args.cap);
    if status_line.enabled {
        waits.tick_every(TICK);
    }
    let mut at_cap: Vec<(usize, Verdict)> = Vec::new();
    let mut completed_any = false;
    while let Some(update) = waits.next() {
        let update = match update {
            Ok(update) => update,
            Err(err) => {
                status_line.clear();
                return crate::fail(err);
            }
        };
        match update {
            Update::Watching { session, pid, .. } => {
                status_line.watching(&session, pid);
                status_line.tick(waits.elapsed());
            }
            Update::Tick => status_line.tick(waits.elapsed()),
            Update::Degraded { why } => {
                status_line.clear();
                if let Some(why) = why {
                    err_line(&format!(
                        "verdict: {why}; waiting without it (degraded mode)"
                    ));
                }
                status_line.degraded = true;
                status_line.tick(waits.elapsed());
            }
            Update::Verdict { index, verdict } => {
                status_line.clear();
                status_line.answered += 1;
                let csa1445 = matches!(args.presenter, Presenter::Csa1445 { .. });
                if args.json && csa1445 {
                    out_line(verdict.json());
                }
                if verdict.is_completed() {
                    if many && !args.json {
                        out_line(&format!("==> {} <==", verdict.session()));
                    }
                    args.presenter.completed(&verdict, args.json, many);
                    completed_any = true;
                } else {
                    at_cap.push((index, verdict));
                }
            }
            Update::Refused { index, refusal } => {
                status_line.clear();
                status_line.answered += 1;
                if args.json {
                    out_line(&refusal.line);
                }
                if many {
                    err_line(&format!(
                        "verdict: {}: {}",
                        args.sessions[index], refusal.message
                    ));
                } else {
                    err_line(&format!("verdict: {}", refusal.message));
                }
            }
        }
    }
    status_line.clear();
    let cap = markers::seconds(waits.cap_ms().unwrap_or(0));
    if let (true, true, Presenter::Csa1445 { caller }) = (many, completed_any, &args.presenter) {
        err_line(&markers::next_session_hint_batched(*caller));
    }
    let elapsed = waits.elapsed().as_secs();
    args.presenter
        .at_cap(&args.sessions, &at_cap, &cap, elapsed);
    waits.exit()
}

/// The KV-warm and timeout lines, with one re-wait command that names
/// the sessions still running: the full id when the user gave an id or a
/// prefix, else the path.
fn print_at_cap(
    sessions: &[String],
    caught: &[(usize, Verdict)],
    cap: &str,
    elapsed: u64,
    caller: Caller,
) {
    let rewait_name = |index: usize, verdict: &Verdict| {
        if sessions[index].starts_with('/') {
            sessions[index].clone()
        } else {
            verdict.session().to_string()
        }
    };
    let alive: Vec<String> = caught
        .iter()
        .filter(|(_, v)| v.is_running())
        .map(|(i, v)| rewait_name(*i, v))
        .collect();
    let mut hint = None;
    for (index, verdict) in caught {
        if verdict.event.outcome == WireOutcome::KvWarm {
            let [sentence, marker, retry] = markers::kv_warm(
                verdict.session(),
                cap,
                elapsed,
                &alive.join(" "),
                sessions.len() > 1,
                caller,
            );
            err_line(&sentence);
            err_line(&marker);
            hint = Some(retry);
        } else {
            let rewait = rewait_name(*index, verdict);
            for line in markers::timeout(verdict.session(), cap, elapsed, &rewait, caller) {
                err_line(&line);
            }
        }
    }
    if let Some(hint) = hint {
        err_line(&hint);
    }
}

/// The one-line live status on a terminal; silent when stderr is not one.
struct StatusLine {
    enabled: bool,
    sessions: usize,
    answered: usize,
    session: String,
    pid: Option<i32>,
    degraded: bool,
}

impl StatusLine {
    fn new(sessions: usize) -> StatusLine {
        StatusLine {
            enabled: std::io::stderr().is_terminal(),
            sessions,
            answered: 0,
            session: String::new(),
            pid: None,
            degraded: false,
        }
    }

    fn watching(&mut self, session: &str, pid: Option<i32>) {
        self.session = session.into();
        self.pid = pid;
    }

    fn tick(&self, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let what = if self.sessions > 1 {
            format!(
                "{} of {} sessions",
                self.sessions - self.answered,
                self.sessions
            )
        } else {
            let process = match self.pid {
                Some(pid) if verdict_client::daemon::process_runs(pid) => {
                    format!(" · pid {pid} alive")
                }
                Some(pid) => format!(" · pid {pid} gone"),
                None if self.session.is_empty() => String::new(),
                None => " · no daemon.pid yet".into(),
            };
            let session = if self.session.is_empty() {
                "the session"
            } else {
                &self.session
            };
            format!("{session}{process}")
        };
        let alone = if self.degraded {
            " · without verdictd (degraded mode)"
        } else {
            ""
        };
        err_text(&format!(
            "\r\x1b[2Kverdict: waiting for {what} · {}s{alone}",
            elapsed.as_secs()
        ));
    }

    fn clear(&self) {
        if self.enabled {
            err_text("\r\x1b[2K");
        }
    }
}

/// The socket the user named, or the default one.
pub use verdict_client::daemon::socket_path;
