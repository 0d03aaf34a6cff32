//! Property tests of the incremental HTTP request parser (`socketserver::http::RequestReader`).
//!
//! The table tests in `src/http/request.rs` pin down known inputs; these generate inputs:
//! valid requests (methods, targets, header fields, `Content-Length` and chunked bodies,
//! pipelined sequences) and mutated ones (byte flips, inserted CR/LF/NUL/0x80..=0xFF bytes,
//! truncations, duplicated lines, huge numbers), each fed whole, in random chunks and byte by
//! byte through the harness in `tests/support/reader.rs`, which is shared with the fuzz target
//! in `fuzz/` and checks on every step: no panic, no `Partial` over the memory bound, no body
//! over `max_body`, no status outside the documented set.
//!
//! Each property runs 256 cases by default, which keeps the whole file well under a second in
//! a debug build. More cases: `PROPTEST_CASES=10000 cargo test --test parser_props`.

#[path = "support/reader.rs"]
mod reader;

use proptest::prelude::*;
use proptest::sample::Index;
use reader::{Event, drive, drive_whole};
use socketserver::http::{Limits, Parsed, Version, parse_request};

/// `PROPTEST_CASES` if set, else 256 cases per property.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// How a generated request's body is framed.
#[derive(Debug, Clone)]
enum Framing {
    /// No framing header: only for an empty body.
    None,
    ContentLength,
    /// Chunks of these sizes (cycled), with or without `;ext` on the size lines, upper- or
    /// lower-case hex, and trailer fields after the last chunk.
    Chunked {
        sizes: Vec<usize>,
        ext: bool,
        upper: bool,
        trailers: Vec<(String, Vec<u8>)>,
    },
}

/// A valid request, as generated: what the parser must give back.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    http10: bool,
    host: bool,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    framing: Framing,
}

impl Req {
    /// All header fields in the order they are sent, framing headers included.
    fn all_headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut all = Vec::new();
        if self.host {
            all.push(("Host".to_string(), b"example.test".to_vec()));
        }
        all.extend(self.headers.iter().cloned());
        match &self.framing {
            Framing::None => {}
            Framing::ContentLength => {
                all.push(("Content-Length".to_string(), self.body.len().to_string().into_bytes()))
            }
            Framing::Chunked { .. } => all.push(("Transfer-Encoding".to_string(), b"chunked".to_vec())),
        }
        all
    }

    fn head(&self) -> Vec<u8> {
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut out = format!("{} {} {version}\r\n", self.method, self.target).into_bytes();
        for (name, value) in self.all_headers() {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.head();
        match &self.framing {
            Framing::None | Framing::ContentLength => out.extend_from_slice(&self.body),
            Framing::Chunked { sizes, ext, upper, trailers } => {
                let mut rest = &self.body[..];
                for &size in sizes.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (chunk, after) = rest.split_at(size.min(rest.len()));
                    let size =
                        if *upper { format!("{:X}", chunk.len()) } else { format!("{:x}", chunk.len()) };
                    out.extend_from_slice(size.as_bytes());
                    if *ext {
                        out.extend_from_slice(b";name=value");
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                    rest = after;
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }

    /// The event the reader must produce for this request.
    fn expected(&self) -> Event {
        Event::Request {
            method: self.method.clone(),
            target: self.target.clone(),
            version: if self.http10 { Version::Http10 } else { Version::Http11 },
            headers: self.all_headers(),
            body: self.body.clone(),
            keep_alive: !self.http10,
            consumed: self.encode().len(),
        }
    }
}

const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const PCHAR: &str = "abcxyzABCXYZ0129-._~!$&'()*+,;=:@%/\u{e9}\u{2713}";

fn token(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TCHAR), len)
        .prop_map(|b| String::from_utf8(b).unwrap_or_default())
}

fn text(chars: &'static str, len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    let chars: Vec<char> = chars.chars().collect();
    prop::collection::vec(prop::sample::select(chars), len).prop_map(|c| c.into_iter().collect())
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
            .prop_map(str::to_string),
        token(1..=8),
    ]
}

fn target() -> impl Strategy<Value = String> {
    (text(PCHAR, 0..=12), prop::option::of(text(PCHAR, 0..=12))).prop_map(|(path, query)| match query {
        Some(q) => format!("/{path}?{q}"),
        None => format!("/{path}"),
    })
}

