//! `verdict stop`: end the caller's own daemon on a socket (see
//! [`verdict_client::daemon::stop`]). Unlike `pkill verdictd`, it cannot
//! touch another user's daemon or another socket's. It says who is still
//! connected (they would start it again), and with `--and-clients` stops
//! verdict's own clients first.

use std::path::Path;
use std::time::Duration;

use verdict_client::wire::ConnectedClient;
use verdict_client::{Client, Exit, Options};

use crate::out::{err_line, out_line};

/// How long the daemon may take to finish its round and remove its socket.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Sends SIGTERM to the daemon serving `socket` and waits for it to exit.
pub fn stop(socket: &Path, and_clients: bool) -> Exit {
    let clients = connected(socket);
    let (stopped, left): (Vec<ConnectedClient>, Vec<ConnectedClient>) =
        clients.into_iter().partition(|client| {
            and_clients
                && client.pid.is_some_and(|pid| {
                    verdict_client::daemon::is_verdict_client(pid) && terminate(pid)
                })
        });
    match verdict_client::daemon::stop(socket, STOP_DEADLINE) {
        Ok(None) => {
            out_line(&format!(
                "no verdictd is running for {} (no pid in {})",
                socket.display(),
                verdict_client::daemon::lock_path(socket).display()
            ));
            Exit::Success
        }
        Ok(Some(pid)) => {
            out_line(&format!(
                "stopped verdictd (pid {pid}) on {}",
                socket.display()
            ));
            if !stopped.is_empty() {
                out_line(&format!("stopped its verdict clients: {}", pids(&stopped)));
            }
            if !left.is_empty() {
                let how = if and_clients {
                    "they are not verdict's own programs: stop them yourself"
                } else {
                    "stop them too with `verdict stop --and-clients`"
                };
                out_line(&format!(
                    "{} still connected ({}) will start verdictd again when they reconnect; {how}",
                    count(left.len()),
                    pids(&left)
                ));
            }
            Exit::Success
        }
        Err(err) => {
            err_line(&format!("verdict: {err}"));
            Exit::Unreachable
        }
    }
}

/// The daemon's clients but this one (empty when it does not answer).
fn connected(socket: &Path) -> Vec<ConnectedClient> {
    let options = Options {
        socket: socket.to_path_buf(),
        spawn: false,
        fallback: false,
        ..Options::default()
    };
    let me = std::process::id() as i32;
    Client::connect(options)
        .and_then(|mut client| client.status())
        .map(|status| status.counters.clients)
        .unwrap_or_default()
        .into_iter()
        .filter(|client| client.pid != Some(me))
        .collect()
}

fn terminate(pid: i32) -> bool {
    rustix::process::Pid::from_raw(pid).is_some_and(|pid| {
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
    })
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 client".into()
    } else {
        format!("{n} clients")
    }
}

fn pids(clients: &[ConnectedClient]) -> String {
    let listed: Vec<String> = clients
        .iter()
        .map(|client| match client.pid {
            Some(pid) => format!("pid {pid}, {} waits", client.waits),
            None => format!("{} waits", client.waits),
        })
        .collect();
    listed.join("; ")
}
