//! What csa 0.1.1142's `session wait` prints (cli-sub-agent `7aaf3ead`,
//! `session_cmds_daemon_wait*.rs`), for a verdict verdict decided: the
//! compact summary (`render_wait_result_summary`), the JSON object
//! (`render_wait_result_json`), the KV-warm block, and the error block for
//! a missing `--model-provider`. Where csa 1142 writes a `result.toml` of
//! its own (a packet without a result, a dead session without a word), the
//! summary says what that file would have said; verdict writes nothing.
//!
//! Session files are read through the one safe opener
//! ([`verdict_core::files::read_bounded`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use verdict_core::files::{self, LEGACY_REASON};
use verdict_core::rules::{REASON_DIED, REASON_EMPTY_SUCCESS, REASON_NO_PROCESS};
use verdict_proto::wire::WireSource;

use crate::markers::{attr, one_line, word};
use crate::Verdict;

/// The hint after a completion (csa #2592: one compact line).
pub const NEXT_SESSION_HINT: &str = "<!-- CSA:CALLER_HINT action=\"next_session\" rule=\"More sessions? Wait each in a SEPARATE Bash call. Backgrounded? Task-notification is your wake signal — no polling, no loops.\" -->";

const SELECT_PROVIDER_HINT: &str = "<!-- CSA:CALLER_HINT action=\"select_wait_provider\" rule=\"Derive the caller model provider dynamically on every wait; pass --model-provider with a configured provider_ttls key.\" -->";

const FORBID: &str = "process.wait,process.poll,manual_status_loops,short_wrapper_timeouts";

/// `--verbose` shows at most this much of the end of `stdout.log`.
pub const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;

/// What csa says on stderr when `--verbose` shows only the log's end.
pub fn output_cut_note() -> String {
    format!("[csa] stdout.log exceeded {MAX_OUTPUT_BYTES} bytes; showing bounded tail output")
}

/// Longest summary shown, in characters (csa's `compact_wait_summary_text`).
const MAX_SUMMARY_CHARS: usize = 500;

/// Which csa's `session wait` a wait prints like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// csa PR #1445 (the default).
    Csa1445,
    /// csa 0.1.1142.
    Csa1142,
}

impl Profile {
    /// `explicit` (`--csa`), else `$VERDICT_CSA`, else `csa = "…"` in
    /// `$XDG_CONFIG_HOME/verdict/verdict.toml`, else 1445.
    pub fn choose(explicit: Option<&str>) -> Result<Profile, String> {
        let from_env = std::env::var("VERDICT_CSA").ok().filter(|v| !v.is_empty());
        let config = config_home().join("verdict").join("verdict.toml");
        let from_file = || {
            let (bytes, _) = files::read_bounded(&config).ok()??;
            let table: toml::Table = String::from_utf8(bytes).ok()?.parse().ok()?;
            Some(table.get("csa")?.as_str()?.to_string())
        };
        let (chosen, from) = match (explicit, from_env) {
            (Some(value), _) => (value.to_string(), "--csa".to_string()),
            (None, Some(value)) => (value, "$VERDICT_CSA".into()),
            (None, None) => match from_file() {
                Some(value) => (value, config.display().to_string()),
                None => return Ok(Profile::Csa1445),
            },
        };
        match chosen.as_str() {
            "1445" => Ok(Profile::Csa1445),
            "1142" => Ok(Profile::Csa1142),
            other => Err(format!(
                "{from} names csa {other:?}; verdict knows 1445 (the default) and 1142"
            )),
        }
    }
}

fn config_home() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_default()
}

/// csa's `config.toml`: where it is and its `[kv_cache.provider_ttls]`.
#[derive(Debug, Clone)]
pub struct CsaConfig {
    /// `$XDG_CONFIG_HOME/cli-sub-agent/config.toml` (else under `~/.config`).
    pub path: PathBuf,
    /// Provider key → TTL in seconds, in the file's order.
    pub ttls: Vec<(String, i64)>,
    /// `[kv_cache] long_poll_seconds`: csa 1445's cap.
    pub long_poll_seconds: Option<u64>,
}

