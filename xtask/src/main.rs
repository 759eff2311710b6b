//! `cargo xtask`: chores that need the binaries' command lines but must
//! not grow them. The clap definitions are compiled in here from their
//! files (`client/src/cli.rs`, `daemon/src/cli.rs`, `mcp/src/cli.rs`,
//! `top/src/cli.rs`).
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
#[path = "../../top/src/cli.rs"]
mod verdict_top_cli;
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

/// The four binaries' command lines.
fn commands() -> Vec<clap::Command> {
    vec![
        verdict_cli::Cli::command(),
        verdictd_cli::Args::command(),
        verdict_mcp_cli::Cli::command(),
        verdict_top_cli::Cli::command(),
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
    let commands = commands();
    // `verdict top` is `verdict-top`: the program's own page is its page.
    let programs: Vec<String> = commands.iter().map(|c| c.get_name().to_string()).collect();
    for command in commands {
        let name = command.get_name().to_string();
        man_pages(command.clone(), &name, &programs, &man, &mut written)?;
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
    programs: &[String],
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), String> {
    let path = dir.join(format!("{name}.1"));
    let page = page(command.clone(), name)
        .map_err(|err| format!("cannot render the man page of {name}: {err}"))?;
    std::fs::write(&path, page).map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        let sub_name = format!("{name}-{}", sub.get_name());
        if programs.contains(&sub_name) {
            continue;
        }
        man_pages(sub.clone(), &sub_name, programs, dir, written)?;
    }
    Ok(())
}

/// One man page: a one-line NAME, the synopsis as `--help` shows it
/// (option values included), the description and options, the notes from
/// `after_help` (its aligned rows as a list), and no `help` subcommand.
fn page(command: clap::Command, name: &str) -> std::io::Result<String> {
    let about = command
        .get_about()
        .map(ToString::to_string)
        .unwrap_or_default();
    let long = command
        .get_long_about()
        .map_or_else(|| about.clone(), ToString::to_string);
    // `verdict-wait` is run as `verdict wait`.
    let shown = match name.split_once('-') {
        Some(("verdict", rest)) if rest != "mcp" => format!("verdict {}", rest.replace('-', " ")),
        _ => name.to_string(),
    };
    let mut command = command
        .name(Box::leak(name.to_string().into_boxed_str()) as &str)
        .bin_name(shown)
        .disable_help_subcommand(true)
        .about(first_sentence(&about))
        .long_about(long);
    let man = clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .date(today())
        .source(format!("verdict {}", env!("CARGO_PKG_VERSION")))
        .manual("verdict manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    let usage = command.render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage);
    out.extend_from_slice(format!(".SH SYNOPSIS\n.nf\n{}\n.fi\n", escape(usage)).as_bytes());
    man.render_description_section(&mut out)?;
    if command.get_arguments().any(|arg| !arg.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if command.get_subcommands().any(|sub| !sub.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    if let Some(after) = command.get_after_help() {
        out.extend_from_slice(notes(&after.to_string()).as_bytes());
    }
    if command.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    // Each piece comes with roff's quote-string preamble: keep the first.
    let text = String::from_utf8_lossy(&out);
    let mut seen = std::collections::HashSet::new();
    let mut lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        // A blank roff line is a paragraph break: clap_mangen puts one
        // between two `.br`, which mandoc flags.
        .filter(|line| !line.is_empty())
        .filter(|line| {
            !line.starts_with(".ie \\n(.g .ds Aq") && !line.starts_with(".el .ds Aq")
                || seen.insert(*line)
        })
        .collect();
    lines.dedup_by(|line, previous| *line == ".br" && *previous == ".br");
    Ok(lines.join("\n") + "\n")
}

/// Up to the end of the first sentence (for NAME).
fn first_sentence(text: &str) -> String {
    let end = text
        .char_indices()
        // A colon ends it too, unless it only follows a label (`Linux:`).
        .find(|&(i, c)| (c == '.' || (c == ':' && i > 20)) && text[i + 1..].starts_with(' '))
        .map_or(text.len(), |(i, _)| i);
    let sentence = text[..end].trim_end_matches('.');
    if sentence.len() <= 80 {
        return sentence.to_string();
    }
    // Still long: up to the first aside.
    let aside = [", ", " ("]
        .iter()
        .filter_map(|mark| sentence.find(mark))
        .min()
        .unwrap_or(sentence.len());
    sentence[..aside].to_string()
}

/// `after_help` as roff: rows like `  0    meaning` become a tagged list,
/// other indented lines stay as they are, the rest are paragraphs.
fn notes(text: &str) -> String {
    let mut roff = String::from(".SH NOTES\n");
    let mut in_nf = false;
    for line in text.lines() {
        let row = line
            .strip_prefix("  ")
            .and_then(|rest| rest.split_once("  "))
            .filter(|(tag, _)| !tag.is_empty() && tag.chars().all(|c| c.is_ascii_digit()));
        let indented = line.starts_with("  ");
        if in_nf && (row.is_some() || !indented) {
            roff.push_str(".fi\n");
            in_nf = false;
        }
        match row {
            Some((tag, meaning)) => {
                roff.push_str(&format!(".TP\n\\fB{tag}\\fR\n{}\n", escape(meaning.trim())));
            }
            None if line.trim().is_empty() => roff.push_str(".PP\n"),
            None if indented => {
                if !in_nf {
                    roff.push_str(".PP\n.nf\n");
                    in_nf = true;
                }
                roff.push_str(&escape(line.trim()));
                roff.push('\n');
            }
            None => {
                roff.push_str(&escape(line));
                roff.push('\n');
            }
        }
    }
    if in_nf {
        roff.push_str(".fi\n");
    }
    roff
}

/// Text safe in a roff line: backslashes and dashes escaped, no line
/// starting with a control character.
fn escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

/// The date for `.TH`: `SOURCE_DATE_EPOCH` (reproducible builds) or today,
/// as YYYY-MM-DD.
fn today() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    verdict_client::csa1142::utc_seconds(secs)[..10].to_string()
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
        // verdict, 7 of its 8 subcommands (`top` is verdict-top's page) and
        // `service install`; verdictd; verdict-mcp; verdict-top; 3 shells each.
        assert_eq!(written.len(), 9 + 1 + 1 + 1 + 4 * 3, "{written:?}");
        assert!(read("man/verdict-top.1").contains("reconnected"));
        let unique: std::collections::HashSet<_> = written.iter().collect();
        assert_eq!(
            unique.len(),
            written.len(),
            "a page written twice: {written:?}"
        );
        for page in written
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "1"))
        {
            let text = std::fs::read_to_string(page).expect("page");
            let name = text
                .lines()
                .skip_while(|l| *l != ".SH NAME")
                .nth(1)
                .unwrap_or("");
            assert!(
                name.len() < 140 && !name.contains(". "),
                "{}: NAME is {name:?}",
                page.display()
            );
            assert!(
                !text.contains("help(1)"),
                "{}: names a help page",
                page.display()
            );
            assert!(
                text.lines()
                    .any(|l| l.starts_with(".TH ") && l.contains(&today())),
                "{}: .TH has no date",
                page.display()
            );
        }
        // mandoc's linter, where it is installed: not a single warning.
        if let Ok(lint) = std::process::Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .args(
                written
                    .iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "1")),
            )
            .output()
        {
            let said = String::from_utf8_lossy(&lint.stdout).into_owned()
                + &String::from_utf8_lossy(&lint.stderr);
            assert!(said.trim().is_empty(), "{said}");
        }
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
