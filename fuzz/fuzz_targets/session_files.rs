//! Every session-file parser on any bytes: a value or a reason, never a
//! panic, and a reason never quotes what the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verdict_core::files::{parse_legacy, parse_packet, parse_pid_file, parse_result};
use verdict_core::liveness::{parse_lock_pid, parse_proc_stat};

fuzz_target!(|data: &[u8]| {
    let reasons = [
        parse_pid_file(data).err(),
        parse_result(data).err(),
        parse_packet(data).err(),
        parse_legacy(data).err(),
    ];
    let _ = parse_lock_pid(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_proc_stat(text);
    }
    // A reason names fields, lines and columns. Any run of 12 or more
    // letters and digits of the input that shows up in a reason (and is
    // not a word of ours) was quoted from the file.
    let text = String::from_utf8_lossy(data);
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        if word.len() < 12 || OURS.iter().any(|ours| ours.contains(word)) {
            continue;
        }
        for reason in reasons.iter().flatten() {
            assert!(!reason.contains(word), "{reason:?} quotes {word:?}");
        }
    }
});

/// Words the reasons themselves contain.
const OURS: &[&str] = &["exit_code is out of range", "symbolic", "regular", "wrong type, expected"];
