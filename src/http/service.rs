//! [`Service`] (what the application does with a request) and [`HttpHandler`], which turns a
//! [`RequestHandler`] into an HTTP/1.1 server: the *blocking driver* of the sans-IO
//! connection in `conn.rs`.

use crate::transport::Addr;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags};

use super::conn::{Answer, ConnConfig, HttpConn, MinRate, SansIo, Want};
use super::reply::{Later, Reply};
use super::request::{Limits, Request};
use super::response::Response;
use crate::error::{Error, HandlerError, panic_message};
use crate::handler::{Connection, RequestHandler, ServerContext};
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
/// A service may also answer *later* — a [`Reply`] after a delay, or from an offload worker —
/// which the [`EventLoop`](crate::EventLoop) needs to stay free; any closure returning
/// something `Into<Reply>` (a `Response`, a `Reply`) is a service, and on every other strategy
/// the serving thread just waits for a later reply.
///
/// A panic inside `call` (or inside a later reply's closure) is caught: the client gets a 500
/// and the connection is closed, and the handler reports [`Error::HandlerPanicked`] to the
/// server.
pub trait Service: Send + Sync + 'static {
    /// Answers one request: now, or later.
    fn call(&self, req: &Request) -> Reply;
}

impl<F, R> Service for F
where
    F: Fn(&Request) -> R + Send + Sync + 'static,
    R: Into<Reply>,
{
    fn call(&self, req: &Request) -> Reply {
        self(req).into()
    }
}

/// Python's `BaseHTTPRequestHandler`: reads HTTP/1.1 requests from a connection, calls a
/// [`Service`] for each, writes the responses, and keeps the connection alive between them.
///
/// # Configure this
/// Consuming setters, each with its default:
///
/// | setter | default | the same defence elsewhere |
/// |---|---|---|
/// | [`max_body`](HttpHandler::max_body) | 1 MiB | nginx `client_max_body_size` |
/// | [`limits`](HttpHandler::limits) | [`Limits::default`] | nginx `large_client_header_buffers` |
/// | [`header_timeout`](HttpHandler::header_timeout) | 10 s | nginx `client_header_timeout`, Apache `RequestReadTimeout header=` |
/// | [`read_timeout`](HttpHandler::read_timeout) | 30 s | Apache `Timeout` |
/// | [`min_body_rate`](HttpHandler::min_body_rate) | 500 bytes/s after 10 s | Apache `RequestReadTimeout body=10,MinRate=500` |
/// | [`idle_timeout`](HttpHandler::idle_timeout) | 5 s | nginx `keepalive_timeout`, Apache `KeepAliveTimeout` |
/// | [`write_timeout`](HttpHandler::write_timeout) | 30 s | nginx `send_timeout` |
/// | [`min_send_rate`](HttpHandler::min_send_rate) | 500 bytes/s after 10 s | (nginx and Apache have none; Tomcat NIO and gunicorn's async workers rely on the reactor) |
/// | [`server_name`](HttpHandler::server_name) | `socketserver/<crate version>` | |
/// | [`trace_headers`](HttpHandler::trace_headers) | on | |
/// | [`log_requests`](HttpHandler::log_requests) | on | |
/// | [`keep_alive`](HttpHandler::keep_alive) | on | |
/// | [`slow_request_warning`](HttpHandler::slow_request_warning) | off | |
#[derive(Debug, Clone)]
pub struct HttpHandler<S> {
    service: S,
    /// Shared by every connection: one reference count per connection, not a copy.
    config: Arc<ConnConfig>,
    slow_request_warning: Option<Duration>,
}

/// The `Server` header value unless [`HttpHandler::server_name`] says otherwise.
pub(crate) const DEFAULT_SERVER_NAME: &str = concat!("socketserver/", env!("CARGO_PKG_VERSION"));

/// [`HttpHandler::unsent_limit`]'s default: 128 KiB.
pub const DEFAULT_UNSENT_LIMIT: u32 = 128 * 1024;

