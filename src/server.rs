//! [`Server`]: the accept loop, Python's `BaseServer` + `TCPServer`. The loop and its reasons
//! are on the type's docs.

use std::io;
use std::net::ToSocketAddrs;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::concurrency::{Concurrency, Dispatcher, EventLoop, Forking, Pool, Sequential, Threading};
use crate::error::{Error, Result};
use crate::handler::{Connection, Datagram, DatagramHandler, Datagrams, RequestHandler, ServerContext};
use crate::shutdown::ShutdownHandle;
use crate::sys;
use crate::transport::{self, Addr, DatagramAddr, ListenOptions, Listener, Stream};

/// Python's default `poll_interval`.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How many connections one loop pass accepts before it runs `service_actions` again.
const ACCEPT_BATCH: usize = 64;

/// Python's `max_packet_size`: the default receive buffer of a datagram server.
pub(crate) const DEFAULT_MAX_PACKET_SIZE: usize = 8192;

/// The largest `max_packet_size` accepted: the largest UDP payload over IPv4 is 65,507 bytes
/// and a Unix datagram's is bounded by the socket buffers; 64 KiB covers both.
const MAX_PACKET_SIZE_LIMIT: usize = 64 * 1024;

/// How long the loop backs off after an `accept` error that retrying at once cannot fix.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The epoll `data` of the listener's registration (the waker's is 1).
const EPOLL_LISTENER: u64 = 0;

/// An epoll instance watching `listener` with `EPOLLEXCLUSIVE` and the shutdown waker.
///
/// Why `EPOLLEXCLUSIVE`: every process sharing the listener keeps an epoll registration on its
/// wait queue. Without the flag a new connection wakes them all; with it, the kernel stops
/// after waking one whose owner is actually blocked in `epoll_wait` (a busy process is skipped,
/// not woken), so one connection costs one wake-up and one `accept`. It stays level-triggered:
/// a process that comes back to `epoll_wait` while connections are still queued returns at once.
/// The waker is registered without the flag: every waiter must see a shutdown.
fn exclusive_epoll(listener: &Listener, shutdown: &ShutdownHandle) -> Result<Epoll> {
    // CLOEXEC: a program exec'd by a handler must not inherit it.
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    epoll.add(listener, EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE, EPOLL_LISTENER))?;
    epoll.add(shutdown.wake_fd(), EpollEvent::new(EpollFlags::EPOLLIN, 1))?;
    Ok(epoll)
}

/// A TCP server that handles each request inline (Python's `TCPServer`).
pub type TcpServer<H> = Server<Sequential, H>;
/// A TCP server with a thread per request (Python's `ThreadingTCPServer`).
pub type ThreadingTcpServer<H> = Server<Threading, H>;
/// A TCP server with a process per request (Python's `ForkingTCPServer`).
pub type ForkingTcpServer<H> = Server<Forking, H>;
/// A TCP server with a fixed pool of worker threads (no Python counterpart; gunicorn's
/// `gthread`).
pub type PoolTcpServer<H> = Server<Pool, H>;
/// A TCP server whose connections all live on event loops (no Python mixin; asyncio, nginx).
pub type EventLoopTcpServer<H> = Server<EventLoop, H>;
/// A Unix stream socket server that handles each request inline (Python's `UnixStreamServer`);
/// made with [`Server::bind_unix`]. The same type as [`TcpServer`]: the transport is the
/// listener's, not the type's (see [`Listener`]).
pub type UnixStreamServer<H> = Server<Sequential, H>;
/// A Unix stream socket server with a thread per request (Python's
/// `ThreadingUnixStreamServer`); made with [`Server::bind_unix`].
pub type ThreadingUnixStreamServer<H> = Server<Threading, H>;
/// A Unix stream socket server with a process per request (Python's `ForkingUnixStreamServer`,
/// new in 3.12); made with [`Server::bind_unix`].
pub type ForkingUnixStreamServer<H> = Server<Forking, H>;
/// A UDP server that handles each datagram inline (Python's `UDPServer`); made with
/// [`Server::bind_udp`]. Most UDP servers are this one: a datagram is usually answered in
/// microseconds, and there is no connection to wait on.
pub type UdpServer<D> = Server<Sequential, Datagrams<D>>;
/// A UDP server with a thread per datagram (Python's `ThreadingUDPServer`).
pub type ThreadingUdpServer<D> = Server<Threading, Datagrams<D>>;
/// A UDP server with a process per datagram (Python's `ForkingUDPServer`).
pub type ForkingUdpServer<D> = Server<Forking, Datagrams<D>>;
/// A Unix datagram server that handles each datagram inline (Python's `UnixDatagramServer`);
/// made with [`Server::bind_unix_datagram`].
pub type UnixDatagramServer<D> = Server<Sequential, Datagrams<D>>;
/// A Unix datagram server with a thread per datagram (Python's `ThreadingUnixDatagramServer`).
pub type ThreadingUnixDatagramServer<D> = Server<Threading, Datagrams<D>>;
/// A Unix datagram server with a process per datagram (Python's `ForkingUnixDatagramServer`,
/// new in 3.12).
pub type ForkingUnixDatagramServer<D> = Server<Forking, Datagrams<D>>;

