//! The request side: [`Request`], the pure incremental parser ([`RequestReader`],
//! [`parse_request`]) and its [`Limits`].
//!
//! Nothing in this file does I/O. The connection (`conn.rs`, the sans-IO `HttpConn`) appends
//! whatever the socket gave it to one buffer and asks [`RequestReader::advance`] what that buffer holds now:
//! a complete request, not enough yet ([`Parsed::Partial`]), or a reason to refuse it with a
//! status code. Because the answer depends only on the bytes, the tests can replay every input
//! byte by byte and split at every position and demand the same answer.

use std::fmt;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use crate::transport::Addr;
use std::ops::Range;

use super::chunked::{Chunk, decode_chunked};

/// The HTTP version of a request. Only HTTP/1.0 and HTTP/1.1 are spoken here; anything else is
/// refused with 505 before a [`Request`] exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`: connections close after each response unless the client asks otherwise.
    Http10,
    /// `HTTP/1.1`: connections stay open unless either side says `Connection: close`.
    Http11,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        })
    }
}

/// Size limits applied while a request is read. Each one bounds the memory a client can make
/// the server hold, and each has its own status code.
///
/// | limit | default | status when exceeded |
/// |---|---|---|
/// | [`max_request_line`](Limits::max_request_line) | 8 KiB | 414 URI Too Long |
/// | [`max_headers`](Limits::max_headers) | 100 | 431 Request Header Fields Too Large |
/// | [`max_header_bytes`](Limits::max_header_bytes) | 64 KiB | 431 Request Header Fields Too Large |
/// | [`max_body`](Limits::max_body) | 1 MiB | 413 Content Too Large |
///
/// Together they bound the buffer: [`RequestReader::advance`] answers [`Parsed::Partial`] only
/// while the buffer holds fewer than `2 * max_header_bytes + 2 * max_body + max(4 KiB,
/// max_header_bytes)` bytes: the head, the raw chunked body (its data plus a framing allowance
/// of `max_body + max_header_bytes` for chunk-size lines, extensions and trailers), and one
/// unfinished chunk-size or trailer line. A `Content-Length` body needs only
/// `max_header_bytes + max_body`. `tests/support/reader.rs` asserts the bound on every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, counted up to and including its line feed.
    pub max_request_line: usize,
    /// Most header fields in one request.
    pub max_headers: usize,
    /// Longest header section: request line, header fields and the empty line that ends them.
    pub max_header_bytes: usize,
    /// Largest body, after chunked decoding.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_request_line: 8 * 1024,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            max_body: 1024 * 1024,
        }
    }
}

/// A parsed HTTP request: request line, header fields and the whole (de-chunked) body.
///
/// The head is kept as two buffers with ranges into them: a `String` for the method, target
/// and header names, which httparse has checked already, so the accessors return `&str`
/// without checking UTF-8 again; and bytes for the header values, which may be anything. So
/// a request costs four allocations at most (text, values, header index, body) however many
/// headers it has, and none when its
/// buffers are handed back with [`RequestReader::recycle`] for the next request on the
/// connection, as the [`HttpHandler`](super::HttpHandler) does.
#[derive(Clone)]
pub struct Request {
    /// Method, target and header names, concatenated; `method`, `target` and the names in
    /// `headers` index it.
    text: String,
    /// Header values, concatenated; the values in `headers` index it.
    values: Vec<u8>,
    method: Range<usize>,
    target: Range<usize>,
    /// Length of the path part of the target (up to `?`).
    path_len: usize,
    version: Version,
    headers: Vec<(Range<usize>, Range<usize>)>,
    body: Vec<u8>,
    peer_addr: Addr,
    keep_alive: bool,
}

impl Request {
    /// The method, e.g. `"GET"`. Case-sensitive, as HTTP says it is.
    pub fn method(&self) -> &str {
        self.str_at(self.method.clone())
    }

    /// The request-target exactly as sent, e.g. `"/delay?s=1"`.
    pub fn target(&self) -> &str {
        self.str_at(self.target.clone())
    }

    /// The path part of the target, before any `?`: `"/delay"`. Not percent-decoded.
    pub fn path(&self) -> &str {
        let target = self.target();
        target.get(..self.path_len).unwrap_or(target)
    }

