//! One HTTP/1.1 connection as a state machine with no I/O in it: bytes in, requests out;
//! answers in, bytes out; and what it wants next ([`Want`]) and by when ([`HttpConn::deadline`]).
//!
//! The parser ([`RequestReader`]) was already pure. This makes the *connection* pure too: no
//! socket, no clock (every method that needs the time takes `now`), no thread. Two drivers
//! share it, so the two cannot drift apart:
//!
//! - the **blocking driver** ([`HttpHandler::handle`](super::HttpHandler)), a short loop that
//!   reads, calls the service, and writes on one thread, with socket timeouts derived from
//!   [`deadline`](HttpConn::deadline): `Sequential`, `Threading`, `Forking` and `Prefork` run it;
//! - a **non-blocking driver** on a reactor, which reads and writes whatever the kernel has
//!   room for and lends a worker thread only to [`SansIo::call`] a complete request.
//!
//! # Driving it
//! ```text
//! loop {
//!     match conn.wants() {
//!         Want::Read    => { n = read(conn.read_buf()); conn.received(n, now) }    // n == 0: EOF
//!         Want::Write   => { n = write(conn.output()); conn.sent(n, now) }
//!         Want::Service => if let Some(req) = conn.next_request(now) {
//!                              answer = sans_io.call(&req);                        // any thread
//!                              conn.respond(req, answer, now)
//!                          } // else: the answer is on its way; wait for it
//!         Want::Drain   => { shutdown(Write) once; n = read(conn.read_buf()); conn.received(n, now) }
//!         Want::Close   => break,                                                  // close(2)
//!     }
//!     // and whenever conn.deadline() passes first: conn.timed_out(now)
//! }
//! ```
//! A read or write error is [`failed`](HttpConn::failed). Read only when the connection wants
//! `Read` or `Drain`: that is the back-pressure. While a request is with the service, or its
//! response is being written, pipelined bytes stay in the kernel, so a client that sends
//! requests without reading the answers cannot make the server buffer them. Pipelined
//! requests that one read brought in together are answered together: `Service` comes before
//! `Write` while their answers are small, so that they leave in one write (at most
//! [`PIPELINE_OUTPUT_LIMIT`] plus one answer is held).
//!
//! # Why `Drain`
//! After a refusal (and after a `Connection: close` response with unread bytes behind it) the
//! client may still be sending. Closing a socket with unread input makes Linux send RST, and
//! an RST can reach the client before the response, which it then never sees. So the driver
//! sends FIN (`shutdown(Write)`), and reads and throws away what still comes, for at most
//! [`LINGER_TIME`] and [`LINGER_BYTES`], before it closes.
//!
//! # Deadlines
//! One at a time, the earliest that applies (all from [`ConnConfig`]):
//!
//! | state | deadline | on expiry |
//! |---|---|---|
//! | waiting for the first request | `read_timeout` after connecting | close, silently |
//! | idle between requests | `idle_timeout` after the last response | close, silently |
//! | idle, server stopping | [`STOP_GRACE`] after the connection went idle | close, silently |
//! | request head arriving | `header_timeout` after its first byte | 408 |
//! | request body arriving | the body's minimum rate (`grace + bytes / rate` after the head) | 408 |
//! | any part of a request | `read_timeout` after its first byte | 408 |
//! | response being written | `write_timeout` without progress, or the minimum send rate | close |
//! | draining after a refusal | [`LINGER_TIME`] | close |
//! | request with the service | none: the service is not interrupted | |

use crate::transport::Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::request::{Limits, Parsed, Request, RequestReader, Version};
use super::response::{ConnectionHeader, Response, TraceHeaders, WriteOptions};
use super::status::is_bodiless;
use crate::trace;

/// Bytes asked of the kernel per `read`. Large enough that a typical request arrives in one
/// call; the request parser, not this number, bounds how much is buffered.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// The read buffer a connection starts with; it grows to [`READ_CHUNK`] the first time a read
/// fills it. Zeroing 16 KiB for every connection was, in `--close` mode, a third of the
/// instructions the server spent per request, for requests that are mostly under 1 KiB.
pub(crate) const FIRST_READ_CHUNK: usize = 4 * 1024;

/// How long a connection must have been silent before a stopping server lets go of it: a
/// client that has just connected, or just read a response, may be writing its request this
/// very moment, and that request deserves an answer.
pub const STOP_GRACE: Duration = Duration::from_millis(500);

/// How long to keep reading (and discarding) after refusing a request (see [`Want::Drain`]).
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// How many bytes to read (and discard) at most after refusing a request.
pub const LINGER_BYTES: usize = 1024 * 1024;

/// How much unwritten output the answers to one pipeline may gather before the connection
/// stops answering ahead and writes (see `HttpConn::may_parse_ahead`).
pub(crate) const PIPELINE_OUTPUT_LIMIT: usize = 64 * 1024;

/// The interim response to `Expect: 100-continue` (RFC 9110 §10.1.1).
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A minimum transfer rate, Apache `mod_reqtimeout` style: `grace` first, then one more second
/// for every `bytes_per_sec` bytes that moved. `bytes_per_sec == 0` switches it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MinRate {
    pub(crate) bytes_per_sec: u64,
    pub(crate) grace: Duration,
}

impl MinRate {
    /// The instant by which a transfer that started at `since` and has moved `bytes` since
    /// must have moved more; `None` if the rate is off.
    fn deadline(&self, since: Instant, bytes: u64) -> Option<Instant> {
        if self.bytes_per_sec == 0 {
            return None;
        }
        let earned = Duration::from_millis(bytes.saturating_mul(1000) / self.bytes_per_sec);
        Some(after(since, self.grace.saturating_add(earned)))
    }
}