/// Configuration for a [`Server`], with Python's names and defaults. Consuming setters.
///
/// # Configure this (Python's class attributes)
/// [`request_queue_size`](ServerBuilder::request_queue_size) (listen backlog, default
/// `SOMAXCONN`), [`poll_interval`](ServerBuilder::poll_interval) (0.5 s),
/// [`timeout`](ServerBuilder::timeout) (for `handle_request`, none),
/// [`reuse_port`](ServerBuilder::reuse_port) (off),
/// [`exclusive_wakeup`](ServerBuilder::exclusive_wakeup) (off). Then call
/// [`bind`](ServerBuilder::bind) or [`from_listener`](ServerBuilder::from_listener).
///
/// # The listening socket (Python's `server_bind` + `server_activate`)
/// `std::net::TcpListener::bind` does socket + bind + listen in one call with a fixed backlog
/// of 128 and no way to set options before `bind`, so the socket is built step by step:
/// `SO_REUSEADDR` always (Python's `allow_reuse_address = True` for its HTTP servers: a
/// restarted server can bind its port while connections of the previous run are in
/// `TIME_WAIT`), `SO_REUSEPORT` only if asked, and a backlog of `SOMAXCONN` (4096 with glibc;
/// Linux caps it at `/proc/sys/net/core/somaxconn`), because Python's 5 makes a burst of 100
/// simultaneous clients see resets and retries. The listener is non-blocking: another process
/// or thread waiting on the same listener may take a connection between `poll` and `accept`,
/// and a blocking `accept` would then hang instead of returning `WouldBlock`.
///
/// ```no_run
/// use std::time::Duration;
/// use socketserver::{ServerBuilder, Threading, handler_fn};
///
/// let server = ServerBuilder::new()
///     .request_queue_size(1024)
///     .poll_interval(Duration::from_millis(100))
///     .bind("127.0.0.1:8000", Threading::new(), handler_fn(|_conn| Ok(())))?;
/// # Ok::<(), socketserver::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    listen: ListenOptions,
    max_packet_size: usize,
    poll_interval: Duration,
    timeout: Option<Duration>,
    exclusive_wakeup: bool,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder::new()
    }
}

impl ServerBuilder {
    /// The defaults: backlog `SOMAXCONN`, `poll_interval` 0.5 s, no `timeout`, no `SO_REUSEPORT`,
    /// no `exclusive_wakeup`.
    pub fn new() -> ServerBuilder {
        ServerBuilder {
            listen: ListenOptions::default(),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            timeout: None,
            exclusive_wakeup: false,
        }
    }

    /// The listen backlog (Python's `request_queue_size`, which is 5 there; `SOMAXCONN` here).
    pub fn request_queue_size(mut self, backlog: i32) -> ServerBuilder {
        self.listen.backlog = backlog;
        self
    }

    /// Set `SO_REUSEPORT`, so other sockets may bind the same port (pre-forked workers).
    pub fn reuse_port(mut self, on: bool) -> ServerBuilder {
        self.listen.reuse_port = on;
        self
    }