/// A header value as httparse hands it back: no leading or trailing whitespace, visible ASCII,
/// inner spaces and tabs, and obs-text (0x80..=0xFF).
fn value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![8 => 0x21u8..=0x7e, 1 => Just(b' '), 1 => Just(b'\t'), 2 => 0x80u8..=0xff];
    prop::collection::vec(byte, 0..=16).prop_map(|v| v.trim_ascii().to_vec())
}

/// Extension fields: `X-` names cannot collide with the ones the parser reads
/// (`Content-Length`, `Transfer-Encoding`, `Connection`, `Expect`, `Host`).
fn field() -> impl Strategy<Value = (String, Vec<u8>)> {
    (token(1..=8), value()).prop_map(|(name, value)| (format!("X-{name}"), value))
}

fn request() -> impl Strategy<Value = Req> {
    let body = prop::collection::vec(any::<u8>(), 0..=32);
    let framing = prop_oneof![
        Just(Framing::None),
        Just(Framing::ContentLength),
        (
            prop::collection::vec(1usize..=16, 1..=4),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(field(), 0..=2)
        )
            .prop_map(|(sizes, ext, upper, trailers)| Framing::Chunked {
                sizes,
                ext,
                upper,
                trailers
            }),
    ];
    let headers = prop::collection::vec(field(), 0..=5);
    (method(), target(), any::<bool>(), any::<bool>(), headers, body, framing).prop_map(
        |(method, target, http10, host, headers, body, framing)| {
            // No framing header means no body; HTTP/1.1 requires Host.
            let framing = match framing {
                Framing::None if !body.is_empty() => Framing::ContentLength,
                f => f,
            };
            Req { method, target, http10, host: host || !http10, headers, body, framing }
        },
    )
}

fn pipeline() -> impl Strategy<Value = Vec<Req>> {
    prop::collection::vec(request(), 1..=3)
}

fn encode_all(reqs: &[Req]) -> Vec<u8> {
    reqs.iter().flat_map(Req::encode).collect()
}

/// Chunk sizes for a read loop, used in turn and then again from the start.
fn split_plan() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=40, 1..=12)
}

fn drive_plan(input: &[u8], limits: Limits, plan: &[usize]) -> Vec<Event> {
    let mut sizes = plan.iter().copied().cycle();
    drive(input, limits, || sizes.next().unwrap_or(1))
}

/// Whole, by the split plan, and byte by byte: one answer, which is returned.
fn drive_every_way(input: &[u8], limits: Limits, plan: &[usize]) -> Vec<Event> {
    let whole = drive_whole(input, limits);
    assert_eq!(drive_plan(input, limits, plan), whole, "split by {plan:?}");
    assert_eq!(drive(input, limits, || 1), whole, "byte by byte");
    // The one-shot parser answers what the first step of the read loop answers.
    let first = match parse_request(input, &limits) {
        Parsed::Partial => Event::End(input.len()),
        Parsed::Error(status) => Event::Error(status),
        Parsed::Complete { consumed, .. } => match whole.first() {
            Some(Event::Request { consumed: c, .. }) if *c == consumed => whole[0].clone(),
            other => panic!("parse_request took {consumed} bytes, the reader {other:?}"),
        },
    };
    if !input.is_empty() {
        assert_eq!(whole.first(), Some(&first), "parse_request");
    }
    whole
}

/// Small limits, some of them below what the generated requests need, or default ones.
fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        1 => Just(Limits::default()),
        3 => (0usize..=128, 0usize..=8, 0usize..=400, 0usize..=64).prop_map(|(line, n, bytes, body)| Limits {
            max_request_line: line,
            max_headers: n,
            max_header_bytes: bytes,
            max_body: body,
        }),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    /// Send the line that contains this position twice (duplicate headers, chunk lines).
    DuplicateLine(Index),
    /// Insert a run of nines: huge lengths and chunk sizes.
    HugeNumber(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop_oneof![prop::sample::select(b"\r\n\0:; \t0".to_vec()), 0x80u8..=0xff, any::<u8>(),];
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<Index>(), special).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Truncate),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), 1usize..=30).prop_map(|(i, n)| Mutation::HugeNumber(i, n)),
    ]
}

