//! Fire mode: `n` connections, `n` requests released at the same instant.
//!
//! Each request gets its own thread and its own connection. Every thread *starts* its connect
//! (a non-blocking `connect`: the SYN leaves at once), then waits at a [`Barrier`]; when the
//! last one arrives, all of them are released together, and each sends its request as soon as
//! its connection is up. What comes back (or what went wrong, and when) is an [`Outcome`] per
//! request, gathered into a [`FireReport`].
//!
//! # Patience: why a connect may take seconds
//!
//! A server whose accept backlog is full (Python's `TCPServer` asks for 5) does not refuse a
//! new connection: the kernel drops its SYN, and the client's kernel sends it again after 1 s,
//! then 3, 7, 15, 31 s after the first (the retransmission timeout doubles). A client that gives
//! up after a second or two reports failures where a patient one gets every answer, late. So
//! one deadline, [`FireConfig::timeout`] (70 s by default), covers the whole request from the
//! release, the connect included, and the report shows the late connections arriving late.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{SockAddr, Socket};

use super::connect::{self, Started};
use super::fire_report::FireReport;
use super::url::Url;

/// Load mode's default time for each TCP connect: 5 s. (Fire mode has no separate connect
/// timeout: its connects count against [`DEFAULT_TIMEOUT`], see the module docs.)
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time allowed for each request: 70 s from the release to the last body byte, the
/// connect included. Long enough for the example servers' longest `/delay` (60 s), and for a
/// SYN that a full backlog dropped to be retried by the kernel five times (at 1, 3, 7, 15 and
/// 31 s) before the client gives up.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(70);

/// [`Reply::status`] of a correct answer from an echo server: not an HTTP status (those are
/// 100 to 999), the table shows it as `echoed`.
pub const ECHOED: u16 = 0;

/// A response head longer than this is treated as a bad response rather than read forever.
const MAX_HEAD: usize = 64 * 1024;

/// Headers parsed per response; more is a bad response (servers here send about six).
const MAX_HEADERS: usize = 64;

/// Stack size of each request thread. The threads only read into a small buffer, and with
/// `-n 1000` the default 2 MiB each would reserve 2 GiB of address space for nothing.
const THREAD_STACK: usize = 256 * 1024;

/// What to fire at and how patiently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireConfig {
    /// Number of connections, each carrying one request.
    pub n: usize,
    /// Where to send the requests (`GET`).
    pub url: Url,
    /// Time allowed for each request, from the release to the end of the response, the TCP
    /// connect included ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// Connect to the Unix stream socket at this path instead of the URL's host and port
    /// (`--unix PATH`); the URL still gives the path and the `Host` header. `None` by default.
    pub unix: Option<PathBuf>,
}

impl FireConfig {
    /// `n` requests to `url` over TCP with the default timeout.
    pub fn new(n: usize, url: Url) -> FireConfig {
        FireConfig { n, url, timeout: DEFAULT_TIMEOUT, unix: None }
    }
}

/// What went wrong with one request, in a few kinds a learner can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// Connection refused: nothing listens on that port (is the server running?). On a Unix
    /// socket path also: no such file, not a socket, or no permission to connect to it.
    Refused,
    /// Connection reset or aborted by the server (a full accept backlog does this where
    /// `net.ipv4.tcp_abort_on_overflow` is 1; a process that exits with the connection unread
    /// does it too).
    Reset,
    /// No connection or no complete response within the configured timeout (a SYN that a full
    /// backlog keeps dropping ends like this, once the timeout is shorter than the retries).
    Timeout,
    /// The server closed the connection before a full response arrived (a crashed or panicking
    /// handler looks like this).
    Closed,
    /// Bytes arrived, but they are not an HTTP/1.x response this client can read.
    BadResponse,
    /// Anything else (name resolution, no route to host, could not start a thread, ...).
    Other,
}

