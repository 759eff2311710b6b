//! `verdictd`: the watcher daemon. Parses arguments, loads the config,
//! acquires the socket (from systemd or by binding it under a lock), tells
//! systemd it is ready, and hands over to the event loop in [`server`].
//! Start-up problems are fatal and printed with what to do; everything
//! after start-up is logged and survived.

mod cli;
mod config;
mod conn;
mod lookup;
mod peer;
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

use crate::cli::Args;
use sd_notify::NotifyState;
use verdict_core::paths;

use crate::config::Config;

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