    /// Wait for connections with `epoll` and `EPOLLEXCLUSIVE` instead of `poll` (default off).
    ///
    /// It matters only when several processes wait on the *same* listening socket (pre-forked
    /// workers sharing the master's listener): with `poll`, one new connection wakes every
    /// waiting process, all but one of which find nothing to accept (the thundering herd);
    /// with `EPOLLEXCLUSIVE` the kernel wakes one waiter (or a few). [`Prefork`](crate::Prefork)
    /// turns it on for its shared-listener workers. The epoll instance is created when the
    /// server is made, so make the server in the process that will serve (after `fork`).
    pub fn exclusive_wakeup(mut self, on: bool) -> ServerBuilder {
        self.exclusive_wakeup = on;
        self
    }

    /// How often `serve_forever` runs `service_actions` when idle (Python's `poll_interval`,
    /// default 0.5 s). A shutdown does not wait for it: it wakes the loop at once.
    pub fn poll_interval(mut self, interval: Duration) -> ServerBuilder {
        self.poll_interval = interval;
        self
    }

    /// How long `handle_request` waits for a connection (Python's `timeout`, default `None`:
    /// forever).
    pub fn timeout(mut self, timeout: Option<Duration>) -> ServerBuilder {
        self.timeout = timeout;
        self
    }

    /// The socket options this builder will bind with (the pre-forking master binds its shared
    /// listener with them, so `request_queue_size` applies there too).
    pub(crate) fn listen_options(&self) -> ListenOptions {
        self.listen
    }

    /// Binds and listens on `addr` (the first address it resolves to) and makes the server.
    ///
    /// # Errors
    /// [`Error::Bind`] if the socket cannot be bound or listened on; [`Error::Io`] if `addr` does
    /// not resolve.
    pub fn bind<C: Concurrency, H: RequestHandler>(
        self,
        addr: impl ToSocketAddrs,
        concurrency: C,
        handler: H,
    ) -> Result<Server<C, H>> {
        let listener = transport::bind_tcp(transport::first_addr(addr)?, self.listen)?;
        self.from_listener(listener, concurrency, handler)
    }

    /// Binds and listens on a Unix stream socket at `path` and makes the server (Python's
    /// `UnixStreamServer`): the socket file gets [`unix_mode`](ServerBuilder::unix_mode)
    /// (owner-only by default), a stale one left by a crashed run is replaced, and the file is
    /// removed when the server is closed. Clients connect with
    /// `std::os::unix::net::UnixStream`, `curl --unix-socket PATH`, or nginx's
    /// `proxy_pass http://unix:PATH`.
    ///
    /// # Errors
    /// [`Error::Bind`] with the path and the reason: the path is longer than `sun_path` holds
    /// (107 bytes), something that is not a socket is there (it is never removed), another
    /// server is listening there, the directory does not exist or may not be written;
    /// `reuse_port` was set (it applies to TCP only).
    pub fn bind_unix<C: Concurrency, H: RequestHandler>(
        self,
        path: impl AsRef<Path>,
        concurrency: C,
        handler: H,
    ) -> Result<Server<C, H>> {
        let listener = transport::bind_unix(path.as_ref(), self.listen)?;
        self.from_listener(listener, concurrency, handler)
    }

    /// A datagram server's receive buffer, in bytes (Python's `max_packet_size`, default 8192;
    /// at most 64 KiB). A larger datagram is cut to this size and reported as truncated
    /// ([`Datagram::truncated`], and a warning in the log), never silently.
    pub fn max_packet_size(mut self, bytes: usize) -> ServerBuilder {
        self.max_packet_size = bytes;
        self
    }

