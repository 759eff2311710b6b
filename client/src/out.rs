//! Writing to stdout and stderr without letting a closed or full stream
//! change the exit code. `println!` and `eprintln!` panic when a write
//! fails, and with `panic = "abort"` a waiter whose reader went away would
//! die with 134 instead of the verdict's code.
//!
//! stderr errors are ignored: the exit code is the answer, the lines are a
//! courtesy. A broken pipe on stdout ends our writing to it, as `head`
//! expects (ripgrep does the same), and the exit code stays the verdict's.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// One line on stderr; errors are ignored.
pub fn err_line(line: &str) {
    let mut err = io::stderr().lock();
    let _ = err
        .write_all(line.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}

/// Text on stderr without a newline (the TTY status line).
pub fn err_text(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// One line on stdout; stops writing to stdout once a write failed.
pub fn out_line(line: &str) {
    with_stdout(|out| {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")
    });
}

/// Text on stdout as it is (no newline added).
pub fn out_text(text: &str) {
    with_stdout(|out| out.write_all(text.as_bytes()));
}

fn with_stdout(write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::stdout().lock();
    if write(&mut out).and_then(|()| out.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// stdout as a writer with the same rule: once a write failed, the rest
/// is dropped (and reported written, so a copy to it ends quietly).
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        io::stdout()
            .lock()
            .write(buf)
            .inspect_err(|_| STDOUT_CLOSED.store(true, Ordering::Relaxed))
    }

    fn flush(&mut self) -> io::Result<()> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Ok(());
        }
        io::stdout()
            .flush()
            .inspect_err(|_| STDOUT_CLOSED.store(true, Ordering::Relaxed))
    }
}
