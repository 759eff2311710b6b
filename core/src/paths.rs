//! Where things live: the socket and the files beside it, the config file
//! and the session roots. Both binaries resolve the socket the same
//! way, so this is shared. Only environment lookups; nothing is created.

use std::env;
use std::path::{Path, PathBuf};

/// Environment variable that overrides the socket path.
pub const SOCKET_ENV: &str = "VERDICT_SOCKET";
/// File name of the socket inside its directory.
pub const SOCKET_NAME: &str = "verdictd.sock";

fn env_path(name: &str) -> Option<PathBuf> {
    env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `$VERDICT_SOCKET`, else `$XDG_RUNTIME_DIR/verdictd.sock`, else
/// `/tmp/verdictd-<uid>/verdictd.sock`. An explicit `--socket` wins over all.
pub fn socket_path(explicit: Option<PathBuf>, uid: u32) -> PathBuf {
    explicit
        .or_else(|| env_path(SOCKET_ENV))
        .or_else(|| env_path("XDG_RUNTIME_DIR").map(|dir| dir.join(SOCKET_NAME)))
        .unwrap_or_else(|| fallback_socket_dir(uid).join(SOCKET_NAME))
}

/// The private directory used when there is no `$XDG_RUNTIME_DIR`:
/// `/tmp/verdictd-<uid>`; on macOS under `$TMPDIR`, which is per user
/// there.
pub fn fallback_socket_dir(uid: u32) -> PathBuf {
    let tmp = if cfg!(target_os = "macos") {
        env_path("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp"))
    } else {
        PathBuf::from("/tmp")
    };
    tmp.join(format!("verdictd-{uid}"))
}

/// The lock file that goes with a socket path, `<socket>.lock`: it holds
/// the daemon's pid, and only one daemon locks it.
pub fn lock_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// `<socket>.stopped`: written by `verdict stop`, removed by the next
/// daemon on that socket, so that a client restarting it can say why it
/// was gone.
pub fn stopped_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".stopped");
    PathBuf::from(name)
}

/// The log a daemon started by a client writes, `<socket>.log`.
pub fn log_path(socket: &Path) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(".log");
    PathBuf::from(name)
}

fn xdg_home(var: &str, fallback: &str) -> Option<PathBuf> {
    env_path(var).or_else(|| env_path("HOME").map(|home| home.join(fallback)))
}

/// `$XDG_CONFIG_HOME/verdict/verdictd.toml` (fallback `~/.config/...`).
pub fn config_path() -> Option<PathBuf> {
    xdg_home("XDG_CONFIG_HOME", ".config").map(|dir| dir.join("verdict").join("verdictd.toml"))
}

/// `$XDG_STATE_HOME/cli-sub-agent` and csa's legacy `$XDG_STATE_HOME/csa`
/// (fallback `~/.local/state/...`), where csa keeps
/// `<project path>/sessions/<ID>`; in csa's order of lookup.
pub fn default_session_roots() -> Vec<PathBuf> {
    xdg_home("XDG_STATE_HOME", ".local/state")
        .map(|dir| vec![dir.join("cli-sub-agent"), dir.join("csa")])
        .unwrap_or_default()
}