impl CsaConfig {
    /// Reads csa's user config; a missing or unreadable file has no keys.
    pub fn load() -> CsaConfig {
        let path = config_home().join("cli-sub-agent").join("config.toml");
        let table = files::read_bounded(&path)
            .ok()
            .flatten()
            .and_then(|(bytes, _)| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<toml::Table>().ok());
        let long_poll_seconds = table
            .as_ref()
            .and_then(|t| t.get("kv_cache")?.get("long_poll_seconds")?.as_integer())
            .and_then(|secs| u64::try_from(secs).ok())
            .filter(|secs| *secs > 0);
        let ttls = table
            .and_then(|table| {
                let ttls = table.get("kv_cache")?.get("provider_ttls")?.as_table()?;
                Some(
                    ttls.iter()
                        .filter_map(|(key, v)| Some((key.clone(), v.as_integer()?)))
                        .collect(),
                )
            })
            .unwrap_or_default();
        CsaConfig {
            path,
            ttls,
            long_poll_seconds,
        }
    }

    /// The cap for `--model-provider KEY`, in seconds: exactly its TTL,
    /// which must be above 0. Otherwise csa's error block (stderr lines).
    pub fn cap(&self, provider: Option<&str>) -> Result<u64, Vec<String>> {
        let ttl = provider.and_then(|key| self.ttls.iter().find(|(k, _)| k == key));
        match ttl {
            Some((_, ttl)) if *ttl > 0 => Ok(*ttl as u64),
            _ => Err(self.error_block(provider)),
        }
    }

    fn error_block(&self, requested: Option<&str>) -> Vec<String> {
        let mut lines = vec![
            "Error: csa session wait requires --model-provider <key>.".to_string(),
            format!(
                "Configured keys (from {} [kv_cache.provider_ttls]):",
                self.path.display()
            ),
        ];
        if self.ttls.is_empty() {
            lines.push("  (none)".into());
        }
        lines.extend(self.ttls.iter().map(|(key, ttl)| format!("  {key}={ttl}")));
        if let Some(key) = requested {
            lines.push(format!(
                "Requested key: {} (missing from provider_ttls or TTL is not > 0).",
                one_line(key)
            ));
        }
        lines.push("Action: re-run with --model-provider <one configured key> matching the calling parent agent's KV-cache TTL policy, not the review tool.".into());
        lines.push(
            "Do not omit this flag; provider can change mid-session when the user switches models."
                .into(),
        );
        lines.push(SELECT_PROVIDER_HINT.into());
        if requested.is_some() {
            // csa reports a named but unusable key as a config error.
            lines.push(String::new());
            lines.push(
                "hint: validate config with 'csa config validate' or reinitialize with 'csa init'"
                    .into(),
            );
        }
        lines
    }
}

/// A session's TOML file as a table, if it is there and parses.
fn table(dir: &Path, name: &str) -> Option<toml::Table> {
    let (bytes, _) = files::read_bounded(&dir.join(name)).ok()??;
    String::from_utf8(bytes).ok()?.parse().ok()
}

fn text<'a>(table: Option<&'a toml::Table>, key: &str) -> Option<&'a str> {
    table?.get(key)?.as_str()
}

/// What csa's `result.toml` says, or would say once csa reconciled it.
#[derive(Debug)]
struct Shown {
    status: String,
    exit_code: i64,
    tool: String,
    elapsed_seconds: i64,
    summary: Option<String>,
    kill_hint: Option<String>,
}