    /// The query part of the target, after the first `?` and without it: `Some("s=1")`.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, q)| q)
    }

    /// The first value of `key` in the query string: `query_param("s")` is `Some("1")` for
    /// `/delay?s=1`. A key without `=` has the value `""`.
    ///
    /// Values are returned as sent: no percent-decoding and no `+`-to-space, so `a%20b` stays
    /// `a%20b`. That is enough for the numeric parameters the examples use, and it keeps the
    /// return type a borrowed `&str`.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then_some(v)
        })
    }

    /// The protocol version of the request line.
    pub fn version(&self) -> Version {
        self.version
    }

    /// All header fields in the order they arrived: `(name, value)`. Names are ASCII as sent
    /// (not lower-cased); values are raw bytes, since HTTP allows non-UTF-8 in them.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .map(|(name, value)| (self.str_at(name.clone()), self.values.get(value.clone()).unwrap_or(&[])))
    }

    /// The value of the first header field called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.raw_headers().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }

    /// Like [`headers`](Request::headers), with the names as bytes: comparing names needs no
    /// UTF-8 check, and the parser and [`header`](Request::header) only compare.
    fn raw_headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers.iter().map(|(name, value)| {
            (self.str_at(name.clone()).as_bytes(), self.values.get(value.clone()).unwrap_or(&[]))
        })
    }

    /// The body, with any chunked transfer coding removed. Empty if the request had none.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The client's address. [`parse_request`] does not know it and leaves `0.0.0.0:0`; the
    /// [`HttpHandler`](super::HttpHandler) fills it in.
    pub fn peer_addr(&self) -> &Addr {
        &self.peer_addr
    }

    /// Whether the client wants the connection kept open after the response: HTTP/1.1 unless
    /// a `Connection` header lists `close`; HTTP/1.0 only if it lists `keep-alive`.
    pub fn wants_keep_alive(&self) -> bool {
        self.keep_alive
    }

    pub(crate) fn set_peer_addr(&mut self, addr: Addr) {
        self.peer_addr = addr;
    }

    fn str_at(&self, range: Range<usize>) -> &str {
        // The parser records only ranges of whole strings it pushed, so they fall on character
        // boundaries and the fallback is never taken.
        self.text.get(range).unwrap_or("")
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version)
            .field(
                "headers",
                &self.headers().map(|(n, v)| (n, String::from_utf8_lossy(v))).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.len())
            .field("peer_addr", &self.peer_addr)
            .finish()
    }
}

/// What a buffer holds, according to [`RequestReader::advance`] or [`parse_request`].
#[derive(Debug)]
pub enum Parsed {
    /// One whole request. It used the first `consumed` bytes of the buffer; anything after them
    /// is the start of the next (pipelined) request.
    Complete {
        /// The request.
        request: Request,
        /// How many bytes of the buffer it took.
        consumed: usize,
    },
    /// Not a whole request yet: read more and ask again. This is a state, not an error.
    Partial,
    /// The request is refused with this status code (400, 413, 414, 431, 501 or 505). The
    /// connection cannot be trusted to be in sync any more, so the caller closes it after
    /// answering.
    Error(u16),
}

/// Parses the request at the start of `buf` in one go: a fresh [`RequestReader`], advanced once.
///
/// ```
/// use socketserver::http::{Limits, Parsed, parse_request};
/// let buf = b"GET /delay?s=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
/// match parse_request(buf, &Limits::default()) {
///     Parsed::Complete { request, consumed } => {
///         assert_eq!(request.path(), "/delay");
///         assert_eq!(request.query_param("s"), Some("1"));
///         assert_eq!(&buf[consumed..], b"GET /next");
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
pub fn parse_request(buf: &[u8], limits: &Limits) -> Parsed {
    RequestReader::new(*limits).advance(buf)
}

/// The incremental request parser: call [`advance`](RequestReader::advance) with the whole
/// buffer each time more bytes arrive, and [`reset`](RequestReader::reset) after a request has
/// been taken out of it.
///
/// It remembers how far it got, so a large body is scanned once, not once per read. The head
/// is re-parsed from the start on each call until it is complete, which is httparse's model and
/// costs little because the head is bounded by [`Limits::max_header_bytes`].
///
/// The contract that makes it testable: as long as each call sees the previous buffer with
/// more bytes appended, the first non-`Partial` answer is the same however the bytes were
/// split into calls.
#[derive(Debug)]
pub struct RequestReader {
    limits: Limits,
    state: State,
    /// Buffers of a finished request, emptied, for the next one to fill.
    spare: Spare,
}

/// The buffers of a [`Request`], kept between requests so that a keep-alive connection
/// allocates them once rather than once per request.
#[derive(Debug, Default)]
struct Spare {
    text: String,
    values: Vec<u8>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    body: Vec<u8>,
}

