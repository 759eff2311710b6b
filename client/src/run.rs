//! `verdict run`: a command as a session (see `verdict_client::launch`).

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use verdict_client::launch::{self, Place};

use crate::cli::RunCmd;
use crate::out::{err_line, out_line};

/// Exit code when the command cannot be started (as a shell's).
const CANNOT_RUN: u8 = 127;

/// `verdict top ARGS`: `verdict-top ARGS`, next to this program, else on
/// PATH (it is a program of its own so that `verdict` stays small).
pub fn top(args: Vec<std::ffi::OsString>) -> ExitCode {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|me| me.parent().map(|dir| dir.join("verdict-top")))
        .filter(|path| path.is_file());
    let program = beside.unwrap_or_else(|| "verdict-top".into());
    let err = std::process::Command::new(&program).args(args).exec();
    err_line(&format!(
        "verdict top: cannot run {}: {err} (it is installed next to verdict)",
        program.display()
    ));
    ExitCode::from(CANNOT_RUN)
}

pub fn run(cmd: RunCmd) -> ExitCode {
    let place = match (cmd.dir, cmd.root) {
        (Some(dir), _) => Place::Dir(dir),
        (None, Some(root)) => Place::Root(root),
        (None, None) => Place::Project,
    };
    let (id, dir) = match launch::make_dir(&place, cmd.id.as_deref()) {
        Ok(made) => made,
        Err(message) => {
            err_line(&format!("verdict run: {message}"));
            return ExitCode::from(2);
        }
    };
    let me = match std::env::current_exe() {
        Ok(me) => me,
        Err(err) => {
            err_line(&format!(
                "verdict run: cannot find this program to supervise the command: {err}"
            ));
            return ExitCode::from(CANNOT_RUN);
        }
    };
    if let Err(message) = launch::start(&me, &dir, &id, &cmd.command) {
        err_line(&format!(
            "verdict run: {message} (the session {} records it)",
            dir.display()
        ));
        return ExitCode::from(CANNOT_RUN);
    }
    out_line(&format!("{id}\t{}", dir.display()));
    if !cmd.wait {
        return ExitCode::SUCCESS;
    }
    // The wait is `verdict wait DIR`, the same program with the same output.
    let mut wait = std::process::Command::new(&me);
    wait.arg("wait").arg(&dir);
    if let Some(cap) = &cmd.cap {
        wait.args(["--cap", cap]);
    }
    if let Some(socket) = &cmd.socket {
        wait.arg("--socket").arg(socket);
    }
    let err = wait.exec();
    err_line(&format!("verdict run: cannot wait: {err}"));
    ExitCode::from(3)
}
