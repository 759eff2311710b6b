//! `verdict events --exec CMD…`: a command run once per session end (and,
//! with `--on-start`, once per start), in this client, never in the
//! daemon. At most `--jobs` run at once; the others wait in a bounded
//! queue, and an event that finds it full is reported on stderr, never
//! dropped silently. A command still running at `--timeout` is killed.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::out::err_line;

/// Events waiting for a free job slot, at most.
pub const QUEUE: usize = 16_384;

/// What a command is run for: its environment and its stdin.
#[derive(Debug)]
pub struct Job {
    /// `VERDICT_*` variables.
    pub env: Vec<(&'static str, String)>,
    /// The event's protocol line, on the command's stdin.
    pub stdin: String,
}

/// The running side: `jobs` workers sharing one bounded queue.
pub struct Exec {
    queue: SyncSender<Job>,
    dropped: Arc<AtomicU64>,
}

impl Exec {
    /// Starts `jobs` workers that run `command` with `timeout`.
    pub fn start(command: Vec<OsString>, jobs: usize, timeout: Duration) -> Exec {
        let (queue, jobs_rx) = sync_channel::<Job>(QUEUE);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let command = Arc::new(command);
        for _ in 0..jobs.max(1) {
            let (jobs_rx, command) = (Arc::clone(&jobs_rx), Arc::clone(&command));
            std::thread::spawn(move || work(&jobs_rx, &command, timeout));
        }
        Exec {
            queue,
            dropped: Arc::default(),
        }
    }

    /// Queues one run; says so on stderr when the queue is full.
    pub fn submit(&self, job: Job) {
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                let session = job
                    .env
                    .iter()
                    .find(|(name, _)| *name == "VERDICT_SESSION")
                    .map_or("?", |(_, value)| value.as_str());
                err_line(&format!(
                    "verdict: --exec queue is full ({QUEUE} waiting): not run for session {session} \
                     ({dropped} so far); raise --jobs or make the command faster"
                ));
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, command: &[OsString], timeout: Duration) {
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        run_one(command, job, timeout);
    }
}

fn run_one(command: &[OsString], job: Job, timeout: Duration) {
    let Some((program, args)) = command.split_first() else {
        return;
    };
    let spawned = Command::new(program)
        .args(args)
        .envs(job.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            err_line(&format!(
                "verdict: --exec: cannot run {}: {err}",
                program.to_string_lossy()
            ));
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin is fine.
        let _ = stdin.write_all(job.stdin.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    if !wait_within(&mut child, timeout) {
        let _ = child.kill();
        let _ = child.wait();
        err_line(&format!(
            "verdict: --exec: {} ran past --timeout {}s and was killed",
            program.to_string_lossy(),
            timeout.as_secs_f64()
        ));
    }
}

/// Waits for `child` until `timeout`: true if it exited by then.
fn wait_within(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    #[cfg(target_os = "linux")]
    if let Some(fd) = rustix::process::Pid::from_raw(child.id() as i32)
        .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok())
    {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let left = Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            match poll(&mut [PollFd::new(&fd, PollFlags::IN)], Some(&left)) {
                Ok(0) => return false,
                Ok(_) => return child.wait().is_ok(),
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
    }
    // No pidfd: look every few milliseconds.
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