/// A recycled buffer larger than this is dropped rather than kept: one large request must not
/// pin its memory for the rest of a long-lived connection.
const MAX_SPARE_BYTES: usize = 16 * 1024;

#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one State per connection; boxing the Request cost an allocation per request"
)]
enum State {
    /// Waiting for the end of the header section.
    Head,
    /// The head is parsed; the body is being collected.
    Body { request: Request, head_len: usize, expect_continue: bool, body: BodyState },
}

#[derive(Debug)]
enum BodyState {
    /// `Content-Length: n`: the body is the next `n` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`: `pos` is how far into the buffer the decoder has got.
    Chunked { pos: usize, phase: Chunk },
}

impl RequestReader {
    /// A reader that enforces `limits`.
    pub fn new(limits: Limits) -> RequestReader {
        RequestReader { limits, state: State::Head, spare: Spare::default() }
    }

    /// Takes back a request this reader produced (or any other) once it has been answered, and
    /// keeps its buffers for the next request, so that a connection serving many requests
    /// allocates them once. Optional: without it, each request allocates its own.
    pub fn recycle(&mut self, request: Request) {
        let Request { mut text, mut values, mut headers, mut body, .. } = request;
        text.clear();
        values.clear();
        headers.clear();
        body.clear();
        if text.capacity() <= MAX_SPARE_BYTES {
            self.spare.text = text;
        }
        if values.capacity() <= MAX_SPARE_BYTES {
            self.spare.values = values;
        }
        if headers.capacity() <= self.limits.max_headers.min(STACK_HEADERS) {
            self.spare.headers = headers;
        }
        if body.capacity() <= MAX_SPARE_BYTES {
            self.spare.body = body;
        }
    }

    /// Forgets the current request, ready for the next one. Call it after taking a
    /// [`Parsed::Complete`] request's bytes out of the buffer.
    pub fn reset(&mut self) {
        self.state = State::Head;
    }

    /// `true` once the head of a request with `Expect: 100-continue` is parsed and its body has
    /// not all arrived: the client is waiting for `HTTP/1.1 100 Continue` before it sends the
    /// body.
    pub fn expects_continue(&self) -> bool {
        matches!(self.state, State::Body { expect_continue: true, .. })
    }

    /// `true` once the head of the current request is parsed and its body is being collected:
    /// the connection then measures the body's receive rate instead of the header timeout.
    pub(crate) fn in_body(&self) -> bool {
        matches!(self.state, State::Body { .. })
    }

    /// Looks at `buf`, which must start where the current request starts and extend the
    /// buffer of the previous call, and says what it holds.
    pub fn advance(&mut self, buf: &[u8]) -> Parsed {
        if let State::Head = self.state {
            match parse_head(buf, &self.limits, &mut self.spare) {
                HeadOutcome::Partial => return Parsed::Partial,
                HeadOutcome::Error(status) => return Parsed::Error(status),
                HeadOutcome::Done { request, head_len, framing, expect_continue } => {
                    let body = match framing {
                        Framing::Length(n) => BodyState::Length(n),
                        Framing::Chunked => BodyState::Chunked { pos: head_len, phase: Chunk::Size },
                    };
                    self.state = State::Body { request, head_len, expect_continue, body };
                }
            }
        }
        let State::Body { request, head_len, body, .. } = &mut self.state else {
            return Parsed::Partial;
        };
        let head_len = *head_len;
        let consumed = match body {
            BodyState::Length(n) => {
                let end = head_len.saturating_add(*n);
                match buf.get(head_len..end) {
                    Some(bytes) => {
                        request.body.extend_from_slice(bytes);
                        end
                    }
                    None => return Parsed::Partial,
                }
            }
            BodyState::Chunked { pos, phase } => {
                match decode_chunked(buf, pos, phase, &mut request.body, head_len, &self.limits) {
                    Ok(Some(end)) => end,
                    Ok(None) => return Parsed::Partial,
                    Err(status) => return Parsed::Error(status),
                }
            }
        };
        match std::mem::replace(&mut self.state, State::Head) {
            State::Body { request, .. } => Parsed::Complete { request, consumed },
            State::Head => Parsed::Partial,
        }
    }
}

/// How the body is delimited, decided from the head (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
}

enum HeadOutcome {
    Partial,
    Error(u16),
    Done { request: Request, head_len: usize, framing: Framing, expect_continue: bool },
}

/// Header slots httparse fills on the stack; a larger [`Limits::max_headers`] uses the heap.
const STACK_HEADERS: usize = 128;