impl ErrorKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::Refused,
        ErrorKind::Reset,
        ErrorKind::Timeout,
        ErrorKind::Closed,
        ErrorKind::BadResponse,
        ErrorKind::Other,
    ];

    /// A short lower-case name for tables: `refused`, `reset`, `timeout`, `closed`, `bad`,
    /// `error`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Closed => "closed",
            ErrorKind::BadResponse => "bad",
            ErrorKind::Other => "error",
        }
    }

    /// Classifies an operating-system error.
    pub fn from_io(kind: io::ErrorKind) -> ErrorKind {
        match kind {
            io::ErrorKind::ConnectionRefused => ErrorKind::Refused,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
                ErrorKind::Reset
            }
            // A read timeout set with set_read_timeout shows up as WouldBlock on Unix.
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            io::ErrorKind::UnexpectedEof => ErrorKind::Closed,
            _ => ErrorKind::Other,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One request's failure: its kind and the underlying error's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What happened, in words (for I/O errors: the step and the operating system's text,
    /// `connect: Connection refused (os error 111)`).
    pub message: String,
}

impl RequestError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> RequestError {
        RequestError { kind, message: message.into() }
    }

    /// Classifies `e`, which happened while doing `step` (`connect`, `send`, `receive`, ...).
    pub fn io(step: &str, e: &io::Error) -> RequestError {
        RequestError::new(ErrorKind::from_io(e.kind()), format!("{step}: {e}"))
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for RequestError {}

/// What the server answered, with the `X-` headers that say who handled it and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status code (any status is a reply, 404 and 500 included); [`ECHOED`] for the echo
    /// mode's answers, which have no status.
    pub status: u16,
    /// `X-Pid`: the server process that handled the request.
    pub pid: Option<u32>,
    /// `X-Tid`: the kernel thread id that handled the request.
    pub tid: Option<u32>,
    /// `X-Start`: when handling began, in seconds since the server started.
    pub server_start: Option<f64>,
    /// `X-Elapsed`: how long the handler took, in seconds.
    pub server_elapsed: Option<f64>,
    /// Body bytes received (as counted by `Content-Length`, or up to end of stream without one).
    pub body_len: usize,
}

impl Reply {
    /// `[X-Start, X-Start + X-Elapsed]` on the server's clock, when both headers came.
    pub fn server_interval(&self) -> Option<(f64, f64)> {
        match (self.server_start, self.server_elapsed) {
            (Some(start), Some(elapsed)) => Some((start, start + elapsed)),
            _ => None,
        }
    }
}

/// One request's story. All times are seconds since the release instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Which request, counting from 1 in the order the connections were opened.
    pub index: usize,
    /// When the TCP connection was established: about 0 when the server's backlog had room
    /// (the connects start just before the release), later when the kernel had to retry the
    /// SYN; `None` if it never was (refused, or no connection within the timeout).
    pub connected: Option<f64>,
    /// When the request was written: as soon as the connection was up. For a request that never
    /// connected there was nothing to send, and `sent` equals `done`.
    pub sent: f64,
    /// When the response was complete, or the request failed.
    pub done: f64,
    /// The reply, or why there is none.
    pub result: Result<Reply, RequestError>,
}

/// What one thread brings back: instants, converted to offsets once the release instant is
/// known.
pub(crate) struct Timed {
    /// When the thread left the barrier.
    pub(crate) released: Instant,
    /// When the connection was up (for a datagram: when the socket was ready), if ever.
    pub(crate) connected: Option<Instant>,
    /// When the request was sent, if it was.
    pub(crate) sent: Option<Instant>,
    /// When the answer was complete, or the request failed.
    pub(crate) done: Instant,
    /// The answer, or why there is none.
    pub(crate) result: Result<Reply, RequestError>,
}

/// Opens `cfg.n` connections, sends one `GET` on each at the same instant, and reports.
///
/// Never panics because of anything the server does: every failure becomes an [`Outcome`] whose
/// `result` is an [`ErrorKind`]-classified [`RequestError`]. Blocks until every request has
/// finished or timed out.
pub fn fire(cfg: &FireConfig) -> FireReport {
    let url = connect::target_text(&cfg.url, cfg.unix.as_deref());
    if cfg.n == 0 {
        return FireReport { url, outcomes: Vec::new(), wall: 0.0 };
    }
    // Resolve the name once, here: it is not part of what we measure, and n threads asking the
    // resolver the same question would only add noise.
    let addrs = Arc::new(connect::resolve(&cfg.url, cfg.unix.as_deref()));
    let request: Arc<[u8]> = request_bytes(&cfg.url).into();
    let timeout = cfg.timeout;
    volley(cfg.n, url, |_| {
        let (addrs, request) = (Arc::clone(&addrs), Arc::clone(&request));
        Box::new(move |gate: &Gate| one_request(&addrs, &request, timeout, gate))
    })
}

