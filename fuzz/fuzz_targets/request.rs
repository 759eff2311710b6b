//! The daemon's request parser: any line a client sends gets a request or
//! an error naming the problem, never a panic, and an error reply that is
//! one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verdict_proto::codec::encode_line;
use verdict_proto::wire::{parse_request, Event, Reply};

fuzz_target!(|line: &[u8]| {
    match parse_request(line) {
        Ok((id, request)) => {
            // What it parsed encodes again as the same request and id.
            let mut again = request.line(&id);
            assert_eq!(again.pop(), Some(b'\n'));
            let reparsed = parse_request(&again).expect("a request re-parses");
            assert_eq!(reparsed, (id, request));
        }
        Err(err) => {
            let reply = encode_line(&Reply::new(
                err.id,
                Event::Error {
                    code: err.code,
                    message: err.message,
                },
            ));
            assert_eq!(reply.iter().filter(|b| **b == b'\n').count(), 1);
        }
    }
});