fn parse_head(buf: &[u8], limits: &Limits, spare: &mut Spare) -> HeadOutcome {
    // Look only at a window of the buffer that is within the limits. Then the answer for a
    // long buffer is the answer for its first `limit` bytes, whatever comes later, which is
    // what makes "refuse as soon as the limit is crossed" and "refuse after seeing it all"
    // agree: the memory bound and the byte-by-byte test both depend on it.
    let line_window = buf.len().min(limits.max_request_line);
    let line_ends = buf.get(..line_window).is_some_and(|w| w.contains(&b'\n'));
    // The request line is part of the header section, so the section limit caps the window
    // too: with `max_header_bytes < max_request_line`, a byte past the section limit must not
    // turn a 431 into a 400 depending on how the bytes were split (found by the fuzzer).
    let window_len = buf.len().min(if line_ends { limits.max_header_bytes } else { line_window });
    let window_len = window_len.min(limits.max_header_bytes);
    let window = buf.get(..window_len).unwrap_or(buf);

    // Uninitialised slots: httparse writes only the ones it fills. Initialised ones cost a
    // 4 KiB memset per parse, which was more than the parse itself for a small request.
    let result = if limits.max_headers <= STACK_HEADERS {
        let mut slots = [const { MaybeUninit::uninit() }; STACK_HEADERS];
        parse_head_with(window, slots.get_mut(..limits.max_headers).unwrap_or(&mut []), spare)
    } else {
        let mut slots = vec![MaybeUninit::uninit(); limits.max_headers];
        parse_head_with(window, &mut slots, spare)
    };
    match result {
        Err(status) => HeadOutcome::Error(status),
        // If the section limit is the smaller one, it is crossed first, at a length where the
        // line may yet end: then 431 is the only answer every split agrees on.
        Ok(None)
            if !line_ends
                && buf.len() >= limits.max_request_line
                && limits.max_request_line <= limits.max_header_bytes =>
        {
            HeadOutcome::Error(414)
        }
        Ok(None) if buf.len() >= limits.max_header_bytes => HeadOutcome::Error(431),
        Ok(None) => HeadOutcome::Partial,
        Ok(Some((request, head_len))) => finish_head(request, head_len, limits),
    }
}

/// Runs httparse over `window` and copies what it found into an owned [`Request`], made of the
/// `spare` buffers when there are any.
fn parse_head_with<'b>(
    window: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    spare: &mut Spare,
) -> Result<Option<(Request, usize)>, u16> {
    let mut parsed = httparse::Request::new(&mut []);
    let head_len = match parsed.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(status_for(e)),
    };
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version) else {
        return Err(400);
    };
    let version = if version == 0 { Version::Http10 } else { Version::Http11 };

    let mut text = std::mem::take(&mut spare.text);
    let mut values = std::mem::take(&mut spare.values);
    text.reserve(method.len() + target.len() + parsed.headers.iter().map(|h| h.name.len()).sum::<usize>());
    values.reserve(parsed.headers.iter().map(|h| h.value.len()).sum::<usize>());
    let mut push_text = |s: &str| {
        let start = text.len();
        text.push_str(s);
        start..text.len()
    };
    let method = push_text(method);
    let target_range = push_text(target);
    let mut headers = std::mem::take(&mut spare.headers);
    for h in parsed.headers.iter() {
        let name = push_text(h.name);
        let start = values.len();
        values.extend_from_slice(h.value);
        headers.push((name, start..values.len()));
    }
    let path_len = target.find('?').unwrap_or(target.len());
    let request = Request {
        text,
        values,
        method,
        target: target_range,
        path_len,
        version,
        headers,
        body: std::mem::take(&mut spare.body),
        peer_addr: Addr::Inet(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))),
        keep_alive: false,
    };
    Ok(Some((request, head_len)))
}

/// httparse's error kinds, as status codes.
fn status_for(e: httparse::Error) -> u16 {
    match e {
        // More header fields than slots: the client sent too many.
        httparse::Error::TooManyHeaders => 431,
        // "HTTP/2.0", "HTTP/3", and the HTTP/2 connection preface `PRI * HTTP/2.0`.
        httparse::Error::Version => 505,
        _ => 400,
    }
}

