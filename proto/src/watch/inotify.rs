//! The Linux watcher: one inotify instance, one watch per directory, the
//! mask of the module docs.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use super::{AddError, Change};

/// The events that can change a verdict (see the module docs).
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::CLOSE_WRITE
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
        | WatchMask::EXCL_UNLINK
}

impl std::os::fd::AsFd for Watcher {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inotify.as_fd()
    }
}

/// The inotify instance and which directory each watch is for.
#[derive(Debug)]
pub struct Watcher {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, PathBuf>,
    by_dir: HashMap<PathBuf, WatchDescriptor>,
    buffer: Vec<u8>,
}

impl Watcher {
    /// Creates the inotify instance (non-blocking, close-on-exec).
    pub fn new() -> io::Result<Watcher> {
        Ok(Watcher {
            inotify: Inotify::init()?,
            dirs: HashMap::new(),
            by_dir: HashMap::new(),
            // Room for many events per read; the kernel never splits one.
            buffer: vec![0; 64 * 1024],
        })
    }

    /// The fd to register with the event loop (readable: events are queued).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.inotify.as_raw_fd()
    }

    /// Adds a non-recursive watch on `dir`; it is armed when this returns.
    pub fn add(&mut self, dir: &Path) -> Result<(), AddError> {
        let wd = self.inotify.watches().add(dir, mask()).map_err(|err| {
            // ENOSPC is inotify's answer when max_user_watches is reached.
            if err.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
                AddError::Limit
            } else {
                AddError::Other(err)
            }
        })?;
        // Adding a watch on an inode already watched returns the same wd.
        self.dirs.insert(wd.clone(), dir.to_path_buf());
        self.by_dir.insert(dir.to_path_buf(), wd);
        Ok(())
    }

    /// Removes the watch on `dir` (a directory that vanished has none left).
    pub fn remove(&mut self, dir: &Path) {
        if let Some(wd) = self.by_dir.remove(dir) {
            if self.dirs.get(&wd).is_some_and(|d| d == dir) {
                self.dirs.remove(&wd);
            }
            if let Err(err) = self.inotify.watches().remove(wd) {
                log::debug!("unwatch {}: {err}", dir.display());
            }
        }
    }

    /// Everything queued now, as paths to look at again.
    pub fn drain(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        loop {
            let events = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    log::warn!("reading inotify events failed, rescanning every session: {err}");
                    changes.push(Change::Rescan);
                    break;
                }
            };
            let mut paths = Vec::new();
            let mut new_dirs = Vec::new();
            let mut forgotten = Vec::new();
            for event in events {
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    changes.push(Change::Rescan);
                    continue;
                }
                let Some(dir) = self.dirs.get(&event.wd) else {
                    continue;
                };
                if event.mask.contains(EventMask::IGNORED) {
                    // The kernel dropped the watch (directory deleted).
                    forgotten.push(event.wd.clone());
                }
                let path = match event.name {
                    Some(name) => dir.join(name as &OsStr),
                    None => dir.clone(),
                };
                let arrived = EventMask::CREATE | EventMask::MOVED_TO;
                if event.mask.contains(EventMask::ISDIR) && event.mask.intersects(arrived) {
                    new_dirs.push(path.clone());
                }
                paths.push(path);
            }
            for wd in forgotten {
                if let Some(dir) = self.dirs.remove(&wd) {
                    if self.by_dir.get(&dir) == Some(&wd) {
                        self.by_dir.remove(&dir);
                    }
                }
            }
            if !paths.is_empty() {
                changes.push(Change::Paths(paths));
            }
            if !new_dirs.is_empty() {
                changes.push(Change::NewDirs(new_dirs));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(changes: Vec<Change>) -> Vec<PathBuf> {
        changes
            .into_iter()
            .flat_map(|c| match c {
                Change::Paths(p) => p,
                Change::NewDirs(_) => Vec::new(),
                Change::Rescan => vec![PathBuf::from("RESCAN")],
            })
            .collect()
    }

    #[test]
    fn writes_in_progress_and_reads_make_no_events_but_closes_and_renames_do() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut watcher = Watcher::new().expect("inotify");
        watcher.add(dir.path()).expect("watch");
        let log = dir.path().join("stdout.log");
        let mut file = std::fs::File::create(&log).expect("create");
        let _ = watcher.drain(); // IN_CREATE
        for _ in 0..100 {
            file.write_all(b"streaming output\n").expect("write");
        }
        let _ = std::fs::read(&log).expect("read");
        assert_eq!(
            paths(watcher.drain()),
            Vec::<PathBuf>::new(),
            "writes and reads are silent"
        );
        drop(file);
        assert_eq!(
            paths(watcher.drain()),
            vec![log.clone()],
            "close after writing"
        );
        std::fs::write(dir.path().join(".tmp"), "x").expect("write");
        std::fs::rename(dir.path().join(".tmp"), dir.path().join("result.toml")).expect("rename");
        let seen = paths(watcher.drain());
        assert!(seen.contains(&dir.path().join("result.toml")), "{seen:?}");
        watcher.remove(dir.path());
        std::fs::write(dir.path().join("after"), "x").expect("write");
        assert!(watcher.drain().is_empty());
    }
}
