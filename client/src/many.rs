//! `verdict wait S1 S2 … [--all | --any]`: one connection, one `wait` per
//! session sent at once, each verdict printed as it arrives.
//!
//! Each completed session prints what a single `verdict wait` prints, under
//! a `==> SESSION <==` header on stdout. Sessions still running when the
//! cap fires get csa's KV-warm lines at the end, with one re-wait command
//! naming just them. `--all` (the default) ends when every session has an
//! answer; `--any` ends at the first completed one and cancels the rest.
//! A session the daemon refuses (unknown, ambiguous) is reported and the
//! others are still waited for. Reconnection and the deadline follow
//! [`crate::wait`]: a lost daemon is asked again, for what is left of the
//! cap, about the sessions that have no answer yet.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use verdict_proto::codec::{encode_line, CodecError, ReplyReader};
use verdict_proto::wire::{Event, Request, VerdictEvent, WireOutcome};

use crate::out::{err_line, out_line};
use crate::wait::{
    deadline, error_exit, print_completed, remaining_cap, with_elapsed, WaitArgs,
    MAX_FAILED_RECONNECTS,
};
use crate::{connect, EXIT_BAD_USE, EXIT_UNREACHABLE};
use verdict_client::markers;

/// When a wait on several sessions ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// When every session has an answer.
    All,
    /// At the first completed session.
    Any,
}

/// Where one session of the call stands.
#[derive(Debug)]
enum Slot {
    Pending,
    /// Completed; the wait's exit code.
    Done(i32),
    /// The cap fired: still running (KV-warm) or not (timeout).
    AtCap(VerdictEvent),
    /// Refused by the daemon; the exit code that stands for it.
    Refused(i32),
    /// The same directory as an earlier session of the call.
    Duplicate,
}

/// One session of the call.
#[derive(Debug)]
struct Entry {
    /// As given (paths made absolute).
    arg: String,
    dir: Option<PathBuf>,
    slot: Slot,
}

/// Waits on `args.sessions` and returns the process exit code.
pub fn run(base: &WaitArgs, sessions: Vec<String>, mode: Mode) -> i32 {
    let started = Instant::now();
    let mut entries: Vec<Entry> = sessions
        .into_iter()
        .map(|arg| Entry {
            arg,
            dir: None,
            slot: Slot::Pending,
        })
        .collect();
    let mut cap_ms = base.cap_ms;
    let mut failures = 0;
    loop {
        let stream = match connect::connect(&base.socket, !base.no_spawn) {
            Ok(stream) => stream,
            Err(message) => {
                err_line(&format!("verdict: {message}"));
                return EXIT_UNREACHABLE;
            }
        };
        let mut call = Call {
            base,
            started,
            entries: &mut entries,
            cap_ms: &mut cap_ms,
            mode,
        };
        match call.attempt(&stream) {
            Ok(code) => return code,
            Err((watched, why)) => {
                failures = if watched { 1 } else { failures + 1 };
                let past = deadline(started, cap_ms).is_some_and(|at| Instant::now() >= at);
                if past || failures > MAX_FAILED_RECONNECTS {
                    err_line(&format!(
                        "verdict: lost verdictd at {} ({why}); giving up",
                        base.socket.display()
                    ));
                    return EXIT_UNREACHABLE;
                }
            }
        }
    }
}

struct Call<'a> {
    base: &'a WaitArgs,
    started: Instant,
    entries: &'a mut Vec<Entry>,
    cap_ms: &'a mut Option<u64>,
    mode: Mode,
}

/// Request ids are the entries' indexes plus one.
fn index_of(id: &serde_json::Value, len: usize) -> Option<usize> {
    let i = usize::try_from(id.as_u64()?).ok()?.checked_sub(1)?;
    (i < len).then_some(i)
}

