//! `verdictd`'s command line, alone in this file so that the man page and
//! shell completions are generated from it (`cargo xtask docs`).

use std::path::PathBuf;

use clap::Parser;

/// Tells waiting agents, the moment it is decided, how their sub-agent
/// sessions ended.
#[derive(Debug, Parser)]
#[command(
    name = "verdictd",
    version,
    about = "Watch agent session directories and push completion verdicts to waiters over a Unix socket",
    long_about = None,
    after_help = "\
The socket is --socket, else $VERDICT_SOCKET, else $XDG_RUNTIME_DIR/verdictd.sock, \
else /tmp/verdictd-<uid>/verdictd.sock. When started by systemd with LISTEN_FDS, the \
inherited socket is used instead.

The config file is TOML with keys default_cap_ms, grace_ms, launch_grace_ms, \
max_connections, max_waits, max_watches and [[root]] tables (path, poll). Session ids are \
looked up under the configured and --root directories and, always, csa's \
$XDG_STATE_HOME/cli-sub-agent and $XDG_STATE_HOME/csa. SIGHUP reloads it; SIGTERM and SIGINT \
shut down cleanly. Logs go to stderr; set the level with RUST_LOG (default info).

You rarely start verdictd by hand: `verdict wait` starts it when nothing listens."
)]
pub struct Args {
    /// Unix socket to listen on.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Config file [default: $XDG_CONFIG_HOME/verdict/verdictd.toml].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Add DIR to the roots: session ids are also looked up, and events
    /// followed, under it (repeatable). Not to be confused with `verdict
    /// events --root`, which only filters the events of existing roots.
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// Exit after SECONDS with no connections and no waits (for socket
    /// activation: the service manager starts it again on the next client).
    #[arg(long, value_name = "SECONDS")]
    pub exit_idle_after: Option<u64>,
    /// Started by a client that found nobody listening: losing the start-up
    /// race to another daemon is not an error worth a log line.
    #[arg(long, hide = true)]
    pub spawned: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Args::command().debug_assert();
    }
}
