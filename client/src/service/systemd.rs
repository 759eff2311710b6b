//! The systemd user units (socket and service, from `systemd/`): written
//! into `~/.config/systemd/user/` with an absolute `ExecStart`, then the
//! socket is enabled when a user manager is reachable.

use std::path::{Path, PathBuf};
use std::process::Command;
use verdict_client::Exit;

use crate::out::{err_line, out_line};

const SOCKET_UNIT: &str = include_str!("../../../systemd/verdictd.socket");
const SERVICE_UNIT: &str = include_str!("../../../systemd/verdictd.service");
const ENABLE: [&[&str]; 2] = [
    &["--user", "daemon-reload"],
    &["--user", "enable", "--now", "verdictd.socket"],
];

/// Runs the command; returns the exit code.
pub fn install(print: bool) -> Exit {
    let Some(daemon) = verdict_client::connect::find_daemon() else {
        err_line(&format!(
            "verdict: cannot find verdictd next to {} or on PATH; install it first",
            exe_name()
        ));
        return Exit::Failure;
    };
    let service = with_exec_start(SERVICE_UNIT, &daemon);
    if print {
        out_line(&format!(
            "# verdictd.socket\n{SOCKET_UNIT}\n# verdictd.service\n{}",
            service.trim_end()
        ));
        return Exit::Success;
    }
    let Some(dir) = unit_dir() else {
        err_line(
            "verdict: neither $XDG_CONFIG_HOME nor $HOME is set; cannot tell where user units go",
        );
        return Exit::Failure;
    };
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("verdictd.socket"), SOCKET_UNIT))
        .and_then(|()| std::fs::write(dir.join("verdictd.service"), &service));
    if let Err(err) = written {
        err_line(&format!(
            "verdict: cannot write the units into {}: {err}",
            dir.display()
        ));
        return Exit::Failure;
    }
    out_line(&format!(
        "wrote {0}/verdictd.socket and {0}/verdictd.service (ExecStart={1})",
        dir.display(),
        daemon.display()
    ));
    if !user_manager_reachable() {
        out_line("no systemd user manager is reachable from here; to enable the service, run:");
        for args in ENABLE {
            out_line(&format!("  systemctl {}", args.join(" ")));
        }
        return Exit::Success;
    }
    for args in ENABLE {
        out_line(&format!("running: systemctl {}", args.join(" ")));
        match Command::new("systemctl").args(args).status() {
            Ok(status) if status.success() => {}
            Ok(status) => {
                err_line(&format!(
                    "verdict: systemctl {} failed ({status})",
                    args.join(" ")
                ));
                return Exit::Failure;
            }
            Err(err) => {
                err_line(&format!("verdict: cannot run systemctl: {err}"));
                return Exit::Failure;
            }
        }
    }
    out_line("verdictd.socket is enabled; `verdict wait` now reaches it at $XDG_RUNTIME_DIR/verdictd.sock");
    Exit::Success
}

fn exe_name() -> String {
    std::env::current_exe().map_or_else(|_| "verdict".into(), |p| p.display().to_string())
}

/// The service unit with `ExecStart=` pointing at `daemon`, keeping its
/// arguments.
fn with_exec_start(unit: &str, daemon: &Path) -> String {
    let mut out = String::new();
    for line in unit.lines() {
        match line.strip_prefix("ExecStart=") {
            Some(command) => {
                let args = command.split_once(' ').map_or("", |(_, args)| args);
                let path = exec_path(&daemon.display().to_string());
                out.push_str(format!("ExecStart={path} {args}").trim_end());
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A path as one `ExecStart=` word: systemd expands `%` specifiers and
/// `$` variables there, so both are doubled; quotes and backslashes are
/// escaped, and the word is quoted when it holds white space or them.
fn exec_path(path: &str) -> String {
    let escaped = path
        .replace('%', "%%")
        .replace('$', "$$")
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    if escaped.contains(|c: char| c.is_whitespace() || c == '\\' || c == '"') {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

fn unit_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("systemd").join("user"))
}

/// A user manager listens on `$XDG_RUNTIME_DIR/systemd/private`.
fn user_manager_reachable() -> bool {
    std::env::var_os("XDG_RUNTIME_DIR")
        .is_some_and(|dir| Path::new(&dir).join("systemd").join("private").exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_is_replaced_and_arguments_kept() {
        let unit = with_exec_start(SERVICE_UNIT, Path::new("/opt/my tools/verdictd"));
        assert!(
            unit.contains("\nExecStart=\"/opt/my tools/verdictd\" --exit-idle-after 3600\n"),
            "{unit}"
        );
        assert_eq!(unit.matches("ExecStart=").count(), 1);
    }

    #[test]
    fn exec_start_escapes_specifiers_variables_and_quotes() {
        assert_eq!(
            exec_path("/home/u/%h/bin/verdictd"),
            "/home/u/%%h/bin/verdictd"
        );
        assert_eq!(exec_path("/opt/$HOME/verdictd"), "/opt/$$HOME/verdictd");
        assert_eq!(exec_path("/opt/a \"b\"/v"), "\"/opt/a \\\"b\\\"/v\"");
        assert_eq!(exec_path("/opt/back\\slash"), "\"/opt/back\\\\slash\"");
    }
}
