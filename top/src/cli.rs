//! `verdict-top`'s command line (also compiled into `cargo xtask` for its
//! man page).

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "verdict-top",
    version,
    about = "Every agent session under verdictd's roots at a glance, live",
    after_help = "\
Keys: Up/Down or k/j move, Enter shows the end of the session's stdout.log, \
f shows failed sessions only, / filters by id or project, q quits.

It never polls: rows come from a scan of each project's newest sessions at \
start, then from verdictd's event stream. When verdictd goes away the header \
says `retrying` and why; once it is back, `reconnected`, and the sessions \
shown as running are read again. It does not start verdictd.

Exit status:
  0    quit with q
  1    the terminal could not be used
  3    --once: verdictd unreachable
  101  a panic (the terminal is restored first)
  128+N  signal N (SIGTERM, SIGHUP, SIGINT; the terminal is restored first)

The socket is --socket, else $VERDICT_SOCKET, else $XDG_RUNTIME_DIR/verdictd.sock, \
else /tmp/verdictd-<uid>/verdictd.sock."
)]
pub struct Cli {
    /// Print the table once and exit (for scripts and tests).
    #[arg(long)]
    pub once: bool,
    /// With --once: one JSON object per session, a line each.
    #[arg(long, requires = "once")]
    pub json: bool,
    /// Sessions listed per project from the first scan.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub per_project: usize,
    /// The daemon's socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}
