//! `verdict-mcp`'s command line, alone in this file so that the man page
//! and shell completions are generated from it (`cargo xtask docs`).

use std::path::PathBuf;

use clap::Parser;

/// The longest `timeout_seconds` by default: below the tool-call limits of
/// common MCP clients (60 s and more), so that a call returns before the
/// client gives up on it.
pub const DEFAULT_MAX_TIMEOUT_SECS: f64 = 50.0;

#[derive(Debug, Parser)]
#[command(
    name = "verdict-mcp",
    version,
    about = "Serve verdict's wait as MCP tools over stdio (`wait`, `status`)",
    after_help = "\
Add it to an MCP client as a stdio server, for example:
  claude mcp add verdict -- verdict-mcp
  codex: [mcp_servers.verdict] command = \"verdict-mcp\" in ~/.codex/config.toml

The socket is --socket, else $VERDICT_SOCKET, else $XDG_RUNTIME_DIR/verdictd.sock, \
else /tmp/verdictd-<uid>/verdictd.sock. verdictd is started when nobody listens \
(unless --no-spawn), and without one the waits are made here (degraded mode)."
)]
pub struct Cli {
    /// The longest wait one call may ask for, in seconds (`timeout_seconds`
    /// above it is refused); also the default.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_MAX_TIMEOUT_SECS)]
    pub max_timeout: f64,
    /// The daemon's socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Do not start verdictd when nothing listens: calls fail instead of
    /// waiting without it.
    #[arg(long)]
    pub no_spawn: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