fn shown(verdict: &Verdict, dir: &Path) -> Shown {
    let event = &verdict.event;
    let result = table(dir, files::RESULT_FILE).or_else(|| table(dir, files::OUTPUT_RESULT_FILE));
    let launched_tool = || {
        text(table(dir, "metadata.toml").as_ref(), "tool")
            .unwrap_or("unknown")
            .to_string()
    };
    let mut shown = Shown {
        status: event.status.clone(),
        exit_code: i64::from(event.exit_code.unwrap_or(1)),
        tool: launched_tool(),
        elapsed_seconds: age_seconds(dir),
        summary: None,
        kill_hint: None,
    };
    match (event.source, event.reason.as_deref()) {
        (Some(WireSource::Result), _) => {
            let result = result.as_ref();
            shown.tool = text(result, "tool").unwrap_or("unknown").to_string();
            shown.elapsed_seconds = elapsed(result).unwrap_or(shown.elapsed_seconds);
            shown.summary = event.summary.clone();
        }
        (Some(WireSource::Packet), Some(LEGACY_REASON)) => {
            // csa 1142 reconciles a bare `.complete` as a signal with a
            // kill diagnostic of its own.
            shown.status = "signal".into();
            shown.exit_code = legacy_code(dir).unwrap_or(shown.exit_code);
            let diagnostic = kill_diagnostic();
            shown.kill_hint = Some(format!("unknown_signal ({diagnostic})"));
            shown.summary = Some(diagnostic);
        }
        (Some(WireSource::Packet), reason) => {
            shown.summary = Some(packet_summary(
                dir,
                reason == Some(REASON_EMPTY_SUCCESS),
                &shown.tool,
            ));
        }
        (_, Some(REASON_DIED | REASON_NO_PROCESS)) => {
            shown.tool = "unknown".into();
            shown.summary = Some(format!(
                "synthetic failure by session wait: process dead, result.toml missing \
                 (reconciliation_reason=true_missing_result, output_log_mtime=missing){}",
                diagnostics(dir)
            ));
        }
        _ => shown.summary = event.summary.clone(),
    }
    shown
}

/// The summary csa's reconciler writes for a packet without a result.
fn packet_summary(dir: &Path, forced_failure: bool, tool: &str) -> String {
    let packet = table(dir, files::PACKET_FILE);
    let packet = packet.as_ref();
    let status = text(packet, "status").unwrap_or("unknown");
    let code = packet
        .and_then(|p| p.get("exit_code")?.as_integer())
        .unwrap_or(1);
    let reason = text(packet, "reason")
        .map(|r| format!(" reason={r}"))
        .unwrap_or_default();
    let missing = if forced_failure {
        "; treating daemon completion as failure because result.toml was missing"
    } else {
        ""
    };
    let tool_note = if tool == "unknown" {
        "; no tool launch metadata was recorded"
    } else {
        ""
    };
    format!(
        "daemon completion recorded status={status} exit_code={code}{reason} before result.toml \
         was written{missing}{tool_note}; committed or staged work may be salvageable on the \
         session branch"
    )
}

fn legacy_code(dir: &Path) -> Option<i64> {
    let (bytes, _) = files::read_bounded(&dir.join(files::LEGACY_FILE)).ok()??;
    String::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// csa's `unknown_signal` kill diagnostic: memory as `/proc/meminfo` has
/// it; verdict looks for no cgroup scope, as csa found none for a session
/// it did not launch.
fn kill_diagnostic() -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mb = |key: &str| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib / 1024)
    };
    let memory = match (mb("MemAvailable:"), mb("MemTotal:")) {
        (Some(available), Some(total)) => {
            format!("MemAvailable: {available} MB / MemTotal: {total} MB")
        }
        _ => "MemAvailable: unavailable".into(),
    };
    let earlyoom = if earlyoom_runs() {
        "earlyoom running"
    } else {
        "earlyoom not running"
    };
    format!(
        "CSA diagnostic: signal kill hint: unknown_signal (termination_reason={LEGACY_REASON}, \
         {memory}, {earlyoom}, cgroup memory.events: unavailable at expected session scope). \
         No timeout or cgroup OOM evidence was found, and memory checks did not identify a \
         concrete kill source; reason remains unknown."
    )
}

/// A process named `earlyoom` runs (Linux; elsewhere there is none).
fn earlyoom_runs() -> bool {
    std::fs::read_dir("/proc").is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == "earlyoom")
        })
    })
}

