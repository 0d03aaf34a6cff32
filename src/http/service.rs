//! [`Service`] (what the application does with a request) and [`HttpHandler`] (the connection
//! loop that turns a [`RequestHandler`] into an HTTP/1.1 server).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags};

use super::request::{Limits, Parsed, Request, RequestReader, Version};
use super::response::{ConnectionHeader, Response, TraceHeaders, WriteOptions};
use crate::error::{Error, HandlerError, panic_message};
use crate::handler::{Connection, RequestHandler};
use crate::trace;

/// The application: one request in, one response out. Python's `do_GET`, `do_POST`, ... in
/// one method; match on [`Request::method`] yourself.
///
/// Any `Fn(&Request) -> Response` closure that is `Send + Sync + 'static` is a service:
///
/// ```
/// use socketserver::http::{HttpHandler, Request, Response};
/// let handler = HttpHandler::new(|req: &Request| match req.path() {
///     "/hello" => Response::text(200, "hello\n"),
///     _ => Response::text(404, "not found\n"),
/// });
/// # let _ = handler;
/// ```
///
/// A panic inside `call` is caught: the client gets a 500 and the connection is closed, and
/// the handler reports [`Error::HandlerPanicked`] to the server.
pub trait Service: Send + Sync + 'static {
    /// Answers one request.
    fn call(&self, req: &Request) -> Response;
}

impl<F: Fn(&Request) -> Response + Send + Sync + 'static> Service for F {
    fn call(&self, req: &Request) -> Response {
        self(req)
    }
}

/// Python's `BaseHTTPRequestHandler`: reads HTTP/1.1 requests from a connection, calls a
/// [`Service`] for each, writes the responses, and keeps the connection alive between them.
///
/// # Configure this
/// Consuming setters, each with its default:
///
/// | setter | default |
/// |---|---|
/// | [`max_body`](HttpHandler::max_body) | 1 MiB |
/// | [`limits`](HttpHandler::limits) | [`Limits::default`] |
/// | [`read_timeout`](HttpHandler::read_timeout) | 30 s |
/// | [`idle_timeout`](HttpHandler::idle_timeout) | 5 s |
/// | [`write_timeout`](HttpHandler::write_timeout) | 30 s |
/// | [`server_name`](HttpHandler::server_name) | `socketserver/<crate version>` |
/// | [`trace_headers`](HttpHandler::trace_headers) | on |
/// | [`log_requests`](HttpHandler::log_requests) | on |
/// | [`keep_alive`](HttpHandler::keep_alive) | on |
/// | [`slow_request_warning`](HttpHandler::slow_request_warning) | off |
#[derive(Debug, Clone)]
pub struct HttpHandler<S> {
    service: S,
    limits: Limits,
    read_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    server_name: String,
    trace_headers: bool,
    log_requests: bool,
    keep_alive: bool,
    slow_request_warning: Option<Duration>,
}

/// The `Server` header value unless [`HttpHandler::server_name`] says otherwise.
pub(crate) const DEFAULT_SERVER_NAME: &str = concat!("socketserver/", env!("CARGO_PKG_VERSION"));

/// Bytes asked of the kernel per `read`. Large enough that a typical request arrives in one
/// call; the request parser, not this number, bounds how much is buffered.
const READ_CHUNK: usize = 16 * 1024;

/// The read buffer a connection starts with; it grows to [`READ_CHUNK`] the first time a read
/// fills it. Zeroing 16 KiB for every connection was, in `--close` mode, a third of the
/// instructions the server spent per request, for requests that are mostly under 1 KiB.
const FIRST_READ_CHUNK: usize = 4 * 1024;

/// A socket timeout may be this much longer than the time left before a deadline without being
/// set again: one `setsockopt` saved per request in the common case, at the price of noticing
/// an expired deadline up to this late.
const TIMEOUT_SLACK: Duration = Duration::from_millis(50);

/// The longest a connection idle between requests waits before checking whether the server is
/// stopping. Only idle connections wake this often, and a wake costs one system call or none.
const IDLE_SLICE: Duration = Duration::from_millis(250);