/// The starting gun a volley's threads wait for.
pub(crate) struct Gate(mpsc::Receiver<Arc<Barrier>>);

impl Gate {
    /// Waits until every thread of the volley is ready, and returns the instant of release.
    /// If the barrier never comes (the firing thread is gone), going on is better than hanging.
    pub(crate) fn wait(&self) -> Instant {
        if let Ok(barrier) = self.0.recv() {
            barrier.wait();
        }
        Instant::now()
    }
}

/// One request of a volley: runs on its own thread, prepares (connects), waits at the
/// [`Gate`], does its exchange and says when each step happened.
pub(crate) type Job = Box<dyn FnOnce(&Gate) -> Timed + Send>;

/// Runs `n` jobs, each on its own thread, released together; `job(index)` makes the one for
/// request `index` (from 1). The heading of the report names `target`. Fire mode and the echo
/// mode are both a volley: they differ in what one request is.
pub(crate) fn volley(n: usize, target: String, job: impl Fn(usize) -> Job) -> FireReport {
    // The barrier's count must equal the number of threads that will wait on it, or it never
    // opens. Starting a thread can fail (a process limit), so the count is only known after
    // every spawn has been tried: each thread receives the barrier over a channel then.
    let mut started = Vec::with_capacity(n);
    let mut not_started = Vec::new();
    for index in 1..=n {
        let (gate_tx, gate_rx) = mpsc::channel::<Arc<Barrier>>();
        let job = job(index);
        let spawned = thread::Builder::new()
            .name(format!("fire-{index}"))
            .stack_size(THREAD_STACK)
            .spawn(move || job(&Gate(gate_rx)));
        match spawned {
            Ok(handle) => started.push((index, handle, gate_tx)),
            Err(e) => not_started.push((index, RequestError::io("start thread", &e))),
        }
    }
    let barrier = Arc::new(Barrier::new(started.len()));
    for (_, _, gate_tx) in &started {
        // A send fails only if that thread is gone, and then it no longer needs the barrier.
        let _ = gate_tx.send(Arc::clone(&barrier));
    }

    let mut timed: Vec<(usize, Option<Timed>, Option<RequestError>)> = Vec::new();
    for (index, handle, _) in started {
        match handle.join() {
            Ok(t) => timed.push((index, Some(t), None)),
            Err(_) => timed.push((
                index,
                None,
                Some(RequestError::new(ErrorKind::Other, "request thread panicked")),
            )),
        }
    }
    for (index, e) in not_started {
        timed.push((index, None, Some(e)));
    }
    timed.sort_by_key(|(index, _, _)| *index);

    // The release instant is the moment the first thread left the barrier. A connection that
    // was up before it counts as connected at 0: offsets are never negative.
    let release = timed
        .iter()
        .filter_map(|(_, t, _)| t.as_ref().map(|t| t.released))
        .min()
        .unwrap_or_else(Instant::now);
    let since = |at: Instant| at.saturating_duration_since(release).as_secs_f64();
    let outcomes: Vec<Outcome> = timed
        .into_iter()
        .map(|(index, t, err)| match (t, err) {
            (Some(t), _) => Outcome {
                index,
                connected: t.connected.map(since),
                sent: since(t.sent.unwrap_or(t.done)),
                done: since(t.done),
                result: t.result,
            },
            (None, err) => Outcome {
                index,
                connected: None,
                sent: 0.0,
                done: 0.0,
                result: Err(
                    err.unwrap_or_else(|| RequestError::new(ErrorKind::Other, "request thread did not run"))
                ),
            },
        })
        .collect();
    let wall = outcomes.iter().map(|o| o.done).fold(0.0, f64::max);
    FireReport { url: target, outcomes, wall }
}

