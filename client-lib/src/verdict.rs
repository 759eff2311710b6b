//! A session's answer as a caller gets it, and what `verdict wait` prints
//! for it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use verdict_proto::codec::encode_line;
use verdict_proto::wire::{Event, Reply, RequestId, VerdictEvent, WireOutcome};
use verdict_proto::Exit;

use crate::markers;

/// One session's verdict: the protocol's event, the session directory and
/// the JSON line `verdict wait --json` prints for it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The verdict as the daemon sent it.
    pub event: VerdictEvent,
    /// The session directory, when known.
    pub dir: Option<PathBuf>,
    line: String,
}

impl Verdict {
    /// A verdict from the daemon's raw reply line; `elapsed_ms` in its
    /// JSON is counted from `started`, the start of the call, so that a
    /// reconnect does not reset it.
    pub(crate) fn from_line(
        event: VerdictEvent,
        dir: Option<PathBuf>,
        raw: &[u8],
        started: Instant,
    ) -> Verdict {
        Verdict {
            line: with_elapsed(raw, started),
            event,
            dir,
        }
    }

    /// A verdict made here (without a daemon), with the line the daemon
    /// would have sent for request `id`.
    pub(crate) fn made(event: VerdictEvent, dir: PathBuf, id: u64, started: Instant) -> Verdict {
        let line = reply_line(id, Event::Verdict(event.clone()));
        Verdict::from_line(event, Some(dir), line.as_bytes(), started)
    }

    /// The exit code for this answer: success, failure or timeout.
    pub fn exit(&self) -> Exit {
        self.event.exit
    }

    /// The session id.
    pub fn session(&self) -> &str {
        &self.event.session
    }

    /// The session has ended (as opposed to the cap firing first).
    pub fn is_completed(&self) -> bool {
        self.event.outcome == WireOutcome::Completed
    }

    /// The cap fired while the session's process still ran (KV-warm).
    pub fn is_running(&self) -> bool {
        self.event.outcome == WireOutcome::KvWarm
    }

    /// The verdict as one protocol line (no newline).
    pub fn json(&self) -> &str {
        &self.line
    }

    /// The last `max` bytes of the session's `stdout.log` (cut at a line
    /// start), when it is a regular file. Opened the one safe way: never
    /// blocks on a FIFO, refuses a device.
    pub fn output_tail(&self, max: u64) -> Option<OutputTail> {
        OutputTail::of(self.dir.as_deref()?, max)
    }

    /// Copies the session's `stdout.log` to `out` (problems on `err`);
    /// true when it held at least one byte.
    pub fn print_output(&self, out: &mut dyn Write, err: &mut dyn Write) -> bool {
        self.dir
            .as_deref()
            .is_some_and(|dir| stream_output(dir, out, err))
    }

    /// Writes what `verdict wait` (and csa's `session wait`) prints for a
    /// completed session: its `stdout.log` and the COMPLETED marker on
    /// `out` (only the marker's `err` copy when `json`), a failure's
    /// summary when there was no output, and the hint on `err`. Write
    /// errors are ignored: the exit code is the answer.
    pub fn print_completed(&self, out: &mut dyn Write, err: &mut dyn Write, json: bool) {
        self.print_completed_with(
            out,
            err,
            json,
            Some(&markers::next_session_hint(markers::Caller::Verdict)),
        );
    }

    /// [`Verdict::print_completed`] with another hint, or none (a call that
    /// waits for several sessions gives one hint for the call).
    pub fn print_completed_with(
        &self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        json: bool,
        hint: Option<&str>,
    ) {
        let streamed = !json && self.print_output(out, err);
        if !streamed {
            if let Some(summary) = markers::failure_summary(&self.event) {
                line(err, &summary);
            }
        }
        let marker = markers::completed(&self.event);
        if !json {
            line(out, &marker);
        }
        line(err, &marker);
        if let Some(hint) = hint {
            line(err, hint);
        }
        if self.event.synthetic == Some(true) && !streamed {
            line(err, &markers::synthesized(&self.event.session));
        }
    }
}

fn line(to: &mut dyn Write, text: &str) {
    let _ = to
        .write_all(text.as_bytes())
        .and_then(|()| to.write_all(b"\n"))
        .and_then(|()| to.flush());
}

/// The end of a session's `stdout.log` (see [`Verdict::output_tail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputTail {
    /// The file, to read the rest.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its last bytes (at most the number asked for, from a line start).
    pub tail: String,
    /// The tail is not the whole file.
    pub truncated: bool,
}

impl OutputTail {
    /// The last `max` bytes of `dir`'s `stdout.log` (cut at a line start),
    /// when it is a regular file. Opened the one safe way: never blocks on
    /// a FIFO, refuses a device.
    pub fn of(dir: &Path, max: u64) -> Option<OutputTail> {
        use std::io::{Read, Seek, SeekFrom};
        let (mut file, meta) = verdict_core::files::open_output(dir).ok()??;
        let size = meta.len();
        let start = size.saturating_sub(max);
        file.seek(SeekFrom::Start(start)).ok()?;
        let mut bytes = Vec::new();
        file.take(size - start).read_to_end(&mut bytes).ok()?;
        if start > 0 {
            // Cut at a line start, not in the middle of a line or a character.
            if let Some(newline) = bytes.iter().position(|b| *b == b'\n') {
                bytes.drain(..=newline);
            }
        }
        Some(OutputTail {
            path: dir.join(verdict_core::files::STDOUT_FILE),
            size,
            tail: String::from_utf8_lossy(&bytes).into_owned(),
            truncated: start > 0,
        })
    }
}

/// Copies the session's `stdout.log` to `out`, as csa does; true when it
/// held at least one byte.
fn stream_output(dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> bool {
    // The one safe opener: a FIFO or device put in its place is refused
    // without blocking, and a log still growing is copied only up to the
    // size it had when opened, so the wait ends once its verdict is in.
    match verdict_core::files::open_output(dir) {
        Ok(Some((file, meta))) => {
            let copied = std::io::copy(&mut std::io::Read::take(file, meta.len()), out);
            let _ = out.flush();
            // A closed stdout stops the copy, not the answer.
            copied.map_or(meta.len() > 0, |n| n > 0)
        }
        Ok(None) => false,
        Err(reason) => {
            let path = dir.join(verdict_core::files::STDOUT_FILE);
            line(
                err,
                &format!("verdict: not copying {}: it {reason}", path.display()),
            );
            false
        }
    }
}

/// What the daemon would have sent for request `id`: one protocol line
/// (no newline). For answers made without a daemon.
pub(crate) fn reply_line(id: u64, event: Event) -> String {
    let mut line = encode_line(&Reply::new(RequestId::from(id), event));
    line.pop();
    String::from_utf8_lossy(&line).into_owned()
}

/// The reply line with `elapsed_ms` counted from `started`.
pub(crate) fn with_elapsed(raw: &[u8], started: Instant) -> String {
    match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(mut value) => {
            let elapsed = started.elapsed().as_millis() as u64;
            if let Some(fields) = value.as_object_mut() {
                fields.insert("elapsed_ms".into(), elapsed.into());
            }
            value.to_string()
        }
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}
