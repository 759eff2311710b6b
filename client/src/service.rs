//! `verdict service install`: make verdictd a per-user service of the
//! system's service manager: systemd user units on Linux
//! ([`systemd`]), a launchd agent on macOS ([`launchd`]). `--print` shows
//! what would be written and writes nothing.

use verdict_client::Exit;

mod launchd;
mod systemd;

/// Runs the command; returns the exit code.
pub fn install(print: bool) -> Exit {
    if cfg!(target_os = "macos") {
        launchd::install(print)
    } else if cfg!(target_os = "linux") {
        systemd::install(print)
    } else {
        crate::out::err_line(
            "verdict: there is no service manager integration on this system; start verdictd \
             from your login profile (`verdictd &`), or let `verdict wait` start it when needed",
        );
        Exit::Failure
    }
}
