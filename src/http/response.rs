//! The response side: [`Response`], and its serialization into one buffer.

use std::borrow::Cow;
use std::time::Duration;

use super::date;
use super::status::{is_bodiless, reason_phrase};

/// An HTTP response, built by a [`Service`](super::Service) with consuming setters.
///
/// ```
/// use socketserver::http::Response;
/// let r = Response::text(200, "hello\n").with_header("Cache-Control", "no-store");
/// assert_eq!(r.status(), 200);
/// assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
/// assert_eq!(r.body(), b"hello\n");
/// ```
///
/// The layer adds `Content-Length` (always computed from the body; a service-set one is
/// dropped), `Date`, `Server` and `Connection` when the service has not set them, and the trace
/// headers. It also drops a service-set `Transfer-Encoding`, because the body is always sent
/// whole with a length, and reads a service-set `Connection: close` as "close after this".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    /// Borrowed for the names and values this file writes itself (`Response::text`'s
    /// `Content-Type`), so they cost no allocation; owned for what a service passes in.
    headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    body: Vec<u8>,
}

impl Response {
    /// A response with this status, no headers and an empty body. A status outside
    /// `100..=999` cannot be written in a status line and is sent as 500.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    /// A `text/plain; charset=utf-8` response with `body`.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut response = Response::new(status).with_body(body.into().into_bytes());
        response.headers.push((Cow::Borrowed("Content-Type"), Cow::Borrowed("text/plain; charset=utf-8")));
        response
    }

    /// Adds a header field (a second one with the same name adds a second field). CR, LF and
    /// NUL in the value are sent as spaces, and a name that is not an HTTP token is not sent at
    /// all, so a value taken from user input cannot split the response.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((Cow::Owned(name.into()), Cow::Owned(value.into())));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The value of the first header field called `name` (case-insensitive) the service set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_ref())
    }

    /// The header fields the service set, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// Serializes the response into `out` (cleared first) exactly as an [`HttpHandler`] with
    /// default settings sends it on a keep-alive HTTP/1.1 connection: the trace headers name
    /// the calling thread, `X-Start` is now and `X-Elapsed` is 0. For benchmarks and tests that
    /// want the wire bytes without a socket.
    ///
    /// ```
    /// use socketserver::http::Response;
    /// let mut out = Vec::new();
    /// Response::text(200, "hi\n").write_wire(&mut out);
    /// assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n") && out.ends_with(b"\r\n\r\nhi\n"));
    /// ```
    ///
    /// [`HttpHandler`]: super::HttpHandler
    pub fn write_wire(&self, out: &mut Vec<u8>) {
        let who = crate::trace::Who::cached();
        let start = std::time::Instant::now().saturating_duration_since(crate::trace::epoch());
        let trace = TraceHeaders { pid: who.pid, tid: who.tid, start, elapsed: Duration::ZERO };
        let opts = WriteOptions {
            server_name: super::service::DEFAULT_SERVER_NAME,
            head_only: false,
            connection: ConnectionHeader::None,
            trace: Some(trace),
        };
        out.clear();
        self.serialize(out, &opts);
    }

    /// `true` if the service asked for the connection to close after this response.
    pub(crate) fn asks_close(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("connection")
                && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
        })
    }

    /// Takes the body out, leaving it empty (the connection writes a large one from where it
    /// is, after the head).
    pub(crate) fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.body)
    }

    /// Appends status line, headers and (unless `opts.head_only`) body to `out`. One buffer, so
    /// the caller can send the whole response with one write: separate writes for head and
    /// body would, with `TCP_NODELAY`, go out as separate segments, and without it would meet
    /// Nagle's algorithm and the peer's delayed ACK (a 40 ms stall per response). Appends
    /// rather than replaces, so that the answers to pipelined requests share that one write.
    pub(crate) fn serialize(&self, out: &mut Vec<u8>, opts: &WriteOptions<'_>) {
        let status = if (100..=999).contains(&self.status) { self.status } else { 500 };
        out.extend_from_slice(b"HTTP/1.1 ");
        push_u64(out, u64::from(status));
        out.push(b' ');
        out.extend_from_slice(reason_phrase(status).as_bytes());
        out.extend_from_slice(b"\r\n");

        let (mut has_date, mut has_server) = (false, false);
        for (name, value) in &self.headers {
            if !is_token(name)
                || name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
                || name.eq_ignore_ascii_case("connection")
            {
                continue;
            }
            if name.eq_ignore_ascii_case("date") {
                has_date = true;
            } else if name.eq_ignore_ascii_case("server") {
                has_server = true;
            }
            push_header(out, name, value.as_bytes());
        }
        if !has_date {
            date::with_now(|now| push_header(out, "Date", now));
        }
        if !has_server {
            push_header(out, "Server", opts.server_name.as_bytes());
        }
        let bodiless = is_bodiless(status);
        if !bodiless {
            // HEAD gets the length the GET would have had (RFC 9110 §9.3.2).
            out.extend_from_slice(b"Content-Length: ");
            push_u64(out, self.body.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        match opts.connection {
            ConnectionHeader::None => {}
            ConnectionHeader::Close => push_header(out, "Connection", b"close"),
            ConnectionHeader::KeepAlive => push_header(out, "Connection", b"keep-alive"),
        }
        if let Some(trace) = &opts.trace {
            out.extend_from_slice(b"X-Pid: ");
            push_u64(out, u64::from(trace.pid));
            out.extend_from_slice(b"\r\nX-Tid: ");
            push_u64(out, u64::from(trace.tid));
            out.extend_from_slice(b"\r\nX-Start: ");
            push_secs(out, trace.start);
            out.extend_from_slice(b"\r\nX-Elapsed: ");
            push_secs(out, trace.elapsed);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !bodiless && !opts.head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

/// What the connection layer tells [`Response::serialize`].
#[derive(Debug)]
pub(crate) struct WriteOptions<'a> {
    pub(crate) server_name: &'a str,
    pub(crate) head_only: bool,
    pub(crate) connection: ConnectionHeader,
    pub(crate) trace: Option<TraceHeaders>,
}

/// Which `Connection` header, if any, to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    /// HTTP/1.1 keep-alive is the default and needs no header.
    None,
    /// The server closes after this response.
    Close,
    /// An HTTP/1.0 client asked to keep the connection and we agree.
    KeepAlive,
}

/// Values of the `X-Pid`, `X-Tid`, `X-Start` and `X-Elapsed` headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TraceHeaders {
    pub(crate) pid: u32,
    pub(crate) tid: u32,
    /// Since [`trace::epoch`](crate::trace::epoch).
    pub(crate) start: Duration,
    pub(crate) elapsed: Duration,
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    // CR or LF in a value would end the header early and let the rest be read as a new header
    // or a new response (response splitting); NUL is refused by many clients. Checked first,
    // so that a clean value (every value the layer writes itself) is one copy, not a byte loop.
    // The check is a fold without early exit, which the compiler vectorizes; `any` was a
    // byte-at-a-time loop that cost more than the copy it guarded.
    let unsafe_byte = |b: &u8| matches!(b, b'\r' | b'\n' | 0);
    if value.iter().fold(false, |seen, b| seen | unsafe_byte(b)) {
        out.extend(value.iter().map(|b| if unsafe_byte(b) { b' ' } else { *b }));
    } else {
        out.extend_from_slice(value);
    }
    out.extend_from_slice(b"\r\n");
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or(&[]));
}

