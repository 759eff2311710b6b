//! Session ids are looked up here, on a thread of their own, never on the
//! event loop: finding an id may list every `sessions/` directory under
//! the roots, and building the index walks the roots (up to
//! [`verdict_core::resolve::MAX_VISITS`] directories), work whose size an
//! outsider controls.
//!
//! The thread owns the [`Index`]. A lookup that misses is not answered
//! until the index has been rebuilt once after it was asked, and the
//! index is rebuilt at most once per [`MIN_REBUILD_INTERVAL`]: twenty
//! mistyped ids in a burst cost one walk, and the loop serves everyone
//! else meanwhile. Jobs come over a bounded channel ([`MAX_PENDING`]); the
//! answers go back over a channel, with a [`mio::Waker`] to wake the loop.
//!
//! This module resolves; what a resolved wait means is the registry's.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict_core::resolve::{resolve_indexed, Index, LookupError, Resolved, Root};

/// Lookups queued at once; past it a wait by id gets `busy`.
pub const MAX_PENDING: usize = 4096;
/// The roots are walked again at most this often, however many ids miss.
pub const MIN_REBUILD_INTERVAL: Duration = Duration::from_secs(1);

/// One id to look up for a wait.
#[derive(Debug)]
pub struct Job {
    /// The wait's key in the registry.
    pub ticket: u64,
    /// The id (or prefix) asked for.
    pub session: String,
    /// The caller's working directory.
    pub cwd: Option<String>,
    /// The roots in force when it was asked.
    pub roots: Arc<[Root]>,
}

/// The answer to a [`Job`].
#[derive(Debug)]
pub struct Answer {
    /// The job's ticket.
    pub ticket: u64,
    /// Where the session is, or why it is not found.
    pub result: Result<Resolved, LookupError>,
}

impl Answer {
    /// Looks `job` up in the index as it is.
    fn to(job: &Job, index: &mut Index) -> Answer {
        Answer {
            ticket: job.ticket,
            result: resolve_indexed(&job.session, job.cwd.as_deref(), &job.roots, index),
        }
    }
}

/// The loop's end of the lookup thread.
#[derive(Debug)]
pub struct Lookups {
    jobs: SyncSender<Job>,
    answers: Receiver<Answer>,
}

impl Lookups {
    /// Starts the thread; it wakes the loop through `waker` when it answers.
    pub fn start(waker: mio::Waker) -> std::io::Result<Lookups> {
        let (jobs, inbox) = mpsc::sync_channel(MAX_PENDING);
        let (outbox, answers) = mpsc::channel();
        std::thread::Builder::new()
            .name("verdictd-lookup".into())
            .spawn(move || serve(&inbox, &outbox, &waker))?;
        Ok(Lookups { jobs, answers })
    }

    /// Queues a job; false when the queue is full (or the thread is gone).
    pub fn ask(&self, job: Job) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// The answers that have arrived.
    pub fn answers(&self) -> Vec<Answer> {
        self.answers.try_iter().collect()
    }
}

/// The thread: answer hits at once, hold misses for the next rebuild.
fn serve(inbox: &Receiver<Job>, outbox: &mpsc::Sender<Answer>, waker: &mio::Waker) {
    let mut index = Index::default();
    let mut roots: Option<Arc<[Root]>> = None;
    let mut built = Instant::now();
    let mut warned = false;
    let mut misses: Vec<Job> = Vec::new();
    loop {
        let job = if misses.is_empty() {
            match inbox.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            }
        } else {
            let due = built + MIN_REBUILD_INTERVAL;
            match inbox.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        let mut answered = Vec::new();
        if let Some(job) = job {
            if roots.as_deref() != Some(&*job.roots) {
                // A reloaded config: what was indexed is another tree.
                index.clear();
                built = Instant::now();
                roots = Some(Arc::clone(&job.roots));
            }
            let answer = Answer::to(&job, &mut index);
            match answer.result {
                Err(ref err) if err.is_unknown_id() => misses.push(job),
                _ => answered.push(answer),
            }
        }
        if !misses.is_empty() && Instant::now() >= built + MIN_REBUILD_INTERVAL {
            index.clear();
            built = Instant::now();
            answered.extend(misses.drain(..).map(|job| Answer::to(&job, &mut index)));
        }
        if index.truncated() && !warned {
            log::warn!(
                "stopped indexing session roots after {} directories; \
                 ids under the rest are not found (pass the absolute path)",
                verdict_core::resolve::MAX_VISITS
            );
            warned = true;
        }
        if answered.is_empty() {
            continue;
        }
        for answer in answered {
            if outbox.send(answer).is_err() {
                return;
            }
        }
        if let Err(err) = waker.wake() {
            log::error!("cannot wake the event loop for id lookups: {err}");
        }
    }
}
