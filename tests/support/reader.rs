//! The harness shared by `tests/parser_props.rs` and the fuzz target
//! `fuzz/fuzz_targets/request_reader.rs` (which includes this file with `#[path]`): feed bytes
//! to a [`RequestReader`] the way the connection in `src/http/conn.rs` does, and check
//! on the way what must hold whatever the bytes are.

use socketserver::http::{Limits, Parsed, RequestReader, Version};

/// The statuses the parser is documented to refuse a request with.
pub const STATUSES: [u16; 6] = [400, 413, 414, 431, 501, 505];

/// `MAX_CHUNK_LINE` in `src/http/request.rs`: the longest chunk-size line accepted.
pub const MAX_CHUNK_LINE: usize = 4096;

/// A strict upper bound on the bytes the buffer holds while the reader answers `Partial`
/// (documented on `Limits`), read off
/// `src/http/request.rs`:
///
/// - head: `Partial` only while `buf.len() < max_header_bytes` (and, with no line feed yet,
///   `< max_request_line`, which only tightens it);
/// - `Content-Length: n`: `Partial` only while `buf.len() < head_len + n`, where
///   `head_len <= max_header_bytes` (else 431) and `n <= max_body` (else 413);
/// - chunked: the decoder refuses with 413 as soon as the raw chunked bytes it has walked past
///   exceed the framing allowance `2 * max_body + max_header_bytes`, and it answers `Partial`
///   only where it cannot move on: with less than one chunk-size line (`< MAX_CHUNK_LINE`),
///   one trailer line (`< max_header_bytes`) or a chunk's CRLF (`< 2`) after its position.
///
/// So head + raw chunked body (data and framing allowance) + one unfinished line:
/// `Partial` means `buf.len() < 2 * max_header_bytes + 2 * max_body + max(MAX_CHUNK_LINE,
/// max_header_bytes)`; a buffer that long has been answered `Complete` or `Error`.
pub fn max_buffered(limits: &Limits) -> usize {
    let head = limits.max_header_bytes;
    let allowance = limits.max_body.saturating_mul(2).saturating_add(limits.max_header_bytes);
    let line = MAX_CHUNK_LINE.max(limits.max_header_bytes);
    head.saturating_add(allowance).saturating_add(line)
}

/// One thing the reader said, in a form that can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete request, every field the parser fills in.
    Request {
        method: String,
        target: String,
        version: Version,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
        keep_alive: bool,
        consumed: usize,
    },
    /// A refusal; the connection loop closes after it, so it is the last event.
    Error(u16),
    /// The input ran out with this many bytes of an unfinished request in the buffer.
    End(usize),
}

/// Feeds `input` in chunks of `next_chunk()` bytes (clamped to 1..=what is left) into one
/// growing buffer; asks the reader what the buffer holds before each read, as the connection
/// loop does; drains `consumed` bytes and resets after each `Complete`; stops at an `Error`.
///
/// Panics if a property is broken: a `Partial` over [`max_buffered`], a body over
/// `max_body`, a `consumed` of zero or past the buffer, a status outside [`STATUSES`].
pub fn drive(input: &[u8], limits: Limits, mut next_chunk: impl FnMut() -> usize) -> Vec<Event> {
    let bound = max_buffered(&limits);
    let mut reader = RequestReader::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut events = Vec::new();
    loop {
        // The connection loop never asks about an empty buffer: it reads first.
        if !buf.is_empty() {
            match reader.advance(&buf) {
                Parsed::Complete { request, consumed } => {
                    assert!(consumed > 0 && consumed <= buf.len(), "consumed {consumed} of {}", buf.len());
                    assert!(
                        request.body().len() <= limits.max_body,
                        "body of {} bytes over max_body {}",
                        request.body().len(),
                        limits.max_body
                    );
                    events.push(Event::Request {
                        method: request.method().to_string(),
                        target: request.target().to_string(),
                        version: request.version(),
                        headers: request.headers().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
                        body: request.body().to_vec(),
                        keep_alive: request.wants_keep_alive(),
                        consumed,
                    });
                    buf.drain(..consumed);
                    reader.reset();
                    continue;
                }
                Parsed::Error(status) => {
                    assert!(STATUSES.contains(&status), "undocumented status {status}");
                    events.push(Event::Error(status));
                    return events;
                }
                Parsed::Partial => {
                    assert!(buf.len() < bound, "Partial with {} bytes buffered, bound {bound}", buf.len());
                }
            }
        }
        if fed == input.len() {
            events.push(Event::End(buf.len()));
            return events;
        }
        let n = next_chunk().clamp(1, input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
    }
}

/// [`drive`] with the whole input in one read.
pub fn drive_whole(input: &[u8], limits: Limits) -> Vec<Event> {
    drive(input, limits, || usize::MAX)
}