/// Configuration shared by every connection of one [`HttpHandler`](super::HttpHandler):
/// limits, timeouts, rates and flags. Built by the handler's setters.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub(crate) limits: Limits,
    pub(crate) read_timeout: Duration,
    pub(crate) header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) min_body_rate: MinRate,
    pub(crate) min_send_rate: MinRate,
    /// `TCP_NOTSENT_LOWAT` for each connection, set by the driver; 0: the kernel's default.
    pub(crate) unsent_limit: u32,
    pub(crate) keep_alive: bool,
    pub(crate) trace_headers: bool,
    pub(crate) log_requests: bool,
    pub(crate) server_name: String,
}

/// What the connection wants from its driver next.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Read more bytes (readable interest). Also the state of an idle keep-alive connection.
    Read,
    /// Output is pending: write [`output`](HttpConn::output) (writable interest).
    Write,
    /// A complete request is ready ([`next_request`](HttpConn::next_request) hands it out; if
    /// output is pending, the request was pipelined behind it and its answer joins it) or out
    /// with the service, whose answer is awaited: no read interest (back-pressure: pipelined
    /// bytes stay in the kernel), no write interest.
    Service,
    /// The response is out and the connection ends, but the client may still be sending: send
    /// FIN (`shutdown(Write)`) once, then read and hand what comes to
    /// [`received`](HttpConn::received), which throws it away, until `Close`.
    Drain,
    /// Done: close the socket.
    Close,
}

/// What a service produced, measured where it ran (possibly another thread than the driver's).
#[doc(hidden)]
#[derive(Debug)]
pub struct Answer {
    /// The response; a 500 text response if the service panicked.
    pub response: Response,
    /// The panic message, if the service panicked.
    pub panicked: Option<String>,
    /// When the service was called (`X-Start`).
    pub started: Instant,
    /// How long it ran (`X-Elapsed`).
    pub elapsed: Duration,
    /// The process and thread that ran it (`X-Pid`, `X-Tid`, the log line).
    pub who: trace::Who,
}

/// How the Pool's reactor reaches the HTTP layer without knowing the handler's type: the
/// handler's [`sans_io`](crate::RequestHandler::sans_io) returns it.
#[doc(hidden)]
pub trait SansIo: Send + Sync {
    /// A connection from `peer`, accepted at `now`, with the handler's configuration.
    fn new_conn(&self, peer: Addr, now: Instant) -> HttpConn;
    /// The handler's configuration, shared by all its connections (a driver that keeps it can
    /// make connections without asking the handler again).
    fn config(&self) -> &Arc<ConnConfig>;
    /// Runs the service on a complete request, on the calling thread, waiting for a later
    /// reply.
    fn call(&self, request: &Request) -> Answer;
    /// Runs the service on a complete request, on the calling thread, *not* waiting for a
    /// later reply: the event loop's way (it arms a timer, or offloads).
    fn start(&self, request: &Request) -> super::reply::Later<Answer>;
}

/// A response body larger than this is written from its own buffer after the head, instead of
/// being copied behind it: below it the copy is cheaper than a second `write` (a `/hello` goes
/// out in one); above it the copy is the cost (4 MB: milliseconds, and a second 4 MB of memory).
pub(crate) const BODY_COPY_LIMIT: usize = 64 * 1024;

/// What happens once the pending output is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterWrite {
    /// It was an interim `100 Continue`: go on reading the same request.
    Continue,
    /// A response on a connection that stays open: wait for the next request.
    KeepAlive,
    /// The last response: close.
    Close,
    /// The last response, with input perhaps still arriving: drain, then close.
    Drain,
}

/// One HTTP/1.1 connection, without its socket. See the [module docs](self).
#[doc(hidden)]
#[derive(Debug)]
pub struct HttpConn {
    cfg: Arc<ConnConfig>,
    peer: Addr,
    reader: RequestReader,
    /// Bytes received and not yet consumed by a complete request.
    buf: Vec<u8>,
    /// Where the driver reads into; appended to `buf` by `received`.
    scratch: Vec<u8>,
    /// Serialized output; `out[out_pos..]` is still to be written.
    out: Vec<u8>,
    out_pos: usize,
    /// A large response body, written after `out` from its own buffer instead of being copied
    /// behind the head; `body[body_pos..]` is still to be written.
    body: Vec<u8>,
    body_pos: usize,
    after_write: AfterWrite,
    /// A complete request not yet handed out.
    ready: Option<Request>,
    /// A request is out with the service.
    with_service: bool,
    /// Draining after the last response: until when, and how many bytes so far.
    drain: Option<(Instant, usize)>,
    closed: bool,
    /// The client has closed its side.
    eof: bool,
    stopping: bool,
    /// No response has been completed on this connection yet.
    first: bool,
    sent_continue: bool,
    /// When the connection last became idle (created, or a response written).
    idle_since: Instant,
    /// When the first byte of the request being received arrived.
    request_start: Option<Instant>,
    /// When the head of the current request was complete, and body bytes received since.
    body_start: Option<Instant>,
    body_bytes: u64,
    /// When the pending output last made progress (or was queued).
    last_progress: Instant,
    /// When a write first left output pending (the kernel's buffer was full), and bytes
    /// written since: the minimum send rate counts from there, so that what the kernel took at
    /// once does not buy a slow reader time.
    blocked_since: Option<Instant>,
    sent_since_block: u64,
    panicked: Option<String>,
}

