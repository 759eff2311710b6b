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
use verdict_client::{Cap, Client, Exit, Mode, Options};

use crate::out::{err_line, out_line};
use crate::wait::socket_path;

fn main() -> ExitCode {
    let exit = match Cli::parse().command {
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
                    Exit::Usage
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
    exit.into()
}

/// The wait's settings, every session as it is sent (paths absolute).
fn wait_args(
    sessions: &[String],
    cap: Option<Duration>,
    json: bool,
    socket: Option<PathBuf>,
    no_spawn: bool,
    no_daemon: bool,
    mode: Mode,
) -> Result<wait::WaitArgs, String> {
    let cap = match cap {
        None => Cap::Default,
        Some(Duration::ZERO) => Cap::Unlimited,
        Some(cap) => Cap::After(cap),
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

/// Says what went wrong on stderr; returns the exit code that stands for it.
fn fail(err: verdict_client::Error) -> Exit {
    err_line(&format!("verdict: {err}"));
    err.exit()
}

fn status(json: bool, socket: PathBuf) -> Exit {
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
        return Exit::Success;
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
    Exit::Success
}