/// Sets `config`'s unsent limit on a new connection (`HttpHandler::unsent_limit`), for both
/// drivers: a slow reader must not get a whole large response copied into the kernel, on the
/// thread that writes it, while other requests wait. Failure leaves the kernel's default and
/// costs only that protection, so it is not an error.
pub(crate) fn limit_unsent(config: &ConnConfig, stream: &crate::transport::Stream) {
    if config.unsent_limit > 0 {
        let _ = stream.set_notsent_lowat(config.unsent_limit);
    }
}

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

/// Whether `stream` has input (or EOF) within `ms` milliseconds: one `poll(2)`, by
/// `sys::wait_readable` (an error reads as "not readable": the caller then parks, which is safe).
fn readable_within(stream: &crate::transport::Stream, ms: u8) -> bool {
    use std::os::fd::AsFd;
    crate::sys::wait_readable(stream.as_fd(), Some(Duration::from_millis(ms.into()))).unwrap_or(false)
}

impl<S: Service> HttpHandler<S> {
    /// A handler that answers every request with `service`, with the default configuration.
    pub fn new(service: S) -> Self {
        let rate = MinRate { bytes_per_sec: 500, grace: Duration::from_secs(10) };
        HttpHandler {
            service,
            config: Arc::new(ConnConfig {
                limits: Limits::default(),
                read_timeout: Duration::from_secs(30),
                header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(5),
                write_timeout: Duration::from_secs(30),
                min_body_rate: rate,
                min_send_rate: rate,
                unsent_limit: DEFAULT_UNSENT_LIMIT,
                keep_alive: true,
                trace_headers: true,
                log_requests: true,
                server_name: DEFAULT_SERVER_NAME.to_string(),
            }),
            slow_request_warning: None,
        }
    }

    /// The configuration, to change (copied first if a connection still shares it).
    fn cfg(&mut self) -> &mut ConnConfig {
        Arc::make_mut(&mut self.config)
    }

