//! A stand-in session process whose main thread exits first: it starts a
//! worker thread, then ends the main thread alone (what `pthread_exit` in
//! `main` does, without unwinding Rust frames), so `/proc/<pid>/stat`
//! shows the leader as a zombie (`Z`) while the worker runs. The worker
//! waits for the file named by its first argument, writes a success
//! `result.toml` into the directory named by the second, and ends the
//! process. Used by the test that a zombie leader with live threads is
//! alive.

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(release), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: verdict-test-thread-leader <release-file> <session-dir>");
        std::process::exit(2);
    };
    let worker = std::thread::spawn(move || {
        // A helper's own loop, bounded: at most a minute.
        for _ in 0..12_000 {
            if release.exists() {
                let tmp = dir.join(".result.toml.tmp");
                std::fs::write(&tmp, "status = \"success\"\nexit_code = 0\n").expect("write");
                std::fs::rename(&tmp, dir.join("result.toml")).expect("rename");
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::process::exit(3);
    });
    std::mem::forget(worker);
    // SAFETY: SYS_exit (not exit_group) ends only the calling thread, with
    // no unwinding; the worker thread owns everything it uses and ends the
    // process itself.
    unsafe {
        libc::syscall(libc::SYS_exit, 0);
    }
    unreachable!("SYS_exit returned");
}