/// How long a pool worker waits for a kept-alive client's next request before parking the
/// connection (see `handle`).
const PARK_LINGER_MS: u8 = 2;

/// Whether `stream` has input (or EOF) within `ms` milliseconds: one `poll(2)`.
fn readable_within(stream: &std::net::TcpStream, ms: u8) -> bool {
    use std::os::fd::AsFd;
    let mut fds = [nix::poll::PollFd::new(stream.as_fd(), nix::poll::PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)), Ok(n) if n > 0)
}

/// How long a connection must have been silent before a stopping server lets go of it.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// How long, and for how many bytes, to keep reading (and discarding) after refusing a request.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

impl<S: Service> HttpHandler<S> {
    /// A handler that answers every request with `service`, with the default configuration.
    pub fn new(service: S) -> Self {
        HttpHandler {
            service,
            limits: Limits::default(),
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            server_name: DEFAULT_SERVER_NAME.to_string(),
            trace_headers: true,
            log_requests: true,
            keep_alive: true,
            slow_request_warning: None,
        }
    }

    /// Largest request body accepted, after chunked decoding; larger ones get 413. (Default: 1 MiB.)
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.limits.max_body = bytes;
        self
    }

    /// All size limits at once (this replaces an earlier [`max_body`](HttpHandler::max_body)).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Time a whole request (head and body) has to arrive, counted from its first byte; a
    /// client that is still sending then gets 408. This is the defence against slowloris: a
    /// per-`read` timeout alone lets a client trickle one byte per period forever. The first
    /// request of a connection also has this long for its first byte. (Default: 30 s.)
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }

    /// Time a kept-alive connection may sit idle waiting for its next request before it is
    /// closed (silently: there is no request to answer). Short, because an idle connection
    /// holds a thread or a process under `Sequential`, `Threading` and `Forking`; under
    /// [`Pool`](crate::Pool) it is *parked* instead ([`Connection::park`]) and holds only a file
    /// descriptor while it waits. (Default: 5 s.)
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Time one `write` may block on a client that does not read (`SO_SNDTIMEO`). (Default: 30 s.)
    ///
    /// It bounds each blocked write, not the whole response, like nginx's `send_timeout`: a
    /// client that stops reading is given up once a write has made no progress for this long.
    /// While the kernel grows the socket's send buffer, writes still make some progress, so
    /// that can take a few timeouts (`docs/reliability.md` measures about 3 s for 1 s); a
    /// client that keeps reading a trickle is not cut at all.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.write_timeout = d;
        self
    }

    /// The `Server` header value. (Default: `socketserver/<crate version>`.)
    pub fn server_name(mut self, s: impl Into<String>) -> Self {
        self.server_name = s.into();
        self
    }

    /// Whether to add `X-Pid`, `X-Tid`, `X-Start` (seconds since server start when the request
    /// was complete) and `X-Elapsed` (seconds the service took) to every response. (Default: on.)
    pub fn trace_headers(mut self, on: bool) -> Self {
        self.trace_headers = on;
        self
    }

    /// Whether to log one `info` line per request (target `socketserver::http`), like Python's
    /// `log_message`, with pid, tid, peer, request line, status, start offset and duration. (Default: on.)
    pub fn log_requests(mut self, on: bool) -> Self {
        self.log_requests = on;
        self
    }

    /// Whether connections may serve more than one request. Off: every response says
    /// `Connection: close`. (Default: on.)
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.keep_alive = on;
        self
    }

    /// A *handler deadline* that warns but does not kill: when one service call takes longer
    /// than `after`, a `warn` line (target `socketserver::http`) names the request, the peer,
    /// who served it (pid, tid) and how long it took. `None` turns it off. (Default: off — what
    /// counts as slow is the application's call; the example servers take `--warn-after SECS`.)
    ///
    /// The warning comes *after* the call returns. A running call is never interrupted: Rust
    /// has no safe way to kill a thread (it may hold a lock, or be half-way through changing
    /// shared state, and nothing would unlock or repair it), and a call stuck for ever never
    /// produces the warning. The [`Forking`](crate::Forking) strategy could kill its child, but
    /// this layer does not know which strategy runs it; a request deadline that kills is a job
    /// for a supervisor outside the process, or for a handler that checks its own clock.
    pub fn slow_request_warning(mut self, after: Option<Duration>) -> Self {
        self.slow_request_warning = after;
        self
    }

    /// The service this handler calls.
    pub fn service(&self) -> &S {
        &self.service
    }
}

