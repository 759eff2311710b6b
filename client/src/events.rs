//! `verdict events`: subscribe, and print every session's start and end
//! under the daemon's roots until interrupted.
//!
//! One line per event on stdout (`--json`: the protocol's lines). If the
//! daemon goes away, the client subscribes again (starting it if allowed)
//! and says on stderr that events in between may have been missed.

use std::path::PathBuf;

use verdict_client::subscribe::{Notice, Subscription};
use verdict_client::Error;

use crate::out::{err_line, out_line};

/// Runs `verdict events`; it ends only on errors.
pub fn run(socket: &std::path::Path, under: &[PathBuf], json: bool, no_spawn: bool) -> Error {
    let mut under_abs = Vec::new();
    for dir in under {
        match std::fs::canonicalize(dir) {
            Ok(dir) => under_abs.push(dir.to_string_lossy().into_owned()),
            Err(err) => {
                return Error::Usage(format!("cannot use --root {}: {err}", dir.display()));
            }
        }
    }
    for line in Subscription::new(socket.to_path_buf(), under_abs, !no_spawn) {
        let line = match line {
            Ok(line) => line,
            Err(err) => return err,
        };
        if json && !matches!(line.notice, Notice::Subscribed { .. }) {
            out_line(&line.raw);
        }
        match line.notice {
            Notice::Subscribed { roots, live, again } => {
                if again {
                    err_line(
                        "verdict: subscribed again; events while verdictd was away may be missing",
                    );
                }
                let sessions = if live == 1 { "session" } else { "sessions" };
                err_line(&format!(
                    "verdict: following {} ({live} {sessions} running now)",
                    roots.join(", ")
                ));
            }
            Notice::Started(started) if !json => out_line(&format!(
                "started {} pid {} {}",
                started.session,
                started.pid.map_or_else(|| "?".into(), |p| p.to_string()),
                started.dir
            )),
            Notice::Ended(v) if !json => out_line(&format!(
                "ended {} {} exit_code={} synthetic={} {}",
                v.session,
                v.status,
                v.exit_code.map_or_else(|| "?".into(), |c| c.to_string()),
                v.synthetic.unwrap_or(false),
                v.dir.unwrap_or_default()
            )),
            _ => {}
        }
    }
    Error::Lost("the subscription ended".into())
}
