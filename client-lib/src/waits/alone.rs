//! The sessions of a [`Waits`] waited for here, without a daemon: one
//! thread running [`degraded::wait_all`] for all of them (one loop, one
//! inotify instance), their answers sent back on a channel as each ends,
//! stopped through one pipe.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

use verdict_core::resolve::{resolve, Index, Root};
use verdict_proto::wire::{ErrorCode, Event, VerdictEvent, DEFAULT_CAP_MS};

use super::{Slot, Update, Waits};
use crate::client::Link;
use crate::degraded::{self, Timing};
use crate::error::{Error, Refusal};
use crate::verdict::{reply_line, Verdict};

/// The index an answer for every pending session carries.
const ALL: usize = usize::MAX;

/// Sessions waited for here, on one thread.
#[derive(Debug)]
pub(super) struct Alone {
    pub(super) answers: mpsc::Receiver<(usize, Result<VerdictEvent, degraded::Error>)>,
    /// A byte written here (or the last copy closed) stops every thread.
    pub(super) stop: OwnedFd,
}

impl Waits<'_> {
    /// Starts waiting here for every pending session.
    pub(super) fn start_alone(&mut self) {
        let why = match &self.client.link {
            Link::Alone(why) => why.clone(),
            Link::Daemon(_) => None,
        };
        let cap_ms = self.remaining_cap().unwrap_or(DEFAULT_CAP_MS);
        self.cap_ms.get_or_insert(DEFAULT_CAP_MS);
        let cap = (cap_ms > 0).then(|| Duration::from_millis(cap_ms));
        let (stop_read, stop_write) = match self.stop_pipe() {
            Ok(pipe) => pipe,
            Err(err) => {
                let message = format!("cannot wait without verdictd: {err}");
                self.refuse_pending(ErrorCode::Internal, &message);
                return;
            }
        };
        let (send, answers) = mpsc::channel();
        let (entries, dirs) = self.resolve_pending(why.as_deref());
        if !entries.is_empty() {
            // One thread and one loop for all of them.
            let spawned = std::thread::Builder::new()
                .name("verdict-degraded".into())
                .spawn(move || {
                    let mut answer = |k: usize, result| {
                        let _ = send.send((entries[k], result));
                    };
                    let stop = Some(stop_read.as_fd());
                    let ended =
                        degraded::wait_all(&dirs, cap, Timing::default(), stop, &mut answer);
                    if let Err(err) = ended {
                        // Stopped, or poll failed: every session still
                        // waited for hears it (the channel tells the rest).
                        let _ = send.send((ALL, Err(err)));
                    }
                });
            match spawned {
                Ok(_) => self.queue.push_back(Update::Degraded { why }),
                Err(err) => {
                    let message = format!("cannot wait without verdictd: {err}");
                    self.refuse_pending(ErrorCode::Internal, &message);
                }
            }
        }
        self.alone = Some(Alone {
            answers,
            stop: stop_write,
        });
    }

    /// The pipe that stops the loop (read end, write end); the stopper, if
    /// any, holds a copy of the write end.
    fn stop_pipe(&self) -> std::io::Result<(OwnedFd, OwnedFd)> {
        let (read, write) = std::io::pipe()?;
        let write = OwnedFd::from(write);
        if let Some(stopper) = &self.stopper {
            stopper.watch_pipe(rustix::io::fcntl_dupfd_cloexec(&write, 0)?);
        }
        Ok((read.into(), write))
    }

    /// Finds the directory of every pending session: the entries found
    /// (and their directories, in the same order); the others are refused
    /// or dropped (named twice).
    fn resolve_pending(&mut self, why: Option<&str>) -> (Vec<usize>, Vec<std::path::PathBuf>) {
        let roots: Vec<Root> = verdict_core::paths::default_session_roots()
            .into_iter()
            .map(|path| Root { path, poll: false })
            .collect();
        let cwd = self.client.options.cwd.clone();
        let mut index = Index::default();
        let (mut entries, mut dirs) = (Vec::new(), Vec::new());
        for i in 0..self.entries.len() {
            if !matches!(self.entries[i].slot, Slot::Pending) {
                continue;
            }
            let resolved = resolve(&self.entries[i].session, cwd.as_deref(), &roots, &mut index);
            let dir = match resolved {
                Ok(resolved) => resolved.dir,
                Err(err) => {
                    let message = match why {
                        Some(why) => format!("{why}; and without it: {err}"),
                        None => err.to_string(),
                    };
                    self.refuse_with(i, err.code(), message);
                    continue;
                }
            };
            if self.named_earlier(i, &dir) {
                self.entries[i].slot = Slot::Dropped;
                continue;
            }
            self.entries[i].dir = Some(dir.clone());
            dirs.push(dir);
            entries.push(i);
        }
        (entries, dirs)
    }

    pub(super) fn refuse_pending(&mut self, code: ErrorCode, message: &str) {
        for i in 0..self.entries.len() {
            if matches!(self.entries[i].slot, Slot::Pending) {
                self.refuse_with(i, code, message.to_string());
            }
        }
    }

    fn refuse_with(&mut self, index: usize, code: ErrorCode, message: String) {
        let event = Event::Error {
            code,
            message: message.clone(),
        };
        let line = reply_line(self.entries[index].id, event);
        self.refuse(index, Refusal::new(code, message, line));
    }

    /// Queues the next answer from the threads (or a tick).
    pub(super) fn step_alone(&mut self) -> Result<(), Error> {
        if self.finished() {
            return Ok(());
        }
        let Some(alone) = &self.alone else {
            return Ok(());
        };
        let received = match self.tick {
            Some(tick) => alone
                .answers
                .recv_timeout(tick)
                .map_err(|err| err == mpsc::RecvTimeoutError::Timeout),
            None => alone.answers.recv().map_err(|_| false),
        };
        match received {
            Ok((i, Ok(event))) => {
                let (dir, id) = (
                    self.entries[i].dir.clone().unwrap_or_default(),
                    self.entries[i].id,
                );
                let verdict = Verdict::made(event, dir, id, self.started);
                self.answer(i, verdict);
            }
            Ok((i, Err(degraded::Error::NoSession(dir)))) => {
                let message = format!(
                    "session directory {} was removed while waiting",
                    dir.display()
                );
                self.refuse_with(i, ErrorCode::SessionRemoved, message);
            }
            Ok((_, Err(degraded::Error::Stopped))) if self.stopped() => return Err(Error::Stopped),
            Ok((_, Err(degraded::Error::Stopped))) => {}
            Ok((ALL, Err(err))) => self.refuse_pending(ErrorCode::Internal, &err.to_string()),
            Ok((i, Err(err))) => self.refuse_with(i, ErrorCode::Internal, err.to_string()),
            Err(true) => self.queue.push_back(Update::Tick),
            // Every thread is gone: nothing more will come.
            Err(false) => self.refuse_pending(
                ErrorCode::Internal,
                "waiting without verdictd ended without an answer",
            ),
        }
        Ok(())
    }
}
