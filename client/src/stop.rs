//! `verdict stop`: end the caller's own daemon on a socket (see
//! [`verdict_client::daemon::stop`]). Unlike `pkill verdictd`, it cannot
//! touch another user's daemon or another socket's.

use std::path::Path;
use std::time::Duration;

use verdict_client::Exit;

use crate::out::{err_line, out_line};

/// How long the daemon may take to finish its round and remove its socket.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Sends SIGTERM to the daemon serving `socket` and waits for it to exit.
pub fn stop(socket: &Path) -> Exit {
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
            Exit::Success
        }
        Err(err) => {
            err_line(&format!("verdict: {err}"));
            Exit::Unreachable
        }
    }
}
