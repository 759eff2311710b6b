//! README's "Your own launcher" block, run as written (in a shell with an
//! isolated home, `verdict` on PATH and the harness's daemon): a person who
//! pastes it reaches a first verdict on a session they made themselves.

use std::path::Path;
use std::process::{Command, Stdio};

use verdict_e2e::{bin, output_within, Harness, Run};

/// The first ```sh block after `heading` in README.md.
fn block_after(heading: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let section = &readme[readme.find(heading).expect("the section")..];
    let start = section.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = section[start..].find("\n```").expect("the block's end");
    section[start..start + end].to_string()
}

#[test]
fn the_own_launcher_block_reaches_a_verdict_as_written() {
    let h = Harness::start();
    let script = block_after("## Your own launcher");
    let project = h.tmp.path().join("project");
    std::fs::create_dir_all(&project).expect("project dir");
    let path = format!(
        "{}:{}",
        bin("verdict").parent().expect("bin dir").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(&script)
        .current_dir(&project)
        .stdin(Stdio::null());
    h.isolate(&mut shell);
    shell.env("PATH", path).env("VERDICT_SOCKET", &h.socket);
    let run = Run::from(output_within(shell));
    assert_eq!(run.code, 0, "{script}\n{run:?}");
    assert!(run.stdout.contains("built it"), "{run:?}");
    assert!(
        run.stdout.contains("status=success exit=0 synthetic=false"),
        "{run:?}"
    );
}
