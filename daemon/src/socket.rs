//! The listening socket: inherited from systemd (`LISTEN_FDS`) or bound by
//! us next to a `flock`ed pid file that keeps one daemon per socket path.
//!
//! Every resource is a guard: the lock file and the socket file are removed
//! when their guard drops, and only if they are still the ones we created.
//! Peer credentials are checked per connection in the server, not here.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::fs::{flock, FlockOperation, Mode};

/// The listening socket and, when we bound it ourselves, the guards that
/// remove the socket file and the lock when dropped.
#[derive(Debug)]
pub struct Listening {
    /// The listener.
    pub listener: UnixListener,
    /// `None` for a socket handed over by the service manager: not ours.
    pub guards: Option<Guards>,
}

/// Cleans up a socket we bound. Fields drop in order: the socket file goes
/// first, then the lock is released.
#[derive(Debug)]
pub struct Guards {
    _socket: Option<PathGuard>,
    _lock: LockGuard,
}

/// Takes the socket passed by systemd, if any (`LISTEN_FDS`, `LISTEN_PID`).
/// Its path is systemd's to remove, but we still take its lock (when we
/// can), so that a `verdictd` started by hand on the same path refuses.
pub fn activated() -> Result<Option<Listening>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let listener = fds
        .take_unix_listener(0)
        .context("LISTEN_FDS is set but fd 3 is not a listening Unix stream socket")?
        .context("LISTEN_FDS is set but fd 3 was already taken")?;
    let path = listener
        .local_addr()
        .ok()
        .and_then(|addr| addr.as_pathname().map(Path::to_path_buf));
    let lock = path
        .as_deref()
        .and_then(|path| match LockGuard::acquire(&lock_path(path), path) {
            Ok(lock) => Some(lock),
            Err(err) => {
                log::warn!("{err:#}");
                None
            }
        });
    let guards = lock.map(|lock| Guards {
        _socket: None,
        _lock: lock,
    });
    Ok(Some(Listening { listener, guards }))
}

/// Locks `<socket>.lock`, replaces a stale socket file and binds `path`
/// with mode 0600.
pub fn bind(path: &Path, uid: u32, private_dir: Option<&Path>) -> Result<Listening> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .with_context(|| format!("socket path {} has no directory", path.display()))?;
    if private_dir == Some(dir) {
        create_private_dir(dir)?;
    }
    check_dir(dir, uid)?;
    let lock = LockGuard::acquire(&lock_path(path), path)?;
    // Whoever stopped the last daemon here: this one is not stopped.
    let _ = std::fs::remove_file(verdict_core::paths::stopped_path(path));
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // Unlocked but answering: a socket held by the service manager.
            if answers(path) {
                bail!(
                    "something already listens on {} (the systemd socket unit?); \
                     stop it first or use another --socket",
                    path.display()
                );
            }
            log::info!("replacing stale socket {}", path.display());
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; remove it or choose another --socket",
            path.display()
        ),
        Err(_) => {}
    }
    // umask, not a chmod after bind: no window in which others may connect.
    let old_mask = rustix::process::umask(Mode::from_raw_mode(0o177));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old_mask);
    let listener = bound.with_context(|| format!("cannot bind {}", path.display()))?;
    let socket = PathGuard::new(path)?;
    Ok(Listening {
        listener,
        guards: Some(Guards {
            _socket: Some(socket),
            _lock: lock,
        }),
    })
}

/// Something accepts connections on `socket`: a live daemon (or the
/// service manager holding it), as opposed to a stale socket file.
fn answers(socket: &Path) -> bool {
    UnixStream::connect(socket).is_ok()
}

pub use verdict_core::paths::lock_path;

fn create_private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot create {}", dir.display())),
    }
}

/// Refuses a socket directory that other users could write to: they could
/// replace the socket and answer our clients.
fn check_dir(dir: &Path, uid: u32) -> Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| {
        format!(
            "socket directory {} does not exist or cannot be read",
            dir.display()
        )
    })?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if meta.uid() != uid && meta.uid() != 0 {
        bail!(
            "socket directory {} belongs to uid {}, not to you (uid {uid}); choose another --socket",
            dir.display(),
            meta.uid()
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        bail!(
            "socket directory {} is writable by other users (mode {mode:04o}); \
             choose a private directory (mode 0700) with --socket or $VERDICT_SOCKET",
            dir.display()
        );
    }
    Ok(())
}

/// An exclusive `flock` on the pid file; the file is removed on drop.
/// Fields drop in order: the path is unlinked while the lock is still held.
#[derive(Debug)]
pub struct LockGuard {
    _guard: PathGuard,
    _file: File,
}

/// How long a held lock with nothing listening on the socket is retried:
/// its holder is starting (and will listen) or exiting (and will let go).
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// Another daemon holds the socket's lock and serves it. A daemon that a
/// client started (`--spawned`) and that lost this race exits quietly: the
/// client connects to the winner.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AlreadyServing(String);

impl LockGuard {
    fn acquire(path: &Path, socket: &Path) -> Result<LockGuard> {
        let deadline = Instant::now() + LOCK_PATIENCE;
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot open lock file {}", path.display()))?;
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
                if answers(socket) || Instant::now() >= deadline {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    let who = if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    };
                    return Err(AlreadyServing(format!(
                        "another verdictd{who} is already serving {}; stop it first (`verdict stop --socket {0}`) or use another --socket",
                        socket.display()
                    ))
                    .into());
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            // A daemon that is exiting unlinks the file it locked; if we
            // locked that old inode, try again on the new one.
            let same = std::fs::metadata(path).is_ok_and(|on_disk| {
                file.metadata()
                    .is_ok_and(|ours| ours.ino() == on_disk.ino())
            });
            if !same {
                if Instant::now() >= deadline {
                    bail!(
                        "lock file {} keeps being replaced; is another verdictd starting?",
                        path.display()
                    );
                }
                continue;
            }
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            return Ok(LockGuard {
                _guard: PathGuard::new(path)?,
                _file: file,
            });
        }
    }
}

/// Removes a file on drop, if it is still the inode we created.
#[derive(Debug)]
pub struct PathGuard {
    path: PathBuf,
    ino: u64,
}

impl PathGuard {
    fn new(path: &Path) -> Result<PathGuard> {
        let ino = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .ino();
        Ok(PathGuard {
            path: path.into(),
            ino,
        })
    }
}

impl Drop for PathGuard {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|meta| meta.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