fn mutate(input: &mut Vec<u8>, m: &Mutation) {
    if input.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, x) => {
            let at = i.index(input.len());
            input[at] ^= x;
        }
        Mutation::Insert(i, b) => input.insert(i.index(input.len() + 1), *b),
        Mutation::Delete(i) => {
            input.remove(i.index(input.len()));
        }
        Mutation::Truncate(i) => input.truncate(i.index(input.len())),
        Mutation::DuplicateLine(i) => {
            let at = i.index(input.len());
            let start = input[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let end = input[at..].iter().position(|&b| b == b'\n').map_or(input.len(), |p| at + p + 1);
            let line = input[start..end].to_vec();
            input.splice(end..end, line);
        }
        Mutation::HugeNumber(i, n) => {
            let at = i.index(input.len() + 1);
            input.splice(at..at, std::iter::repeat_n(b'9', *n));
        }
    }
}

/// What the parser must answer for a valid request without chunked framing under `limits`:
/// `None` if it fits, else the status. (Chunked bodies also have the framing allowance, which
/// the other properties cover.)
fn refusal(req: &Req, limits: &Limits) -> Option<u16> {
    let line = req.method.len() + 1 + req.target.len() + 1 + "HTTP/1.1\r\n".len();
    let head = req.head().len();
    if line > limits.max_request_line {
        // The smaller limit is crossed first; the section limit counts the line too.
        return Some(if limits.max_request_line <= limits.max_header_bytes { 414 } else { 431 });
    }
    if head > limits.max_header_bytes || req.all_headers().len() > limits.max_headers {
        return Some(431);
    }
    (req.body.len() > limits.max_body).then_some(413)
}

proptest! {
    #![proptest_config(config())]

    /// Valid pipelined requests come back exactly as generated, in order, however the bytes
    /// are split, and leave nothing behind.
    #[test]
    fn valid_requests_round_trip_however_split(reqs in pipeline(), plan in split_plan()) {
        let input = encode_all(&reqs);
        let mut want: Vec<Event> = reqs.iter().map(Req::expected).collect();
        want.push(Event::End(0));
        prop_assert_eq!(drive_every_way(&input, Limits::default(), &plan), want);
    }

    /// A valid pipeline cut short anywhere: the requests before the cut, then `Partial` with
    /// the rest of the cut one in the buffer.
    #[test]
    fn truncated_pipelines_wait_for_more(reqs in pipeline(), cut in any::<Index>(), plan in split_plan()) {
        let input = encode_all(&reqs);
        let cut = cut.index(input.len());
        let mut want = Vec::new();
        let mut at = 0;
        for req in &reqs {
            let len = req.encode().len();
            if at + len > cut {
                break;
            }
            want.push(req.expected());
            at += len;
        }
        want.push(Event::End(cut - at));
        prop_assert_eq!(drive_every_way(&input[..cut], Limits::default(), &plan), want);
    }

    /// Mutated requests under small or default limits: never a panic, one answer however
    /// split, and the harness's bounds (memory, body size, statuses) on every step.
    #[test]
    fn mutated_requests_agree_however_split(
        reqs in pipeline(),
        mutations in prop::collection::vec(mutation(), 1..=4),
        limits in limits(),
        plan in split_plan(),
    ) {
        let mut input = encode_all(&reqs);
        for m in &mutations {
            mutate(&mut input, m);
        }
        drive_every_way(&input, limits, &plan);
    }

    /// Valid requests under small limits are accepted exactly when they fit, and refused with
    /// the limit's own status otherwise.
    #[test]
    fn limits_accept_what_fits_and_refuse_the_rest(
        reqs in pipeline(),
        limits in limits(),
        plan in split_plan(),
    ) {
        let reqs: Vec<Req> = reqs
            .into_iter()
            .map(|mut r| {
                if matches!(r.framing, Framing::Chunked { .. }) {
                    r.framing = Framing::ContentLength;
                }
                r
            })
            .collect();
        let input = encode_all(&reqs);
        let mut want = Vec::new();
        for req in &reqs {
            match refusal(req, &limits) {
                Some(status) => {
                    want.push(Event::Error(status));
                    break;
                }
                None => want.push(req.expected()),
            }
        }
        if !matches!(want.last(), Some(Event::Error(_))) {
            want.push(Event::End(0));
        }
        prop_assert_eq!(drive_every_way(&input, limits, &plan), want);
    }
}
