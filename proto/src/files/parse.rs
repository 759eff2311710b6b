//! The parsers of a session's files: bytes in, plain values out, a
//! sentence naming the problem for anything else. They never panic.

use serde::Deserialize;

use super::{Packet, PidFile, SessionResult, LEGACY_REASON};

/// Parses `daemon.pid`.
pub fn parse_pid_file(bytes: &[u8]) -> Result<PidFile, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())?;
    let mut words = text.split_whitespace();
    let pid_word = words.next().ok_or("is empty")?;
    let pid: i32 = pid_word
        .parse()
        .map_err(|_| format!("pid {pid_word:?} is not a number"))?;
    if pid <= 1 {
        return Err(format!("pid {pid} cannot be a session process"));
    }
    let starttime = match words.next() {
        None => None,
        Some(word) => Some(
            word.parse()
                .map_err(|_| format!("starttime {word:?} is not a number"))?,
        ),
    };
    if words.next().is_some() {
        return Err("has more than two fields".into());
    }
    Ok(PidFile { pid, starttime })
}

/// Parses `result.toml`; keys other than `status`, `exit_code` and `summary`
/// are ignored.
pub fn parse_result(bytes: &[u8]) -> Result<SessionResult, String> {
    #[derive(Deserialize)]
    struct Raw {
        status: String,
        exit_code: i64,
        summary: Option<String>,
    }
    let raw: Raw = parse_toml(bytes)?;
    Ok(SessionResult {
        status: raw.status,
        exit_code: to_exit_code(raw.exit_code)?,
        summary: raw.summary,
    })
}

/// Parses `daemon-completion.toml`. A missing `status` is derived from the
/// exit code (`success` for 0, `signal` for 137 and 143, else `failure`);
/// 137 and 143 are `signal` whatever the file says, as current csa writes.
pub fn parse_packet(bytes: &[u8]) -> Result<Packet, String> {
    #[derive(Deserialize)]
    struct Raw {
        exit_code: i64,
        status: Option<String>,
        reason: Option<String>,
    }
    let raw: Raw = parse_toml(bytes)?;
    let exit_code = to_exit_code(raw.exit_code)?;
    let status = match raw.status {
        Some(_) if is_signal(exit_code) => status_for(exit_code).into(),
        Some(status) => status,
        None => status_for(exit_code).into(),
    };
    Ok(Packet {
        status,
        exit_code,
        reason: raw.reason,
    })
}

/// Parses a legacy `.complete` file: one integer exit code.
pub fn parse_legacy(bytes: &[u8]) -> Result<Packet, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())?;
    let word = text.trim();
    let code: i64 = word
        .parse()
        .map_err(|_| format!("{word:?} is not an integer exit code"))?;
    let exit_code = to_exit_code(code)?;
    Ok(Packet {
        status: status_for(exit_code).into(),
        exit_code,
        reason: Some(LEGACY_REASON.into()),
    })
}

/// 128 + SIGKILL and 128 + SIGTERM: the process was killed.
fn is_signal(exit_code: i32) -> bool {
    matches!(exit_code, 137 | 143)
}

fn status_for(exit_code: i32) -> &'static str {
    match exit_code {
        0 => "success",
        code if is_signal(code) => "signal",
        _ => "failure",
    }
}

fn to_exit_code(code: i64) -> Result<i32, String> {
    i32::try_from(code).map_err(|_| format!("exit_code {code} is out of range for an exit code"))
}

/// Deepest `[`/`{` nesting accepted before TOML is handed to the parser: a
/// hostile file of a million `[` must not exhaust the stack.
const MAX_NESTING: usize = 64;

fn parse_toml<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "is not UTF-8".to_string())?;
    if nesting_depth(text) > MAX_NESTING {
        return Err(format!("nests arrays or tables deeper than {MAX_NESTING}"));
    }
    toml::from_str(text).map_err(|err| flatten_toml_error(&err))
}

/// An upper bound on bracket nesting (brackets inside strings count too,
/// which only makes the check stricter for absurd files).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn flatten_toml_error(err: &toml::de::Error) -> String {
    // toml's Display spans several lines with a source excerpt; one line
    // is what a verdict note and a log line need.
    let message = err.message().trim();
    match err.span() {
        Some(span) => format!("is not valid: {message} (at byte {})", span.start),
        None => format!("is not valid: {message}"),
    }
}