impl HttpConn {
    /// A connection from `peer`, accepted at `now`, configured by `cfg`.
    pub fn new(cfg: &Arc<ConnConfig>, peer: Addr, now: Instant) -> HttpConn {
        HttpConn {
            reader: RequestReader::new(cfg.limits),
            cfg: Arc::clone(cfg),
            peer,
            buf: Vec::new(),
            scratch: vec![0; FIRST_READ_CHUNK],
            out: Vec::new(),
            out_pos: 0,
            body: Vec::new(),
            body_pos: 0,
            after_write: AfterWrite::KeepAlive,
            ready: None,
            with_service: false,
            drain: None,
            closed: false,
            eof: false,
            stopping: false,
            first: true,
            sent_continue: false,
            idle_since: now,
            request_start: None,
            body_start: None,
            body_bytes: 0,
            last_progress: now,
            blocked_since: None,
            sent_since_block: 0,
            panicked: None,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> &Addr {
        &self.peer
    }

    /// Space to read into (4 KiB at first, 16 KiB after a read that filled it).
    pub fn read_buf(&mut self) -> &mut [u8] {
        if self.scratch.is_empty() {
            // Released while the connection was idle (`would_block`): a read is coming.
            self.scratch.resize(FIRST_READ_CHUNK, 0);
        }
        &mut self.scratch
    }

    /// The driver's read found nothing more (`EWOULDBLOCK`): the connection will now wait, for
    /// a moment or for minutes. If nothing of a request is buffered and nothing is left to
    /// write, its buffers are given back, so that ten thousand idle keep-alive connections
    /// cost ten thousand small structs and not ten thousand 4 KiB read buffers;
    /// [`read_buf`](HttpConn::read_buf) makes a new one when the next readiness comes.
    pub fn would_block(&mut self) {
        if self.buf.is_empty() && !self.pending() {
            self.buf = Vec::new();
            self.scratch = Vec::new();
            self.out = Vec::new();
            self.out_pos = 0;
        }
    }

    /// `n` bytes were read into [`read_buf`](HttpConn::read_buf); `n == 0` is EOF.
    pub fn received(&mut self, n: usize, now: Instant) {
        if self.closed {
            return;
        }
        if let Some((_, drained)) = &mut self.drain {
            *drained = drained.saturating_add(n);
            if n == 0 || *drained >= LINGER_BYTES {
                self.closed = true;
            }
            return;
        }
        if n == 0 {
            self.eof = true;
            self.advance(now);
            return;
        }
        let n = n.min(self.scratch.len());
        self.buf.extend_from_slice(self.scratch.get(..n).unwrap_or(&[]));
        if n == self.scratch.len() && n < READ_CHUNK {
            // A full read: more is likely waiting, so ask for more at a time.
            self.scratch.resize(READ_CHUNK, 0);
        }
        if self.request_start.is_none() {
            self.request_start = Some(now);
        }
        if self.body_start.is_some() {
            self.body_bytes = self.body_bytes.saturating_add(n as u64);
        }
        self.advance(now);
    }

    /// The next complete request, in order. At most one is out at a time: after `Some`, this
    /// returns `None` until [`respond`](HttpConn::respond) is called. Requests the layer
    /// refuses itself (400, 408, 413, 414, 431, 501, 505) are never handed out: the connection
    /// writes the refusal into [`output`](HttpConn::output) and then drains and closes.
    pub fn next_request(&mut self, _now: Instant) -> Option<Request> {
        let request = self.ready.take();
        if request.is_some() {
            self.with_service = true;
        }
        request
    }

    /// The service's answer to the request last handed out.
    pub fn respond(&mut self, request: Request, answer: Answer, now: Instant) {
        self.with_service = false;
        if self.closed {
            return;
        }
        let Answer { response, panicked, started, elapsed, who } = answer;
        let keep = self.cfg.keep_alive
            && request.wants_keep_alive()
            && panicked.is_none()
            && !response.asks_close()
            // A server that is shutting down finishes this request, then lets go of the
            // connection instead of waiting out the idle timeout for another.
            && !self.stopping;
        let connection = match (keep, request.version()) {
            (false, _) => ConnectionHeader::Close,
            (true, Version::Http10) => ConnectionHeader::KeepAlive,
            (true, Version::Http11) => ConnectionHeader::None,
        };
        let head_only = request.method() == "HEAD";
        let status = response.status();
        self.queue(response, head_only, connection, started, elapsed, who, now);
        self.log(Some(&request), status, who, started, elapsed);
        // Unread bytes behind a last response: drain them rather than reset the connection.
        self.after_write = match (keep, self.buf.is_empty()) {
            (true, _) => AfterWrite::KeepAlive,
            (false, true) => AfterWrite::Close,
            (false, false) => AfterWrite::Drain,
        };
        self.panicked = panicked;
        // Its buffers serve the next request on this connection.
        self.reader.recycle(request);
        // A pipelined request may be buffered behind this one already.
        self.advance(now);
    }

    /// Bytes to write; then [`sent`](HttpConn::sent). Empty once the connection is closed.
    /// Usually the whole response; for a large body, the head first and then the body (each
    /// from its own buffer: see `BODY_COPY_LIMIT`), so a driver writes until this is empty.
    pub fn output(&self) -> &[u8] {
        if self.closed {
            return &[];
        }
        if self.out_pos < self.out.len() {
            return self.out.get(self.out_pos..).unwrap_or(&[]);
        }
        self.body.get(self.body_pos..).unwrap_or(&[])
    }

    /// Whether the connection ends after the answer to `request` (the request last handed out)
    /// whatever that answer says: keep-alive is off, the request did not ask for it (HTTP/1.1
    /// `Connection: close`, or HTTP/1.0 without `keep-alive`), or the server is stopping. A
    /// driver need not watch for the client's next request meanwhile.
    pub fn ends_after(&self, request: &Request) -> bool {
        !self.cfg.keep_alive || !request.wants_keep_alive() || self.stopping
    }

    /// Whether the connection ends once [`output`](HttpConn::output) is written (the response
    /// said `Connection: close`). The Pool's worker leaves such a response to the reactor,
    /// which writes and closes in one go.
    pub fn closes_after_output(&self) -> bool {
        matches!(self.after_write, AfterWrite::Close | AfterWrite::Drain)
    }

    /// Whether any output is still to be written.
    fn pending(&self) -> bool {
        self.out_pos < self.out.len() || self.body_pos < self.body.len()
    }

    /// `n` bytes of [`output`](HttpConn::output) were written.
    pub fn sent(&mut self, n: usize, now: Instant) {
        if self.closed {
            return;
        }
        let n = n.min(self.output().len());
        if self.out_pos < self.out.len() {
            self.out_pos += n;
        } else {
            self.body_pos += n;
        }
        if n > 0 {
            self.last_progress = now;
            if self.blocked_since.is_some() {
                self.sent_since_block = self.sent_since_block.saturating_add(n as u64);
            }
        }
        if self.pending() {
            // The kernel did not take it all: from here on the client sets the pace.
            if self.blocked_since.is_none() {
                self.blocked_since = Some(now);
                self.sent_since_block = 0;
            }
            return;
        }
        self.out.clear();
        self.out_pos = 0;
        // A large body's buffer is not worth keeping for the next response.
        self.body = Vec::new();
        self.body_pos = 0;
        self.blocked_since = None;
        match std::mem::replace(&mut self.after_write, AfterWrite::KeepAlive) {
            AfterWrite::Continue => {}
            AfterWrite::KeepAlive => {
                self.first = false;
                self.idle_since = now;
                // Bytes already buffered belong to the next request, which has therefore
                // started now; otherwise the connection is idle.
                self.request_start = (!self.buf.is_empty()).then_some(now);
                self.body_start = None;
            }
            AfterWrite::Close => self.closed = true,
            AfterWrite::Drain => {
                self.buf = Vec::new();
                self.drain = Some((after(now, LINGER_TIME), 0));
            }
        }
        self.advance(now);
    }

    /// The peer reset the connection, or a read or write failed: the connection is over.
    /// Nothing is logged as an error: none of it is the server's fault.
    pub fn failed(&mut self) {
        self.closed = true;
    }

    /// What the connection wants next.
    pub fn wants(&self) -> Want {
        if self.closed {
            Want::Close
        } else if self.ready.is_some() {
            // Even with output pending: a pipelined request parsed behind it is answered
            // first, so that both answers leave in one write (`advance`).
            Want::Service
        } else if self.pending() {
            Want::Write
        } else if self.with_service {
            Want::Service
        } else if self.drain.is_some() {
            Want::Drain
        } else {
            Want::Read
        }
    }

    /// When the driver must call [`timed_out`](HttpConn::timed_out) if nothing happened
    /// before; `None` while the service has the request (it is never interrupted) or once closed.
    pub fn deadline(&self) -> Option<Instant> {
        let cfg = &self.cfg;
        match self.wants() {
            Want::Close => None,
            // A request with (or for) the service and no output waiting: nothing to time.
            Want::Service if !self.pending() => None,
            // Output is pending, perhaps with a pipelined request ready behind it.
            Want::Write | Want::Service => {
                let stalled = after(self.last_progress, cfg.write_timeout);
                let slow =
                    self.blocked_since.and_then(|b| cfg.min_send_rate.deadline(b, self.sent_since_block));
                Some(slow.map_or(stalled, |s| s.min(stalled)))
            }
            Want::Drain => self.drain.map(|(until, _)| until),
            Want::Read => Some(match self.request_start {
                None => {
                    // The first request gets read_timeout for everything, its first byte
                    // included: the client has just connected, it has no reason to wait.
                    let wait = if self.first { cfg.read_timeout } else { cfg.idle_timeout };
                    let idle = after(self.idle_since, wait);
                    if self.stopping { idle.min(after(self.idle_since, STOP_GRACE)) } else { idle }
                }
                Some(start) => {
                    let whole = after(start, cfg.read_timeout);
                    let part = match self.body_start {
                        Some(body) => cfg.min_body_rate.deadline(body, self.body_bytes),
                        None => Some(after(start, cfg.header_timeout)),
                    };
                    part.map_or(whole, |p| p.min(whole))
                }
            }),
        }
    }

    /// The deadline passed: a request partially received gets 408; anything else closes
    /// silently (an idle connection has no request to answer, and a response half-written
    /// cannot be followed by another). Called early, it does nothing.
    pub fn timed_out(&mut self, now: Instant) {
        match self.deadline() {
            Some(deadline) if now >= deadline => {}
            _ => return,
        }
        match self.wants() {
            Want::Read if self.request_start.is_some() => self.refuse(408, now),
            Want::Write => {
                log::debug!(target: "socketserver::http", "{}: write timed out", self.peer);
                self.closed = true;
            }
            _ => self.closed = true,
        }
    }

    /// The server is stopping: an idle connection closes now (once it has been idle for
    /// [`STOP_GRACE`]; until then its deadline says when), a request in progress finishes and
    /// its response says `Connection: close`.
    pub fn stopping(&mut self, now: Instant) {
        self.stopping = true;
        if self.is_idle() && now >= after(self.idle_since, STOP_GRACE) {
            self.closed = true;
        }
    }

    /// Whether it has received no byte of a next request (idle keep-alive, or never sent one)
    /// and has nothing to write.
    pub fn is_idle(&self) -> bool {
        self.wants() == Want::Read && self.request_start.is_none()
    }

    /// The panic message, if a service call on this connection panicked (the connection then
    /// closes; the blocking driver reports it to the server's `handle_error`).
    pub fn panicked(&self) -> Option<&str> {
        self.panicked.as_deref()
    }

    /// Parses what is buffered, if the connection is ready for another request: nothing is
    /// out, it is not closing, and nothing is pending — or what is pending is the small answer
    /// to an earlier request of a pipeline, which the next one's answer may join.
    fn advance(&mut self, now: Instant) {
        if self.closed || self.drain.is_some() || self.ready.is_some() || self.with_service {
            return;
        }
        let ahead = self.pending();
        if ahead && !self.may_parse_ahead() {
            return;
        }
        // Parse before reading: pipelined requests may already be in the buffer.
        let parsed = if self.buf.is_empty() { Parsed::Partial } else { self.reader.advance(&self.buf) };
        if ahead && matches!(parsed, Parsed::Partial) {
            // Only a complete request (or a refusal) joins pending output; what a partial one
            // needs (a 100 Continue, its body's rate, the EOF check) waits until that output is
            // written and this runs again from `sent`.
            return;
        }
        match parsed {
            Parsed::Complete { mut request, consumed } => {
                request.set_peer_addr(self.peer.clone());
                self.buf.drain(..consumed.min(self.buf.len()));
                self.reader.reset();
                self.sent_continue = false;
                self.body_start = None;
                self.ready = Some(request);
            }
            Parsed::Error(status) => self.refuse(status, now),
            Parsed::Partial => {
                // EOF between requests is the normal end of a connection; EOF inside one
                // means the client gave up, and there is nobody to answer.
                if self.eof {
                    self.closed = true;
                    return;
                }
                if self.reader.in_body() && self.body_start.is_none() {
                    self.body_start = Some(now);
                    self.body_bytes = 0;
                }
                if self.reader.expects_continue() && !self.sent_continue {
                    // The client holds the body back until it hears this (RFC 9110 §10.1.1).
                    self.sent_continue = true;
                    self.out.extend_from_slice(CONTINUE);
                    self.after_write = AfterWrite::Continue;
                    self.last_progress = now;
                }
            }
        }
    }

    /// Whether the next pipelined request may be parsed (and then answered) while output is
    /// still pending, so that the answers to a pipeline leave in one write instead of one
    /// write each (may_minihttp's loop: read what is there, answer every request in it,
    /// write once). Only behind keep-alive answers, so the connection still stays open for
    /// it; only while the large-body buffer is empty, since output is `out` then `body` and a
    /// later answer appended to `out` would overtake it; and only while the pending bytes are
    /// under [`PIPELINE_OUTPUT_LIMIT`], so that a client that pipelines without reading makes
    /// the server hold at most that (plus one answer) before it stops parsing, and reading.
    fn may_parse_ahead(&self) -> bool {
        matches!(self.after_write, AfterWrite::KeepAlive)
            && self.body.is_empty()
            && self.out.len() - self.out_pos < PIPELINE_OUTPUT_LIMIT
    }

    /// Answers a request the layer itself refuses; then the connection drains and closes.
    fn refuse(&mut self, status: u16, now: Instant) {
        let body = format!("{status} {}\n", super::reason_phrase(status));
        let response = Response::text(status, body);
        // Refusals are written by the connection's own thread.
        let who = trace::Who::cached();
        self.queue(response, false, ConnectionHeader::Close, now, Duration::ZERO, who, now);
        self.log(None, status, who, now, Duration::ZERO);
        // The client may still be sending the body we refused: read it away before closing.
        self.after_write = AfterWrite::Drain;
        self.buf.clear();
        self.request_start = None;
    }

    /// Serializes `response` after any pending output.
    #[allow(clippy::too_many_arguments)]
    fn queue(
        &mut self,
        mut response: Response,
        head_only: bool,
        connection: ConnectionHeader,
        started: Instant,
        elapsed: Duration,
        who: trace::Who,
        now: Instant,
    ) {
        let start = started.saturating_duration_since(trace::epoch());
        let trace =
            self.cfg.trace_headers.then_some(TraceHeaders { pid: who.pid, tid: who.tid, start, elapsed });
        let opts = WriteOptions { server_name: &self.cfg.server_name, head_only, connection, trace };
        let sends_body = !head_only && !is_bodiless(response.status());
        if !self.pending() && sends_body && response.body().len() > BODY_COPY_LIMIT {
            // A large body: the head goes into the buffer (with the body's length, exactly as
            // for HEAD) and the body is written from its own allocation, moved, not copied.
            // Copying 4 MB behind the head costs milliseconds of the writing thread, which on
            // the pool is the reactor that every other connection waits on.
            self.out.clear();
            self.out_pos = 0;
            response.serialize(&mut self.out, &WriteOptions { head_only: true, ..opts });
            self.body = response.take_body();
            self.body_pos = 0;
        } else if !self.pending() {
            // The usual case: the reused buffer is empty, serialize straight into it, body and
            // all, for one write.
            self.out.clear();
            self.out_pos = 0;
            response.serialize(&mut self.out, &opts);
        } else {
            // Behind output not yet written (an earlier pipelined answer, or a 100 Continue):
            // appended, body and all, so that they go out together, in order.
            response.serialize(&mut self.out, &opts);
        }
        self.last_progress = now;
        self.blocked_since = None;
    }

    /// The request's log line, Python's `log_message`.
    fn log(
        &self,
        request: Option<&Request>,
        status: u16,
        who: trace::Who,
        started: Instant,
        elapsed: Duration,
    ) {
        // log_enabled! asks the logger's filter too, not only the global level, so a filtered
        // line costs one check and no formatting.
        if !(self.cfg.log_requests && log::log_enabled!(target: "socketserver::http", log::Level::Info)) {
            return;
        }
        let start = started.saturating_duration_since(trace::epoch()).as_secs_f64();
        let elapsed = elapsed.as_secs_f64();
        let peer = &self.peer;
        match request {
            Some(r) => log::info!(
                target: "socketserver::http",
                "{who} {peer} \"{} {} {}\" {status} +{start:.3}s {elapsed:.3}s",
                r.method(), r.target(), r.version()
            ),
            None => log::info!(
                target: "socketserver::http",
                "{who} {peer} \"-\" {status} +{start:.3}s {elapsed:.3}s"
            ),
        }
    }
}

/// The instant `d` after `t`. A configured `Duration::MAX` means "practically never" and must
/// not overflow `Instant` (which would panic), so it is capped at a day.
pub(crate) fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(Duration::from_secs(86_400))).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpHandler, conn_cases};

    const SEC: Duration = Duration::from_secs(1);

    fn handler() -> HttpHandler<fn(&Request) -> Response> {
        HttpHandler::new(conn_cases::service as fn(&Request) -> Response)
            .server_name("t")
            .trace_headers(false)
            .log_requests(false)
    }

    fn conn(h: &HttpHandler<fn(&Request) -> Response>, now: Instant) -> HttpConn {
        HttpConn::new(h.conn_config(), Addr::Inet(std::net::SocketAddr::from(([127, 0, 0, 1], 9))), now)
    }

    fn recv(c: &mut HttpConn, bytes: &[u8], now: Instant) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let buf = c.read_buf();
            let n = buf.len().min(rest.len());
            buf[..n].copy_from_slice(&rest[..n]);
            c.received(n, now);
            rest = &rest[n..];
        }
    }

    /// Writes everything pending, returning it.
    fn flush(c: &mut HttpConn, now: Instant) -> Vec<u8> {
        let out = c.output().to_vec();
        c.sent(out.len(), now);
        out
    }

    /// Serves the request that is ready with the table's service.
    fn serve(h: &HttpHandler<fn(&Request) -> Response>, c: &mut HttpConn, now: Instant) {
        let request = c.next_request(now).expect("a request is ready");
        assert!(c.next_request(now).is_none(), "one request out at a time");
        if c.output().is_empty() {
            assert_eq!((c.wants(), c.deadline()), (Want::Service, None));
        } else {
            // Answered ahead of a write: the earlier answers may be written meanwhile.
            assert_eq!(c.wants(), Want::Write);
        }
        let answer = conn_cases::call(h, &request);
        c.respond(request, answer, now);
    }

    fn status(out: &[u8]) -> &[u8] {
        &out[..12.min(out.len())]
    }

    #[test]
    fn first_byte_within_read_timeout_then_head_within_header_timeout() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        assert_eq!((c.wants(), c.deadline()), (Want::Read, Some(t0 + 30 * SEC)));
        assert!(c.is_idle());
        recv(&mut c, b"GET / HTTP/1.1\r\n", t0 + 2 * SEC);
        assert!(!c.is_idle());
        assert_eq!(c.deadline(), Some(t0 + 12 * SEC), "header_timeout from the first byte");
        c.timed_out(t0 + 11 * SEC);
        assert_eq!(c.wants(), Want::Read, "an early call does nothing");
        c.timed_out(t0 + 12 * SEC);
        assert_eq!(c.wants(), Want::Write);
        let out = flush(&mut c, t0 + 12 * SEC);
        assert_eq!(status(&out), b"HTTP/1.1 408");
        assert!(conn_cases::normalise(&out).ends_with(b"Connection: close\r\n\r\n408 Request Timeout\n"));
        assert_eq!((c.wants(), c.deadline()), (Want::Drain, Some(t0 + 12 * SEC + LINGER_TIME)));
        c.timed_out(t0 + 12 * SEC + LINGER_TIME);
        assert_eq!(c.wants(), Want::Close);
    }

    #[test]
    fn a_large_body_goes_out_after_the_head_from_its_own_buffer() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", t0);
        let request = c.next_request(t0).expect("a request is ready");
        let body = vec![b'x'; BODY_COPY_LIMIT + 1];
        let answer = Answer {
            response: Response::new(200).with_body(body.clone()),
            panicked: None,
            started: t0,
            elapsed: Duration::ZERO,
            who: trace::Who::cached(),
        };
        c.respond(request, answer, t0);
        // First the head, with the body's length; then the body, whole, from its buffer.
        let head = flush(&mut c, t0);
        assert!(head.ends_with(b"\r\n\r\n") && head.len() < 1024, "{}", String::from_utf8_lossy(&head));
        assert!(String::from_utf8_lossy(&head).contains(&format!("Content-Length: {}\r\n", body.len())));
        assert_eq!(c.wants(), Want::Write);
        // A partial write of the body, then the rest: the same bytes, in order.
        let part = c.output()[..1000].to_vec();
        c.sent(1000, t0);
        let rest = flush(&mut c, t0);
        assert_eq!([part, rest].concat(), body);
        assert_eq!((c.wants(), c.output()), (Want::Read, &b""[..]), "kept alive, nothing left");
        // A small body still goes out with its head, in one piece.
        recv(&mut c, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", t0);
        serve(&h, &mut c, t0);
        let out = flush(&mut c, t0);
        assert!(out.starts_with(b"HTTP/1.1 ") && !out.ends_with(b"\r\n\r\n"), "head and body in one");
        assert_eq!(c.output(), &b""[..]);
    }

    #[test]
    fn read_timeout_bounds_the_whole_request_when_it_is_shorter() {
        let h = handler().read_timeout(3 * SEC);
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET", t0 + SEC);
        assert_eq!(c.deadline(), Some(t0 + 4 * SEC));
    }

    #[test]
    fn silence_before_the_first_byte_closes_without_a_word() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        c.timed_out(t0 + 30 * SEC);
        assert_eq!((c.wants(), c.output()), (Want::Close, &b""[..]));
    }

    #[test]
    fn a_body_slower_than_the_minimum_rate_gets_408() {
        let h = handler().min_body_rate(500, 10 * SEC);
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", t0);
        assert_eq!(c.deadline(), Some(t0 + 10 * SEC), "the grace, counted from the end of the head");
        recv(&mut c, &[b'x'; 1000], t0 + 5 * SEC);
        assert_eq!(c.deadline(), Some(t0 + 12 * SEC), "two more seconds for 1000 bytes at 500 bytes/s");
        recv(&mut c, &[b'x'; 10_000][..2500], t0 + 11 * SEC);
        assert_eq!(c.deadline(), Some(t0 + 17 * SEC));
        c.timed_out(t0 + 17 * SEC);
        assert_eq!(status(&flush(&mut c, t0 + 17 * SEC)), b"HTTP/1.1 408");
        // The whole-request bound still applies with the rate off.
        let h = handler().min_body_rate(0, SEC);
        let mut c = conn(&h, t0);
        recv(&mut c, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n", t0);
        assert_eq!(c.deadline(), Some(t0 + 30 * SEC));
    }

    #[test]
    fn a_kept_alive_connection_idles_for_idle_timeout_then_closes_silently() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n", t0);
        serve(&h, &mut c, t0);
        assert_eq!(c.deadline(), Some(t0 + 30 * SEC), "write_timeout while output is pending");
        flush(&mut c, t0 + SEC);
        assert!(c.is_idle());
        assert_eq!(c.deadline(), Some(t0 + 6 * SEC), "idle_timeout after the response");
        c.timed_out(t0 + 6 * SEC);
        assert_eq!((c.wants(), c.output()), (Want::Close, &b""[..]));
    }

    #[test]
    fn a_slow_reader_is_cut_at_the_minimum_send_rate_and_a_stalled_one_at_write_timeout() {
        let h = handler().min_send_rate(1000, 10 * SEC);
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        let body = vec![b'x'; 16];
        recv(&mut c, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\n\r\n", t0);
        recv(&mut c, &body, t0);
        serve(&h, &mut c, t0);
        let total = c.output().len();
        c.sent(100, t0);
        assert_eq!(c.deadline(), Some(t0 + 10 * SEC), "what the kernel took at once buys no time");
        c.sent(2, t0 + 5 * SEC);
        assert_eq!(c.deadline(), Some(t0 + 10 * SEC + Duration::from_millis(2)));
        c.timed_out(t0 + 11 * SEC);
        assert_eq!((c.wants(), c.output().len()), (Want::Close, 0), "half-sent: a clean close");
        assert!(total > 102);

        let h = handler().min_send_rate(0, SEC).write_timeout(2 * SEC);
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n", t0);
        serve(&h, &mut c, t0);
        c.sent(3, t0 + SEC);
        assert_eq!(c.deadline(), Some(t0 + 3 * SEC), "write_timeout counts from the last progress");
        c.sent(0, t0 + 2 * SEC);
        assert_eq!(c.deadline(), Some(t0 + 3 * SEC), "no progress, no extension");
    }

    #[test]
    fn a_stopping_server_lets_idle_connections_go_after_the_grace() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        c.stopping(t0 + Duration::from_millis(100));
        assert_eq!((c.wants(), c.deadline()), (Want::Read, Some(t0 + STOP_GRACE)));
        c.timed_out(t0 + STOP_GRACE);
        assert_eq!(c.wants(), Want::Close);
        let mut c = conn(&h, t0);
        c.stopping(t0 + SEC);
        assert_eq!(c.wants(), Want::Close, "idle past the grace: at once");
    }

    #[test]
    fn a_request_in_progress_when_stopping_is_answered_with_connection_close() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n", t0);
        c.stopping(t0);
        serve(&h, &mut c, t0);
        let out = flush(&mut c, t0);
        assert!(
            conn_cases::normalise(&out).ends_with(b"Content-Length: 8\r\nConnection: close\r\n\r\nhello /a")
        );
        assert_eq!(c.wants(), Want::Close);
    }

    #[test]
    fn expect_100_continue_is_sent_once_and_only_if_the_body_is_not_there() {
        let h = handler();
        let t0 = Instant::now();
        let head = b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
        let mut c = conn(&h, t0);
        recv(&mut c, head, t0);
        assert_eq!((c.wants(), c.output()), (Want::Write, CONTINUE));
        assert_eq!(flush(&mut c, t0), CONTINUE);
        assert_eq!(c.wants(), Want::Read);
        recv(&mut c, b"pi", t0);
        assert_eq!(c.wants(), Want::Read, "no second 100");
        recv(&mut c, b"ng", t0);
        serve(&h, &mut c, t0);
        assert!(flush(&mut c, t0).ends_with(b"\r\n\r\nping"));
        // Head and body together: the client has not waited, so no 100.
        let mut c = conn(&h, t0);
        recv(&mut c, &[head.as_slice(), b"ping"].concat(), t0);
        serve(&h, &mut c, t0);
        assert_eq!(status(&flush(&mut c, t0)), b"HTTP/1.1 200");
    }

    #[test]
    fn a_refusal_drains_up_to_linger_bytes_or_eof() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GARBAGE\r\n\r\n", t0);
        flush(&mut c, t0);
        assert_eq!(c.wants(), Want::Drain);
        recv(&mut c, &vec![0u8; LINGER_BYTES - 1], t0);
        assert_eq!((c.wants(), c.output()), (Want::Drain, &b""[..]), "drained bytes are thrown away");
        recv(&mut c, b"x", t0);
        assert_eq!(c.wants(), Want::Close);
        let mut c = conn(&h, t0);
        recv(&mut c, b"GARBAGE\r\n\r\n", t0);
        flush(&mut c, t0);
        c.received(0, t0);
        assert_eq!(c.wants(), Want::Close);
    }

    #[test]
    fn eof_inside_a_request_closes_silently_and_failure_closes() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET / HTTP/1.1\r\nHo", t0);
        c.received(0, t0);
        assert_eq!((c.wants(), c.output(), c.deadline()), (Want::Close, &b""[..], None));
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n", t0);
        serve(&h, &mut c, t0);
        c.failed();
        assert_eq!(c.wants(), Want::Close);
    }

    #[test]
    fn pipelined_requests_are_answered_together_and_written_once() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        let many = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n".repeat(50);
        recv(&mut c, &many, t0);
        let mut served = 0;
        while c.wants() == Want::Service {
            serve(&h, &mut c, t0);
            served += 1;
        }
        assert_eq!((served, c.wants()), (50, Want::Write), "all answered before any write");
        let out = flush(&mut c, t0);
        assert_eq!(out.windows(12).filter(|w| w == b"HTTP/1.1 200").count(), 50, "in one output");
        assert_eq!(c.wants(), Want::Read);
    }

    #[test]
    fn pipelined_answers_stop_gathering_at_the_limit_until_written() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        let body = vec![b'x'; 10_000];
        let mut one = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\n".to_vec();
        one.extend_from_slice(&body);
        recv(&mut c, &one.repeat(20), t0);
        let mut served = 0;
        while c.wants() == Want::Service {
            serve(&h, &mut c, t0);
            served += 1;
        }
        // Each answer is a little over 10 kB: the seventh takes the output past 64 KiB.
        assert_eq!((served, c.wants()), (7, Want::Write));
        assert!(c.output().len() < PIPELINE_OUTPUT_LIMIT + one.len());
        assert!(c.next_request(t0).is_none(), "no more until the output is written");
        c.sent(1, t0);
        assert!(c.next_request(t0).is_none(), "nor while some of it is left");
        flush(&mut c, t0);
        while c.wants() == Want::Service {
            serve(&h, &mut c, t0);
            served += 1;
            if c.wants() == Want::Write {
                flush(&mut c, t0);
            }
        }
        assert_eq!((served, c.wants()), (20, Want::Read));
    }

    #[test]
    fn trace_headers_come_from_the_answer() {
        let h = handler().trace_headers(true);
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n", t0);
        let request = c.next_request(t0).expect("ready");
        let answer = Answer {
            response: Response::text(200, "x"),
            panicked: None,
            started: trace::epoch() + Duration::from_millis(1500),
            elapsed: Duration::from_millis(250),
            who: trace::Who { pid: 7, tid: 8 },
        };
        c.respond(request, answer, t0);
        let out = flush(&mut c, t0);
        let want =
            b"Content-Length: 1\r\nX-Pid: 7\r\nX-Tid: 8\r\nX-Start: 1.500000\r\nX-Elapsed: 0.250000\r\n\r\nx";
        assert!(out.ends_with(want), "{}", String::from_utf8_lossy(&out));
    }

    #[test]
    fn keep_alive_off_and_a_panic_close_and_the_panic_is_kept() {
        let h = handler().keep_alive(false);
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n", t0);
        serve(&h, &mut c, t0);
        assert!(conn_cases::normalise(&flush(&mut c, t0)).ends_with(b"Connection: close\r\n\r\nhello /a"));
        assert_eq!((c.wants(), c.panicked()), (Want::Close, None));
        let h = handler();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n", t0);
        serve(&h, &mut c, t0);
        assert_eq!(status(&flush(&mut c, t0)), b"HTTP/1.1 500");
        assert_eq!((c.wants(), c.panicked()), (Want::Close, Some("the table's /panic")));
    }

    #[test]
    fn the_read_buffer_grows_after_a_full_read() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        assert_eq!(c.read_buf().len(), FIRST_READ_CHUNK);
        let n = c.read_buf().len();
        c.read_buf().fill(b'a');
        c.received(n, t0);
        assert_eq!(c.read_buf().len(), READ_CHUNK);
    }

    #[test]
    fn a_pipelined_request_after_a_response_gets_read_timeout_from_then() {
        let h = handler();
        let t0 = Instant::now();
        let mut c = conn(&h, t0);
        recv(&mut c, b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b", t0);
        serve(&h, &mut c, t0);
        flush(&mut c, t0 + SEC);
        assert!(!c.is_idle());
        assert_eq!(c.deadline(), Some(t0 + 11 * SEC), "header_timeout from when it became current");
    }
}