impl<S: Service> RequestHandler for HttpHandler<S> {
    fn handle(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        let peer = conn.peer_addr();
        let server = conn.server().clone();
        // Read before `io` borrows the stream: may this connection wait for its next request
        // without a thread (Pool), or must this call wait for it (every other strategy)?
        let parkable = conn.can_park();
        let mut io = Io::new(conn, peer);
        // Small responses are written in one piece and the client waits for all of it; Nagle's
        // algorithm would hold the segment back waiting for an ACK the client delays (~40 ms).
        // Failure only costs latency, so it is not an error.
        let _ = io.conn.stream().set_nodelay(true);
        // The write timeout is set when a write first has to wait (Io::write_all), not here: a
        // response that fits in the socket's send buffer never waits, and most do.
        io.write_timeout = at_least_1ms(self.write_timeout);

        let mut reader = RequestReader::new(self.limits);
        // The first request gets read_timeout for everything, its first byte included: the
        // client has just connected, it has no reason to wait.
        let mut deadline = after(self.read_timeout);
        // When the connection last became idle (connected, or answered a request).
        let mut idle_since = Instant::now();
        let mut in_request = false;
        let mut sent_continue = false;
        loop {
            // Parse before reading: pipelined requests may already be in the buffer.
            let parsed = if io.buf.is_empty() { Parsed::Partial } else { reader.advance(&io.buf) };
            match parsed {
                Parsed::Complete { mut request, consumed } => {
                    request.set_peer_addr(peer);
                    io.buf.drain(..consumed.min(io.buf.len()));
                    reader.reset();
                    sent_continue = false;
                    let stop = server.is_stopping();
                    match self.respond(&mut io, &request, stop) {
                        // Its buffers serve the next request on this connection.
                        Outcome::KeepGoing => reader.recycle(request),
                        Outcome::Close => {
                            io.close(!io.buf.is_empty());
                            return Ok(());
                        }
                        Outcome::Gone => return Ok(()),
                        Outcome::Panicked(msg) => {
                            io.close(!io.buf.is_empty());
                            return Err(Box::new(Error::HandlerPanicked(msg)));
                        }
                    }
                    // Bytes already buffered belong to the next request, which has therefore
                    // started; otherwise the connection is idle.
                    in_request = !io.buf.is_empty();
                    // A busy keep-alive client (a load generator, a page fetching its assets) sends
                    // its next request within microseconds of reading the response. Parking
                    // and waking it costs a round trip through the pool's poller: two context
                    // switches and half a dozen system calls. So linger a moment first, and park
                    // only a connection that stays quiet. The price: a client queued behind this
                    // worker may wait up to PARK_LINGER longer. And no lingering, nor serving
                    // this client's next request, while other connections wait for a worker:
                    // park, to the back of the line, so that busy clients take turns instead of
                    // one holding a worker for as long as it keeps sending.
                    if parkable
                        && !in_request
                        && (io.conn.others_waiting() || !readable_within(io.conn.stream(), PARK_LINGER_MS))
                    {
                        // Idle, and nothing of ours is buffered (the poller watches the socket,
                        // not `io.buf`, so a pipelined request must be served here first): give
                        // the thread back and be called again when the client sends more. The
                        // next call starts like this one, so the request that wakes it gets the
                        // same read_timeout from its first byte; the idle_timeout is the
                        // poller's to enforce.
                        drop(io);
                        conn.park(self.idle_timeout);
                        return Ok(());
                    }
                    let wait = if in_request { self.read_timeout } else { self.idle_timeout };
                    deadline = after(wait);
                    idle_since = Instant::now();
                }
                Parsed::Error(status) => {
                    self.refuse(&mut io, status);
                    return Ok(());
                }
                Parsed::Partial => {
                    if reader.expects_continue() && !sent_continue {
                        // The client holds the body back until it hears this (RFC 9110 §10.1.1).
                        sent_continue = true;
                        if let Err(e) = io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n") {
                            return quiet(e);
                        }
                    }
                    // Between requests, wait in slices and let go of the connection once the
                    // server is stopping: a graceful stop must not wait out a browser's idle
                    // keep-alive connection (5 s by default). But not before STOP_GRACE of
                    // silence: a client that has just connected, or just read a response, may be
                    // writing its request this very moment, and that request deserves an answer.
                    let stopping =
                        || !in_request && idle_since.elapsed() >= STOP_GRACE && server.is_stopping();
                    match io.read_more(deadline, (!in_request).then_some(IDLE_SLICE), stopping) {
                        Ok(ReadOutcome::Data) if !in_request => {
                            in_request = true;
                            deadline = after(self.read_timeout);
                        }
                        Ok(ReadOutcome::Data) => {}
                        // EOF between requests is the normal end of a connection; EOF inside
                        // one means the client gave up, and there is nobody to answer.
                        Ok(ReadOutcome::Eof) => return Ok(()),
                        Ok(ReadOutcome::TimedOut) => {
                            if in_request {
                                self.refuse(&mut io, 408);
                            }
                            return Ok(());
                        }
                        Err(e) => return quiet(e),
                    }
                }
            }
        }
    }
}