    /// Binds a UDP socket to `addr` (the first address it resolves to) and makes a datagram
    /// server (Python's `UDPServer`): every datagram is a request for `handler`, answered on the
    /// server's socket. No listen, no accept, no keep-alive.
    ///
    /// # Errors
    /// [`Error::Bind`] if the socket cannot be bound; [`Error::Io`] if `addr` does not resolve;
    /// [`Error::InvalidConfig`] for a `max_packet_size` of 0 or above 64 KiB, or a strategy
    /// that serves no datagrams ([`EventLoop`]).
    pub fn bind_udp<C: Concurrency, D: DatagramHandler>(
        self,
        addr: impl ToSocketAddrs,
        concurrency: C,
        handler: D,
    ) -> Result<Server<C, Datagrams<D>>> {
        let addr = transport::first_addr(addr)?;
        self.check_datagram_config(&concurrency)?;
        let socket = transport::bind_datagram(DatagramAddr::Udp(addr), self.listen)?;
        self.from_listener(socket, concurrency, Datagrams::new(handler))
    }

    /// Binds a Unix datagram socket at `path` and makes a datagram server (Python's
    /// `UnixDatagramServer`), with the socket file's rules of
    /// [`bind_unix`](ServerBuilder::bind_unix). A client must bind a path of its own to get
    /// answers: an unnamed sender cannot be replied to.
    ///
    /// # Errors
    /// As [`bind_unix`](ServerBuilder::bind_unix) and [`bind_udp`](ServerBuilder::bind_udp).
    pub fn bind_unix_datagram<C: Concurrency, D: DatagramHandler>(
        self,
        path: impl AsRef<Path>,
        concurrency: C,
        handler: D,
    ) -> Result<Server<C, Datagrams<D>>> {
        self.check_datagram_config(&concurrency)?;
        let socket = transport::bind_datagram(DatagramAddr::Unix(path.as_ref()), self.listen)?;
        self.from_listener(socket, concurrency, Datagrams::new(handler))
    }

    fn check_datagram_config<C: Concurrency>(&self, concurrency: &C) -> Result<()> {
        if self.max_packet_size == 0 || self.max_packet_size > MAX_PACKET_SIZE_LIMIT {
            return Err(Error::InvalidConfig("max_packet_size must be from 1 to 65536 bytes"));
        }
        if !concurrency.serves_datagrams() {
            return Err(Error::InvalidConfig(
                "this strategy serves no datagrams (the event loop runs HTTP on streams); \
                 use Sequential, Threading, Forking or Pool",
            ));
        }
        Ok(())
    }

    /// The mode of a Unix socket file made by [`bind_unix`](ServerBuilder::bind_unix) (default
    /// `0o600`, owner only). Connecting to a Unix socket needs write permission on its file, so
    /// the mode is the server's access control: `0o660` lets the file's group in (say, nginx's
    /// user in a shared group). The default does not depend on the umask, which differs between
    /// machines and would decide it otherwise.
    pub fn unix_mode(mut self, mode: u32) -> ServerBuilder {
        self.listen.unix_mode = mode;
        self
    }

    /// Makes a server on a listener that is already bound and listening (one inherited from a
    /// pre-forking master or systemd, say): a [`Listener`], or a `std::net::TcpListener` or
    /// `std::os::unix::net::UnixListener`, which convert into one. It is switched to
    /// non-blocking mode.
    ///
    /// # Errors
    /// [`Error::Io`] if the listener's address or mode cannot be read or set, or the shutdown
    /// waker (or, with `exclusive_wakeup`, the epoll instance) cannot be created.
    pub fn from_listener<C: Concurrency, H: RequestHandler>(
        self,
        listener: impl Into<Listener>,
        concurrency: C,
        handler: H,
    ) -> Result<Server<C, H>> {
        let listener = listener.into();
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let shutdown = ShutdownHandle::new()?;
        // Offsets in logs count from here: "seconds since the server started".
        crate::trace::epoch();
        let epoll = if self.exclusive_wakeup { Some(exclusive_epoll(&listener, &shutdown)?) } else { None };
        // A datagram server's forked children answer on its socket, so they keep it.
        let child_closes = (!listener.is_datagram()).then(|| listener.as_raw_fd());
        let dispatcher = Dispatcher::new(Arc::new(handler), shutdown.server_id(), child_closes);
        Ok(Server {
            epoll,
            context: ServerContext::new(local_addr.clone(), shutdown.clone()),
            listener: Some(listener),
            local_addr,
            concurrency,
            dispatcher,
            shutdown,
            poll_interval: self.poll_interval,
            timeout: self.timeout,
            max_packet_size: self.max_packet_size,
            accept_errors: AcceptErrors::default(),
        })
    }
}

