//! `verdictd`: the watcher daemon. Parses arguments, loads the config,
//! acquires the socket (from systemd or by binding it under a lock), tells
//! systemd it is ready, and hands over to the event loop in [`server`].
//! Start-up problems are fatal and printed with what to do; everything
//! after start-up is logged and survived.

mod config;
mod conn;
mod registry;
mod server;
mod service;
mod socket;
mod timers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use sd_notify::NotifyState;
use verdict_proto::paths;

use crate::config::Config;

/// Tells waiting agents, the moment it is decided, how their sub-agent
/// sessions ended.
#[derive(Debug, Parser)]
#[command(
    name = "verdictd",
    version,
    about = "Watch agent session directories and push completion verdicts to waiters over a Unix socket",
    long_about = None,
    after_help = "\
The socket is --socket, else $VERDICT_SOCKET, else $XDG_RUNTIME_DIR/verdictd.sock, \
else /tmp/verdictd-<uid>/verdictd.sock. When started by systemd with LISTEN_FDS, the \
inherited socket is used instead.

The config file is TOML with keys default_cap_ms, grace_ms, launch_grace_ms, \
max_connections, max_waits, max_watches and [[root]] tables (path, poll). Session ids are \
looked up under the configured and --root directories and, always, csa's \
$XDG_STATE_HOME/cli-sub-agent and $XDG_STATE_HOME/csa. SIGHUP reloads it; SIGTERM and SIGINT \
shut down cleanly. Logs go to stderr; set the level with RUST_LOG (default info).

You rarely start verdictd by hand: `verdict wait` starts it when nothing listens."
)]
struct Args {
    /// Unix socket to listen on.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Config file [default: $XDG_CONFIG_HOME/verdict/verdictd.toml].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Also look session ids up under DIR (repeatable).
    #[arg(long = "root", value_name = "DIR")]
    roots: Vec<PathBuf>,
    /// Exit after SECONDS with no connections and no waits (for socket
    /// activation: the service manager starts it again on the next client).
    #[arg(long, value_name = "SECONDS")]
    exit_idle_after: Option<u64>,
    /// Started by a client that found nobody listening: losing the start-up
    /// race to another daemon is not an error worth a log line.
    #[arg(long, hide = true)]
    spawned: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let spawned = args.spawned;
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if spawned && err.downcast_ref::<socket::AlreadyServing>().is_some() => {
            log::debug!("{err:#}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("verdictd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let uid = rustix::process::getuid().as_raw();
    raise_fd_limit();
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let roots: Vec<PathBuf> = args.roots.iter().map(|root| cwd.join(root)).collect();
    let config_required = args.config.is_some();
    let config_path = args.config.clone().or_else(paths::config_path);
    let load = move || {
        Config::load(
            config_path.as_deref(),
            config_required,
            &roots,
            paths::default_session_roots(),
        )
    };
    let config = load()?;

    let listening = match socket::activated()? {
        Some(listening) => {
            log::info!("using the socket passed by the service manager");
            listening
        }
        None => {
            let path = paths::socket_path(args.socket.map(|p| cwd.join(p)), uid);
            let listening = socket::bind(&path, uid, Some(&paths::fallback_socket_dir(uid)))?;
            log::info!("listening on {}", path.display());
            listening
        }
    };
    let reload: server::Reloader = Box::new(move || Ok(load()?));
    let idle = args.exit_idle_after.map(Duration::from_secs);
    let mut server = server::Server::new(listening, config, reload, uid, idle)?;
    notify(&[NotifyState::Ready]);
    let result = server.run();
    notify(&[NotifyState::Stopping]);
    result
}

fn notify(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(false, states) {
        log::warn!("cannot notify the service manager: {err}");
    }
}

/// Each waiter is a connection and each connection an fd: take all the
/// fds the hard limit allows.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            log::warn!("cannot raise the open-files limit: {err}");
        }
    }
}
