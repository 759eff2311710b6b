//! `verdict`'s command line, alone in this file so that the man pages and
//! shell completions are generated from it (`cargo xtask docs`) without
//! growing the binary.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "verdict",
    version,
    about = "Wait for an agent session's completion verdict from verdictd",
    after_help = "\
Exit codes of `verdict wait`:
  0    completed with status success and exit code 0, or still running at the cap (kv_warm)
  1    completed otherwise (failure, signal, synthetic failure), or the session directory was removed
  2    bad invocation, unknown session, or an ambiguous id prefix (the candidates are listed)
  3    verdictd unreachable and could not be started, did not answer by the cap + 5 s, or a protocol error
  124  the cap fired with no verdict and no live process

The socket is --socket, else $VERDICT_SOCKET, else $XDG_RUNTIME_DIR/verdictd.sock, \
else /tmp/verdictd-<uid>/verdictd.sock."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Block until SESSION has a verdict, then print what `csa session wait` prints:
    /// the session's stdout.log and the COMPLETED marker on stdout, sentences,
    /// markers and hints on stderr. With several sessions, one call waits for
    /// all of them (--all) or the first to complete (--any), printing each
    /// session's output under a `==> SESSION <==` header as it ends.
    #[command(allow_negative_numbers = true)]
    Wait(WaitCmd),
    /// Print every session's start and end under the daemon's roots as they
    /// happen, one line each (`started ID pid N DIR`, `ended ID STATUS exit_code=N
    /// synthetic=B DIR`), until interrupted. Sessions that had ended before
    /// are not listed.
    Events {
        /// Only sessions under DIR (repeatable): a filter; DIR must lie under
        /// one of the daemon's roots. It adds no root (that is `verdictd
        /// --root DIR`, or a [[root]] table in verdictd's config).
        #[arg(long, value_name = "DIR")]
        root: Vec<PathBuf>,
        /// Print the protocol's event lines (JSON) instead.
        #[arg(long)]
        json: bool,
        /// The daemon's socket.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Do not start verdictd when nothing listens; exit 3 instead.
        #[arg(long)]
        no_spawn: bool,
        /// Also start this many --exec commands at most at once; the others
        /// wait their turn (up to 16,384; past that an event is reported on
        /// stderr and not run).
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
        /// Kill an --exec command still running after SECONDS.
        #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_cap)]
        timeout: Duration,
        /// Run the --exec command at every start too (VERDICT_EVENT=started).
        #[arg(long, requires = "exec")]
        on_start: bool,
        /// Run CMD ARGS… once per session end, in this client: the verdict in
        /// its environment (VERDICT_EVENT, VERDICT_SESSION, VERDICT_DIR,
        /// VERDICT_STATUS, VERDICT_EXIT_CODE, VERDICT_WAIT_EXIT,
        /// VERDICT_SYNTHETIC, VERDICT_SUMMARY) and the event's JSON line on
        /// its stdin. Give it last: everything after it is the command.
        #[arg(long, value_name = "CMD", num_args = 1.., allow_hyphen_values = true)]
        exec: Vec<std::ffi::OsString>,
    },
    /// Install verdictd as a per-user service: systemd user units (socket-activated)
    /// on Linux, a launchd agent on macOS.
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Stop your verdictd on this socket (the pid in its lock file), and
    /// wait until it has gone. Other users' daemons are never touched.
    Stop {
        /// The daemon's socket.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Stop its verdict clients first (`verdict wait`, `verdict events`,
        /// verdict-mcp), which would otherwise start it again when they
        /// reconnect. Other programs connected are named, not stopped.
        #[arg(long)]
        and_clients: bool,
    },
    /// Answer as csa: `verdict csa session wait ARGS` is `csa session wait`
    /// answered by verdict (csa's flags, csa's command names in hints);
    /// any other csa command runs the real `csa` found on PATH. Run as
    /// `csa` (a symlink to verdict), verdict does the same.
    #[command(disable_help_flag = true)]
    Csa {
        /// csa's command line.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run COMMAND as a session in csa's layout, so that `verdict wait ID`,
    /// `verdict events`, verdict-mcp and csa see it: the directory (by
    /// default a fresh ULID among the current project's csa sessions),
    /// `daemon.pid`, the command's output in stdout.log and stderr.log, and
    /// at its end daemon-completion.toml with its exit code (128 + the
    /// signal when one killed it). Prints `ID<TAB>DIR` and returns at once;
    /// the command runs under a supervisor of its own that outlives this
    /// terminal. The command finds its session in $VERDICT_SESSION_DIR and
    /// $VERDICT_SESSION_ID; a result.toml it writes there wins over its exit
    /// code. A command that exits 0 and prints nothing gets a result.toml
    /// saying so (csa's rules would fail an empty success).
    Run(RunCmd),
    /// The supervisor of `verdict run` (not for people).
    #[command(name = "__supervise", hide = true)]
    Supervise {
        dir: PathBuf,
        id: String,
        #[arg(allow_hyphen_values = true, last = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Every session under the daemon's roots at a glance, live (`verdict-top`,
    /// installed next to verdict): `verdict top [--once [--json]]`.
    #[command(disable_help_flag = true)]
    Top {
        /// verdict-top's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Show the daemon's counters (sessions, waiters, verdicts sent, ...).
    Status {
        /// Print the status object as one JSON line.
        #[arg(long)]
        json: bool,
        /// The daemon's socket.
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}

/// `verdict run`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RunCmd {
    /// The session directory itself (made; it must be new or empty).
    #[arg(long, value_name = "DIR", conflicts_with = "root")]
    pub dir: Option<PathBuf>,
    /// Make the session as ROOT/sessions/ID.
    #[arg(long, value_name = "ROOT")]
    pub root: Option<PathBuf>,
    /// The session's id (its directory's name) instead of a fresh ULID.
    #[arg(long, value_name = "ID", conflicts_with = "dir")]
    pub id: Option<String>,
    /// Then wait for it, as `verdict wait DIR` does, and exit with its code.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: the cap, as `verdict wait --cap`.
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    pub cap: Option<String>,
    /// With --wait: the daemon's socket.
    #[arg(long, value_name = "PATH", requires = "wait")]
    pub socket: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(
        allow_hyphen_values = true,
        last = true,
        required = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<std::ffi::OsString>,
}

/// `verdict wait`'s arguments (also what `csa session wait` accepts).
#[derive(Debug, clap::Args)]
pub struct WaitCmd {
    /// Session directory (a path), or a session id or unique prefix of one,
    /// looked up in the current project's csa sessions first, then under every root.
    #[arg(required_unless_present = "session", value_name = "SESSION")]
    pub sessions: Vec<String>,
    /// The session, as csa names it (`--session ID`); same as SESSION.
    #[arg(long = "session", value_name = "ID")]
    pub session: Option<String>,
    /// With several sessions: return when every one has an answer (the default).
    /// Exit 0 if every session's code is 0, else 1 if any is 1, else 124;
    /// 2 if a session is unknown (the others are still waited for).
    #[arg(long, conflicts_with = "any")]
    pub all: bool,
    /// With several sessions: return at the first completed one, with its code,
    /// and cancel the rest. At the cap: 0 if any still runs, else 124.
    #[arg(long)]
    pub any: bool,
    /// Give up after SECONDS: exit 0 (kv_warm) if the session still runs, 124 if not.
    /// 0 waits without a cap; the default is the daemon's (240 s).
    #[arg(long, value_name = "SECONDS", value_parser = parse_cap)]
    pub cap: Option<Duration>,
    /// Print each verdict object as one JSON line on stdout (in arrival order),
    /// instead of the session's output and the marker.
    #[arg(long)]
    pub json: bool,
    /// The daemon's socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Do not start verdictd when nothing listens; exit 3 instead.
    #[arg(long, conflicts_with = "no_daemon")]
    pub no_spawn: bool,
    /// Wait without verdictd: watch each session directory and its process
    /// here, with the daemon's rules. Also what happens by itself when no
    /// daemon can be reached or started.
    #[arg(long)]
    pub no_daemon: bool,
    /// Print what this csa version prints: 1445 (csa PR #1445, the default)
    /// or 1142 (csa 0.1.1142). Default: $VERDICT_CSA, else `csa = "…"` in
    /// $XDG_CONFIG_HOME/verdict/verdict.toml, else 1445.
    #[arg(long = "csa", value_name = "VERSION", value_parser = ["1445", "1142"])]
    pub csa: Option<String>,
    /// Look the session id up in this project (csa's --cd).
    #[arg(long = "cd", value_name = "DIR")]
    pub cd: Option<PathBuf>,
    /// csa 1142: the caller's model provider; the cap is its
    /// [kv_cache.provider_ttls] entry in csa's config.toml (required there).
    #[arg(long, value_name = "KEY")]
    pub model_provider: Option<String>,
    /// csa 1142: print the session's stdout.log instead of the summary
    /// (also CSA_WAIT_VERBOSE=1).
    #[arg(long)]
    pub verbose: bool,
    /// Accepted for csa's command line; not enforced (verdict starts no
    /// session, so it watches no session's memory).
    #[arg(long, value_name = "MB")]
    pub memory_warn_mb: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Linux: write verdictd.socket and verdictd.service into ~/.config/systemd/user/
    /// and enable the socket (or print the systemctl commands to do so). macOS: write
    /// ~/Library/LaunchAgents/dev.verdict.verdictd.plist and print the launchctl
    /// command that loads it.
    Install {
        /// Print the units instead of writing them.
        #[arg(long)]
        print: bool,
    },
}

/// `--cap SECONDS`. Zero is "no cap"; any positive cap stays positive (at
/// least 1 ms), so a tiny cap never turns into no cap.
pub fn parse_cap(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds (use 0 for no cap)"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "{text} must be a finite number of seconds >= 0 (0 waits without a cap)"
        ));
    }
    if secs == 0.0 {
        return Ok(Duration::ZERO);
    }
    let ms = (secs * 1000.0).ceil();
    if ms > u64::MAX as f64 {
        return Err(format!("{text} is too large; use 0 to wait without a cap"));
    }
    Ok(Duration::from_millis((ms as u64).max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn caps_stay_positive_and_bad_ones_are_refused() {
        let ms = |text| parse_cap(text).map(|cap| cap.as_millis());
        assert_eq!(ms("0"), Ok(0));
        assert_eq!(ms("0.0004"), Ok(1));
        assert_eq!(ms("1.5"), Ok(1500));
        assert_eq!(ms("240"), Ok(240_000));
        for bad in ["-1", "NaN", "inf", "-0.5", "abc", "1e300"] {
            assert!(parse_cap(bad).is_err(), "{bad}");
        }
    }
}
