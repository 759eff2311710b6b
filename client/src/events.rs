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

pub mod exec;

/// `--exec` and when it runs.
pub struct Hooks {
    pub exec: exec::Exec,
    pub on_start: bool,
}

/// Runs `verdict events`; it ends only on errors.
pub fn run(
    socket: &std::path::Path,
    under: &[PathBuf],
    json: bool,
    no_spawn: bool,
    hooks: Option<Hooks>,
) -> Error {
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
        if let Some(hooks) = &hooks {
            if let Some(job) = job(&line.notice, &line.raw, hooks.on_start) {
                hooks.exec.submit(job);
            }
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

/// The `--exec` run an event asks for, if any.
fn job(notice: &Notice, raw: &str, on_start: bool) -> Option<exec::Job> {
    let env = match notice {
        Notice::Ended(v) => vec![
            ("VERDICT_EVENT", "ended".to_string()),
            ("VERDICT_SESSION", v.session.clone()),
            ("VERDICT_DIR", v.dir.clone().unwrap_or_default()),
            ("VERDICT_STATUS", v.status.clone()),
            (
                "VERDICT_EXIT_CODE",
                v.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            ),
            ("VERDICT_WAIT_EXIT", v.exit.code().to_string()),
            (
                "VERDICT_SYNTHETIC",
                v.synthetic.unwrap_or(false).to_string(),
            ),
            ("VERDICT_SUMMARY", v.summary.clone().unwrap_or_default()),
        ],
        Notice::Started(started) if on_start => vec![
            ("VERDICT_EVENT", "started".to_string()),
            ("VERDICT_SESSION", started.session.clone()),
            ("VERDICT_DIR", started.dir.clone()),
            (
                "VERDICT_PID",
                started.pid.map(|p| p.to_string()).unwrap_or_default(),
            ),
        ],
        _ => return None,
    };
    Some(exec::Job {
        env,
        stdin: raw.to_string(),
    })
}
