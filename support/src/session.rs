//! Session directories and the processes that stand in for sessions.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{starttime, Harness};

/// One session directory, and the process standing in for the session.
#[derive(Debug)]
pub struct Session {
    /// The directory.
    pub dir: PathBuf,
    /// Its name.
    pub id: String,
    process: Option<Child>,
}

impl Session {
    /// Creates the directory `dir` (its last part is the id); no process yet.
    pub fn create(dir: PathBuf) -> Session {
        let id = dir
            .file_name()
            .expect("session id")
            .to_string_lossy()
            .into_owned();
        std::fs::create_dir_all(&dir).expect("session dir");
        Session {
            dir,
            id,
            process: None,
        }
    }

    /// The directory as a string.
    pub fn path(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp path")
    }

    /// Starts a real process and writes `daemon.pid` (`<pid> <starttime>`).
    pub fn start_process(&mut self) -> i32 {
        self.start_process_in_group(None)
    }

    /// [`Session::start_process`], the process joining process group
    /// `group` (0: a new group it leads), so many sessions can end at once.
    pub fn start_process_in_group(&mut self, group: Option<i32>) -> i32 {
        let (child, record) = spawn_sleeper(group);
        self.write("daemon.pid", &record);
        let pid = child.id() as i32;
        self.process = Some(child);
        pid
    }

    /// The session process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// Kills the session process and reaps it.
    pub fn end_process(&mut self) {
        let mut child = self.process.take().expect("a session process");
        child.kill().expect("kill session process");
        child.wait().expect("reap session process");
    }

    /// Kills and reaps the session process, if it still runs.
    pub fn reap(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the session process without waiting for it (reaped on drop):
    /// for many sessions ending at once.
    pub fn kill_process(&mut self) {
        if let Some(child) = self.process.as_mut() {
            let _ = child.kill();
        }
    }

    /// Writes a file the way csa does: to a temp name, then renamed in.
    pub fn write(&self, name: &str, contents: &str) {
        write_atomic(&self.dir, name, contents);
    }

    /// Writes `result.toml`.
    pub fn write_result(&self, status: &str, exit_code: i32) {
        let summary = "summary = \"did the thing\"\n";
        self.write(
            "result.toml",
            &format!("status = \"{status}\"\nexit_code = {exit_code}\n{summary}"),
        );
    }

    /// Writes `daemon-completion.toml`.
    pub fn write_packet(&self, status: &str, exit_code: i32) {
        self.write(
            "daemon-completion.toml",
            &format!("exit_code = {exit_code}\nstatus = \"{status}\"\n"),
        );
    }

    /// Writes a non-empty `stdout.log`.
    pub fn write_stdout(&self) {
        self.write("stdout.log", "some output\n");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reap();
    }
}

/// A stand-in session process (`sleep 3600`) and its `daemon.pid` record,
/// `"<pid> <starttime>\n"`. The [`Sleeper`] kills and reaps it when
/// dropped, so no test leaves one behind.
pub fn sleeper() -> (Sleeper, String) {
    let (child, record) = spawn_sleeper(None);
    (Sleeper(child), record)
}

/// A stand-in process that is killed and reaped when dropped.
#[derive(Debug)]
pub struct Sleeper(Child);

impl std::ops::Deref for Sleeper {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Sleeper {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_sleeper(group: Option<i32>) -> (Child, String) {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new("sleep");
    command.arg("3600").stdin(Stdio::null());
    if let Some(group) = group {
        command.process_group(group);
    }
    let child = command.spawn().expect("spawn sleep");
    let pid = child.id() as i32;
    crate::proc::started(pid);
    let record = format!("{pid} {}\n", starttime(pid));
    (child, record)
}

impl Session {
    /// A session whose process has already ended (`daemon.pid` names it).
    pub fn ended(harness: &Harness, id: &str) -> Session {
        let mut session = harness.session(id);
        session.start_process();
        session.end_process();
        session
    }
}

/// Makes a FIFO at `path` (mode 0600): a file that blocks whoever opens it.
pub fn mkfifo(path: impl AsRef<Path>) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path.as_ref(),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .expect("mkfifo");
}

/// Writes `dir/name` the way csa does: to a temp name, then renamed in.
/// Copies the directory `from` to `to` (made if missing), every copy
/// writable by its owner (fixtures are checked in read-only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy fixture file");
            let mut perms = std::fs::metadata(&target).expect("meta").permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms).expect("writable copy");
        }
    }
}

/// Writes `name` in `dir` as a session does: a temp file renamed in place.
pub fn write_atomic(dir: &Path, name: &str, contents: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).expect("write temp file");
    std::fs::rename(&tmp, dir.join(name)).expect("rename into place");
}