    /// Largest request body accepted, after chunked decoding; larger ones get 413. (Default: 1 MiB.)
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.cfg().limits.max_body = bytes;
        self
    }

    /// All size limits at once (this replaces an earlier [`max_body`](HttpHandler::max_body)).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.cfg().limits = limits;
        self
    }

    /// Time a whole request (head and body) has to arrive, counted from its first byte; a
    /// client that is still sending then gets 408. This is the outer bound against slowloris:
    /// a per-`read` timeout alone lets a client trickle one byte per period forever. The first
    /// request of a connection also has this long for its first byte. (Default: 30 s.)
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.cfg().read_timeout = d;
        self
    }

    /// Time the request *head* (request line and header fields) has to arrive, counted from its
    /// first byte; a client still sending it then gets 408. nginx's `client_header_timeout`
    /// (60 s there), Apache's `RequestReadTimeout header=20-40`: a slowloris client sends a
    /// header a few bytes at a time, and a head has no reason to take long, so this is shorter
    /// than [`read_timeout`](HttpHandler::read_timeout), which still bounds the whole request.
    /// (Default: 10 s.)
    pub fn header_timeout(mut self, d: Duration) -> Self {
        self.cfg().header_timeout = d;
        self
    }

    /// The slowest a request *body* may arrive: `grace` from the end of the head, then one
    /// more second for every `bytes_per_sec` bytes received; a client slower than that gets
    /// 408. Apache's `RequestReadTimeout body=10,MinRate=500`, the defence against a slow POST
    /// (`slowhttptest -B`). `bytes_per_sec` 0 switches it off, leaving
    /// [`read_timeout`](HttpHandler::read_timeout). (Default: 500 bytes/s after 10 s.)
    pub fn min_body_rate(mut self, bytes_per_sec: u64, grace: Duration) -> Self {
        self.cfg().min_body_rate = MinRate { bytes_per_sec, grace };
        self
    }

    /// Time a kept-alive connection may sit idle waiting for its next request before it is
    /// closed (silently: there is no request to answer). Short, because an idle connection
    /// holds a thread or a process under `Sequential`, `Threading` and `Forking`; under
    /// [`Pool`](crate::Pool) it is *parked* instead ([`Connection::park`]) and holds only a file
    /// descriptor while it waits. (Default: 5 s.)
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.cfg().idle_timeout = d;
        self
    }

    /// Time a response may make no progress at all (the client reads nothing) before the
    /// connection is closed. (Default: 30 s.)
    ///
    /// It bounds each stall, not the whole response, like nginx's `send_timeout`: a client
    /// that stops reading is given up once a write has made no progress for this long. With
    /// [`unsent_limit`](HttpHandler::unsent_limit) on (the default), the kernel takes little
    /// more once the client stops reading, so that is one timeout after it stopped; with it off,
    /// writes make some progress for as long as the kernel grows the socket's send buffer, which
    /// can take a few timeouts. A client that keeps reading a trickle is cut by
    /// [`min_send_rate`](HttpHandler::min_send_rate) instead.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.cfg().write_timeout = d;
        self
    }

    /// The slowest a client may read a response: counted from the first write the kernel could
    /// not take whole (what fits in the socket's buffers at once buys no time), `grace`, then
    /// one more second for every `bytes_per_sec` bytes the client takes. A slower client is
    /// disconnected (the response is half-sent, so no status can follow). The defence against
    /// a slow reader of a large response (`slowhttptest -X`), which `write_timeout` does not
    /// catch because the reader keeps making a little progress. `bytes_per_sec` 0 switches it
    /// off. (Default: 500 bytes/s after 10 s.)
    pub fn min_send_rate(mut self, bytes_per_sec: u64, grace: Duration) -> Self {
        self.cfg().min_send_rate = MinRate { bytes_per_sec, grace };
        self
    }

    /// How much of a response the kernel may hold for a client before it is sent
    /// (`TCP_NOTSENT_LOWAT` on each TCP connection; a Unix socket has no such limit). Without
    /// it, Linux grows a connection's send buffer to 4 MiB and copies that much of a response
    /// into it at once, whether or not the client reads: a client that never reads costs that
    /// copy and that kernel memory, and the copy happens on the thread that writes, while
    /// other requests wait. With it, the kernel takes a response in steps of about `bytes` as
    /// the client reads, and [`min_send_rate`](HttpHandler::min_send_rate) and
    /// [`write_timeout`](HttpHandler::write_timeout) see the client's real pace rather than
    /// the buffer filling. Data already in flight does not count, so fast clients on long
    /// paths keep their speed. 0 leaves the kernel's default (no limit). (Default:
    /// [`DEFAULT_UNSENT_LIMIT`], 128 KiB.)
    pub fn unsent_limit(mut self, bytes: u32) -> Self {
        self.cfg().unsent_limit = bytes;
        self
    }

    /// The `Server` header value. (Default: `socketserver/<crate version>`.)
    pub fn server_name(mut self, s: impl Into<String>) -> Self {
        self.cfg().server_name = s.into();
        self
    }

    /// Whether to add `X-Pid`, `X-Tid`, `X-Start` (seconds since server start when the request
    /// was complete) and `X-Elapsed` (seconds the service took) to every response. (Default: on.)
    pub fn trace_headers(mut self, on: bool) -> Self {
        self.cfg().trace_headers = on;
        self
    }

    /// Whether to log one `info` line per request (target `socketserver::http`), like Python's
    /// `log_message`, with pid, tid, peer, request line, status, start offset and duration. (Default: on.)
    pub fn log_requests(mut self, on: bool) -> Self {
        self.cfg().log_requests = on;
        self
    }

    /// Whether connections may serve more than one request. Off: every response says
    /// `Connection: close`. (Default: on.)
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.cfg().keep_alive = on;
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

    /// The configuration every connection of this handler shares.
    pub(crate) fn conn_config(&self) -> &Arc<ConnConfig> {
        &self.config
    }

    /// Runs the service on `request` on the calling thread (a pool worker, or the blocking
    /// driver's own thread), waiting for a later reply: catches a panic, times the call, warns
    /// if it was slow.
    pub(crate) fn call_service(&self, request: &Request) -> Answer {
        let started = Instant::now();
        // AssertUnwindSafe: the service sees the request only by shared reference, and after a
        // panic the connection is closed and everything it read dropped, so no broken state
        // survives.
        let result = catch_unwind(AssertUnwindSafe(|| self.service.call(request).wait()));
        self.warn_if_slow(request, started.elapsed());
        answer(result, started)
    }

    /// Runs the service on `request` on the calling thread *without* waiting for a later reply
    /// (the event loop): the answer, or when and how to make it. Later closures catch their
    /// own panics. The slow-request warning measures the service's call only: on the loop,
    /// that is the time it held the loop.
    pub(crate) fn start_service(&self, request: &Request) -> Later<Answer> {
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| self.service.call(request).into_later()));
        self.warn_if_slow(request, started.elapsed());
        let later = match result {
            Ok(later) => later,
            Err(payload) => return Later::Now(answer(Err(payload), started)),
        };
        // AssertUnwindSafe: the closure owns what it uses, and after a panic it is gone.
        let finish = move |work: Box<dyn FnOnce() -> Response + Send>| -> Box<dyn FnOnce() -> Answer + Send> {
            Box::new(move || answer(catch_unwind(AssertUnwindSafe(work)), started))
        };
        match later {
            Later::Now(response) => Later::Now(answer(Ok(response), started)),
            Later::At(at, work) => Later::At(at, finish(work)),
            Later::Offload(work) => Later::Offload(finish(work)),
        }
    }

    fn warn_if_slow(&self, request: &Request, elapsed: Duration) {
        if let Some(limit) = self.slow_request_warning
            && elapsed > limit
        {
            log::warn!(
                target: "socketserver::http",
                "slow request: \"{} {}\" from {} took {} in {} (warn-after {})",
                request.method(),
                request.target(),
                request.peer_addr(),
                trace::secs(elapsed),
                trace::Who::current(),
                trace::secs(limit)
            );
        }
    }
}

