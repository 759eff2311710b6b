//! The clients' reply reader and the line splitter: any byte stream from a
//! daemon is split into bounded lines and decoded or refused, never a
//! panic or an unbounded buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verdict_proto::codec::{LineSplitter, ReplyReader, MAX_LINE_BYTES};

fuzz_target!(|data: &[u8]| {
    let mut reader = ReplyReader::new(data);
    while let Ok(Some(_)) = reader.read_reply() {}
    // The splitter fed in odd-sized pieces holds at most one line.
    let mut splitter = LineSplitter::new();
    for piece in data.chunks(7) {
        splitter.push(piece);
        while let Some(line) = splitter.next_line() {
            match line {
                Ok(line) => assert!(line.len() <= MAX_LINE_BYTES),
                Err(_) => return,
            }
        }
        assert!(splitter.pending() <= MAX_LINE_BYTES + 7);
    }
});
