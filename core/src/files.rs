//! Reading and parsing the files of one session directory (README.md, "How a verdict is decided").
//!
//! Everything here is defensive: every session file is opened one way,
//! [`open_file`] (non-blocking, never through a link for metadata, then
//! `fstat`ed: a regular file within the bound, or a reason), so a FIFO,
//! a device or a link to a credentials file is reported as
//! [`FileState::Malformed`] without being read. Parsers turn bytes into
//! plain domain values; they never panic on bad input, and their reasons
//! name the line and column of a problem, never the content.
//!
//! This module does not decide anything: [`crate::rules`] does.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::SystemTime;

mod parse;

pub use parse::{parse_legacy, parse_packet, parse_pid_file, parse_result};
use rustix::fs::OFlags;

/// Largest session file that is read at all. Real files are a few KiB; the
/// bound keeps a runaway writer from making the daemon allocate without end.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// File names inside a session directory.
pub const PID_FILE: &str = "daemon.pid";
/// The session's own outcome, written before the process exits.
pub const RESULT_FILE: &str = "result.toml";
/// How the process ended, written just before it exits.
pub const PACKET_FILE: &str = "daemon-completion.toml";
/// Legacy completion marker: an integer exit code.
pub const LEGACY_FILE: &str = ".complete";
/// The session's output: copied to the caller, and rule C3 asks whether
/// it says anything.
pub const STDOUT_FILE: &str = "stdout.log";
/// csa's fallback result, used when `result.toml` is missing.
pub const OUTPUT_RESULT_FILE: &str = "output/result.toml";
/// Reason of a verdict taken from a legacy `.complete` file.
pub const LEGACY_REASON: &str = "legacy_complete_marker";

/// What was found at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState<T> {
    /// No file at that path.
    Absent,
    /// A file exists but cannot be used; the string says why.
    Malformed(String),
    /// A usable file with its modification time.
    Present {
        /// The parsed contents.
        value: T,
        /// The file's mtime, when the filesystem reports one.
        mtime: Option<SystemTime>,
    },
}

impl<T> FileState<T> {
    /// The parsed value, if the file was usable.
    pub fn value(&self) -> Option<&T> {
        match self {
            FileState::Present { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// Contents of `daemon.pid`: `"<pid> <starttime>\n"` or `"<pid>\n"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidFile {
    /// The session process's pid (always > 1).
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` at launch, guarding against PID reuse.
    pub starttime: Option<u64>,
}

/// The fields of `result.toml` that verdict uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionResult {
    /// `success`, `failure`, `timeout`, `signal`, …
    pub status: String,
    /// The session's exit code.
    pub exit_code: i32,
    /// A one-line summary, if the session wrote one.
    pub summary: Option<String>,
}

/// A completion packet: `daemon-completion.toml`, or a legacy `.complete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// How the process ended (`success`, `failure`, `signal`, …).
    pub status: String,
    /// The process's exit code.
    pub exit_code: i32,
    /// Why it ended that way, e.g. `daemon_sigterm`.
    pub reason: Option<String>,
}

/// The bytes of a file and its mtime.
pub type Contents = (Vec<u8>, Option<SystemTime>);

/// Whether a session file may be reached through a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Metadata (`daemon.pid`, `result.toml`, packets, `.complete`, locks):
    /// a link is refused, so no file outside the session is ever read
    /// into a verdict.
    Refuse,
    /// `stdout.log`: csa may copy it as a link, but only to a regular file.
    Follow,
}

/// The one way a session file is opened, by the daemon, degraded mode and
/// every client: `O_NONBLOCK | O_CLOEXEC | O_NOCTTY` (and `O_NOFOLLOW` for
/// [`Links::Refuse`]), then `fstat` on the open file, which must be a
/// regular file of at most `max` bytes. Nothing is `stat`ed first and
/// trusted: a FIFO swapped in at any moment is opened without blocking and
/// refused by the `fstat`. (For [`Links::Follow`] a `stat` comes first
/// too, only so that a link to a device is not even opened.)
///
/// `Ok(None)`: nothing at `path`. `Err(reason)`: something is there that
/// must not or cannot be read; the reason names no content.
pub fn open_file(
    path: &Path,
    links: Links,
    max: u64,
) -> Result<Option<(File, std::fs::Metadata)>, String> {
    let mut flags = OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    match links {
        Links::Refuse => flags |= OFlags::NOFOLLOW,
        Links::Follow => match std::fs::metadata(path) {
            Ok(meta) => check_kind_and_size(&meta, max)?,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(describe_io(&err)),
        },
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err)
            if links == Links::Refuse
                && err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
        {
            return Err("is a symbolic link; session files are not followed through links".into())
        }
        Err(err) => return Err(describe_io(&err)),
    };
    let meta = file.metadata().map_err(|err| describe_io(&err))?;
    check_kind_and_size(&meta, max)?;
    Ok(Some((file, meta)))
}

/// Reads at most [`MAX_FILE_BYTES`] of a regular session file (never
/// through a link) without blocking.
///
/// Returns `Ok(None)` when nothing is at `path`, and `Err(reason)` when the
/// file exists but must not or cannot be read.
pub fn read_bounded(path: &Path) -> Result<Option<Contents>, String> {
    read_at_most(path, MAX_FILE_BYTES)
}

/// [`read_bounded`] with a smaller bound (a lock file is a few bytes).
pub fn read_at_most(path: &Path, max: u64) -> Result<Option<Contents>, String> {
    let Some((file, meta)) = open_file(path, Links::Refuse, max)? else {
        return Ok(None);
    };
    let bytes = read_limited(file, meta.len(), max)?;
    Ok(Some((bytes, meta.modified().ok())))
}

fn read_limited(file: File, size: u64, max: u64) -> Result<Vec<u8>, String> {
    // Sized from the stat, so that a file is read in one call (and one
    // more to see its end), not in doubling chunks from 32 bytes.
    let mut bytes = Vec::with_capacity(size.min(max) as usize + 1);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| describe_io(&err))?;
    if bytes.len() as u64 > max {
        return Err(format!("grew larger than {max} bytes while being read"));
    }
    Ok(bytes)
}