/// The request, built once and sent in a single `write`: a request that trickled out in pieces
/// would arrive at different times and blur the "same instant".
///
/// `Connection: close` because each connection carries exactly one request: it tells a
/// keep-alive server not to wait for a second one, so its handler (and, for a sequential server,
/// the whole server) is free as soon as the response is written.
fn request_bytes(url: &Url) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: socketserver-client/{}\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n",
        url.path_and_query,
        url.authority(),
        env!("CARGO_PKG_VERSION"),
    )
    .into_bytes()
}

/// One thread's whole life: send and read one HTTP request on a connection of its own.
fn one_request(
    addrs: &Result<Vec<SockAddr>, RequestError>,
    request: &[u8],
    timeout: Duration,
    gate: &Gate,
) -> Timed {
    connect_then(addrs, timeout, gate, |stream, deadline| exchange(stream, request, deadline, timeout))
}

/// Starts connecting, waits at the gate for the others, finishes connecting, then runs
/// `exchange` on the stream: the shape of every stream request of a volley (HTTP here, an echo
/// line in echo mode). One deadline for the whole request, the connect included; none if it
/// cannot be represented.
pub(crate) fn connect_then(
    addrs: &Result<Vec<SockAddr>, RequestError>,
    timeout: Duration,
    gate: &Gate,
    exchange: impl FnOnce(Socket, Option<Instant>) -> Result<Reply, RequestError>,
) -> Timed {
    let connecting = Connecting::start(addrs);
    let released = gate.wait();
    let deadline = released.checked_add(timeout);
    let (connected, result) = match connecting.and_then(|c| c.finish(deadline, timeout)) {
        Ok(stream) => (Some(Instant::now()), exchange(stream, deadline)),
        Err(e) => (None, Err(e)),
    };
    Timed { released, connected, sent: connected, done: Instant::now(), result }
}

/// A connect in progress: a non-blocking socket whose SYN has left (or, on a Unix socket, that
/// is connected or waits for room in the listener's queue), and the addresses still to try if
/// this one fails (a name can resolve to IPv6 and IPv4).
pub(crate) struct Connecting {
    socket: Socket,
    addr: SockAddr,
    backlogged: bool,
    rest: Vec<SockAddr>,
}