/// A stream server (TCP or a Unix socket) generic over its concurrency strategy `C` and request
/// handler `H`: the accept loop, Python's `BaseServer` + `TCPServer` / `UnixStreamServer`. The [crate docs](crate) draw the big picture.
///
/// # Call this
/// * [`Server::bind`] (TCP) or [`Server::bind_unix`] (a Unix stream socket), or
///   [`ServerBuilder`] — create, bind and listen.
/// * [`Server::serve_forever`] — accept and dispatch until a shutdown is requested.
/// * [`Server::handle_request`] — accept and dispatch one connection, waiting at most `timeout`.
/// * [`Server::shutdown_handle`] — a handle to stop `serve_forever` from elsewhere.
/// * [`Server::server_close`] — close the listener and wait for in-flight requests (also done by
///   `Drop`).
///
/// # Override this
/// Nothing here: the request handler ([`RequestHandler`]) carries `verify_request` and
/// `handle_error`, and the concurrency strategy ([`Concurrency`]) carries `process_request`,
/// `service_actions` and `server_close`.
///
/// # Configure this ([`ServerBuilder`], Python's class attributes)
/// `request_queue_size` (listen backlog, default `SOMAXCONN`), `poll_interval` (default 0.5 s),
/// `timeout` (for `handle_request`, default none), `reuse_port` (default off),
/// `exclusive_wakeup` (default off; on for pre-forked workers sharing one listener).
///
/// # The loop
/// ```text
/// loop:
///     poll([listener, waker], poll_interval)       # sleep until a client or a shutdown
///     if shutdown requested: break
///     accept every waiting connection (up to 64):
///         verify_request? -> process_request        # inline / thread / fork
///     service_actions()                            # reap children, join finished threads
/// ```
/// Why poll instead of a blocking `accept`: Rust's standard library retries `accept` when a
/// signal interrupts it (`EINTR`), so a blocked `accept` would never notice a shutdown. Polling
/// with a timeout bounds how long `service_actions` can be postponed; the shutdown
/// handle's waker (an eventfd) makes a shutdown wake the loop at once.
///
/// With [`ServerBuilder::exclusive_wakeup`] the wait is an `epoll_wait` instead of `poll`, on an
/// epoll instance where the listener is registered with `EPOLLEXCLUSIVE`: when several processes
/// wait on one shared listener, a new connection wakes one of them instead of all (see
/// [`Prefork`](crate::Prefork), "The thundering herd").
///
/// # Example
/// ```no_run
/// use std::io::Write;
/// use socketserver::{Server, Threading, handler_fn, shutdown_on_signals};
///
/// let mut server = Server::bind("127.0.0.1:8000", Threading::new(), handler_fn(|conn| {
///     conn.stream().write_all(b"hello\n")?;
///     Ok(())
/// }))?;
/// shutdown_on_signals(server.shutdown_handle())?;   // Ctrl-C stops serve_forever
/// server.serve_forever()?;
/// server.server_close();                           // waits for in-flight requests
/// # Ok::<(), socketserver::Error>(())
/// ```
#[derive(Debug)]
pub struct Server<C: Concurrency, H: RequestHandler> {
    listener: Option<Listener>,
    /// With `exclusive_wakeup`: the listener (`EPOLLEXCLUSIVE`) and the waker, registered
    /// once; `None` means `poll` both on each wait.
    epoll: Option<Epoll>,
    local_addr: Addr,
    concurrency: C,
    dispatcher: Dispatcher<H>,
    context: ServerContext,
    shutdown: ShutdownHandle,
    poll_interval: Duration,
    timeout: Option<Duration>,
    /// A datagram server's receive buffer (Python's `max_packet_size`).
    max_packet_size: usize,
    accept_errors: AcceptErrors,
}

impl<C: Concurrency, H: RequestHandler> Server<C, H> {
    /// Binds and listens on `addr` with the default configuration ([`ServerBuilder::new`]).
    ///
    /// # Errors
    /// As [`ServerBuilder::bind`].
    pub fn bind(addr: impl ToSocketAddrs, concurrency: C, handler: H) -> Result<Server<C, H>> {
        ServerBuilder::new().bind(addr, concurrency, handler)
    }

