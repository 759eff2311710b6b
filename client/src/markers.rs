//! What `verdict wait` prints when it ends: one plain sentence for people,
//! then one marker line that is byte-compatible with csa's `session wait`
//! (SPEC §4), so agent prompts that parse csa's markers keep working.
//! Pure string building; the caller writes the lines to stderr.

use verdict_proto::wire::{VerdictEvent, WireOutcome};

/// Escapes `"` for use inside a quoted marker attribute.
pub fn attr(value: &str) -> String {
    value.replace('"', "&quot;")
}

/// The sentence and marker lines for a verdict. `session_arg` is the
/// session as the user named it (for the `cmd=` hint); `elapsed_s` counts
/// the whole wait, reconnections included.
pub fn render(verdict: &VerdictEvent, session_arg: &str, elapsed_s: u64) -> Vec<String> {
    let id = &verdict.session;
    let cmd = attr(&format!("verdict wait {session_arg}"));
    match verdict.outcome {
        WireOutcome::Completed => {
            let code = verdict.exit_code.unwrap_or(1);
            let synthetic = verdict.synthetic.unwrap_or(false);
            vec![
                completed_sentence(verdict, code, synthetic),
                format!(
                    "<!-- CSA:SESSION_WAIT_COMPLETED session={id} status={} exit={code} synthetic={synthetic} -->",
                    verdict.status
                ),
            ]
        }
        WireOutcome::KvWarm => vec![
            format!("Session {id} is still running after {elapsed_s}s; wait again with: verdict wait {session_arg}"),
            format!("<!-- CSA:SESSION_WAIT_KV_WARM session={id} status=alive elapsed={elapsed_s}s action=re-wait cmd=\"{cmd}\" -->"),
            format!("<!-- CSA:CALLER_HINT action=\"retry_wait\" reason=\"kv_warm\" session={id} cmd=\"{cmd}\" -->"),
        ],
        WireOutcome::Timeout => vec![
            format!("Session {id} has no verdict after {elapsed_s}s and no live process."),
            format!("<!-- CSA:SESSION_WAIT_TIMEOUT session={id} elapsed={elapsed_s}s status=dead cmd=\"{cmd}\" -->"),
        ],
    }
}

fn completed_sentence(verdict: &VerdictEvent, code: i32, synthetic: bool) -> String {
    let id = &verdict.session;
    match (synthetic, verdict.reason.as_deref()) {
        (true, Some("empty_success")) => format!(
            "Session {id} failed: its completion packet claims success, but it wrote no result.toml and no output."
        ),
        (true, _) => format!("Session {id} failed: its process exited without writing result.toml or a completion packet."),
        (false, _) => {
            let from = match verdict.source.as_deref() {
                Some("result") => "result.toml",
                Some("packet") => "the completion packet",
                _ => "the session files",
            };
            format!("Session {id} completed: {} (exit code {code}, from {from}).", verdict.status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(json: &str) -> VerdictEvent {
        serde_json::from_str(json).expect("valid verdict")
    }

    #[test]
    fn completed_marker_is_byte_exact() {
        let v = verdict(
            r#"{"outcome":"completed","session":"01J","status":"success","exit_code":0,"source":"result","synthetic":false,"exit":0,"elapsed_ms":3}"#,
        );
        let lines = render(&v, "01J", 0);
        assert_eq!(
            lines[1],
            "<!-- CSA:SESSION_WAIT_COMPLETED session=01J status=success exit=0 synthetic=false -->"
        );
        assert_eq!(
            lines[0],
            "Session 01J completed: success (exit code 0, from result.toml)."
        );
    }

    #[test]
    fn kv_warm_and_timeout_markers_escape_quotes() {
        let v = verdict(
            r#"{"outcome":"kv_warm","session":"01J","status":"alive","pid":7,"exit":0,"elapsed_ms":240000}"#,
        );
        let lines = render(&v, "/s/a\"b", 240);
        assert_eq!(
            lines[1],
            "<!-- CSA:SESSION_WAIT_KV_WARM session=01J status=alive elapsed=240s action=re-wait cmd=\"verdict wait /s/a&quot;b\" -->"
        );
        assert_eq!(
            lines[2],
            "<!-- CSA:CALLER_HINT action=\"retry_wait\" reason=\"kv_warm\" session=01J cmd=\"verdict wait /s/a&quot;b\" -->"
        );
        let v = verdict(
            r#"{"outcome":"timeout","session":"01J","status":"dead","exit":124,"elapsed_ms":5}"#,
        );
        assert_eq!(
            render(&v, "01J", 5)[1],
            "<!-- CSA:SESSION_WAIT_TIMEOUT session=01J elapsed=5s status=dead cmd=\"verdict wait 01J\" -->"
        );
    }
}