impl Connecting {
    /// Starts connecting to the first address that does not fail at once; reports the last
    /// failure if they all do.
    ///
    /// Called *before* the barrier, without waiting: the SYN leaves now, so when the barrier
    /// opens every connection the server's backlog had room for is up, and every request is one
    /// write away from the server (they all land together). A connect the server cannot take
    /// yet (its backlog is full, the kernel will retry the SYN) goes on after the release and is
    /// timed from it: that wait is part of what the server did to this client. A connect that
    /// failed at once still waits at the barrier: it was counted in, and leaving would hang the
    /// others.
    pub(crate) fn start(addrs: &Result<Vec<SockAddr>, RequestError>) -> Result<Connecting, RequestError> {
        let addrs = addrs.as_ref().map_err(Clone::clone)?;
        let mut last = RequestError::new(ErrorKind::Other, "connect: no address to connect to");
        for (i, addr) in addrs.iter().enumerate() {
            match connect::start(addr) {
                Ok(started) => return Ok(Connecting::new(started, addr, addrs[i + 1..].to_vec())),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn new(started: Started, addr: &SockAddr, rest: Vec<SockAddr>) -> Connecting {
        let (socket, backlogged) = match started {
            Started::Pending(s) => (s, false),
            Started::Backlogged(s) => (s, true),
        };
        Connecting { socket, addr: addr.clone(), backlogged, rest }
    }

    /// Waits until the connection is up, it failed, or `deadline` passed. The socket comes back
    /// blocking: the exchange uses read and write timeouts.
    pub(crate) fn finish(
        mut self,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<Socket, RequestError> {
        loop {
            let failure = if self.backlogged {
                // A Unix listener's full queue: a blocking connect waits for room, up to
                // SO_SNDTIMEO (what is left of the request's time), then says EAGAIN.
                match self.wait_for_room(deadline, timeout) {
                    Ok(()) => return Ok(self.socket),
                    Err(e) => e,
                }
            } else {
                match wait_writable(&self.socket, deadline) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(RequestError::new(
                            ErrorKind::Timeout,
                            format!(
                                "connect: no connection within {:.1} s (SYN unanswered: is the backlog full?)",
                                timeout.as_secs_f64()
                            ),
                        ));
                    }
                    Err(e) => return Err(RequestError::io("connect", &e)),
                }
                // Writable means the handshake ended, one way or the other; SO_ERROR says which.
                match self.socket.take_error() {
                    Ok(None) => {
                        self.socket.set_nonblocking(false).map_err(|e| RequestError::io("connect", &e))?;
                        return Ok(self.socket);
                    }
                    Ok(Some(e)) | Err(e) => connect::explain(&self.addr, &e),
                }
            };
            if failure.kind == ErrorKind::Timeout {
                return Err(failure);
            }
            // That address failed: the next one, if any, from where we are.
            let mut next = None;
            let mut last = failure;
            while next.is_none() && !self.rest.is_empty() {
                let addr = self.rest.remove(0);
                match connect::start(&addr) {
                    Ok(started) => {
                        next = Some(Connecting::new(started, &addr, std::mem::take(&mut self.rest)))
                    }
                    Err(e) => last = e,
                }
            }
            match next {
                Some(c) => self = c,
                None => return Err(last),
            }
        }
    }

    /// The blocking connect of a backlogged Unix socket, within the deadline.
    fn wait_for_room(&self, deadline: Option<Instant>, timeout: Duration) -> Result<(), RequestError> {
        let set = |e: io::Error| RequestError::io("connect", &e);
        self.socket.set_nonblocking(false).map_err(set)?;
        loop {
            let left = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // A zero timeout means "block forever" to the OS.
                    if left.is_zero() {
                        return Err(connect::backlog_full(timeout));
                    }
                    Some(left)
                }
            };
            self.socket.set_write_timeout(left).map_err(set)?;
            match connect::retry(&self.socket, &self.addr) {
                Ok(true) => return Ok(()),
                // SO_SNDTIMEO ran out: the loop sees the deadline passed.
                Ok(false) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Waits until `socket` is writable (a connect in progress has ended) or `deadline` passes:
/// `Ok(false)` for the deadline.
pub(crate) fn wait_writable(socket: &Socket, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                // Whole milliseconds, rounded up: rounding down would wake early and spin
                // through the last fraction of a millisecond.
                let ms = left.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLOUT)];
        match poll(&mut fds, timeout) {
            // Ready (POLLOUT, or POLLERR/POLLHUP for a failed handshake: SO_ERROR tells).
            Ok(n) if n > 0 => return Ok(true),
            // Timed out: the loop checks the deadline (and returns false).
            Ok(_) => {}
            // A signal arrived mid-wait; nothing was lost, wait again.
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    }
}

/// What the response head told us.
struct Head {
    status: u16,
    content_length: Option<u64>,
    pid: Option<u32>,
    tid: Option<u32>,
    start: Option<f64>,
    elapsed: Option<f64>,
}

impl Head {
    fn from_parsed(resp: &httparse::Response<'_, '_>) -> Result<Head, RequestError> {
        let mut head = Head {
            status: resp.code.unwrap_or(0),
            content_length: None,
            pid: None,
            tid: None,
            start: None,
            elapsed: None,
        };
        for h in resp.headers.iter() {
            let value = std::str::from_utf8(h.value).unwrap_or("").trim();
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                let n = value.parse::<u64>().map_err(|_| {
                    RequestError::new(ErrorKind::BadResponse, format!("invalid Content-Length {value:?}"))
                })?;
                head.content_length = Some(n);
            } else if name.eq_ignore_ascii_case("x-pid") {
                head.pid = value.parse().ok();
            } else if name.eq_ignore_ascii_case("x-tid") {
                head.tid = value.parse().ok();
            } else if name.eq_ignore_ascii_case("x-start") {
                head.start = seconds(value);
            } else if name.eq_ignore_ascii_case("x-elapsed") {
                head.elapsed = seconds(value);
            }
        }
        Ok(head)
    }
}

/// A header holding seconds: finite and not negative, or ignored.
fn seconds(value: &str) -> Option<f64> {
    value.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)
}

