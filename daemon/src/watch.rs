//! File events: one inotify instance (through `notify`) with one
//! non-recursive watch per watched session directory.
//!
//! `notify` runs its own reader thread; it only sends events over a channel
//! and wakes the event loop, which owns everything else. Its inotify mask
//! is fixed and includes opens, reads and writes in progress: those are
//! dropped here, so a session streaming its output, or our own reads of
//! session files, never wake the event loop (see [`can_change_a_verdict`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{ErrorKind, INotifyWatcher, RecursiveMode, Watcher as _};

/// What the loop must look at again.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// Something happened at these paths.
    Paths(Vec<PathBuf>),
    /// Events were lost (queue overflow or a read error): look at everything.
    Rescan,
}

/// Why a watch could not be added.
#[derive(Debug)]
pub enum AddError {
    /// The watch limit is reached: poll this directory instead.
    Limit,
    /// Anything else (the directory vanished, permissions).
    Other(notify::Error),
}

/// The inotify watcher and the channel its thread feeds.
#[derive(Debug)]
pub struct Watcher {
    inner: INotifyWatcher,
    rx: Receiver<notify::Result<notify::Event>>,
}

impl Watcher {
    /// Starts the watcher; `waker` wakes the event loop for every event.
    pub fn new(waker: Arc<mio::Waker>) -> notify::Result<Watcher> {
        let (tx, rx) = channel();
        let handler = move |event: notify::Result<notify::Event>| {
            if matches!(&event, Ok(e) if !can_change_a_verdict(e.kind)) {
                return;
            }
            if tx.send(event).is_ok() {
                if let Err(err) = waker.wake() {
                    log::error!("cannot wake the event loop: {err}");
                }
            }
        };
        let inner = INotifyWatcher::new(handler, notify::Config::default())?;
        Ok(Watcher { inner, rx })
    }

    /// Adds a non-recursive watch on `dir`; returns once it is armed.
    pub fn add(&mut self, dir: &Path) -> Result<(), AddError> {
        self.inner
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|err| match err.kind {
                ErrorKind::MaxFilesWatch => AddError::Limit,
                _ => AddError::Other(err),
            })
    }

    /// Removes the watch on `dir` (a directory that vanished has none left).
    pub fn remove(&mut self, dir: &Path) {
        if let Err(err) = self.inner.unwatch(dir) {
            log::debug!("unwatch {}: {err}", dir.display());
        }
    }

    /// Everything received since the last call.
    pub fn drain(&self) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            match event {
                Ok(event) if event.need_rescan() => changes.push(Change::Rescan),
                Ok(event) => changes.push(Change::Paths(event.paths)),
                Err(err) => {
                    log::warn!("file watcher error, rescanning every session: {err}");
                    changes.push(Change::Rescan);
                }
            }
        }
        changes
    }
}

/// Entries created, removed or renamed, files closed after writing,
/// attribute changes and the directory's own end can change a verdict;
/// opens, reads and writes in progress cannot (a file is complete when it
/// is closed or renamed into place).
pub fn can_change_a_verdict(kind: EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Access(
            AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)
        ) | EventKind::Modify(ModifyKind::Data(_))
    )
}