/// csa's `synthetic_failure_diagnostics`, from the session's files.
fn diagnostics(dir: &Path) -> String {
    let state = table(dir, "state.toml");
    let state = state.as_ref();
    let phase = text(state, "phase").map_or_else(|| "Active".to_string(), capitalized);
    let mut lines = vec![
        "Diagnostics:".to_string(),
        format!("session_phase={phase}"),
        format!(
            "termination_reason={}",
            text(state, "termination_reason").unwrap_or("missing")
        ),
        format!(
            "last_accessed={}",
            text(state, "last_accessed").map_or_else(String::new, rfc3339_of_zulu)
        ),
        "liveness_reason=no_pid_no_progress".to_string(),
    ];
    for (label, name) in [
        ("daemon_completion", files::PACKET_FILE),
        ("legacy_complete", files::LEGACY_FILE),
        ("daemon_pid", files::PID_FILE),
        ("output_log", "output.log"),
        ("stderr_log", "stderr.log"),
        ("acp_events", "output/acp-events.jsonl"),
        ("liveness_snapshot", ".liveness.snapshot"),
    ] {
        lines.push(match std::fs::symlink_metadata(dir.join(name)) {
            Ok(meta) => format!(
                "{label}=present size_bytes={} mtime={}",
                meta.len(),
                meta.modified().map_or_else(|_| "unknown".into(), rfc3339)
            ),
            Err(_) => format!("{label}=missing"),
        });
    }
    format!("\n\n{}", lines.join("\n"))
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// `2026-12-01T17:59:42.5Z` as chrono's `to_rfc3339` writes it (`+00:00`).
fn rfc3339_of_zulu(text: &str) -> String {
    text.strip_suffix('Z')
        .map_or_else(|| text.to_string(), |t| format!("{t}+00:00"))
}

/// A time as chrono's `to_rfc3339` writes a UTC one: fractions of a second
/// in 3, 6 or 9 digits as needed, and `+00:00`.
fn rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let nanos = since.subsec_nanos();
    let fraction = match nanos {
        0 => String::new(),
        n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
        n if n % 1_000 == 0 => format!(".{:06}", n / 1_000),
        n => format!(".{n:09}"),
    };
    format!("{}{fraction}+00:00", utc_seconds(since.as_secs()))
}

/// `YYYY-MM-DDTHH:MM:SS` for seconds since the epoch (UTC).
pub fn utc_seconds(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds between `started_at` and `completed_at` of a result.
fn elapsed(result: Option<&toml::Table>) -> Option<i64> {
    let seconds = |key: &str| {
        let text = result?.get(key)?.as_str()?;
        let datetime: toml::value::Datetime = text.parse().ok()?;
        epoch_seconds(&datetime)
    };
    Some((seconds("completed_at")? - seconds("started_at")?).max(0))
}

fn epoch_seconds(datetime: &toml::value::Datetime) -> Option<i64> {
    let date = datetime.date?;
    let time = datetime.time?;
    let (y, m, d) = (
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    );
    // days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(
        days * 86_400
            + i64::from(time.hour) * 3600
            + i64::from(time.minute) * 60
            + i64::from(time.second),
    )
}