fn check_kind_and_size(meta: &std::fs::Metadata, max: u64) -> Result<(), String> {
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_symlink() {
            "a symbolic link"
        } else {
            "not a regular file"
        };
        return Err(format!("is {what}, not a regular file"));
    }
    if meta.len() > max {
        return Err(format!(
            "is {} bytes, larger than the {max}-byte limit",
            meta.len()
        ));
    }
    Ok(())
}

/// The session's `stdout.log` in `dir`, opened the one safe way (a link is
/// followed, to a regular file only), with what `fstat` said of it. Copy
/// at most its `len()` bytes: a file still growing must not keep a caller
/// reading after its verdict is in.
pub fn open_output(dir: &Path) -> Result<Option<(File, std::fs::Metadata)>, String> {
    open_file(&dir.join(STDOUT_FILE), Links::Follow, u64::MAX)
}

fn describe_io(err: &io::Error) -> String {
    format!("cannot be read: {err}")
}

/// Reads and parses one session file into a [`FileState`].
pub fn load<T>(path: &Path, parse: fn(&[u8]) -> Result<T, String>) -> FileState<T> {
    parsed(read_bounded(path), parse)
}

fn parsed<T>(
    read: Result<Option<Contents>, String>,
    parse: fn(&[u8]) -> Result<T, String>,
) -> FileState<T> {
    match read {
        Ok(None) => FileState::Absent,
        Err(reason) => FileState::Malformed(reason),
        Ok(Some((bytes, mtime))) => match parse(&bytes) {
            Ok(value) => FileState::Present { value, mtime },
            Err(reason) => FileState::Malformed(reason),
        },
    }
}

/// What `stat` says of a file's contents: while it is unchanged, so is the
/// file (a rewrite changes ctime, a rename-over changes the inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Timestamps are coarse (a clock tick): a same-size rewrite in place
/// within one tick keeps the stamp. A stamp this recent is not trusted.
const RACY: std::time::Duration = std::time::Duration::from_secs(2);

impl Stamp {
    /// Changed so recently (as of `now`) that a rewrite in the same tick
    /// could hide.
    fn racy(&self, now: SystemTime) -> bool {
        let ctime = std::time::UNIX_EPOCH
            + std::time::Duration::new(
                self.ctime.0.max(0) as u64,
                self.ctime.1.clamp(0, 999_999_999) as u32,
            );
        now.duration_since(ctime).map_or(true, |age| age < RACY)
    }

    fn of(m: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// A file's last reading, keyed by its [`Stamp`].
pub type Cached<T> = Option<(Stamp, FileState<T>)>;

/// Like [`load`], but returns the cached reading while the file's stamp is
/// unchanged: one `stat` instead of open, read and close, and no `IN_OPEN`
/// event for a watcher of the directory.
pub fn load_cached<T: Clone>(
    path: &Path,
    parse: fn(&[u8]) -> Result<T, String>,
    cache: &mut Cached<T>,
) -> FileState<T> {
    load_cached_at(path, parse, cache, SystemTime::now())
}

fn load_cached_at<T: Clone>(
    path: &Path,
    parse: fn(&[u8]) -> Result<T, String>,
    cache: &mut Cached<T>,
    now: SystemTime,
) -> FileState<T> {
    // The link itself, not what it names: metadata files are never
    // followed (see [`Links::Refuse`]); reading one says so.
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) => {
            *cache = None;
            if err.kind() == io::ErrorKind::NotFound {
                return FileState::Absent;
            }
            // A permission problem: `load` words it.
            return load(path, parse);
        }
    };
    let stamp = Stamp::of(&meta);
    if let Some((cached, state)) = cache.as_ref() {
        if *cached == stamp && !stamp.racy(now) {
            return state.clone();
        }
    }
    // The stamp only says whether to read again; what is read is checked
    // on the open file.
    let state = load(path, parse);
    *cache = Some((stamp, state.clone()));
    state
}

/// What `stdout.log` holds, as far as rule C3 cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// No `stdout.log` (or not a regular file).
    Missing,
    /// Empty, or only whitespace.
    Blank,
    /// Something a caller can read.
    Content,
}

/// Reads `stdout.log` far enough to tell [`Output::Blank`] from
/// [`Output::Content`]: up to the first byte that is not whitespace, and
/// never past [`MAX_FILE_BYTES`] (a larger file counts as content).
pub fn stdout_state(dir: &Path) -> Output {
    let (file, meta) = match open_output(dir) {
        Ok(Some(opened)) => opened,
        // Larger than anything is impossible; anything else is no output.
        Ok(None) | Err(_) => return Output::Missing,
    };
    match meta.len() {
        0 => return Output::Blank,
        len if len > MAX_FILE_BYTES => return Output::Content,
        _ => {}
    }
    let mut chunk = [0u8; 4096];
    let mut reader = file.take(meta.len().min(MAX_FILE_BYTES));
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return Output::Blank,
            Ok(n) if chunk[..n].iter().all(u8::is_ascii_whitespace) => {}
            Ok(_) => return Output::Content,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            // Unreadable now but a regular file with bytes: it says something.
            Err(_) => return Output::Content,
        }
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
