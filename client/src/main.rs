//! `verdict`: the client. `verdict wait` blocks until a session's verdict
//! arrives from `verdictd` and exits with its code; `verdict status` shows
//! the daemon's counters. Small on purpose: no runtime, no config file.

mod connect;
mod markers;
mod service;
mod wait;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use verdict_proto::codec::ReplyReader;
use verdict_proto::wire::{Event, Request};

/// Bad invocation or unknown session.
pub const EXIT_BAD_USE: i32 = 2;
/// Daemon unreachable and cannot be started, or a protocol error.
pub const EXIT_UNREACHABLE: i32 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "verdict",
    version,
    about = "Wait for an agent session's completion verdict from verdictd",
    after_help = "\
Exit codes of `verdict wait`:
  0    completed with status success and exit code 0, or still running at the cap (kv_warm)
  1    completed otherwise (failure, signal, synthetic failure), or the session directory was removed
  2    bad invocation or unknown session
  3    verdictd unreachable and could not be started, or a protocol error
  124  the cap fired with no verdict and no live process

The socket is --socket, else $VERDICT_SOCKET, else $XDG_RUNTIME_DIR/verdictd.sock, \
else /tmp/verdictd-<uid>/verdictd.sock."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Block until SESSION has a verdict; print a sentence and a csa marker line on stderr.
    Wait {
        /// Session directory (absolute or relative path) or session id.
        session: String,
        /// Give up after SECONDS: exit 0 (kv_warm) if the session still runs, 124 if not.
        /// 0 waits without a cap; the default is the daemon's (240 s).
        #[arg(long, value_name = "SECONDS")]
        cap: Option<f64>,
        /// Also print the verdict object as one JSON line on stdout.
        #[arg(long)]
        json: bool,
        /// The daemon's socket.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Do not start verdictd when nothing listens; exit 3 instead.
        #[arg(long)]
        no_spawn: bool,
    },
    /// Install verdictd as a systemd user service (socket-activated).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Show the daemon's counters (sessions, waiters, verdicts sent, ...).
    Status {
        /// Print the status object as one JSON line.
        #[arg(long)]
        json: bool,
        /// The daemon's socket.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ServiceAction {
    /// Write verdictd.socket and verdictd.service into ~/.config/systemd/user/
    /// and enable the socket (or print the systemctl commands to do so).
    Install {
        /// Print the units instead of writing them.
        #[arg(long)]
        print: bool,
    },
}

fn main() -> ExitCode {
    let code = match Cli::parse().command {
        Command::Wait {
            session,
            cap,
            json,
            socket,
            no_spawn,
        } => match wait_args(session, cap, json, socket, no_spawn) {
            Ok(args) => wait::run(&args),
            Err(message) => {
                eprintln!("verdict: {message}");
                EXIT_BAD_USE
            }
        },
        Command::Status { json, socket } => status(json, &socket_path(socket)),
        Command::Service {
            action: ServiceAction::Install { print },
        } => service::install(print),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn socket_path(explicit: Option<PathBuf>) -> PathBuf {
    verdict_proto::paths::socket_path(explicit, rustix::process::getuid().as_raw())
}

fn wait_args(
    session: String,
    cap: Option<f64>,
    json: bool,
    socket: Option<PathBuf>,
    no_spawn: bool,
) -> Result<wait::WaitArgs, String> {
    let cap_ms = match cap {
        Some(secs) if !(secs.is_finite() && secs >= 0.0) => {
            return Err(format!("--cap {secs} is not a number of seconds >= 0"));
        }
        Some(secs) => Some((secs * 1000.0).round() as u64),
        None => None,
    };
    // An id has no slash; anything else is a path, sent absolute.
    let session = if session.contains('/') || session == "." || session == ".." {
        let path = std::path::absolute(&session)
            .map_err(|err| format!("cannot resolve {session}: {err}"))?;
        path.to_string_lossy().into_owned()
    } else {
        session
    };
    if session.is_empty() {
        return Err("the session must not be empty".into());
    }
    Ok(wait::WaitArgs {
        session,
        cap_ms,
        json,
        socket: socket_path(socket),
        no_spawn,
    })
}

fn status(json: bool, socket: &std::path::Path) -> i32 {
    let stream = match connect::connect(socket, false) {
        Ok(stream) => stream,
        Err(message) => {
            eprintln!("verdict: {message}");
            return EXIT_UNREACHABLE;
        }
    };
    let line = verdict_proto::codec::encode_line(&Request::Status.to_json(&1.into()));
    if let Err(err) = (&stream).write_all(&line) {
        eprintln!(
            "verdict: cannot talk to verdictd at {}: {err}",
            socket.display()
        );
        return EXIT_UNREACHABLE;
    }
    match ReplyReader::new(&stream).read_reply() {
        Ok(Some((reply, raw))) => match reply.event {
            Event::Status(counters) => {
                if json {
                    println!("{}", String::from_utf8_lossy(&raw));
                } else {
                    println!(
                        "verdictd {} (pid {}) at {}",
                        counters.version,
                        counters.pid,
                        socket.display()
                    );
                    println!(
                        "  uptime         {:.1}s",
                        counters.uptime_ms as f64 / 1000.0
                    );
                    println!(
                        "  sessions       {} ({} by inotify, {} polled)",
                        counters.sessions, counters.watches, counters.polled
                    );
                    println!("  waiters        {}", counters.waiters);
                    println!("  connections    {}", counters.connections);
                    println!("  verdicts sent  {}", counters.verdicts_sent);
                    println!(
                        "  overflows      {} (rescans {})",
                        counters.queue_overflows, counters.rescans
                    );
                }
                0
            }
            other => {
                eprintln!("verdict: unexpected reply to status: {other:?}");
                EXIT_UNREACHABLE
            }
        },
        Ok(None) => {
            eprintln!(
                "verdict: verdictd at {} closed the connection",
                socket.display()
            );
            EXIT_UNREACHABLE
        }
        Err(err) => {
            eprintln!("verdict: {err}");
            EXIT_UNREACHABLE
        }
    }
}