impl Call<'_> {
    /// One connection. `Ok(code)` when the call is over, `Err((watched,
    /// why))` when the connection was lost first.
    fn attempt(&mut self, stream: &UnixStream) -> Result<i32, (bool, String)> {
        let remaining = remaining_cap(self.started, *self.cap_ms);
        let mut lines = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            if matches!(entry.slot, Slot::Pending) {
                let request = Request::Wait {
                    session: entry.arg.clone(),
                    cap_ms: remaining,
                    cwd: self.base.cwd.clone(),
                };
                lines.extend(encode_line(&request.to_json(&(i as u64 + 1).into())));
            }
        }
        (&*stream)
            .write_all(&lines)
            .map_err(|err| (false, err.to_string()))?;
        let mut reader = ReplyReader::new(stream);
        let mut watched = false;
        loop {
            if let Some(code) = self.finished(stream) {
                return Ok(code);
            }
            let until = deadline(self.started, *self.cap_ms)
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600));
            if until.is_zero() {
                return Err((watched, "no answer".into()));
            }
            let _ = stream.set_read_timeout(Some(until.min(Duration::from_secs(3600))));
            let (reply, raw) = match reader.read_reply() {
                Ok(Some(pair)) => pair,
                Ok(None) => return Err((watched, "the daemon closed the connection".into())),
                Err(CodecError::Io(err))
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(CodecError::Io(err)) => return Err((watched, err.to_string())),
                Err(err) => {
                    err_line(&format!("verdict: protocol error: {err}"));
                    return Ok(EXIT_UNREACHABLE);
                }
            };
            let Some(i) = index_of(&reply.id, self.entries.len()) else {
                continue;
            };
            match reply.event {
                Event::Watching(w) => {
                    watched = true;
                    self.cap_ms.get_or_insert(w.cap_ms);
                    let dir = PathBuf::from(&w.dir);
                    let earlier = self.entries[..i].iter().any(|e| {
                        e.dir.as_ref() == Some(&dir) && !matches!(e.slot, Slot::Duplicate)
                    });
                    if earlier {
                        // Named twice (say as an id and as a path): answer once.
                        self.entries[i].slot = Slot::Duplicate;
                        cancel(stream, i);
                    }
                    self.entries[i].dir = Some(dir);
                }
                Event::Verdict(verdict) if matches!(self.entries[i].slot, Slot::Pending) => {
                    if self.base.json {
                        out_line(&with_elapsed(&raw, self.started));
                    }
                    self.entries[i].slot = match verdict.outcome {
                        WireOutcome::Completed => {
                            if !self.base.json {
                                out_line(&format!("==> {} <==", verdict.session));
                            }
                            print_completed(
                                &verdict,
                                self.entries[i].dir.as_deref(),
                                self.base.json,
                            );
                            Slot::Done(verdict.exit)
                        }
                        _ => Slot::AtCap(verdict),
                    };
                }
                Event::Error { code, message } if matches!(self.entries[i].slot, Slot::Pending) => {
                    if self.base.json {
                        out_line(&String::from_utf8_lossy(&raw));
                    }
                    err_line(&format!("verdict: {}: {message}", self.entries[i].arg));
                    self.entries[i].slot = Slot::Refused(error_exit(code));
                }
                _ => {}
            }
        }
    }

    /// The exit code once the call is over (printing the KV-warm or
    /// timeout lines of the sessions the cap caught), else `None`.
    fn finished(&self, stream: &UnixStream) -> Option<i32> {
        let entries = &*self.entries;
        if self.mode == Mode::Any {
            if let Some(code) = entries.iter().find_map(|e| match e.slot {
                Slot::Done(code) => Some(code),
                _ => None,
            }) {
                for (i, entry) in entries.iter().enumerate() {
                    if matches!(entry.slot, Slot::Pending) {
                        cancel(stream, i);
                    }
                }
                return Some(code);
            }
        }
        if entries.iter().any(|e| matches!(e.slot, Slot::Pending)) {
            return None;
        }
        self.print_at_cap();
        let codes = entries.iter().filter_map(|e| match &e.slot {
            Slot::Done(code) | Slot::Refused(code) => Some(*code),
            Slot::AtCap(verdict) => Some(verdict.exit),
            Slot::Pending | Slot::Duplicate => None,
        });
        Some(match self.mode {
            Mode::All => combine(codes),
            // No session completed: KV-warm if any still runs, else 124.
            Mode::Any => {
                let codes: Vec<i32> = codes.collect();
                let at_cap = entries.iter().filter_map(|e| match &e.slot {
                    Slot::AtCap(verdict) => Some(verdict.exit),
                    _ => None,
                });
                at_cap.min().unwrap_or_else(|| combine(codes.into_iter()))
            }
        })
    }

    /// The KV-warm and timeout lines, with one re-wait command that names
    /// the sessions still running.
    fn print_at_cap(&self) {
        let elapsed = self.started.elapsed().as_secs();
        let cap = markers::seconds(self.cap_ms.unwrap_or(0));
        let caught: Vec<(&Entry, &VerdictEvent)> = self
            .entries
            .iter()
            .filter_map(|e| match &e.slot {
                Slot::AtCap(verdict) => Some((e, verdict)),
                _ => None,
            })
            .collect();
        let rewait_name = |entry: &Entry, verdict: &VerdictEvent| {
            if entry.arg.starts_with('/') {
                entry.arg.clone()
            } else {
                verdict.session.clone()
            }
        };
        let alive: Vec<String> = caught
            .iter()
            .filter(|(_, v)| v.outcome == WireOutcome::KvWarm)
            .map(|(e, v)| rewait_name(e, v))
            .collect();
        let mut hint = None;
        for (entry, verdict) in &caught {
            if verdict.outcome == WireOutcome::KvWarm {
                let [sentence, marker, retry] =
                    markers::kv_warm(&verdict.session, &cap, elapsed, &alive.join(" "));
                err_line(&sentence);
                err_line(&marker);
                hint = Some(retry);
            } else {
                let rewait = rewait_name(entry, verdict);
                for line in markers::timeout(&verdict.session, &cap, elapsed, &rewait) {
                    err_line(&line);
                }
            }
        }
        if let Some(hint) = hint {
            err_line(&hint);
        }
    }
}

/// `--all`'s exit code: a refused session (2) first, then an unreachable
/// daemon (3), then any failure (1), then 124 when nothing completed and
/// nothing runs, else 0.
fn combine(codes: impl Iterator<Item = i32>) -> i32 {
    let codes: Vec<i32> = codes.collect();
    [EXIT_BAD_USE, EXIT_UNREACHABLE, 1, 124]
        .into_iter()
        .find(|code| codes.contains(code))
        .unwrap_or(0)
}

/// Cancels wait `i` (best effort: closing the connection cancels it too).
fn cancel(stream: &UnixStream, i: usize) {
    let request = Request::Cancel {
        target: (i as u64 + 1).into(),
    };
    let _ = (&*stream).write_all(&encode_line(&request.to_json(&0.into())));
}
