//! Stopping a wait from another thread: a [`Stopper`] shuts the wait's
//! connection down (which cancels its waits at the daemon) and wakes its
//! degraded-mode threads, so a blocked [`crate::Waits`] returns
//! [`crate::Error::Stopped`] at once, without polling.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A handle that stops a [`crate::Waits`]: give it with
/// [`crate::Waits::stop_with`], keep a clone, call [`Stopper::stop`].
#[derive(Debug, Clone, Default)]
pub struct Stopper {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stopped: AtomicBool,
    /// What to wake: the connection in use, the degraded threads' pipe.
    wake: Mutex<Wake>,
}

#[derive(Debug, Default)]
struct Wake {
    stream: Option<UnixStream>,
    pipe: Option<OwnedFd>,
}

impl Stopper {
    /// A stopper that has not stopped anything yet.
    pub fn new() -> Stopper {
        Stopper::default()
    }

    /// Stops the wait: it returns [`crate::Error::Stopped`], and the daemon
    /// drops its waits. Stopping twice is harmless.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        let wake = self.inner.wake.lock().unwrap_or_else(|e| e.into_inner());
        wake.kick();
    }

    /// Whether [`Stopper::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// The wait uses this connection now (a copy of its descriptor).
    pub(crate) fn watch_stream(&self, stream: Option<UnixStream>) {
        let mut wake = self.inner.wake.lock().unwrap_or_else(|e| e.into_inner());
        wake.stream = stream;
        // A stop that came before this connection stops it too.
        if self.is_stopped() {
            wake.kick();
        }
    }

    /// The degraded threads stop when this pipe becomes readable.
    pub(crate) fn watch_pipe(&self, pipe: OwnedFd) {
        let mut wake = self.inner.wake.lock().unwrap_or_else(|e| e.into_inner());
        wake.pipe = Some(pipe);
        if self.is_stopped() {
            wake.kick();
        }
    }
}

impl Wake {
    fn kick(&self) {
        if let Some(stream) = &self.stream {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        if let Some(pipe) = &self.pipe {
            let _ = rustix::io::write(pipe, b"x");
        }
    }
}