/// What to do with the connection after a response.
enum Outcome {
    KeepGoing,
    Close,
    /// The client went away while we wrote.
    Gone,
    Panicked(String),
}

impl<S: Service> HttpHandler<S> {
    /// Calls the service for `request` and writes its response.
    fn respond(&self, io: &mut Io<'_>, request: &Request, stop: bool) -> Outcome {
        let started = Instant::now();
        // AssertUnwindSafe: the service sees the request only by shared reference, and after a
        // panic we drop the connection and everything it read, so no broken state survives.
        let result = catch_unwind(AssertUnwindSafe(|| self.service.call(request)));
        let elapsed = started.elapsed();
        if let Some(limit) = self.slow_request_warning
            && elapsed > limit
        {
            log::warn!(
                target: "socketserver::http",
                "slow request: \"{} {}\" from {} took {} in {} (warn-after {})",
                request.method(),
                request.target(),
                io.peer,
                trace::secs(elapsed),
                trace::Who::current(),
                trace::secs(limit)
            );
        }
        let (response, panicked) = match result {
            Ok(response) => (response, None),
            Err(payload) => {
                (Response::text(500, "500 Internal Server Error\n"), Some(panic_message(&*payload)))
            }
        };
        let keep = self.keep_alive
            && request.wants_keep_alive()
            && panicked.is_none()
            && !response.asks_close()
            // A server that is shutting down finishes this request, then lets go of the
            // connection instead of waiting out the idle timeout for another.
            && !stop;
        let connection = match (keep, request.version()) {
            (false, _) => ConnectionHeader::Close,
            (true, Version::Http10) => ConnectionHeader::KeepAlive,
            (true, Version::Http11) => ConnectionHeader::None,
        };
        let line = RequestLine::Of(request);
        let written =
            self.send(io, &response, request.method() == "HEAD", connection, started, elapsed, line);
        match (panicked, written) {
            (Some(msg), _) => Outcome::Panicked(msg),
            (None, false) => Outcome::Gone,
            (None, true) if keep => Outcome::KeepGoing,
            (None, true) => Outcome::Close,
        }
    }

    /// Answers a request the layer itself refuses, then closes the connection.
    fn refuse(&self, io: &mut Io<'_>, status: u16) {
        let now = Instant::now();
        let body = format!("{status} {}\n", super::reason_phrase(status));
        let response = Response::text(status, body);
        if self.send(io, &response, false, ConnectionHeader::Close, now, Duration::ZERO, RequestLine::Unknown)
        {
            // The client may still be sending the body we refused: read it away before closing.
            io.close(true);
        }
    }

