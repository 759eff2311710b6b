//! `verdict events`: subscribe, and print every session's start and end
//! under the daemon's roots until interrupted.
//!
//! One line per event on stdout (`--json`: the protocol's lines). If the
//! daemon goes away, the client subscribes again (starting it if allowed)
//! and says on stderr that events in between may have been missed.

use std::io::Write;
use std::path::PathBuf;

use verdict_proto::codec::{encode_line, CodecError, ReplyReader};
use verdict_proto::wire::{Event, Request};

use crate::out::{err_line, out_line};
use verdict_client::{connect, Error, MAX_FAILED_RECONNECTS};

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
    let request = Request::Subscribe { under: under_abs };
    let line = encode_line(&request.to_json(&1.into()));
    let mut failures = 0;
    let mut subscribed_before = false;
    loop {
        let stream = match connect::connect(socket, !no_spawn) {
            Ok(stream) => stream,
            Err(message) => return Error::Unreachable(message),
        };
        if (&stream).write_all(&line).is_err() {
            failures += 1;
        } else {
            let mut reader = ReplyReader::new(&stream);
            loop {
                let (reply, raw) = match reader.read_reply() {
                    Ok(Some(pair)) => pair,
                    Ok(None) | Err(CodecError::Io(_)) => break,
                    Err(err) => return Error::Protocol(err.to_string()),
                };
                if json && !matches!(reply.event, Event::Subscribed { .. }) {
                    out_line(&String::from_utf8_lossy(&raw));
                }
                match reply.event {
                    Event::Subscribed { roots, live } => {
                        failures = 0;
                        if subscribed_before {
                            err_line("verdict: subscribed again; events while verdictd was away may be missing");
                        }
                        subscribed_before = true;
                        err_line(&format!(
                            "verdict: following {} ({live} sessions running now)",
                            roots.join(", ")
                        ));
                    }
                    Event::Started(started) if !json => out_line(&format!(
                        "started {} pid {} {}",
                        started.session,
                        started.pid.map_or_else(|| "?".into(), |p| p.to_string()),
                        started.dir
                    )),
                    Event::Verdict(v) if !json => out_line(&format!(
                        "ended {} {} exit={} synthetic={} {}",
                        v.session,
                        v.status,
                        v.exit_code.map_or_else(|| "?".into(), |c| c.to_string()),
                        v.synthetic.unwrap_or(false),
                        v.dir.unwrap_or_default()
                    )),
                    // `--root` outside the daemon's roots, say.
                    Event::Error { message, .. } => return Error::Usage(message),
                    _ => {}
                }
            }
            failures += 1;
        }
        if failures > MAX_FAILED_RECONNECTS {
            return Error::Lost(format!("lost verdictd at {}; giving up", socket.display()));
        }
    }
}
