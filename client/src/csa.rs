//! verdict as `csa`: run under that name (a symlink first on `PATH`, as
//! busybox is installed), or as `verdict csa …`, it answers
//! `csa session wait …` itself, with csa's flags and csa's command names
//! in its hints, and hands every other csa command line to the real `csa`
//! next on `PATH`, untouched: its arguments, stdin and exit code.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use clap::Parser;
use verdict_client::Exit;

use crate::cli::{Cli, Command};
use crate::out::err_line;

/// The exit code of a command that is not found (as a shell gives it).
const NOT_FOUND: u8 = 127;

/// This process was started under the name `csa`.
pub fn invoked_as_csa() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|argv0| Path::new(&argv0).file_name() == Some(OsStr::new("csa")))
}

/// Runs csa's command line `args` (without the program name).
pub fn run(args: Vec<OsString>) -> Exit {
    if args.len() >= 2 && args[0] == "session" && args[1] == "wait" {
        let mut argv = vec![OsString::from("verdict"), OsString::from("wait")];
        argv.extend(args[2..].iter().cloned());
        let cli = match Cli::try_parse_from(argv) {
            Ok(cli) => cli,
            Err(err) => {
                let _ = err.print();
                return if err.use_stderr() {
                    Exit::Usage
                } else {
                    Exit::Success
                };
            }
        };
        return match cli.command {
            Command::Wait(cmd) => crate::wait(cmd, verdict_client::markers::Caller::Csa),
            _ => Exit::Usage,
        };
    }
    let Some(real) = real_csa() else {
        err_line(
            "verdict: no other csa on PATH to run this command; verdict answers only \
             `csa session wait` (remove the csa symlink to verdict, or install csa)",
        );
        std::process::exit(i32::from(NOT_FOUND));
    };
    let err = std::process::Command::new(&real)
        .arg0("csa")
        .args(&args)
        .exec();
    err_line(&format!("verdict: cannot run {}: {err}", real.display()));
    std::process::exit(i32::from(NOT_FOUND));
}

/// The first `csa` on `PATH` that is not this program.
fn real_csa() -> Option<PathBuf> {
    let me = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("csa"))
        .filter(|candidate| candidate.is_file())
        .find(|candidate| std::fs::canonicalize(candidate).ok() != me)
}