    /// Serializes and writes one response, and logs it. `false` if the client is gone.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        io: &mut Io<'_>,
        response: &Response,
        head_only: bool,
        connection: ConnectionHeader,
        started: Instant,
        elapsed: Duration,
        line: RequestLine<'_>,
    ) -> bool {
        // Remembered per thread: the kernel is asked once per thread, not twice per request.
        let who = trace::Who::cached();
        let start = started.saturating_duration_since(trace::epoch());
        let trace = self.trace_headers.then_some(TraceHeaders { pid: who.pid, tid: who.tid, start, elapsed });
        let opts = WriteOptions { server_name: &self.server_name, head_only, connection, trace };
        response.serialize(&mut io.out, &opts);
        let out = std::mem::take(&mut io.out);
        let result = io.write_all(&out);
        io.out = out;
        // log_enabled! asks the logger's filter too, not only the global level, so a filtered
        // line costs one check and no formatting.
        if self.log_requests && log::log_enabled!(target: "socketserver::http", log::Level::Info) {
            let status = response.status();
            let (start, elapsed) = (start.as_secs_f64(), elapsed.as_secs_f64());
            match line {
                RequestLine::Of(r) => log::info!(
                    target: "socketserver::http",
                    "{who} {} \"{} {} {}\" {status} +{start:.3}s {elapsed:.3}s",
                    io.peer, r.method(), r.target(), r.version()
                ),
                RequestLine::Unknown => log::info!(
                    target: "socketserver::http",
                    "{who} {} \"-\" {status} +{start:.3}s {elapsed:.3}s",
                    io.peer
                ),
            }
        }
        match result {
            Ok(()) => true,
            Err(e) => {
                // Every write error means the response did not get through and the connection
                // is over; none of them is the server's fault, so none is reported as an error.
                log::debug!(target: "socketserver::http", "{}: write failed: {e}", io.peer);
                false
            }
        }
    }
}

/// The request line for the log, when there is one.
#[derive(Clone, Copy)]
enum RequestLine<'a> {
    Of(&'a Request),
    Unknown,
}

enum ReadOutcome {
    Data,
    Eof,
    TimedOut,
}

/// One connection's socket and reused buffers.
struct Io<'a> {
    conn: &'a mut Connection,
    peer: SocketAddr,
    /// Bytes received and not yet consumed by a complete request.
    buf: Vec<u8>,
    /// Where `read` puts bytes before they are appended to `buf`.
    scratch: Vec<u8>,
    /// The serialized response.
    out: Vec<u8>,
    /// The `SO_RCVTIMEO` currently set, so it is set again only when it must change. `None`
    /// until the first read that has to wait.
    read_timeout: Option<Duration>,
    /// The `SO_SNDTIMEO` to set when a write first has to wait.
    write_timeout: Duration,
    /// Whether it has been set.
    write_timeout_set: bool,
}