/// Appends `d` in seconds with six decimals, `1.500000`: what `{:.6}` of the `f64` seconds
/// prints, in integer arithmetic (float formatting was a tenth of the layer's instructions),
/// rounding to the nearest microsecond, half up.
fn push_secs(out: &mut Vec<u8>, d: Duration) {
    let micros = (u64::from(d.subsec_nanos()) + 500) / 1000;
    let (secs, micros) =
        if micros == 1_000_000 { (d.as_secs().saturating_add(1), 0) } else { (d.as_secs(), micros) };
    push_u64(out, secs);
    out.push(b'.');
    let mut frac = [b'0'; 6];
    let mut rest = micros;
    for digit in frac.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&frac);
}

/// An HTTP token (RFC 9110 §5.6.2): what a header name must be.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(head_only: bool, connection: ConnectionHeader) -> WriteOptions<'static> {
        WriteOptions { server_name: "test/1", head_only, connection, trace: None }
    }

    fn render(r: &Response, o: &WriteOptions<'_>) -> String {
        let mut out = Vec::new();
        r.serialize(&mut out, o);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ordinary_response_has_length_date_server() {
        let s = render(&Response::text(200, "hi"), &opts(false, ConnectionHeader::None));
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"), "{s}");
        assert!(s.contains("\r\nContent-Length: 2\r\n"));
        assert!(s.contains("\r\nDate: ") && s.contains(" GMT\r\n"));
        assert!(s.contains("\r\nServer: test/1\r\n"));
        assert!(!s.contains("Connection"));
        assert!(s.ends_with("\r\n\r\nhi"));
    }

    #[test]
    fn head_keeps_length_and_drops_body() {
        let s = render(&Response::text(200, "hello"), &opts(true, ConnectionHeader::Close));
        assert!(s.contains("Content-Length: 5\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
    }

    #[test]
    fn no_content_and_not_modified_have_no_length_or_body() {
        for status in [204, 304, 100] {
            let s = render(&Response::new(status).with_body("x"), &opts(false, ConnectionHeader::None));
            assert!(!s.contains("Content-Length"), "{s}");
            assert!(s.ends_with("\r\n\r\n"), "{s}");
        }
    }

    #[test]
    fn service_headers_are_kept_and_not_duplicated() {
        let r = Response::text(200, "abc")
            .with_header("Content-Length", "999")
            .with_header("Server", "mine")
            .with_header("Date", "yesterday")
            .with_header("Transfer-Encoding", "chunked")
            .with_header("X-Custom", "1");
        let s = render(&r, &opts(false, ConnectionHeader::KeepAlive));
        assert_eq!(s.matches("Content-Length").count(), 1);
        assert!(s.contains("Content-Length: 3\r\n") && !s.contains("999"));
        assert_eq!(s.matches("Server:").count(), 1);
        assert!(s.contains("Server: mine\r\n") && s.contains("Date: yesterday\r\n"));
        assert!(!s.contains("Transfer-Encoding"));
        assert!(s.contains("X-Custom: 1\r\n") && s.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn header_injection_is_neutralised() {
        let r = Response::new(200).with_header("X-A", "a\r\nSet-Cookie: evil").with_header("Bad Name", "x");
        let s = render(&r, &opts(false, ConnectionHeader::None));
        assert!(s.contains("X-A: a  Set-Cookie: evil\r\n"));
        assert!(!s.contains("Bad Name"));
    }

    #[test]
    fn out_of_range_status_becomes_500_and_trace_headers_render() {
        let mut o = opts(false, ConnectionHeader::None);
        o.trace = Some(TraceHeaders {
            pid: 7,
            tid: 8,
            start: Duration::from_millis(1500),
            elapsed: Duration::from_millis(250),
        });
        let s = render(&Response::new(42), &o);
        assert!(s.starts_with("HTTP/1.1 500 Internal Server Error\r\n"));
        assert!(s.contains("X-Pid: 7\r\nX-Tid: 8\r\nX-Start: 1.500000\r\nX-Elapsed: 0.250000\r\n"));
        assert!(Response::new(200).with_header("Connection", "Keep-Alive, Close").asks_close());
    }

    #[test]
    fn numbers() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn seconds_with_six_decimals_match_float_formatting() {
        for nanos in [0u64, 1, 499, 500, 999, 1_000, 250_000_000, 999_999_499, 999_999_500, 1_999_999_999] {
            for secs in [0u64, 1, 59, 86_399] {
                let d = Duration::from_secs(secs) + Duration::from_nanos(nanos);
                let mut out = Vec::new();
                push_secs(&mut out, d);
                let got = String::from_utf8(out).unwrap();
                // Away from a rounding tie the float formatting is the reference; at a tie
                // (…500 ns) it may round either way, so compare the micros within one.
                let want = format!("{:.6}", d.as_secs_f64());
                if nanos % 1000 == 500 {
                    let parse = |s: &str| (s.parse::<f64>().unwrap() * 1e6).round() as i64;
                    assert!((parse(&got) - parse(&want)).abs() <= 1, "{d:?}: {got} vs {want}");
                } else {
                    assert_eq!(got, want, "{d:?}");
                }
            }
        }
    }
}
