//! `verdict`: the client. `verdict wait` blocks until a session's verdict
//! arrives from `verdictd` and exits with its code; `verdict status` shows
//! the daemon's counters. Small on purpose: no runtime, no config file.

mod cli;
mod csa;
mod events;
mod out;
mod run;
mod service;
mod stop;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::cli::{Cli, Command, ServiceAction, WaitCmd};
use verdict_client::csa1142::{CsaConfig, Profile};
use verdict_client::markers::Caller;
use verdict_client::{Cap, Client, Exit, Mode, Options};

use crate::out::{err_line, out_line};
use crate::wait::socket_path;

fn main() -> ExitCode {
    if csa::invoked_as_csa() {
        return csa::run(std::env::args_os().skip(1).collect()).into();
    }
    let exit = match Cli::parse().command {
        Command::Run(cmd) => return run::run(cmd),
        Command::Top { args } => return run::top(args),
        Command::Supervise { dir, id, command } => {
            return ExitCode::from(verdict_client::launch::supervise(&dir, &id, &command) as u8)
        }
        Command::Wait(cmd) => wait(cmd, Caller::Verdict),
        Command::Csa { args } => csa::run(args),
        Command::Events {
            root,
            json,
            socket,
            no_spawn,
            jobs,
            timeout,
            on_start,
            exec,
        } => {
            let exec = (!exec.is_empty()).then(|| events::Hooks {
                exec: events::exec::Exec::start(exec, usize::from(jobs), timeout),
                on_start,
            });
            fail(events::run(
                &socket_path(socket),
                &root,
                json,
                no_spawn,
                exec,
            ))
        }
        Command::Status { json, socket } => status(json, socket_path(socket)),
        Command::Stop {
            socket,
            and_clients,
        } => stop::stop(&socket_path(socket), and_clients),
        Command::Service {
            action: ServiceAction::Install { print },
        } => service::install(print),
    };
    exit.into()
}

/// Runs `verdict wait` (or csa's wait, when `caller` is csa).
pub fn wait(cmd: WaitCmd, caller: Caller) -> Exit {
    match wait_args(cmd, caller) {
        Ok(Ok(args)) => wait::run(args),
        Ok(Err(lines)) => {
            // csa's own refusal (no usable --model-provider): its lines, exit 1.
            lines.iter().for_each(|line| err_line(line));
            Exit::Failure
        }
        Err(message) => {
            err_line(&format!("verdict: {message}"));
            Exit::Usage
        }
    }
}

/// The wait's settings, every session as it is sent (paths absolute); or
/// csa 1142's refusal to wait (its lines).
fn wait_args(cmd: WaitCmd, caller: Caller) -> Result<Result<wait::WaitArgs, Vec<String>>, String> {
    let profile = Profile::choose(cmd.csa.as_deref())?;
    let cwd = match &cmd.cd {
        Some(dir) => Some(
            std::fs::canonicalize(dir)
                .map_err(|err| format!("cannot use --cd {}: {err}", dir.display()))?,
        ),
        None => std::env::current_dir().and_then(std::fs::canonicalize).ok(),
    };
    let cwd = cwd.map(|dir| dir.to_string_lossy().into_owned());
    let mut cap = match cmd.cap {
        None => Cap::Default,
        Some(Duration::ZERO) => Cap::Unlimited,
        Some(cap) => Cap::After(cap),
    };
    let presenter = match profile {
        Profile::Csa1445 => {
            if caller == Caller::Csa && cmd.cap.is_none() {
                // csa 1445 waits `[kv_cache] long_poll_seconds` of its config.
                if let Some(secs) = CsaConfig::load().long_poll_seconds {
                    cap = Cap::After(Duration::from_secs(secs));
                }
            }
            wait::Presenter::Csa1445 { caller }
        }
        Profile::Csa1142 => {
            let provider = cmd.model_provider.clone();
            let cap_secs = match CsaConfig::load().cap(provider.as_deref()) {
                Ok(secs) => secs,
                Err(lines) => return Ok(Err(lines)),
            };
            cap = Cap::After(Duration::from_secs(cap_secs));
            wait::Presenter::Csa1142 {
                provider: provider.unwrap_or_default(),
                cap_secs,
                verbose: cmd.verbose || std::env::var("CSA_WAIT_VERBOSE").is_ok_and(|v| v == "1"),
                caller,
                cd: cwd.clone().unwrap_or_default(),
            }
        }
    };
    let sessions = cmd
        .sessions
        .iter()
        .chain(cmd.session.as_ref())
        .map(|s| verdict_client::session_arg(s))
        .collect::<Result<Vec<_>, _>>()?;
    let options = Options {
        socket: socket_path(cmd.socket),
        spawn: !cmd.no_spawn,
        fallback: true,
        no_daemon: cmd.no_daemon,
        cwd,
    };
    Ok(Ok(wait::WaitArgs {
        sessions,
        mode: if cmd.any { Mode::Any } else { Mode::All },
        cap,
        json: cmd.json,
        options,
        presenter,
    }))
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