impl<'a> Io<'a> {
    fn new(conn: &'a mut Connection, peer: SocketAddr) -> Io<'a> {
        Io {
            conn,
            peer,
            buf: Vec::with_capacity(READ_CHUNK),
            scratch: vec![0; FIRST_READ_CHUNK],
            out: Vec::with_capacity(1024),
            read_timeout: None,
            write_timeout: Duration::from_secs(30),
            write_timeout_set: false,
        }
    }

    /// Appends `n` bytes just read into `scratch` to `buf`.
    fn got(&mut self, n: usize) {
        self.buf.extend_from_slice(self.scratch.get(..n).unwrap_or(&[]));
        if n == self.scratch.len() && n < READ_CHUNK {
            // A full read: more is likely waiting, so ask for more at a time.
            self.scratch.resize(READ_CHUNK, 0);
        }
    }

    /// Writes all of `bytes`. First without waiting (`MSG_DONTWAIT`): a response that fits in
    /// the socket's send buffer goes out in one call and needs no timeout. Only if the buffer
    /// is full does it set `SO_SNDTIMEO` (once per connection) and wait, at most that long per
    /// blocked write. That saves a `setsockopt` on every connection, which is one system call
    /// in about fourteen when each request has a connection of its own.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut sent = 0;
        if !self.write_timeout_set {
            let fd = self.conn.stream().as_raw_fd();
            // MSG_NOSIGNAL: a peer that is gone gives EPIPE, not SIGPIPE (std's writes do the same).
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            while sent < bytes.len() {
                match socket::send(fd, &bytes[sent..], flags) {
                    Ok(n) => sent += n,
                    Err(Errno::EINTR) => {}
                    // The send buffer is full: from here on, wait (with the timeout).
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            if sent == bytes.len() {
                return Ok(());
            }
            self.conn.stream().set_write_timeout(Some(self.write_timeout))?;
            self.write_timeout_set = true;
        }
        self.conn.stream().write_all(&bytes[sent..])
    }

    /// Reads once (retrying interruptions and early timeouts) and appends to `buf`; gives up at
    /// `deadline`.
    ///
    /// With `slice`, each wait lasts at most that long, and `give_up` is asked after each one
    /// that ends empty-handed: `true` ends the wait as a timeout.
    fn read_more(
        &mut self,
        deadline: Instant,
        slice: Option<Duration>,
        give_up: impl Fn() -> bool,
    ) -> io::Result<ReadOutcome> {
        if self.read_timeout.is_none() {
            // No SO_RCVTIMEO set yet: first see whether the bytes are already here, as they
            // usually are when a client connects and sends at once (or a parked connection is
            // handed back because it is readable). Then no timeout is needed at all, which saves
            // a `setsockopt` per connection.
            let fd = self.conn.stream().as_raw_fd();
            match socket::recv(fd, &mut self.scratch, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => {
                    self.got(n);
                    return Ok(ReadOutcome::Data);
                }
                // Nothing yet (or a signal): wait below, with the timeout.
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return Ok(ReadOutcome::TimedOut);
            };
            self.set_read_timeout(slice.map_or(left, |s| left.min(s)))?;
            match self.conn.stream().read(&mut self.scratch) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => {
                    self.got(n);
                    return Ok(ReadOutcome::Data);
                }
                // A signal arrived during the read; nothing was lost.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // SO_RCVTIMEO expired (Linux reports EAGAIN, i.e. WouldBlock). The socket timeout
                // may be shorter than the deadline (see set_read_timeout), so check the deadline
                // again instead of giving up.
                //
                // Asked only now, after a wait that found nothing: bytes the client has already
                // sent are always read and answered, even when the server is stopping.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if give_up() {
                        return Ok(ReadOutcome::TimedOut);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets `SO_RCVTIMEO` to about `left`, skipping the system call when the current value is
    /// close enough: not longer than `left` by more than the slack (we would notice the
    /// deadline late), not shorter than half of it (we would wake up early for nothing).
    fn set_read_timeout(&mut self, left: Duration) -> io::Result<()> {
        let left = at_least_1ms(left);
        if let Some(current) = self.read_timeout
            && current <= left + TIMEOUT_SLACK
            && current >= left / 2
        {
            return Ok(());
        }
        self.conn.stream().set_read_timeout(Some(left))?;
        self.read_timeout = Some(left);
        Ok(())
    }

    /// Ends the connection from our side. With `linger`, unread input may still be arriving:
    /// closing a socket with unread data makes Linux send RST instead of FIN, and an RST can
    /// reach the client before it has read our response, which it then never sees. So send FIN
    /// first (`shutdown(Write)`: the response is delivered, then EOF), and read and discard
    /// what the client still sends, for a bounded time and amount, before the socket is closed.
    fn close(&mut self, linger: bool) {
        // The peer may already be gone; there is nothing to do about it either way.
        // Through the Connection, which then knows not to send its own shutdown on close.
        self.conn.shutdown_write();
        if !linger {
            return;
        }
        let until = Instant::now() + LINGER_TIME;
        let mut total = 0;
        while total < LINGER_BYTES {
            let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return;
            };
            if self.set_read_timeout(left).is_err() {
                return;
            }
            match self.conn.stream().read(&mut self.scratch) {
                Ok(0) => return,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// The instant `d` from now. A configured `Duration::MAX` means "practically never" and must
/// not overflow `Instant` (which would panic), so it is capped at a day.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d.min(Duration::from_secs(86_400))).unwrap_or(now)
}

/// A zero `Duration` means "no timeout" to the socket API, which is never what a caller of the
/// builder means by it; round up instead.
fn at_least_1ms(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// I/O errors that mean the client went away end the connection quietly; anything else is the
/// server's problem and goes to `handle_error`.
fn quiet(e: io::Error) -> Result<(), HandlerError> {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::NotConnected
        | io::ErrorKind::UnexpectedEof => Ok(()),
        _ => Err(Box::new(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::ServerContext;
    use std::net::{TcpListener, TcpStream};
    use std::thread::{self, JoinHandle};

    /// A parsed response, as the test client saw it.
    #[derive(Debug)]
    struct Seen {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }
    }

    struct Client {
        stream: TcpStream,
        buf: Vec<u8>,
    }

    impl Client {
        fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).unwrap();
        }

        fn fill(&mut self) -> usize {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).unwrap();
            self.buf.extend_from_slice(&chunk[..n]);
            n
        }

        /// Reads one response; `head` says it answers a HEAD request (no body follows).
        fn response(&mut self, head: bool) -> Seen {
            loop {
                let mut slots = [httparse::EMPTY_HEADER; 32];
                let mut r = httparse::Response::new(&mut slots);
                if let httparse::Status::Complete(n) = r.parse(&self.buf).unwrap() {
                    let status = r.code.unwrap();
                    let headers: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), String::from_utf8(h.value.to_vec()).unwrap()))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let len = if head { 0 } else { len };
                    while self.buf.len() < n + len {
                        assert!(self.fill() > 0, "EOF inside a response body");
                    }
                    let body = self.buf[n..n + len].to_vec();
                    self.buf.drain(..n + len);
                    return Seen { status, headers, body };
                }
                assert!(
                    self.fill() > 0,
                    "EOF before a whole response: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }

        /// True if the server closed its side and sent nothing more.
        fn at_eof(&mut self) -> bool {
            self.buf.is_empty() && self.fill() == 0
        }
    }

    /// Runs `handler` on the server side of a fresh loopback connection in a thread.
    fn start<S: Service>(handler: HttpHandler<S>) -> (Client, JoinHandle<Result<(), String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (stream, peer) = listener.accept().unwrap();
            let mut conn = Connection::new(stream, peer, ServerContext::standalone(addr).unwrap());
            handler.handle(&mut conn).map_err(|e| e.to_string())
        });
        let stream = TcpStream::connect(addr).unwrap();
        // A safety net so a broken test fails instead of hanging; never reached when passing.
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (Client { stream, buf: Vec::new() }, server)
    }

    fn app() -> HttpHandler<impl Service> {
        HttpHandler::new(|req: &Request| match req.path() {
            "/panic" => panic!("boom at {}", req.path()),
            "/echo" => Response::text(200, String::from_utf8_lossy(req.body()).into_owned()),
            "/close" => Response::text(200, "bye").with_header("Connection", "close"),
            path => Response::text(200, format!("hello {path}")),
        })
    }

    const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n";

    #[test]
    fn keep_alive_serves_three_requests_with_all_headers() {
        let (mut c, server) = start(app().server_name("test-server"));
        for _ in 0..3 {
            c.send(GET);
            let r = c.response(false);
            assert_eq!((r.status, &r.body[..]), (200, &b"hello /a"[..]));
            assert_eq!(r.header("content-length"), Some("8"));
            assert_eq!(r.header("server"), Some("test-server"));
            assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT") && d.len() == 29));
            assert_eq!(r.header("x-pid"), Some(std::process::id().to_string().as_str()));
            assert!(r.header("x-tid").is_some_and(|t| t.parse::<u32>().is_ok()));
            assert!(r.header("x-start").is_some() && r.header("x-elapsed").is_some());
            assert_eq!(r.header("connection"), None);
        }
        drop(c);
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let (mut c, server) = start(app());
        c.send(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\nGET /3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        for n in 1..=3 {
            assert_eq!(c.response(false).body, format!("hello /{n}").into_bytes());
        }
        assert!(c.at_eof());
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn connection_close_is_honoured() {
        let (mut c, server) = start(app());
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let r = c.response(false);
        assert_eq!((r.status, r.header("connection")), (200, Some("close")));
        assert!(c.at_eof());
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn service_connection_close_and_disabled_keep_alive_close() {
        let (mut c, server) = start(app());
        c.send(b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(c.response(false).header("connection"), Some("close"));
        assert!(c.at_eof());
        assert_eq!(server.join().unwrap(), Ok(()));

        let (mut c, server) = start(app().keep_alive(false));
        c.send(GET);
        assert_eq!(c.response(false).header("connection"), Some("close"));
        assert!(c.at_eof());
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn http10_keep_alive_is_acknowledged() {
        let (mut c, server) = start(app());
        c.send(b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(c.response(false).header("connection"), Some("keep-alive"));
        c.send(b"GET /y HTTP/1.0\r\n\r\n");
        let r = c.response(false);
        assert_eq!((r.header("connection"), &r.body[..]), (Some("close"), &b"hello /y"[..]));
        assert!(c.at_eof());
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn head_has_length_and_no_body() {
        let (mut c, server) = start(app());
        c.send(b"HEAD /abc HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response(true);
        assert_eq!((r.status, r.header("content-length")), (200, Some("10")));
        // If a body had been sent, it would now be read as the start of this response.
        c.send(GET);
        assert_eq!(c.response(false).body, b"hello /a");
        drop(c);
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn panicking_service_gives_500_and_an_error() {
        let (mut c, server) = start(app());
        c.send(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response(false);
        assert_eq!((r.status, r.header("connection")), (500, Some("close")));
        assert!(r.header("x-pid").is_some());
        assert!(c.at_eof());
        let err = server.join().unwrap().unwrap_err();
        assert!(err.contains("panicked") && err.contains("boom at /panic"), "{err}");
    }

    #[test]
    fn half_request_times_out_with_408() {
        let (mut c, server) = start(app().read_timeout(Duration::from_millis(300)));
        let started = Instant::now();
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\n");
        let r = c.response(false);
        assert_eq!((r.status, r.header("connection")), (408, Some("close")));
        assert!(r.header("x-tid").is_some() && r.header("date").is_some());
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(c.at_eof());
        drop(c);
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn idle_connection_closes_silently() {
        let (mut c, server) = start(app().idle_timeout(Duration::from_millis(200)));
        c.send(GET);
        assert_eq!(c.response(false).status, 200);
        let started = Instant::now();
        assert!(c.at_eof(), "an idle close sends nothing");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn refused_requests_get_status_and_close() {
        for (input, status) in [
            (&b"GARBAGE\r\n\r\n"[..], 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n", 413),
        ] {
            let (mut c, server) = start(app().max_body(10));
            c.send(input);
            let r = c.response(false);
            assert_eq!((r.status, r.header("connection")), (status, Some("close")));
            assert!(c.at_eof());
            drop(c);
            assert_eq!(server.join().unwrap(), Ok(()));
        }
    }

    #[test]
    fn expect_100_continue_then_body() {
        let (mut c, server) = start(app());
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
        while c.buf.len() < 25 {
            assert!(c.fill() > 0);
        }
        assert_eq!(&c.buf[..25], b"HTTP/1.1 100 Continue\r\n\r\n");
        c.buf.drain(..25);
        c.send(b"ping");
        assert_eq!(c.response(false).body, b"ping");
        drop(c);
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn chunked_body_over_the_wire() {
        let (mut c, server) = start(app());
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc");
        c.send(b"\r\n2;x=y\r\nde\r\n0\r\n\r\n");
        assert_eq!(c.response(false).body, b"abcde");
        drop(c);
        assert_eq!(server.join().unwrap(), Ok(()));
    }

    #[test]
    fn client_vanishing_mid_request_is_not_an_error() {
        let (mut c, server) = start(app());
        c.send(b"GET / HTTP/1.1\r\nHo");
        drop(c);
        assert_eq!(server.join().unwrap(), Ok(()));
    }
}
