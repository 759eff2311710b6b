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

/// The inotify instance and which directories each watch is for.
///
/// The kernel gives one watch descriptor per inode: a directory renamed
/// and watched again under its new name (or watched by two owners, a
/// session and a subscription's tree) shares the descriptor of the first
/// watch. So a watch is counted by what watches it, path by path, and the
/// kernel's watch is removed only when the last of them is.
#[derive(Debug)]
pub struct Watcher {
    inotify: Inotify,
    /// Descriptor → the paths watched through it, each with its count.
    dirs: HashMap<WatchDescriptor, Vec<(PathBuf, usize)>>,
    by_dir: HashMap<PathBuf, WatchDescriptor>,
    buffer: Vec<u8>,
    /// The last [`Watcher::drain`] stopped at its bound with events left.
    more: bool,
}

/// Reads of the inotify fd per [`Watcher::drain`]: a writer creating files
/// in a watched directory as fast as it can must not hold the caller's
/// loop; what is left is read on the caller's next turn.
const MAX_READS_PER_DRAIN: usize = 16;

impl Watcher {
    /// Creates the inotify instance (non-blocking, close-on-exec).
    pub fn new() -> io::Result<Watcher> {
        Ok(Watcher {
            inotify: Inotify::init()?,
            dirs: HashMap::new(),
            by_dir: HashMap::new(),
            // Room for many events per read; the kernel never splits one.
            buffer: vec![0; 64 * 1024],
            more: false,
        })
    }

    /// The fd to register with the event loop (readable: events are queued).
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.inotify.as_raw_fd()
    }

    /// Adds a non-recursive watch on `dir` (or one more owner of it); it
    /// is armed when this returns. Each `add` is undone by one `remove`.
    pub fn add(&mut self, dir: &Path) -> Result<(), AddError> {
        let wd = self.inotify.watches().add(dir, mask()).map_err(|err| {
            // ENOSPC is inotify's answer when max_user_watches is reached.
            if err.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
                AddError::Limit
            } else {
                AddError::Other(err)
            }
        })?;
        let mut owners = 1;
        if let Some(old) = self.by_dir.get(dir).filter(|old| **old != wd).cloned() {
            // The path names another inode now: its owners move with it.
            owners += self.dirs.get(&old).map_or(0, |paths| {
                paths
                    .iter()
                    .find(|(path, _)| path == dir)
                    .map_or(0, |(_, count)| *count)
            });
            self.forget_path(&old, dir);
        }
        // Adding a watch on an inode already watched returns the same wd.
        let paths = self.dirs.entry(wd.clone()).or_default();
        match paths.iter_mut().find(|(path, _)| path == dir) {
            Some((_, count)) => *count += owners,
            None => paths.push((dir.to_path_buf(), owners)),
        }
        self.by_dir.insert(dir.to_path_buf(), wd);
        Ok(())
    }

    /// Undoes one [`Watcher::add`] of `dir`; the kernel's watch goes with
    /// the last owner of its inode (a directory that vanished has none).
    pub fn remove(&mut self, dir: &Path) {
        let Some(wd) = self.by_dir.get(dir).cloned() else {
            return;
        };
        let Some(paths) = self.dirs.get_mut(&wd) else {
            self.by_dir.remove(dir);
            return;
        };
        if let Some((_, count)) = paths.iter_mut().find(|(path, _)| path == dir) {
            *count -= 1;
            if *count > 0 {
                return;
            }
        }
        self.forget_path(&wd, dir);
    }

    /// Drops `dir` from watch `wd`, and the kernel's watch once no path
    /// is left on it.
    fn forget_path(&mut self, wd: &WatchDescriptor, dir: &Path) {
        if self.by_dir.get(dir) == Some(wd) {
            self.by_dir.remove(dir);
        }
        let Some(paths) = self.dirs.get_mut(wd) else {
            return;
        };
        paths.retain(|(path, _)| path != dir);
        if paths.is_empty() {
            self.dirs.remove(wd);
            if let Err(err) = self.inotify.watches().remove(wd.clone()) {
                log::debug!("unwatch {}: {err}", dir.display());
            }
        }
    }

    /// Directories watched (each path once, however many owners it has).
    pub fn watched(&self) -> usize {
        self.by_dir.len()
    }

    /// The last [`Watcher::drain`] left events queued: drain again soon
    /// (an edge-triggered poll will not say so again).
    pub fn more(&self) -> bool {
        self.more
    }

    /// What is queued now (at most 16 reads of it: `MAX_READS_PER_DRAIN`), as
    /// paths to look at again: an event on a watch is reported under every
    /// path watched through it.
    pub fn drain(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        self.more = false;
        for reads in 0.. {
            if reads == MAX_READS_PER_DRAIN {
                self.more = true;
                break;
            }
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
                let Some(dirs) = self.dirs.get(&event.wd) else {
                    continue;
                };
                if event.mask.contains(EventMask::IGNORED) {
                    // The kernel dropped the watch (directory deleted).
                    forgotten.push(event.wd.clone());
                }
                let arrived = EventMask::CREATE | EventMask::MOVED_TO;
                let new_dir =
                    event.mask.contains(EventMask::ISDIR) && event.mask.intersects(arrived);
                for (dir, _) in dirs {
                    let path = match event.name {
                        Some(name) => dir.join(name as &OsStr),
                        None => dir.clone(),
                    };
                    if new_dir {
                        new_dirs.push(path.clone());
                    }
                    paths.push(path);
                }
            }
            for wd in forgotten {
                for (dir, _) in self.dirs.remove(&wd).unwrap_or_default() {
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

    #[test]
    fn a_renamed_directory_watched_again_keeps_its_watch_when_the_old_name_is_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
        std::fs::create_dir(&old).expect("mkdir");
        let mut watcher = Watcher::new().expect("inotify");
        watcher.add(&old).expect("watch");
        std::fs::rename(&old, &new).expect("rename");
        let _ = watcher.drain();
        // Same inode: the kernel hands back the same descriptor.
        watcher.add(&new).expect("watch again");
        watcher.remove(&old);
        std::fs::write(new.join("result.toml"), "x").expect("write");
        let seen = paths(watcher.drain());
        assert!(seen.contains(&new.join("result.toml")), "{seen:?}");
        // Two owners of one path: the watch stays until both are gone.
        watcher.add(&new).expect("second owner");
        watcher.remove(&new);
        std::fs::write(new.join("again"), "x").expect("write");
        assert!(paths(watcher.drain()).contains(&new.join("again")));
        watcher.remove(&new);
        std::fs::write(new.join("after"), "x").expect("write");
        assert!(watcher.drain().is_empty());
        assert_eq!(watcher.watched(), 0);
    }
}