    /// Binds and listens on a Unix stream socket at `path` with the default configuration
    /// (Python's `UnixStreamServer`; see [`ServerBuilder::bind_unix`]).
    ///
    /// # Errors
    /// As [`ServerBuilder::bind_unix`].
    pub fn bind_unix(path: impl AsRef<Path>, concurrency: C, handler: H) -> Result<Server<C, H>> {
        ServerBuilder::new().bind_unix(path, concurrency, handler)
    }

    /// The address the server listens on; with port 0 this tells the port the kernel chose. An
    /// [`Addr`] connects like a `SocketAddr` (`TcpStream::connect(server.local_addr())`) when
    /// the server is on TCP.
    pub fn local_addr(&self) -> Addr {
        self.local_addr.clone()
    }

    /// A handle that stops `serve_forever`, usable from any thread (Python's `shutdown`).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// The concurrency strategy, to inspect it (e.g. [`Forking::active_children`]).
    pub fn concurrency(&self) -> &C {
        &self.concurrency
    }

    /// The request handler.
    pub fn handler(&self) -> &H {
        self.dispatcher.handler()
    }

    /// Accepts and dispatches connections until a shutdown is requested through a
    /// [`ShutdownHandle`], then returns `Ok(())`. Returns at once if a shutdown was already
    /// requested. In-flight requests are *not* waited for here: call
    /// [`server_close`](Server::server_close) (or drop the server) for that.
    ///
    /// Errors from `accept` (out of file descriptors, a connection reset before it was
    /// accepted, ...) are logged and survived.
    ///
    /// # Errors
    /// [`Error::Closed`] after `server_close`; [`Error::Io`] if `poll` itself fails, which
    /// means a bug (an invalid descriptor), not a client's doing.
    pub fn serve_forever(&mut self) -> Result<()> {
        if self.listener.is_none() {
            return Err(Error::Closed);
        }
        self.shutdown.set_serving(true);
        // Whatever happens below, even a panic, shutdown() waiters must be released.
        let _serving = ServingGuard(self.shutdown.clone());
        log::debug!("{} server on {}: serving", self.concurrency.name(), self.local_addr);
        if let Some(listener) = &self.listener
            && self.concurrency.accept_on_own_threads(listener, &self.dispatcher)
        {
            // The strategy's threads accept (each event loop waits on the listener in its own
            // epoll set): this thread only waits for a shutdown, and runs service_actions.
            while !self.shutdown.is_shutdown_requested() {
                if sys::wait_readable(self.shutdown.wake_fd(), Some(self.poll_interval)).unwrap_or(false) {
                    self.shutdown.drain_wake();
                }
                self.concurrency.service_actions();
            }
            self.concurrency.stop_accepting();
            log::debug!("{} server on {}: stopped accepting", self.concurrency.name(), self.local_addr);
            return Ok(());
        }
        while !self.shutdown.is_shutdown_requested() {
            let ready = self.wait_for_connection(Some(self.poll_interval))?;
            if self.shutdown.is_shutdown_requested() {
                break;
            }
            if ready && self.concurrency.has_capacity() {
                self.accept_batch(ACCEPT_BATCH);
            } else if ready {
                // A connection waits but no worker is free: leave it in the backlog (a sibling
                // process may take it) and sleep until a worker is, rather than spin on a
                // listener that stays readable.
                self.concurrency.wait_for_capacity(self.poll_interval);
            }
            self.concurrency.service_actions();
        }
        log::debug!("{} server on {}: stopped accepting", self.concurrency.name(), self.local_addr);
        Ok(())
    }

