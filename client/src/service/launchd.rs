//! The macOS launchd agent: `~/Library/LaunchAgents/dev.verdict.verdictd.plist`
//! keeps verdictd running on its socket (launchd starts it at login and
//! again if it exits), logging to `~/Library/Logs/verdictd.log`. It is
//! loaded with `launchctl bootstrap gui/<uid> <plist>`, which is printed
//! rather than run: replacing a loaded agent is the user's call.

use std::path::{Path, PathBuf};
use verdict_client::Exit;

use crate::out::{err_line, out_line};

/// The agent's label (and the plist's file name).
pub const LABEL: &str = "dev.verdict.verdictd";

/// Writes the agent (or prints it); returns the exit code.
pub fn install(print: bool) -> Exit {
    let Some(daemon) = verdict_client::connect::find_daemon() else {
        err_line("verdict: cannot find verdictd next to verdict or on PATH; install it first");
        return Exit::Failure;
    };
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        err_line("verdict: $HOME is not set; cannot tell where launch agents go");
        return Exit::Failure;
    };
    // launchd's environment has neither our $TMPDIR nor $XDG_RUNTIME_DIR
    // for certain: the socket the clients use is written in full.
    let socket = verdict_client::daemon::socket_path(None);
    let uid = rustix::process::getuid().as_raw();
    let log = home.join("Library/Logs/verdictd.log");
    let text = plist(&daemon, &socket, &log);
    let path = home
        .join("Library/LaunchAgents")
        .join(format!("{LABEL}.plist"));
    if print {
        out_line(&format!("# {}\n{}", path.display(), text.trim_end()));
        return Exit::Success;
    }
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, &text));
    if let Err(err) = written {
        err_line(&format!("verdict: cannot write {}: {err}", path.display()));
        return Exit::Failure;
    }
    out_line(&format!(
        "wrote {} (verdictd at {})",
        path.display(),
        daemon.display()
    ));
    out_line("to load it now (and at every login), run:");
    out_line(&format!(
        "  launchctl bootstrap gui/{uid} {}",
        path.display()
    ));
    Exit::Success
}

/// The agent's plist: run `daemon --socket socket`, keep it alive, log to `log`.
pub fn plist(daemon: &Path, socket: &Path, log: &Path) -> String {
    let string = |path: &Path| format!("<string>{}</string>", xml(&path.display().to_string()));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>{LABEL}</string>
  <key>ProgramArguments</key>
  <array>
    {daemon}
    <string>--socket</string>
    {socket}
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <true/>
  <key>ProcessType</key>
  <string>Background</string>
  <key>StandardErrorPath</key>
  {log}
</dict>
</plist>
"#,
        daemon = string(daemon),
        socket = string(socket),
        log = string(log),
    )
}

/// Text as XML character data.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plist_runs_the_daemon_on_the_socket_and_escapes_paths() {
        let text = plist(
            Path::new("/Users/me/bin/verdictd"),
            Path::new("/var/folders/x/T/verdictd-501/verdictd.sock"),
            Path::new("/Users/me/Library/Logs/a&b<c>.log"),
        );
        assert!(
            text.contains("<string>dev.verdict.verdictd</string>"),
            "{text}"
        );
        assert!(
            text.contains(
                "<string>/Users/me/bin/verdictd</string>\n    <string>--socket</string>\n    \
             <string>/var/folders/x/T/verdictd-501/verdictd.sock</string>"
            ),
            "{text}"
        );
        assert!(
            text.contains("<string>/Users/me/Library/Logs/a&amp;b&lt;c&gt;.log</string>"),
            "{text}"
        );
        assert!(text.contains("<key>KeepAlive</key>\n  <true/>"), "{text}");
    }
}
