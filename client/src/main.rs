//! `verdict`: the client. `verdict wait` blocks until a session's verdict
//! arrives from `verdictd` and exits with its code; `verdict status` shows
//! the daemon's counters. Small on purpose: no runtime, no config file.

mod cli;
mod events;
mod out;
mod service;
mod stop;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command, ServiceAction};
use verdict_client::{Cap, Client, Mode, Options};

use crate::out::{err_line, out_line};
use crate::wait::socket_path;

pub use verdict_client::{EXIT_BAD_USE, EXIT_UNREACHABLE};

fn main() -> ExitCode {
    let code = match Cli::parse().command {
        Command::Wait {
            sessions,
            all: _,
            any,
            cap,
            json,
            socket,
            no_spawn,
            no_daemon,
        } => {
            let mode = if any { Mode::Any } else { Mode::All };
            match wait_args(&sessions, cap, json, socket, no_spawn, no_daemon, mode) {
                Ok(args) => wait::run(args),
                Err(message) => {
                    err_line(&format!("verdict: {message}"));
                    EXIT_BAD_USE
                }
            }
        }
        Command::Events {
            root,
            json,
            socket,
            no_spawn,
        } => fail(events::run(&socket_path(socket), &root, json, no_spawn)),
        Command::Status { json, socket } => status(json, socket_path(socket)),
        Command::Stop { socket } => stop::stop(&socket_path(socket)),
        Command::Service {
            action: ServiceAction::Install { print },
        } => service::install(print),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The wait's settings, every session as it is sent (paths absolute).
fn wait_args(
    sessions: &[String],
    cap: Option<String>,
    json: bool,
    socket: Option<PathBuf>,
    no_spawn: bool,
    no_daemon: bool,
    mode: Mode,
) -> Result<wait::WaitArgs, String> {
    let cap = match cap.as_deref().map(parse_cap).transpose()? {
        None => Cap::Default,
        Some(0) => Cap::Unlimited,
        Some(ms) => Cap::After(Duration::from_millis(ms)),
    };
    let sessions = sessions
        .iter()
        .map(|s| verdict_client::session_arg(s))
        .collect::<Result<Vec<_>, _>>()?;
    let options = Options {
        socket: socket_path(socket),
        spawn: !no_spawn,
        fallback: true,
        no_daemon,
        ..Options::default()
    };
    Ok(wait::WaitArgs {
        sessions,
        mode,
        cap,
        json,
        options,
    })
}

/// `--cap SECONDS` in milliseconds. 0 is "no cap"; any positive cap stays
/// positive (at least 1 ms), so a tiny cap never turns into no cap.
fn parse_cap(text: &str) -> Result<u64, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("--cap {text:?} is not a number of seconds (use 0 for no cap)"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "--cap {text} must be a finite number of seconds >= 0 (0 waits without a cap)"
        ));
    }
    if secs == 0.0 {
        return Ok(0);
    }
    let ms = (secs * 1000.0).ceil();
    if ms > u64::MAX as f64 {
        return Err(format!(
            "--cap {text} is too large; use 0 to wait without a cap"
        ));
    }
    Ok((ms as u64).max(1))
}

/// Says what went wrong on stderr; returns the exit code that stands for it.
fn fail(err: verdict_client::Error) -> i32 {
    err_line(&format!("verdict: {err}"));
    err.exit_code()
}

fn status(json: bool, socket: PathBuf) -> i32 {
    let options = Options {
        socket: socket.clone(),
        spawn: false,
        fallback: false,
        ..Options::default()
    };
    let status = match Client::connect(options).and_then(|mut client| client.status()) {
        Ok(status) => status,
        Err(err) => return fail(err),
    };
    if json {
        out_line(&status.line);
        return 0;
    }
    let counters = status.counters;
    out_line(&format!(
        "verdictd {} (pid {}) at {}",
        counters.version,
        counters.pid,
        socket.display()
    ));
    out_line(&format!(
        "  uptime         {:.1}s",
        counters.uptime_ms as f64 / 1000.0
    ));
    out_line(&format!(
        "  sessions       {} ({} by inotify, {} polled)",
        counters.sessions, counters.watches, counters.polled
    ));
    out_line(&format!("  waiters        {}", counters.waiters));
    out_line(&format!("  connections    {}", counters.connections));
    out_line(&format!("  verdicts sent  {}", counters.verdicts_sent));
    out_line(&format!(
        "  overflows      {} (rescans {})",
        counters.queue_overflows, counters.rescans
    ));
    out_line(&format!("  subscribers    {}", counters.subscribers));
    for watched in &counters.watched {
        out_line(&format!(
            "  waiting on     {} ({} waiter{}) {}",
            watched.session,
            watched.waiters,
            if watched.waiters == 1 { "" } else { "s" },
            watched.dir
        ));
    }
    if counters.watched_omitted > 0 {
        out_line(&format!(
            "  waiting on     {} more sessions (not listed)",
            counters.watched_omitted
        ));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::parse_cap;

    #[test]
    fn caps_stay_positive_and_bad_ones_are_refused() {
        assert_eq!(parse_cap("0"), Ok(0));
        assert_eq!(parse_cap("0.0004"), Ok(1));
        assert_eq!(parse_cap("1.5"), Ok(1500));
        assert_eq!(parse_cap("240"), Ok(240_000));
        for bad in ["-1", "NaN", "inf", "-0.5", "abc", "1e300"] {
            assert!(parse_cap(bad).is_err(), "{bad}");
        }
    }
}