    /// Waits for one connection, for at most the configured `timeout` (forever if none), and
    /// dispatches it. Returns `Ok(true)` if a connection was handled (or handed to a thread or
    /// child), `Ok(false)` on timeout or if a shutdown was requested.
    ///
    /// Unlike Python's, it also runs `service_actions` before returning, so a loop of
    /// `handle_request` calls on a forking server does not accumulate zombies.
    ///
    /// # Errors
    /// As [`serve_forever`](Server::serve_forever).
    pub fn handle_request(&mut self) -> Result<bool> {
        if self.listener.is_none() {
            return Err(Error::Closed);
        }
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let handled = loop {
            if self.shutdown.is_shutdown_requested() {
                break false;
            }
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if wait == Some(Duration::ZERO) {
                break false;
            }
            // Another process sharing the listener may take the connection between poll and
            // accept; then accept_batch handles nothing and we wait again.
            if self.wait_for_connection(wait)? {
                if !self.concurrency.has_capacity() {
                    // As in serve_forever: no free worker, so sleep until one is, not spin.
                    self.concurrency
                        .wait_for_capacity(wait.unwrap_or(self.poll_interval).min(self.poll_interval));
                } else if self.accept_batch(1) > 0 {
                    break true;
                }
            }
        };
        self.concurrency.service_actions();
        Ok(handled)
    }

    /// Closes the listening socket (new connections are refused from now on) and lets the
    /// strategy finish: joins request threads or waits for children when `block_on_close`.
    /// Python's `server_close`. Idempotent; also called by `Drop`.
    pub fn server_close(&mut self) {
        if let Some(listener) = self.listener.take() {
            // The epoll first: its registration of the listener would outlive our descriptor
            // while another process still has the listener open.
            self.epoll = None;
            drop(listener);
            self.concurrency.server_close();
            log::debug!("{} server on {}: closed", self.concurrency.name(), self.local_addr);
        }
    }

    /// Polls the listener and the shutdown waker. `Ok(true)`: a connection is waiting.
    fn wait_for_connection(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let Some(listener) = &self.listener else { return Ok(false) };
        // Rounded up to whole milliseconds: a 0.4 ms remainder must not become a busy 0 ms poll.
        let timeout = sys::poll_timeout(timeout);
        if let Some(epoll) = &self.epoll {
            let mut events = [EpollEvent::empty(); 2];
            let n = match epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            let (mut ready, mut woken) = (false, false);
            for event in &events[..n] {
                match event.data() {
                    EPOLL_LISTENER => ready = true,
                    _ => woken = true,
                }
            }
            if woken {
                self.shutdown.drain_wake();
            }
            return Ok(ready);
        }
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.shutdown.wake_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            // A signal handler ran in this thread during poll (shutdown_on_signals' own, or a
            // user's). The loop re-checks the flag, which sees the signal.
            Err(Errno::EINTR) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let woken = fds[1].revents().is_some_and(|r| !r.is_empty());
        let ready = fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
        if woken {
            self.shutdown.drain_wake();
        }
        Ok(ready)
    }

