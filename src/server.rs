//! [`Server`]: the accept loop, Python's `BaseServer` + `TCPServer`. The loop and its reasons
//! are on the type's docs.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::concurrency::{Concurrency, Dispatcher, EventLoop, Forking, Pool, Sequential, Threading};
use crate::error::{Error, Result};
use crate::handler::{Connection, RequestHandler, ServerContext};
use crate::listener::{self, ListenOptions};
use crate::shutdown::ShutdownHandle;
use crate::sys;

/// Python's default `poll_interval`.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How many connections one loop pass accepts before it runs `service_actions` again.
const ACCEPT_BATCH: usize = 64;

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
fn exclusive_epoll(listener: &TcpListener, shutdown: &ShutdownHandle) -> Result<Epoll> {
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
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            Error::Io(io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing"))
        })?;
        let listener = listener::bind(addr, self.listen)?;
        self.from_listener(listener, concurrency, handler)
    }

    /// Makes a server on a listener that is already bound and listening (one inherited from a
    /// pre-forking master, say). It is switched to non-blocking mode.
    ///
    /// # Errors
    /// [`Error::Io`] if the listener's address or mode cannot be read or set, or the shutdown
    /// waker (or, with `exclusive_wakeup`, the epoll instance) cannot be created.
    pub fn from_listener<C: Concurrency, H: RequestHandler>(
        self,
        listener: TcpListener,
        concurrency: C,
        handler: H,
    ) -> Result<Server<C, H>> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let shutdown = ShutdownHandle::new()?;
        // Offsets in logs count from here: "seconds since the server started".
        crate::trace::epoch();
        let epoll = if self.exclusive_wakeup { Some(exclusive_epoll(&listener, &shutdown)?) } else { None };
        let dispatcher = Dispatcher::new(Arc::new(handler), shutdown.server_id(), listener.as_raw_fd());
        Ok(Server {
            epoll,
            context: ServerContext::new(local_addr, shutdown.clone()),
            listener: Some(listener),
            local_addr,
            concurrency,
            dispatcher,
            shutdown,
            poll_interval: self.poll_interval,
            timeout: self.timeout,
            accept_errors: AcceptErrors::default(),
        })
    }
}

/// A TCP server generic over its concurrency strategy `C` and request handler `H`: the accept
/// loop, Python's `BaseServer` + `TCPServer`. The [crate docs](crate) draw the big picture.
///
/// # Call this
/// * [`Server::bind`] (or [`ServerBuilder`]) — create, bind and listen.
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
    listener: Option<TcpListener>,
    /// With `exclusive_wakeup`: the listener (`EPOLLEXCLUSIVE`) and the waker, registered
    /// once; `None` means `poll` both on each wait.
    epoll: Option<Epoll>,
    local_addr: SocketAddr,
    concurrency: C,
    dispatcher: Dispatcher<H>,
    context: ServerContext,
    shutdown: ShutdownHandle,
    poll_interval: Duration,
    timeout: Option<Duration>,
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

    /// The address the server listens on; with port 0 this tells the port the kernel chose.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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

    /// Accepts up to `max` waiting connections and dispatches each; returns how many.
    fn accept_batch(&mut self, max: usize) -> usize {
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

    fn dispatch(&mut self, stream: TcpStream, peer: SocketAddr) {
        if !self.dispatcher.handler().verify_request(&peer) {
            log::debug!("verify_request refused {peer}");
            // Dropping the stream closes it.
            return;
        }
        let conn = Connection::new(stream, peer, self.context.clone());
        self.concurrency.process_request(conn, &self.dispatcher);
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