/// The answer to a service call that began at `started`, made on this thread (its `who`).
fn answer(result: std::thread::Result<Response>, started: Instant) -> Answer {
    let (response, panicked) = match result {
        Ok(response) => (response, None),
        Err(payload) => (Response::text(500, "500 Internal Server Error\n"), Some(panic_message(&*payload))),
    };
    // Remembered per thread: the kernel is asked once per thread, not twice per request.
    Answer { response, panicked, started, elapsed: started.elapsed(), who: trace::Who::cached() }
}

impl<S: Service> SansIo for HttpHandler<S> {
    fn new_conn(&self, peer: Addr, now: Instant) -> HttpConn {
        HttpConn::new(self.conn_config(), peer, now)
    }

    fn config(&self) -> &Arc<ConnConfig> {
        self.conn_config()
    }

    fn call(&self, request: &Request) -> Answer {
        self.call_service(request)
    }

    fn start(&self, request: &Request) -> Later<Answer> {
        self.start_service(request)
    }
}

impl<S: Service> RequestHandler for HttpHandler<S> {
    /// The blocking driver: read, call the service, write, until the connection is done.
    fn handle(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        let server = conn.server().clone();
        // May this connection wait for its next request without a thread (Pool), or must this
        // call wait for it (every other strategy)?
        let parkable = conn.can_park();
        // Small responses are written in one piece and the client waits for all of it; Nagle's
        // algorithm would hold the segment back waiting for an ACK the client delays (~40 ms).
        // Failure only costs latency, so it is not an error.
        let _ = conn.stream().set_nodelay(true);
        limit_unsent(&self.config, conn.stream());
        let mut http = HttpConn::new(&self.config, conn.peer_addr().clone(), Instant::now());
        let mut io = Blocking::new(conn);
        // A response was just written: the moment to consider parking.
        let mut answered = false;
        loop {
            match http.wants() {
                Want::Read => {
                    // A busy keep-alive client (a load generator, a page fetching its assets)
                    // sends its next request within microseconds of reading the response.
                    // Parking and waking it costs a round trip through the pool's poller: two
                    // context switches and half a dozen system calls. So linger a moment first,
                    // and park only a connection that stays quiet. The price: a client queued
                    // behind this worker may wait up to PARK_LINGER longer. And no lingering,
                    // nor serving this client's next request, while other connections wait for
                    // a worker: park, to the back of the line, so that busy clients take turns.
                    if answered
                        && parkable
                        && http.is_idle()
                        && (io.conn.others_waiting() || !readable_within(io.conn.stream(), PARK_LINGER_MS))
                    {
                        // Idle, and nothing of ours is buffered (the poller watches the socket,
                        // not our buffer): give the thread back and be called again when the
                        // client sends more. The next call starts like this one, so the request
                        // that wakes it gets read_timeout from its first byte; the idle_timeout
                        // is the poller's to enforce.
                        io.conn.park(self.config.idle_timeout);
                        return Ok(());
                    }
                    answered = false;
                    io.read(&mut http, &server)?;
                }
                Want::Service => {
                    // Only this loop takes requests out, one at a time, so one is here.
                    let Some(request) = http.next_request(Instant::now()) else { break };
                    if server.is_stopping() {
                        http.stopping(Instant::now());
                    }
                    let answer = self.call_service(&request);
                    http.respond(request, answer, Instant::now());
                    answered = true;
                }
                Want::Write => io.write(&mut http),
                Want::Drain => io.drain(&mut http),
                Want::Close => break,
            }
        }
        match http.panicked() {
            Some(msg) => Err(Box::new(Error::HandlerPanicked(msg.to_string()))),
            None => Ok(()),
        }
    }