    /// Accepts up to `max` waiting connections (on a datagram server: receives up to `max`
    /// datagrams) and dispatches each; returns how many.
    fn accept_batch(&mut self, max: usize) -> usize {
        if self.listener.as_ref().is_some_and(Listener::is_datagram) {
            return self.recv_batch(max);
        }
        let mut dispatched = 0;
        while dispatched < max && !self.shutdown.is_shutdown_requested() && self.concurrency.has_capacity() {
            let Some(listener) = &self.listener else { break };
            match listener.accept() {
                Ok((stream, peer)) => {
                    self.accept_errors.recovered();
                    self.dispatch(stream, peer);
                    dispatched += 1;
                }
                // The queue is empty (or another process took the connection): done for now.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The client gave up between connecting and our accept; that is its business.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.accept_failed(e);
                    break;
                }
            }
        }
        dispatched
    }

    /// Receives up to `max` waiting datagrams and dispatches each, as `accept_batch` does
    /// connections: every datagram is a request.
    fn recv_batch(&mut self, max: usize) -> usize {
        let mut dispatched = 0;
        while dispatched < max && !self.shutdown.is_shutdown_requested() && self.concurrency.has_capacity() {
            let Some(listener) = &self.listener else { break };
            // A fresh buffer per datagram: it moves into the request, which may live on in a
            // thread or a child while the next one is received.
            let mut buf = vec![0u8; self.max_packet_size];
            match listener.recv_datagram(&mut buf) {
                Ok(got) => {
                    self.accept_errors.recovered();
                    let socket = listener.shared_socket();
                    if !self.dispatcher.handler().verify_request(&got.peer) {
                        log::debug!("verify_request refused a datagram from {}", got.peer);
                        continue;
                    }
                    let datagram = Datagram::new(buf, got, socket, self.context.clone());
                    let conn = Connection::datagram(datagram, self.context.clone());
                    self.concurrency.process_request(conn, &self.dispatcher);
                    dispatched += 1;
                }
                // Nothing (more) waiting, or another thread or process took it.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error for an earlier answer (the client is gone) may be reported on
                // the next receive: the client's business, not the server's.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    self.accept_failed(e);
                    break;
                }
            }
        }
        dispatched
    }

    /// `accept` failed for a reason that will not go away by retrying at once: out of file
    /// descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM). The connection stays in
    /// the backlog and the listener stays readable, so retrying immediately would spin at 100 %
    /// CPU. Log (at most once a second) and back off for a moment, still awake to a shutdown.
    fn accept_failed(&mut self, e: io::Error) {
        if let Some(suppressed) = self.accept_errors.should_log() {
            if suppressed > 0 {
                log::error!("accept failed: {e} ({suppressed} more since the last report); backing off");
            } else {
                log::error!("accept failed: {e}; backing off");
            }
        }
        // Finished requests free descriptors: reap/join before waiting.
        self.concurrency.service_actions();
        let _ = sys::wait_readable(self.shutdown.wake_fd(), Some(ACCEPT_BACKOFF));
    }

    fn dispatch(&mut self, stream: Stream, peer: Addr) {
        if !self.dispatcher.handler().verify_request(&peer) {
            log::debug!("verify_request refused {peer}");
            // Dropping the stream closes it.
            return;
        }
        let conn = Connection::new(stream, peer, self.context.clone());
        self.concurrency.process_request(conn, &self.dispatcher);
    }
}

impl<C: Concurrency, D: DatagramHandler> Server<C, Datagrams<D>> {
    /// Binds a UDP socket to `addr` with the default configuration and makes a datagram server
    /// (Python's `UDPServer`; see [`ServerBuilder::bind_udp`]).
    ///
    /// # Errors
    /// As [`ServerBuilder::bind_udp`].
    pub fn bind_udp(addr: impl ToSocketAddrs, concurrency: C, handler: D) -> Result<Server<C, Datagrams<D>>> {
        ServerBuilder::new().bind_udp(addr, concurrency, handler)
    }

    /// Binds a Unix datagram socket at `path` with the default configuration (Python's
    /// `UnixDatagramServer`; see [`ServerBuilder::bind_unix_datagram`]).
    ///
    /// # Errors
    /// As [`ServerBuilder::bind_unix_datagram`].
    pub fn bind_unix_datagram(
        path: impl AsRef<Path>,
        concurrency: C,
        handler: D,
    ) -> Result<Server<C, Datagrams<D>>> {
        ServerBuilder::new().bind_unix_datagram(path, concurrency, handler)
    }
}

impl<C: Concurrency, H: RequestHandler> Drop for Server<C, H> {
    fn drop(&mut self) {
        self.server_close();
    }
}

/// Marks `serve_forever` as finished when dropped (releases `ShutdownHandle::shutdown`).
struct ServingGuard(ShutdownHandle);

impl Drop for ServingGuard {
    fn drop(&mut self) {
        self.0.set_serving(false);
    }
}

/// Rate-limits accept error logs to one a second.
#[derive(Debug, Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    /// `Some(suppressed count)` if a log line is due now.
    fn should_log(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last_logged {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_logged = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    fn recovered(&mut self) {
        if self.last_logged.take().is_some() {
            log::info!("accept works again");
        }
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_logged_at_most_once_a_second() {
        let mut a = AcceptErrors::default();
        assert_eq!(a.should_log(), Some(0));
        assert_eq!(a.should_log(), None);
        assert_eq!(a.should_log(), None);
        a.last_logged = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(a.should_log(), Some(2));
    }
}
