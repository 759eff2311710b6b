//! The Node client (`clients/node/`): its own tests, `node --test`, run
//! against the real `verdictd` built here: finished, failed, live at the
//! cap, unknown, `any` cancelling at the daemon, an AbortSignal, a daemon
//! restart mid-wait, events, and every conformance vector replayed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use verdict_e2e::bin;

#[test]
fn the_node_client_passes_its_tests_against_the_daemon() {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/node");
    let bin_dir = bin("verdictd");
    let bin_dir = bin_dir.parent().expect("bin dir");
    let mut command = Command::new("node");
    command
        .args(["--test", "test/"])
        .current_dir(&client)
        .env("VERDICT_BIN_DIR", bin_dir)
        .stdin(Stdio::null());
    let out = verdict_e2e::output_within_for(command, Duration::from_secs(240));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let failures: Vec<&str> = stdout.lines().filter(|l| l.starts_with("not ok")).collect();
    assert!(
        out.status.success() && failures.is_empty(),
        "node --test failed: {failures:?}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("# fail 0"), "{stdout}");
}