/// How long ago the session started (its `state.toml` was written).
fn age_seconds(dir: &Path) -> i64 {
    std::fs::metadata(dir.join("state.toml"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(0, |age| age.as_secs() as i64)
}

fn format_elapsed(seconds: i64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h {minutes}m {seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Newlines to spaces, cut at 500 characters (csa's
/// `compact_wait_summary_text`).
fn compact(summary: &str) -> Option<String> {
    let summary = summary.trim();
    if summary.is_empty() {
        return None;
    }
    let compact = one_line(&summary.replace(['\r', '\n'], " "));
    Some(match compact.char_indices().nth(MAX_SUMMARY_CHARS) {
        Some((cut, _)) => format!("{}...", &compact[..cut]),
        None => compact,
    })
}

/// The compact summary csa 1142 prints on stdout for a completed session.
pub fn summary(verdict: &Verdict) -> String {
    let dir = verdict.dir.clone().unwrap_or_default();
    let shown = shown(verdict, &dir);
    let mut lines = vec![
        format!("Session: {}", one_line(verdict.session())),
        format!("Status: {}", one_line(&shown.status)),
        format!("Exit code: {}", shown.exit_code),
        format!("Tool: {}", one_line(&shown.tool)),
        format!("Elapsed: {}", format_elapsed(shown.elapsed_seconds)),
    ];
    let summary = shown.summary.as_deref().and_then(compact);
    if let Some(kill_hint) = &shown.kill_hint {
        lines.push(format!("Kill hint: {}", one_line(kill_hint)));
    }
    if let Some(summary) = summary {
        lines.push(format!("Summary: {summary}"));
    }
    lines.join("\n")
}

/// The JSON object `--json` prints (keys sorted, as csa's serde_json does).
pub fn json(verdict: &Verdict) -> String {
    let dir = verdict.dir.clone().unwrap_or_default();
    let shown = shown(verdict, &dir);
    let null = serde_json::Value::Null;
    let mut object = serde_json::Map::new();
    let fields: [(&str, serde_json::Value); 23] = [
        ("elapsed_seconds", shown.elapsed_seconds.into()),
        ("exit_code", shown.exit_code.into()),
        ("failover", null.clone()),
        ("fix_finding_recovery", null.clone()),
        ("kill_diagnostics", null.clone()),
        (
            "kill_hint",
            shown.kill_hint.clone().map_or(null.clone(), Into::into),
        ),
        ("large_diff_warning", null.clone()),
        ("memory_soft_limit_recovery", null.clone()),
        ("memory_soft_limit_recovery_guidance", null.clone()),
        ("outcome", null.clone()),
        ("post_exec_gate", null.clone()),
        ("provider_quota_hint", null.clone()),
        ("require_commit_recovery", null.clone()),
        ("require_commit_recovery_guidance", null.clone()),
        ("review_failure_context", null.clone()),
        ("review_verdict", null.clone()),
        ("session_id", verdict.session().into()),
        ("status", shown.status.clone().into()),
        (
            "summary",
            shown
                .summary
                .as_deref()
                .and_then(compact)
                .map_or(null.clone(), Into::into),
        ),
        ("tokens", null.clone()),
        ("tool", shown.tool.clone().into()),
        ("unavailable_reason", null.clone()),
        ("warnings", serde_json::Value::Array(Vec::new())),
    ];
    for (key, value) in fields {
        object.insert(key.into(), value);
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(object)).unwrap_or_default()
}

/// The lines on stderr for a session alive at the cap: the sentence, the
/// `Progress:` line, the KV_WARM marker whose command is `rewait`, and the
/// structured retry hint for `provider`.
pub fn kv_warm(verdict: &Verdict, cap_secs: u64, provider: &str, rewait: &str) -> [String; 4] {
    let dir = verdict.dir.clone().unwrap_or_default();
    let tool = text(table(&dir, "metadata.toml").as_ref(), "tool")
        .unwrap_or("unknown")
        .to_string();
    let last_event = std::fs::metadata(dir.join("stdout.log"))
        .and_then(|m| m.modified())
        .map_or_else(
            |_| "unknown".into(),
            |t| {
                let secs = t
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                format!("{}Z", utc_seconds(secs))
            },
        );
    let id = word(verdict.session());
    [
        format!(
            "Session {} still running after {cap_secs}s wait cap; returning so caller can warm its KV cache before re-waiting.",
            one_line(verdict.session())
        ),
        format!(
            "Progress: elapsed={} tools={} last_event={last_event}",
            format_elapsed(age_seconds(&dir)),
            one_line(&tool)
        ),
        format!(
            "<!-- CSA:SESSION_WAIT_KV_WARM session={id} status=alive elapsed={cap_secs}s action=re-wait cmd=\"{}\" -->",
            attr(rewait)
        ),
        format!(
            "<!-- CSA:CALLER_HINT action=\"retry_wait\" provider=\"{}\" background=true timeout_min_sec=7200 notify_on_complete=true checkin_owner=CSA checkin_policy=provider_ttl forbid=\"{FORBID}\" -->",
            attr(provider)
        ),
    ]
}

/// A word for a shell: as is when it is safe, else in single quotes.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
