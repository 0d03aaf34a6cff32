//! Fuzz target for the sans-IO HTTP connection (`HttpConn`), through the doc-hidden driver
//! in `socketserver::http::conn_cases` (the same one the unit and property tests use).
//!
//! Input layout: the first `PLAN` bytes are a plan, the rest are the bytes a client sends.
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | read sizes: 0 = byte by byte, otherwise 1..=byte bytes per read |
//! | 1 | write sizes: 0 = one byte per write, otherwise 1..=byte bytes per write |
//! | 2 | how often to read while output is pending: never (0) .. always (255) |
//! | 3, 4 | seed of the sizes |
//! | 5 | odd: the client closes its side after the input |
//!
//! The properties checked, against the table's configuration (`conn_cases::handler`, small
//! limits so that every limit is reachable):
//!
//! 1. no panic, and the drive ends (it is bounded by construction; a hang is a finding);
//! 2. the output is the same for the input fed whole as for the plan's reads and writes, and
//!    both agree on whether the connection stays open, unless the input asks for
//!    `100-continue` (whether the interim response is due depends on whether the body came
//!    with the head: by design);
//! 3. with EOF after the input, the connection always ends closed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketserver::http::Want;
use socketserver::http::conn_cases::{Step, drive, handler};

const PLAN: usize = 6;

fuzz_target!(|data: &[u8]| {
    if data.len() < PLAN {
        return;
    }
    let (plan, input) = data.split_at(PLAN);
    let mut state = u64::from(u16::from_le_bytes([plan[3], plan[4]])) | 1 << 32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (reads, writes, interleave, eof) = (plan[0], plan[1], plan[2], plan[5] % 2 == 1);
    let schedule = |step: Step| -> usize {
        let r = next();
        match step {
            Step::Read if reads == 0 => 1,
            Step::Read => 1 + (r % u64::from(reads)) as usize,
            Step::Write if writes == 0 => 1,
            Step::Write => 1 + (r % u64::from(writes)) as usize,
            Step::ReadWhileWriting => usize::from((r % 256) < u64::from(interleave)),
        }
    };
    let h = handler();
    let whole = drive(&h, input, eof, |_| usize::MAX);
    let planned = drive(&h, input, eof, schedule);
    let expects = input.windows(12).any(|w| w.eq_ignore_ascii_case(b"100-continue"));
    if !expects {
        assert_eq!(planned.0, whole.0, "output differs between whole and planned");
        let closing = |w: Want| matches!(w, Want::Drain | Want::Close);
        assert_eq!(closing(planned.1), closing(whole.1));
    }
    if eof {
        assert_eq!((whole.1, planned.1), (Want::Close, Want::Close));
    }
});
