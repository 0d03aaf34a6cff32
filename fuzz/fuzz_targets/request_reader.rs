//! Fuzz target for the incremental HTTP request parser (`RequestReader`).
//!
//! Input layout: the first `PLAN` bytes are a plan, the rest are the bytes a client sends.
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | `% 4 == 0`: the default `Limits`; otherwise the small limits of bytes 1..=4 |
//! | 1 | `max_request_line` = byte |
//! | 2 | `max_headers` = byte % 8, or 130 + byte % 8 from 248 up (httparse's slots on the heap) |
//! | 3 | `max_header_bytes` = 2 × byte |
//! | 4 | `max_body` = byte |
//! | 5 | split: 0 = byte by byte, otherwise chunks of 1..=byte bytes |
//! | 6, 7 | seed of the chunk sizes |
//!
//! The harness, shared with the property tests, is `tests/support/reader.rs`. It feeds the
//! bytes to the reader the way the connection in `src/http/conn.rs` does: ask what the buffer holds before reading more, append each chunk to one growing buffer,
//! drain `consumed` bytes after each `Complete` and go on with the pipelined rest, stop at the
//! first `Error`. The properties checked:
//!
//! 1. no panic;
//! 2. the sequence of outcomes is the same for the whole input in one piece as for the chunks;
//! 3. memory is bounded: the reader never answers `Partial` while the buffer holds more than
//!    `max_buffered(limits)` bytes (derived and explained in `tests/support/reader.rs`);
//! 4. a `Complete` request's body is at most `max_body` bytes and `consumed` is not zero nor
//!    past the buffer;
//! 5. every refusal is one of the documented statuses (400, 413, 414, 431, 501, 505).
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketserver::http::Limits;

#[path = "../../tests/support/reader.rs"]
mod reader;

const PLAN: usize = 8;

fn limits_from(plan: &[u8; PLAN]) -> Limits {
    if plan[0] % 4 == 0 {
        return Limits::default();
    }
    Limits {
        max_request_line: usize::from(plan[1]),
        max_headers: if plan[2] >= 248 { 130 + usize::from(plan[2] % 8) } else { usize::from(plan[2] % 8) },
        max_header_bytes: 2 * usize::from(plan[3]),
        max_body: usize::from(plan[4]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((plan, input)) = data.split_first_chunk::<PLAN>() else {
        return;
    };
    let limits = limits_from(plan);

    let whole = reader::drive_whole(input, limits);

    let max_chunk = usize::from(plan[5]);
    let mut state = u32::from(u16::from_le_bytes([plan[6], plan[7]])) | 1;
    let chunked = reader::drive(input, limits, || {
        if max_chunk == 0 {
            return 1;
        }
        // xorshift32: cheap, deterministic, and never stuck at zero (the seed is odd).
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        1 + state as usize % max_chunk
    });
    assert_eq!(whole, chunked, "whole input and chunked input disagree");
});