/// Sends the request and reads one response: the head with httparse, the body by
/// `Content-Length` (or to end of stream without one). The body is counted, not kept.
///
/// `deadline` is the request's (from the release, the connect included); a per-read timeout
/// alone would let a server that sends a byte every few seconds keep us forever. `timeout` is
/// only for the message.
fn exchange(
    mut stream: Socket,
    request: &[u8],
    deadline: Option<Instant>,
    timeout: Duration,
) -> Result<Reply, RequestError> {
    let timed_out = || {
        RequestError::new(
            ErrorKind::Timeout,
            format!("no complete response within {:.1}s", timeout.as_secs_f64()),
        )
    };
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        // A zero write timeout means "block forever" to the OS (and std refuses it).
        if left.is_zero() {
            return Err(timed_out());
        }
        stream.set_write_timeout(Some(left)).map_err(|e| RequestError::io("send", &e))?;
    }
    stream.write_all(request).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(),
        _ => RequestError::io("send", &e),
    })?;

    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let (head, head_len) = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let head = Head::from_parsed(&resp)?;
                // A 1xx (100 Continue, 103 Early Hints) is an interim head; the real one follows.
                if (100..200).contains(&head.status) && head.status != 101 {
                    buf.drain(..len);
                    continue;
                }
                break (head, len);
            }
            // Partial is a state, not an error: read more.
            Ok(httparse::Status::Partial) => {}
            Err(e) => {
                return Err(RequestError::new(ErrorKind::BadResponse, format!("not an HTTP response ({e})")));
            }
        }
        if buf.len() >= MAX_HEAD {
            return Err(RequestError::new(
                ErrorKind::BadResponse,
                format!("response head longer than {MAX_HEAD} bytes"),
            ));
        }
        let got = read_some(&mut stream, &mut chunk, deadline, &timed_out)?;
        if got == 0 {
            let msg = if buf.is_empty() {
                "connection closed before any response".to_string()
            } else {
                format!("connection closed after {} bytes, inside the response head", buf.len())
            };
            return Err(RequestError::new(ErrorKind::Closed, msg));
        }
        buf.extend_from_slice(&chunk[..got]);
    };

    let already = (buf.len() - head_len) as u64;
    // 204 and 304 never carry a body, whatever Content-Length says.
    let body_len = if matches!(head.status, 204 | 304) {
        0
    } else if let Some(expected) = head.content_length {
        let mut have = already;
        while have < expected {
            let got = read_some(&mut stream, &mut chunk, deadline, &timed_out)?;
            if got == 0 {
                return Err(RequestError::new(
                    ErrorKind::Closed,
                    format!("connection closed after {have} of {expected} body bytes"),
                ));
            }
            have += got as u64;
        }
        expected
    } else {
        // No length: the body ends when the server closes the connection (it will, we asked
        // for Connection: close).
        let mut have = already;
        loop {
            let got = read_some(&mut stream, &mut chunk, deadline, &timed_out)?;
            if got == 0 {
                break have;
            }
            have += got as u64;
        }
    };
    Ok(Reply {
        status: head.status,
        pid: head.pid,
        tid: head.tid,
        server_start: head.start,
        server_elapsed: head.elapsed,
        body_len: usize::try_from(body_len).unwrap_or(usize::MAX),
    })
}