/// Checks what httparse does not: line and section lengths, `Host`, and the body framing
/// headers, which are where request smuggling lives, so they are read strictly.
fn finish_head(mut request: Request, head_len: usize, limits: &Limits) -> HeadOutcome {
    if head_len > limits.max_header_bytes {
        return HeadOutcome::Error(431);
    }
    // The window logic refuses an unterminated long line; a terminated one is measured here
    // (httparse skips empty lines before the request line, so count the line it parsed).
    if request_line_len(&request) > limits.max_request_line {
        return HeadOutcome::Error(414);
    }
    if request.version == Version::Http11 && request.header("host").is_none() {
        return HeadOutcome::Error(400);
    }

    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut saw_te = false;
    let mut keep_alive = request.version == Version::Http11;
    let mut close = false;
    let mut expect_continue = false;
    for (name, value) in request.raw_headers() {
        if name.eq_ignore_ascii_case(b"content-length") {
            // Plain digits only: "+5", "5 ", "0x5", "5, 5" are all refused, because two parsers
            // that disagree on a length are how requests get smuggled.
            let Some(n) = parse_digits(value) else {
                return HeadOutcome::Error(400);
            };
            match content_length {
                Some(previous) if previous != n => return HeadOutcome::Error(400),
                _ => content_length = Some(n),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Exactly one coding, `chunked`. Anything else (gzip, "gzip, chunked", a second
            // Transfer-Encoding field) is a coding we do not implement.
            chunked = !saw_te && trim(value).eq_ignore_ascii_case(b"chunked");
            saw_te = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            // HTTP/1.0 clients cannot be waiting for a 100 they do not know about.
            expect_continue =
                request.version == Version::Http11 && trim(value).eq_ignore_ascii_case(b"100-continue");
        }
    }
    request.keep_alive = keep_alive && !close;

    let framing = match (content_length, saw_te) {
        (Some(_), true) => return HeadOutcome::Error(400),
        (_, true) if !chunked => return HeadOutcome::Error(501),
        (_, true) => Framing::Chunked,
        (Some(n), false) => match usize::try_from(n) {
            Ok(n) if n <= limits.max_body => Framing::Length(n),
            _ => return HeadOutcome::Error(413),
        },
        (None, false) => Framing::Length(0),
    };
    // A body of length zero needs no 100 Continue: the request is complete already.
    let expect_continue = expect_continue && !matches!(framing, Framing::Length(0));
    HeadOutcome::Done { request, head_len, framing, expect_continue }
}

/// Length of `METHOD SP target SP HTTP/1.x CRLF`.
fn request_line_len(request: &Request) -> usize {
    request.method.len() + 1 + request.target.len() + 1 + "HTTP/1.1\r\n".len()
}

/// A decimal number made of ASCII digits only (optional surrounding whitespace, which httparse
/// already strips). Overflow of `u64` counts as "too large", reported later as 413.
fn parse_digits(value: &[u8]) -> Option<u64> {
    let value = trim(value);
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, &d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parse came to, in a form tests can compare.
    #[derive(Debug, PartialEq, Eq)]
    enum Outcome {
        Partial,
        Status(u16),
        Req { method: String, path: String, body: Vec<u8>, consumed: usize },
    }

    fn summarize(p: Parsed) -> Outcome {
        match p {
            Parsed::Partial => Outcome::Partial,
            Parsed::Error(s) => Outcome::Status(s),
            Parsed::Complete { request, consumed } => Outcome::Req {
                method: request.method().to_string(),
                path: request.path().to_string(),
                body: request.body().to_vec(),
                consumed,
            },
        }
    }

    /// Parses `input` whole, byte by byte, and split in two at every position, and insists on
    /// one answer.
    fn parse_every_way(input: &[u8], limits: &Limits) -> Outcome {
        let whole = summarize(parse_request(input, limits));

        let mut reader = RequestReader::new(*limits);
        let mut got = Outcome::Partial;
        for end in 1..=input.len() {
            got = summarize(reader.advance(&input[..end]));
            if got != Outcome::Partial {
                break;
            }
        }
        assert_eq!(got, whole, "byte by byte");

        for split in 0..=input.len() {
            let mut reader = RequestReader::new(*limits);
            let first = summarize(reader.advance(&input[..split]));
            let got = if first == Outcome::Partial { summarize(reader.advance(input)) } else { first };
            assert_eq!(got, whole, "split at {split}");
        }
        whole
    }

    /// Small limits, so that limit cases stay small enough to replay at every split.
    const SMALL: Limits =
        Limits { max_request_line: 64, max_headers: 4, max_header_bytes: 256, max_body: 16 };

    enum Expect {
        /// One whole request that uses all the input.
        Ok(&'static str, &'static str, &'static [u8]),
        /// A request that uses only the first `n` bytes.
        First(&'static str, &'static str, &'static [u8], usize),
        Status(u16),
        Partial,
    }

    macro_rules! cases {
        ($($name:ident: $limits:expr, $input:expr => $expect:expr,)*) => {$(
            #[test]
            fn $name() {
                let input: &[u8] = $input;
                let got = parse_every_way(input, &$limits);
                let want = match $expect {
                    Expect::Ok(m, p, b) => Outcome::Req { method: m.into(), path: p.into(), body: b.to_vec(), consumed: input.len() },
                    Expect::First(m, p, b, n) => Outcome::Req { method: m.into(), path: p.into(), body: b.to_vec(), consumed: n },
                    Expect::Status(s) => Outcome::Status(s),
                    Expect::Partial => Outcome::Partial,
                };
                assert_eq!(got, want);
            }
        )*};
    }

    /// A section limit below the line limit: the section limit is crossed first.
    const NARROW: Limits =
        Limits { max_request_line: 64, max_headers: 4, max_header_bytes: 16, max_body: 16 };

    const D: Limits = Limits {
        max_request_line: 8 * 1024,
        max_headers: 100,
        max_header_bytes: 64 * 1024,
        max_body: 1024 * 1024,
    };

    cases! {
        simple_get: D, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" => Expect::Ok("GET", "/", b""),
        path_and_query: D, b"GET /delay?s=1 HTTP/1.1\r\nHost: x\r\n\r\n" => Expect::Ok("GET", "/delay", b""),
        http10_needs_no_host: D, b"GET / HTTP/1.0\r\n\r\n" => Expect::Ok("GET", "/", b""),
        bare_lf_line_ends: D, b"GET /lf HTTP/1.1\nHost: x\n\n" => Expect::Ok("GET", "/lf", b""),
        leading_empty_line_skipped: D, b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n" => Expect::Ok("GET", "/", b""),
        utf8_path: D, "GET /caf\u{e9} HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes() => Expect::Ok("GET", "/caf\u{e9}", b""),
        non_ascii_header_value_kept: D, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \xff\xfe\r\n\r\n" => Expect::Ok("GET", "/", b""),
        content_length_body: D, b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" => Expect::Ok("POST", "/p", b"hello"),
        duplicate_equal_lengths: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi" => Expect::Ok("POST", "/", b"hi"),
        incomplete_head: D, b"GET / HTTP/1.1\r\nHost: x\r\n" => Expect::Partial,
        incomplete_body: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel" => Expect::Partial,
        chunked_with_ext_and_trailers: D,
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;name=val\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
            => Expect::Ok("POST", "/c", b"hello world"),
        chunked_case_insensitive_and_hex: D,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"
            => Expect::Ok("POST", "/", b"0123456789"),
        chunked_incomplete: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n" => Expect::Partial,
        chunked_bad_size: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" => Expect::Status(400),
        chunked_missing_crlf_after_data: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiXX0\r\n\r\n" => Expect::Status(400),
        chunked_bad_trailer: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnocolon\r\n\r\n" => Expect::Status(400),
        chunked_one_chunk_too_large: SMALL, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n" => Expect::Status(413),
        chunked_sum_too_large: SMALL,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n9\r\n123456789\r\n0\r\n\r\n"
            => Expect::Status(413),
        pipelined_first_request: D,
            b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"
            => Expect::First("GET", "/one", b"", 30),
        request_line_too_long: SMALL, &[b"GET /".as_slice(), &[b'a'; 100], b" HTTP/1.1\r\nHost: x\r\n\r\n"].concat() => Expect::Status(414),
        request_line_never_ends: SMALL, &[b"GET /".as_slice(), &[b'a'; 100]].concat() => Expect::Status(414),
        too_many_headers: SMALL, b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n" => Expect::Status(431),
        header_section_too_large: SMALL,
            &[b"GET / HTTP/1.1\r\nHost: x\r\nA: ".as_slice(), &[b'v'; 300], b"\r\n\r\n"].concat() => Expect::Status(431),
        body_too_large_by_length: SMALL, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n" => Expect::Status(413),
        huge_length_is_413: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n" => Expect::Status(413),
        body_at_limit_is_fine: SMALL, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n0123456789abcdef" => Expect::Ok("POST", "/", b"0123456789abcdef"),
        malformed_request_line: D, b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n" => Expect::Status(400),
        bad_method_char: D, b"GE(T / HTTP/1.1\r\nHost: x\r\n\r\n" => Expect::Status(400),
        header_without_colon: D, b"GET / HTTP/1.1\r\nHost x\r\n\r\n" => Expect::Status(400),
        nul_in_target: D, b"GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n" => Expect::Status(400),
        control_byte_in_target: D, b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n" => Expect::Status(400),
        // httparse accepts bytes >= 0x80 in a target but refuses invalid UTF-8 (Error::Token);
        // Request::target is a &str, so 400 is the right answer for us too.
        non_utf8_target: D, b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n" => Expect::Status(400),
        length_and_chunked: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" => Expect::Status(400),
        length_with_sign: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" => Expect::Status(400),
        length_not_digits: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\nhello" => Expect::Status(400),
        length_list: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello" => Expect::Status(400),
        length_empty: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n" => Expect::Status(400),
        duplicate_differing_lengths: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" => Expect::Status(400),
        missing_host_on_http11: D, b"GET / HTTP/1.1\r\n\r\n" => Expect::Status(400),
        gzip_transfer_encoding: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" => Expect::Status(501),
        gzip_then_chunked: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" => Expect::Status(501),
        two_transfer_encodings: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" => Expect::Status(501),
        http2_version: D, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n" => Expect::Status(505),
        http2_preface: D, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" => Expect::Status(505),
        http12_version: D, b"GET / HTTP/1.2\r\nHost: x\r\n\r\n" => Expect::Status(505),
        http09_style: D, b"GET /\r\n\r\n" => Expect::Status(400),
        // Hostile-client forms (issue 4): each must be refused, never parsed some lenient way.
        http09_request_line_only: D, b"GET /\r\n" => Expect::Status(400),
        negative_length: D, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" => Expect::Status(400),
        chunked_then_length: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" => Expect::Status(400),
        space_before_colon: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" => Expect::Status(400),
        xchunked_is_not_chunked: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n" => Expect::Status(501),
        chunked_comma_list: D, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n" => Expect::Status(501),
        obs_fold_continuation: D, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n" => Expect::Status(400),
        obs_fold_tab_continuation: D, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n" => Expect::Status(400),
        nul_in_header_value: D, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n" => Expect::Status(400),
        control_byte_in_header_value: D, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n" => Expect::Status(400),
        bare_cr_in_header_value: D, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n" => Expect::Status(400),
        // Fuzzer finds: a bad byte past max_header_bytes (< max_request_line) gave 400 when it
        // arrived before the line feed and 431 when it arrived with it.
        bad_byte_past_section_limit: NARROW, b"GET /aaaaaaaaaaaaaaaa\x01 HTTP/1.1\r\nHost: x\r\n\r\n" => Expect::Status(431),
        bad_first_byte_zero_section_limit: Limits { max_header_bytes: 0, ..NARROW }, b"\x01TT / HTTP/1.1\r\nHost: x\r\n\r\n" => Expect::Status(431),
        long_line_past_section_limit_is_431: NARROW, &[b"GET /".as_slice(), &[b'a'; 100]].concat() => Expect::Status(431),
    }

    #[test]
    fn default_limits_at_full_size() {
        // The real defaults, whole and at a few splits (every split would be slow at 64 KiB).
        let limits = Limits::default();
        let long_line = [b"GET /".as_slice(), &[b'a'; 8 * 1024], b" HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
        let fits = [b"GET /".as_slice(), &[b'a'; 8000], b" HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
        let many: String = (0..101).map(|i| format!("H{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        let big: String = (0..70).map(|i| format!("H{i}: {}\r\n", "v".repeat(1000))).collect();
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\n{big}\r\n");
        for (input, want) in [
            (&long_line[..], Some(414)),
            (&fits[..], None),
            (many.as_bytes(), Some(431)),
            (big.as_bytes(), Some(431)),
        ] {
            for split in [1, 100, 8190, 8193, input.len() - 1] {
                let mut reader = RequestReader::new(limits);
                let first = reader.advance(&input[..split.min(input.len())]);
                let got = if matches!(first, Parsed::Partial) { reader.advance(input) } else { first };
                match (got, want) {
                    (Parsed::Error(s), Some(w)) => assert_eq!(s, w),
                    (Parsed::Complete { .. }, None) => {}
                    (got, want) => panic!("split {split}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn mutated_requests_never_panic_and_agree_split_or_whole() {
        // A poor man's fuzzer (issue 4 brings the real one): flip, insert and delete bytes of
        // valid requests with a fixed xorshift sequence, and run each result every which way.
        let seeds: [&[u8]; 3] = [
            b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..300 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % input.len();
                let byte = [b'\r', b'\n', b':', b' ', b'0', 0, 0xff, b';'][(next() % 8) as usize];
                match next() % 3 {
                    0 => input[at] = byte,
                    1 => input.insert(at, byte),
                    _ => {
                        input.remove(at);
                    }
                }
            }
            parse_every_way(&input, &SMALL);
            parse_every_way(&input, &D);
        }
    }

    #[test]
    fn pipelined_requests_come_out_in_order() {
        let mut buf = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /thr".to_vec();
        let mut reader = RequestReader::new(Limits::default());
        let mut paths = Vec::new();
        while let Parsed::Complete { request, consumed } = reader.advance(&buf) {
            paths.push(request.path().to_string());
            buf.drain(..consumed);
            reader.reset();
        }
        assert_eq!(paths, ["/one", "/two"]);
        assert_eq!(buf, b"GET /thr");
    }

    #[test]
    fn recycled_buffers_carry_nothing_over() {
        let mut reader = RequestReader::new(Limits::default());
        let first =
            b"POST /first?x=1 HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\nContent-Length: 3\r\n\r\nabc";
        let Parsed::Complete { request, .. } = reader.advance(first) else { panic!("first") };
        assert_eq!((request.path(), request.body()), ("/first", &b"abc"[..]));
        reader.recycle(request);
        let Parsed::Complete { request, consumed } = reader.advance(b"GET /2 HTTP/1.0\r\n\r\n") else {
            panic!("second")
        };
        assert_eq!(consumed, 19);
        assert_eq!((request.method(), request.target(), request.query()), ("GET", "/2", None));
        assert_eq!(
            (request.headers().count(), request.header("x-long"), request.body()),
            (0, None, &b""[..])
        );
        assert_eq!(request.version(), Version::Http10);
    }

    #[test]
    fn expect_continue_is_reported_between_head_and_body() {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        let mut reader = RequestReader::new(Limits::default());
        assert!(matches!(reader.advance(head), Parsed::Partial));
        assert!(reader.expects_continue());
        let whole = [head.as_slice(), b"abc"].concat();
        assert!(matches!(reader.advance(&whole), Parsed::Complete { .. }));
        assert!(!reader.expects_continue());
        // HTTP/1.0 clients do not wait for 100 Continue.
        let mut reader = RequestReader::new(Limits::default());
        let _ = reader.advance(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
        assert!(!reader.expects_continue());
    }

    fn request(input: &[u8]) -> Request {
        match parse_request(input, &Limits::default()) {
            Parsed::Complete { request, .. } => request,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accessors() {
        let r = request(
            b"GET /delay?s=1&flag&s=2&t=a%20b HTTP/1.1\r\nHost: example\r\nX-Two: a\r\nx-two: b\r\n\r\n",
        );
        assert_eq!(r.method(), "GET");
        assert_eq!(r.target(), "/delay?s=1&flag&s=2&t=a%20b");
        assert_eq!(r.path(), "/delay");
        assert_eq!(r.query(), Some("s=1&flag&s=2&t=a%20b"));
        assert_eq!(r.query_param("s"), Some("1"));
        assert_eq!(r.query_param("flag"), Some(""));
        assert_eq!(r.query_param("t"), Some("a%20b"));
        assert_eq!(r.query_param("nope"), None);
        assert_eq!(r.version(), Version::Http11);
        assert_eq!(r.version().to_string(), "HTTP/1.1");
        assert_eq!(Version::Http10.to_string(), "HTTP/1.0");
        assert_eq!(r.header("HOST"), Some(&b"example"[..]));
        assert_eq!(r.header("X-TWO"), Some(&b"a"[..]));
        assert_eq!(r.headers().count(), 3);
        assert_eq!(r.headers().nth(2), Some(("x-two", &b"b"[..])));
        assert_eq!(r.peer_addr().as_inet().map(|a| a.port()), Some(0));
        let no_query = request(b"GET /p HTTP/1.0\r\n\r\n");
        assert_eq!((no_query.path(), no_query.query(), no_query.query_param("a")), ("/p", None, None));
        assert!(format!("{r:?}").contains("/delay"));
    }

    macro_rules! keep_alive {
        ($($name:ident: $input:expr => $keep:expr,)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(request($input).wants_keep_alive(), $keep);
            }
        )*};
    }

    keep_alive! {
        http11_default_keeps: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" => true,
        http11_close: b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n" => false,
        http11_close_in_list: b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, close\r\n\r\n" => false,
        http10_default_closes: b"GET / HTTP/1.0\r\n\r\n" => false,
        http10_keep_alive: b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n" => true,
        http10_both_means_close: b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n" => false,
    }
}
