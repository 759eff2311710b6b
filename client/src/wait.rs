//! `verdict wait`: send one `wait`, block until its verdict, print the
//! sentence and marker, and return the exit code. If the daemon goes away
//! mid-wait, reconnect (starting it again if allowed) and wait again with
//! the cap time that is left; the verdict is computed from the session's
//! files, so a restart never changes it.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use verdict_proto::codec::{CodecError, ReplyReader};
use verdict_proto::wire::{ErrorCode, Event, Request};

use crate::{connect, markers, EXIT_BAD_USE, EXIT_UNREACHABLE};

/// Reconnections in a row that never reached `watching` before giving up.
const MAX_FAILED_RECONNECTS: u32 = 5;

/// What the user asked for.
#[derive(Debug)]
pub struct WaitArgs {
    /// The session as given on the command line (paths made absolute).
    pub session: String,
    /// Cap in milliseconds; `None` for the daemon's default, 0 for none.
    pub cap_ms: Option<u64>,
    /// Print the verdict object on stdout.
    pub json: bool,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// Do not start the daemon.
    pub no_spawn: bool,
}

enum Attempt {
    Done(i32),
    /// The connection ended before a verdict; `watched` says whether the
    /// daemon had accepted the wait.
    Lost {
        watched: bool,
        why: String,
    },
}

/// Runs the wait and returns the process exit code.
pub fn run(args: &WaitArgs) -> i32 {
    let started = Instant::now();
    let mut cap_ms = args.cap_ms;
    let mut failures = 0;
    let mut status_line = StatusLine::new();
    loop {
        let stream = match connect::connect(&args.socket, !args.no_spawn) {
            Ok(stream) => stream,
            Err(message) => {
                status_line.clear();
                eprintln!("verdict: {message}");
                return EXIT_UNREACHABLE;
            }
        };
        // Ask only for what is left of the cap (0 stays "no cap").
        let elapsed = started.elapsed().as_millis() as u64;
        let remaining = cap_ms.map(|cap| {
            if cap == 0 {
                0
            } else {
                cap.saturating_sub(elapsed).max(1)
            }
        });
        match attempt(
            stream,
            args,
            remaining,
            started,
            &mut cap_ms,
            &mut status_line,
        ) {
            Attempt::Done(code) => return code,
            Attempt::Lost { watched, why } => {
                failures = if watched { 1 } else { failures + 1 };
                if failures > MAX_FAILED_RECONNECTS {
                    status_line.clear();
                    eprintln!(
                        "verdict: lost the connection to verdictd at {} ({why}); giving up",
                        args.socket.display()
                    );
                    return EXIT_UNREACHABLE;
                }
            }
        }
    }
}

fn attempt(
    stream: std::os::unix::net::UnixStream,
    args: &WaitArgs,
    cap_ms: Option<u64>,
    started: Instant,
    learned_cap: &mut Option<u64>,
    status_line: &mut StatusLine,
) -> Attempt {
    let request = Request::Wait {
        session: args.session.clone(),
        cap_ms,
    };
    let line = verdict_proto::codec::encode_line(&request.to_json(&1.into()));
    if let Err(err) = (&stream).write_all(&line) {
        return Attempt::Lost {
            watched: false,
            why: err.to_string(),
        };
    }
    if status_line.enabled {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    }
    let mut reader = ReplyReader::new(&stream);
    let mut watched = false;
    loop {
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
                status_line.tick(started);
                continue;
            }
            Err(CodecError::Io(err)) => {
                return Attempt::Lost {
                    watched,
                    why: err.to_string(),
                }
            }
            Err(err) => {
                status_line.clear();
                eprintln!("verdict: protocol error: {err}");
                return Attempt::Done(EXIT_UNREACHABLE);
            }
        };
        match reply.event {
            Event::Watching(watching) => {
                watched = true;
                // Remember the cap in force so a reconnect asks for the rest.
                learned_cap.get_or_insert(watching.cap_ms);
                status_line.watching(&watching.session, watching.pid);
                status_line.tick(started);
            }
            Event::Verdict(verdict) => {
                status_line.clear();
                if args.json {
                    let mut out = std::io::stdout().lock();
                    let _ = out
                        .write_all(&raw)
                        .and_then(|()| out.write_all(b"\n"))
                        .and_then(|()| out.flush());
                }
                for line in markers::render(&verdict, &args.session, started.elapsed().as_secs()) {
                    eprintln!("{line}");
                }
                return Attempt::Done(verdict.exit);
            }
            Event::Error { code, message } => {
                status_line.clear();
                if args.json {
                    println!("{}", String::from_utf8_lossy(&raw));
                }
                eprintln!("verdict: {message}");
                return Attempt::Done(match code {
                    ErrorCode::UnknownSession | ErrorCode::BadRequest => EXIT_BAD_USE,
                    ErrorCode::SessionRemoved => 1,
                    _ => EXIT_UNREACHABLE,
                });
            }
            // Replies to requests we never sent: ignore.
            _ => {}
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
            Some(pid) if std::path::Path::new(&format!("/proc/{pid}")).exists() => {
                format!("pid {pid} alive")
            }
            Some(pid) => format!("pid {pid} gone"),
            None => "no process known yet".into(),
        };
        eprint!(
            "\r\x1b[2Kverdict: waiting for {} · {}s · {process}",
            self.session,
            started.elapsed().as_secs()
        );
    }

    fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}