/// One `read` that respects the deadline. `Ok(0)` is end of stream.
pub(crate) fn read_some(
    stream: &mut Socket,
    chunk: &mut [u8],
    deadline: Option<Instant>,
    timed_out: &dyn Fn() -> RequestError,
) -> Result<usize, RequestError> {
    loop {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            // A zero read timeout means "block forever" to the OS (and std refuses it), so an
            // expired deadline is checked here instead.
            if left.is_zero() {
                return Err(timed_out());
            }
            stream.set_read_timeout(Some(left)).map_err(|e| RequestError::io("receive", &e))?;
        }
        match stream.read(chunk) {
            Ok(n) => return Ok(n),
            // A signal arrived mid-read; nothing was lost, read again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(timed_out());
            }
            Err(e) => return Err(RequestError::io("receive", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_one_get_with_connection_close() {
        let url = Url::parse("http://127.0.0.1:8000/delay?s=1").unwrap();
        let req = String::from_utf8(request_bytes(&url)).unwrap();
        assert!(req.starts_with("GET /delay?s=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"));
        assert!(req.contains("\r\nConnection: close\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
    }

    #[test]
    fn io_errors_are_classified() {
        use io::ErrorKind as K;
        let table = [
            (K::ConnectionRefused, ErrorKind::Refused),
            (K::ConnectionReset, ErrorKind::Reset),
            (K::BrokenPipe, ErrorKind::Reset),
            (K::TimedOut, ErrorKind::Timeout),
            (K::WouldBlock, ErrorKind::Timeout),
            (K::UnexpectedEof, ErrorKind::Closed),
            (K::PermissionDenied, ErrorKind::Other),
        ];
        for (io_kind, kind) in table {
            assert_eq!(ErrorKind::from_io(io_kind), kind, "{io_kind:?}");
        }
        let e = RequestError::io("connect", &io::Error::from(K::ConnectionRefused));
        assert!(e.to_string().starts_with("refused: connect: "));
    }

    #[test]
    fn seconds_headers_must_be_sane() {
        assert_eq!(seconds("1.5"), Some(1.5));
        assert_eq!(seconds(" 2 ".trim()), Some(2.0));
        for bad in ["-1", "NaN", "inf", "", "x"] {
            assert_eq!(seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn http_over_a_unix_socket() {
        use crate::client::testing::{TempDir, unix_http};
        let dir = TempDir::new("fire-unix");
        let path = dir.0.join("http.sock");
        unix_http(&path);
        let url = Url::parse("http://localhost/hello").unwrap();
        let cfg = FireConfig { unix: Some(path.clone()), ..FireConfig::new(4, url) };
        let report = fire(&cfg);
        assert!(report.all_answered(), "{report}");
        assert!(
            report
                .outcomes
                .iter()
                .all(|o| o.result.as_ref().is_ok_and(|r| r.status == 200 && r.body_len == 5))
        );
        let text = report.to_string();
        let heading = format!("fired 4 requests at http://localhost:80/hello over {} at", path.display());
        assert!(text.starts_with(&heading), "{text}");
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
    }

    #[test]
    fn unix_paths_that_are_no_server_fail_like_a_refused_connect() {
        use crate::client::testing::TempDir;
        let dir = TempDir::new("fire-unix-bad");
        let file = dir.0.join("file.txt");
        std::fs::write(&file, "").unwrap();
        let url = Url::parse("http://localhost/hello").unwrap();
        for (path, says) in [
            (dir.0.join("none.sock"), "connect: no such file"),
            (file, "connect: a regular file, not a socket"),
        ] {
            let report = fire(&FireConfig { unix: Some(path), ..FireConfig::new(2, url.clone()) });
            assert_eq!(report.error_counts(), vec![(ErrorKind::Refused, 2)], "{report}");
            assert!(report.to_string().contains(says), "{report}");
            assert_eq!(report.verdict(), "no answers: all 2 requests failed");
        }
    }

    #[test]
    fn a_full_unix_backlog_waits_until_the_timeout() {
        use crate::client::testing::{TempDir, unix_http_backlog_of_one};
        let dir = TempDir::new("fire-unix-full");
        let path = dir.0.join("full.sock");
        // Never accepts: one connect waits in the queue, the others find it full.
        let _listener = unix_http_backlog_of_one(&path, false);
        let url = Url::parse("http://localhost/hello").unwrap();
        let cfg =
            FireConfig { unix: Some(path), timeout: Duration::from_millis(300), ..FireConfig::new(3, url) };
        let report = fire(&cfg);
        assert_eq!(report.error_counts(), vec![(ErrorKind::Timeout, 3)], "{report}");
        let text = report.to_string();
        assert!(text.contains("the backlog stayed full for 0.3 s"), "{text}");
        // The backlogged ones are drawn connecting the whole time.
        assert!(text.contains("~ connecting"), "{text}");
    }

    #[test]
    fn zero_requests_is_an_empty_report() {
        let url = Url::parse("http://127.0.0.1:9/").unwrap();
        let report = fire(&FireConfig::new(0, url));
        assert!(report.outcomes.is_empty());
        assert_eq!(report.wall, 0.0);
    }
}
