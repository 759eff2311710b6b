//! `cargo xtask`: chores that need the binaries' command lines but must
//! not grow them. The clap definitions are compiled in here from their
//! files (`client/src/cli.rs`, `daemon/src/cli.rs`, `mcp/src/cli.rs`).
//!
//! ```text
//! cargo xtask docs OUT_DIR           man pages (OUT_DIR/man/*.1) and completions (OUT_DIR/completions/)
//! cargo xtask install-docs [PREFIX]  the same, installed under PREFIX (default ~/.local)
//! ```

#[allow(dead_code)]
#[path = "../../client/src/cli.rs"]
mod verdict_cli;
#[allow(dead_code)]
#[path = "../../mcp/src/cli.rs"]
mod verdict_mcp_cli;
#[allow(dead_code)]
#[path = "../../daemon/src/cli.rs"]
mod verdictd_cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// The shells completions are written for, and where each looks for them
/// under a prefix.
const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "share/bash-completion/completions"),
    (Shell::Zsh, "share/zsh/site-functions"),
    (Shell::Fish, "share/fish/vendor_completions.d"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["docs", out] => docs(Path::new(out)).map(|written| {
            for path in written {
                println!("{}", path.display());
            }
        }),
        ["install-docs"] => home_prefix().and_then(|prefix| install(&prefix)),
        ["install-docs", prefix] => install(Path::new(prefix)),
        _ => Err(
            "usage: cargo xtask docs OUT_DIR | cargo xtask install-docs [PREFIX]\n\
                  docs writes man pages (OUT_DIR/man) and bash, zsh and fish completions \
                  (OUT_DIR/completions); install-docs puts them under PREFIX \
                  (default ~/.local: share/man/man1, share/bash-completion/completions, \
                  share/zsh/site-functions, share/fish/vendor_completions.d)"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::from(2)
        }
    }
}

/// The three binaries' command lines.
fn commands() -> Vec<clap::Command> {
    vec![
        verdict_cli::Cli::command(),
        verdictd_cli::Args::command(),
        verdict_mcp_cli::Cli::command(),
    ]
}

/// Writes the man pages (one per command and subcommand) and the
/// completions into `out`; returns the files written.
fn docs(out: &Path) -> Result<Vec<PathBuf>, String> {
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        std::fs::create_dir_all(dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
    }
    let mut written = Vec::new();
    for command in commands() {
        let name = command.get_name().to_string();
        man_pages(command.clone(), &name, &man, &mut written)?;
        for (shell, _) in SHELLS {
            let path = clap_complete::generate_to(shell, &mut command.clone(), &name, &completions)
                .map_err(|err| format!("cannot write {shell} completions for {name}: {err}"))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// `name.1`, and `name-sub.1` for every subcommand, recursively.
fn man_pages(
    command: clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), String> {
    // A subcommand's page is titled with the full name (`verdict-wait`).
    let command = command.name(&*Box::leak(name.to_string().into_boxed_str()));
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .map_err(|err| format!("cannot render the man page of {name}: {err}"))?;
    std::fs::write(&path, page).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let sub_name = format!("{name}-{}", sub.get_name());
        man_pages(sub.clone(), &sub_name, dir, written)?;
    }
    Ok(())
}

fn home_prefix() -> Result<PathBuf, String> {
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".local"))
        .ok_or_else(|| "HOME is not set; give a PREFIX".to_string())
}

/// Generates the docs and copies them where man and the shells look.
fn install(prefix: &Path) -> Result<(), String> {
    let staging = prefix.join("share/verdict/generated");
    let written = docs(&staging)?;
    for path in written {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let target_dir = if name.ends_with(".1") {
            prefix.join("share/man/man1")
        } else if name.ends_with(".bash") {
            prefix.join(SHELLS[0].1)
        } else if name.starts_with('_') {
            prefix.join(SHELLS[1].1)
        } else {
            prefix.join(SHELLS[2].1)
        };
        // bash-completion looks the file up by the command's own name.
        let target_name = name.strip_suffix(".bash").unwrap_or(&name).to_string();
        std::fs::create_dir_all(&target_dir)
            .map_err(|err| format!("cannot create {}: {err}", target_dir.display()))?;
        let target = target_dir.join(target_name);
        std::fs::copy(&path, &target)
            .map_err(|err| format!("cannot install {}: {err}", target.display()))?;
        println!("{}", target.display());
    }
    std::fs::remove_dir_all(&staging)
        .map_err(|err| format!("cannot remove {}: {err}", staging.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_cover_every_command_and_shell() {
        let out = tempfile::tempdir().expect("tempdir");
        let written = docs(out.path()).expect("docs");
        let read = |rel: &str| {
            std::fs::read_to_string(out.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
        };
        let wait = read("man/verdict-wait.1");
        assert!(
            wait.contains("no\\-daemon") || wait.contains("no-daemon"),
            "{wait}"
        );
        assert!(read("man/verdict.1").contains("Exit codes"));
        assert!(read("man/verdictd.1").contains("max_waits"));
        assert!(
            read("man/verdict-mcp.1").contains("max\\-timeout")
                || read("man/verdict-mcp.1").contains("max-timeout")
        );
        assert!(read("completions/verdict.bash").contains("--no-daemon"));
        assert!(read("completions/_verdict").contains("--any"));
        assert!(read("completions/verdict.fish").contains("no-spawn"));
        assert!(read("man/verdict-csa.1").contains("session wait"));
        // verdict, its 6 subcommands and `service install`; verdictd; verdict-mcp; 3 shells each.
        assert_eq!(written.len(), 8 + 1 + 1 + 3 * 3, "{written:?}");
    }

    #[test]
    fn install_puts_them_where_man_and_the_shells_look() {
        let prefix = tempfile::tempdir().expect("tempdir");
        install(prefix.path()).expect("install");
        for rel in [
            "share/man/man1/verdict-wait.1",
            "share/man/man1/verdictd.1",
            "share/bash-completion/completions/verdict",
            "share/zsh/site-functions/_verdict",
            "share/fish/vendor_completions.d/verdict-mcp.fish",
        ] {
            assert!(prefix.path().join(rel).is_file(), "{rel}");
        }
        assert!(!prefix.path().join("share/verdict/generated").exists());
    }
}