    fn sans_io(&self) -> Option<&dyn SansIo> {
        Some(self)
    }
}

/// The blocking driver's side of a connection: the socket and the timeouts set on it.
struct Blocking<'a> {
    conn: &'a mut Connection,
    /// The `SO_RCVTIMEO` currently set, so it is set again only when it must change. `None`
    /// until the first read that has to wait.
    read_timeout: Option<Duration>,
    /// The `SO_SNDTIMEO` currently set; `None` until the first write that has to wait.
    write_timeout: Option<Duration>,
    /// `shutdown(Write)` was sent (before draining).
    shut: bool,
}

impl<'a> Blocking<'a> {
    fn new(conn: &'a mut Connection) -> Blocking<'a> {
        Blocking { conn, read_timeout: None, write_timeout: None, shut: false }
    }

    /// Reads once into the connection, waiting at most until its deadline (and, while it is
    /// idle, in slices, to notice a stopping server); a deadline that passes is `timed_out`.
    fn read(&mut self, http: &mut HttpConn, server: &ServerContext) -> Result<(), HandlerError> {
        if self.read_timeout.is_none() {
            // No SO_RCVTIMEO set yet: first see whether the bytes are already here, as they
            // usually are when a client connects and sends at once (or a parked connection is
            // handed back because it is readable). Then no timeout is needed at all, which saves
            // a `setsockopt` per connection.
            let fd = self.conn.stream().as_raw_fd();
            match socket::recv(fd, http.read_buf(), MsgFlags::MSG_DONTWAIT) {
                Ok(n) => {
                    http.received(n, Instant::now());
                    return Ok(());
                }
                // Nothing yet (or a signal): wait below, with the timeout.
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return quiet(e.into()),
            }
        }
        loop {
            let now = Instant::now();
            let Some(left) = time_left(http, now) else {
                http.timed_out(now);
                return Ok(());
            };
            let idle = http.is_idle();
            self.set_read_timeout(if idle { left.min(IDLE_SLICE) } else { left }).or_else(quiet)?;
            match self.conn.stream().read(http.read_buf()) {
                Ok(n) => {
                    http.received(n, Instant::now());
                    return Ok(());
                }
                // A signal arrived during the read; nothing was lost.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // SO_RCVTIMEO expired (Linux reports EAGAIN, i.e. WouldBlock). The socket timeout
                // may be shorter than the deadline (see set_read_timeout), so check the deadline
                // again (at the top) instead of giving up.
                //
                // The stop is asked only now, after a wait that found nothing: bytes the client
                // has already sent are always read and answered, even when the server is stopping.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if idle && server.is_stopping() {
                        http.stopping(Instant::now());
                        if http.wants() == Want::Close {
                            return Ok(());
                        }
                    }
                }
                Err(e) => return quiet(e),
            }
        }
    }

    /// Writes the connection's output. First without waiting (`MSG_DONTWAIT`): a response that
    /// fits in the socket's send buffer goes out in one call and needs no timeout. Only if the
    /// buffer is full does it set `SO_SNDTIMEO` (to the connection's deadline) and wait. That
    /// saves a `setsockopt` on every connection, which is one system call in about fourteen
    /// when each request has a connection of its own. Every write error means the response did
    /// not get through and the connection is over; none of them is the server's fault, so
    /// none is reported as an error.
    fn write(&mut self, http: &mut HttpConn) {
        if self.write_timeout.is_none() {
            let fd = self.conn.stream().as_raw_fd();
            // MSG_NOSIGNAL: a peer that is gone gives EPIPE, not SIGPIPE (std's writes do the same).
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            while http.wants() == Want::Write {
                match socket::send(fd, http.output(), flags) {
                    Ok(n) => http.sent(n, Instant::now()),
                    Err(Errno::EINTR) => {}
                    // The send buffer is full: from here on, wait (with the timeout).
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return self.write_failed(http, e.into()),
                }
            }
        }
        while http.wants() == Want::Write {
            let now = Instant::now();
            let Some(left) = time_left(http, now) else {
                http.timed_out(now);
                return;
            };
            if let Err(e) = self.set_write_timeout(left) {
                return self.write_failed(http, e);
            }
            match self.conn.stream().write(http.output()) {
                Ok(0) => return self.write_failed(http, io::ErrorKind::WriteZero.into()),
                Ok(n) => http.sent(n, Instant::now()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // SO_SNDTIMEO expired with nothing written: the deadline is checked at the top.
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) => return self.write_failed(http, e),
            }
        }
    }

    fn write_failed(&mut self, http: &mut HttpConn, e: io::Error) {
        log::debug!(target: "socketserver::http", "{}: write failed: {e}", http.peer());
        http.failed();
    }

    /// The lingering close: FIN first, so the response is delivered and then EOF, and then
    /// read and discard what the client still sends (closing a socket with unread input makes
    /// Linux send RST, which can overtake the response), as long as the connection says.
    fn drain(&mut self, http: &mut HttpConn) {
        if !self.shut {
            // Through the Connection, which then knows not to send its own shutdown on close.
            self.conn.shutdown_write();
            self.shut = true;
        }
        let now = Instant::now();
        let Some(left) = time_left(http, now) else {
            http.timed_out(now);
            return;
        };
        if self.set_read_timeout(left).is_err() {
            return http.failed();
        }
        match self.conn.stream().read(http.read_buf()) {
            Ok(n) => http.received(n, Instant::now()),
            // Interrupted, or the timeout: the deadline is checked on the next turn.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            // The peer may already be gone; there is nothing to do about it either way.
            Err(_) => http.failed(),
        }
    }

    /// Sets `SO_RCVTIMEO` to about `left`, skipping the system call when the current value is
    /// close enough: not longer than `left` by more than the slack (we would notice the
    /// deadline late), not shorter than half of it (we would wake up early for nothing).
    fn set_read_timeout(&mut self, left: Duration) -> io::Result<()> {
        let left = at_least_1ms(left);
        if close_enough(self.read_timeout, left) {
            return Ok(());
        }
        self.conn.stream().set_read_timeout(Some(left))?;
        self.read_timeout = Some(left);
        Ok(())
    }

    /// `SO_SNDTIMEO`, on the same terms as [`set_read_timeout`](Blocking::set_read_timeout).
    fn set_write_timeout(&mut self, left: Duration) -> io::Result<()> {
        let left = at_least_1ms(left);
        if close_enough(self.write_timeout, left) {
            return Ok(());
        }
        self.conn.stream().set_write_timeout(Some(left))?;
        self.write_timeout = Some(left);
        Ok(())
    }
}

/// The time left before the connection's deadline, if any is left.
fn time_left(http: &HttpConn, now: Instant) -> Option<Duration> {
    http.deadline()?.checked_duration_since(now).filter(|d| !d.is_zero())
}

/// Whether a socket timeout of `current` may stand for one of `wanted` (see `set_read_timeout`).
fn close_enough(current: Option<Duration>, wanted: Duration) -> bool {
    current.is_some_and(|c| c <= wanted + TIMEOUT_SLACK && c >= wanted / 2)
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
