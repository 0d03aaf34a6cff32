//! What one request does: [`RequestHandler`], [`Connection`], [`ServerContext`]; and the two
//! handlers Python people subclass, written over it: [`StreamRequestHandler`] (`stream.rs`) and
//! [`DatagramHandler`] (`datagram.rs`). The design is on the types' docs.

mod datagram;
mod stream;

pub use datagram::{Datagram, DatagramHandler, Datagrams, FnDatagramHandler, datagram_fn};
pub use stream::{StreamIo, StreamRequestHandler};

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::HandlerError;
use crate::shutdown::ShutdownHandle;
use crate::transport::{Addr, Stream};

/// What one request does. Implement [`handle`](RequestHandler::handle); the rest have defaults.
///
/// Python creates a new handler object per request and calls `setup()`, `handle()`, `finish()`
/// on it. Here one handler value is shared by every request (it is `Send + Sync`, behind an
/// `Arc`), and per-request state lives in the [`Connection`] passed to each call. That is the
/// only shape that works for all five strategies: threads share the value, forked children get
/// a copy of it.
///
/// Python's server-level hooks `verify_request` and `handle_error` live on this trait too,
/// because in Rust the handler is where user code goes; their defaults do what Python's do.
///
/// # Call this / override this
/// The server calls, for every accepted connection that passes
/// [`verify_request`](RequestHandler::verify_request): `setup`, then `handle` (only if `setup`
/// succeeded), then `finish` (always, as Python does in a `try/finally`). An `Err` from any of
/// them, or a panic, goes to [`handle_error`](RequestHandler::handle_error); the server then
/// closes the connection and serves the next one.
///
/// # Example: an echo handler
/// ```
/// use std::io::{BufRead, BufReader, Write};
/// use socketserver::{Connection, HandlerError, RequestHandler};
///
/// struct Echo;
/// impl RequestHandler for Echo {
///     fn handle(&self, conn: &mut Connection) -> Result<(), HandlerError> {
///         let mut line = String::new();
///         BufReader::new(conn.stream()).read_line(&mut line)?;
///         conn.stream().write_all(line.as_bytes())?;
///         Ok(())
///     }
/// }
/// ```
pub trait RequestHandler: Send + Sync + 'static {
    /// Called before [`handle`](RequestHandler::handle). Default: nothing.
    fn setup(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        let _ = conn;
        Ok(())
    }

    /// Services one connection: read the request, write the response.
    fn handle(&self, conn: &mut Connection) -> Result<(), HandlerError>;

    /// Called after [`handle`](RequestHandler::handle), even if it failed. Default: nothing.
    fn finish(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        let _ = conn;
        Ok(())
    }

    /// Python's `BaseServer.verify_request`: return `false` to close the connection at once
    /// without handling it (an allow-list, a rate limit). Runs on the thread that accepts (the
    /// accept thread; on the Pool's reactor path and an event loop that accepts itself, the
    /// reactor's), before any thread or process is started, so keep it cheap: it must not
    /// block. Default: accept everyone.
    fn verify_request(&self, peer_addr: &Addr) -> bool {
        let _ = peer_addr;
        true
    }

    /// The sans-IO HTTP layer behind this handler, if it is one: lets a reactor-driven
    /// strategy read and write the connection itself and lend a worker only to run the
    /// service. Only [`HttpHandler`](crate::http::HttpHandler) overrides it.
    #[doc(hidden)]
    fn sans_io(&self) -> Option<&dyn crate::http::SansIo> {
        None
    }

    /// Python's `BaseServer.handle_error`: called when `setup`, `handle` or `finish` returned an
    /// error or panicked. Default: log it at error level with the peer address and go on.
    fn handle_error(&self, peer_addr: &Addr, error: &HandlerError) {
        log::error!("error while handling a request from {peer_addr}: {error}");
    }
}

impl<T: RequestHandler + ?Sized> RequestHandler for std::sync::Arc<T> {
    fn setup(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        (**self).setup(conn)
    }
    fn handle(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        (**self).handle(conn)
    }
    fn finish(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        (**self).finish(conn)
    }
    fn sans_io(&self) -> Option<&dyn crate::http::SansIo> {
        (**self).sans_io()
    }

    fn verify_request(&self, peer_addr: &Addr) -> bool {
        (**self).verify_request(peer_addr)
    }
    fn handle_error(&self, peer_addr: &Addr, error: &HandlerError) {
        (**self).handle_error(peer_addr, error)
    }
}

/// A [`RequestHandler`] made from a closure; build it with [`handler_fn`].
#[derive(Debug, Clone)]
pub struct FnHandler<F>(F);

/// Makes a handler from a closure, for handlers that need only `handle`.
///
/// ```
/// use std::io::Write;
/// let hello = socketserver::handler_fn(|conn| {
///     conn.stream().write_all(b"hello\n")?;
///     Ok(())
/// });
/// # let _ = hello;
/// ```
pub fn handler_fn<F>(f: F) -> FnHandler<F>
where
    F: Fn(&mut Connection) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    FnHandler(f)
}

impl<F> RequestHandler for FnHandler<F>
where
    F: Fn(&mut Connection) -> Result<(), HandlerError> + Send + Sync + 'static,
{
    fn handle(&self, conn: &mut Connection) -> Result<(), HandlerError> {
        (self.0)(conn)
    }
}

/// One accepted connection, as a handler sees it: the socket, who is on the other end, and a
/// way back to the server ([`ServerContext`]).
///
/// Python passes `(request, client_address, server)` to the handler's constructor; this is the
/// same triple in one value.
///
/// # Parking (call me again when there is more to read)
/// A handler that serves several requests per connection (HTTP keep-alive) would otherwise block
/// its thread on the read for the *next* request, which may come in 5 seconds or never. Under a
/// strategy with a fixed number of threads ([`Pool`](crate::Pool)) that starves everyone else:
/// four idle keep-alive clients pin four workers. So such a strategy offers *parking*:
/// [`can_park`](Connection::can_park) says whether it does, and a handler that has finished a
/// request, has nothing buffered and wants the connection kept calls
/// [`park`](Connection::park) and returns `Ok(())`. The strategy then keeps the socket open
/// without a thread, watches it on its reactor (`epoll`), and runs the handler again (`setup`, `handle`,
/// `finish`, on a fresh call) when the socket becomes readable; or closes it after
/// `idle_timeout`. Under every other strategy `can_park` is `false` and `park` does nothing, so a
/// handler written this way works everywhere.
///
/// # A datagram server's connections
/// On a datagram server (UDP, Unix datagram) a "connection" is one datagram, as in Python
/// (`self.request` is `(data, socket)` there). Only the server's [`Datagrams`] handler ever
/// receives one, and it hands your [`DatagramHandler`] a [`Datagram`]; the stream methods
/// ([`stream`](Connection::stream), [`into_stream`](Connection::into_stream)) panic on it.
#[derive(Debug)]
pub struct Connection {
    io: Io,
    peer_addr: Addr,
    server: ServerContext,
    /// Set by a strategy that can park connections (only [`Pool`](crate::Pool)).
    parkable: bool,
    /// Set by [`Connection::park`]: the handler asked to be called again when readable, and to
    /// have the connection closed after this much idleness.
    park: Option<Duration>,
    /// Set once our side has sent FIN, so that [`close`](Connection::close) does not repeat
    /// the system call (it would fail with `ENOTCONN` once the peer has closed too).
    write_shut: bool,
    /// Set by a strategy with a queue (only [`Pool`](crate::Pool)): how many connections wait in
    /// it for a worker, kept up to date by the strategy.
    queued: Option<Arc<AtomicUsize>>,
}

impl Connection {
    /// Wraps an accepted stream. Servers do this for you; it is public so that handlers can be
    /// unit-tested on a socket pair without a server.
    pub fn new(stream: impl Into<Stream>, peer_addr: impl Into<Addr>, server: ServerContext) -> Connection {
        let (stream, peer_addr) = (stream.into(), peer_addr.into());
        Connection::with_io(Io::Stream(stream), peer_addr, server)
    }

    /// One received datagram, as a connection (see *A datagram server's connections*).
    pub(crate) fn datagram(datagram: Datagram, server: ServerContext) -> Connection {
        let peer = datagram.peer_addr().clone();
        Connection::with_io(Io::Datagram(Box::new(datagram)), peer, server)
    }

    fn with_io(io: Io, peer_addr: Addr, server: ServerContext) -> Connection {
        Connection { io, peer_addr, server, parkable: false, park: None, write_shut: false, queued: None }
    }

    /// The datagram, if this connection is one.
    pub(crate) fn datagram_mut(&mut self) -> Option<&mut Datagram> {
        match &mut self.io {
            Io::Datagram(d) => Some(d),
            Io::Stream(_) => None,
        }
    }

    /// Whether the strategy running this connection can park it (see [`Connection`], *Parking*).
    /// `true` only under [`Pool`](crate::Pool).
    pub fn can_park(&self) -> bool {
        self.parkable
    }

    /// Asks the strategy to keep this connection open after the handler returns `Ok(())`, and to
    /// call the handler again when the socket is readable (data or EOF); if it stays idle for
    /// `idle_timeout`, it is closed silently instead.
    ///
    /// Call it only when no bytes of the next request sit in a buffer of your own: the strategy
    /// watches the socket, not your buffers. Has no effect unless [`can_park`](Connection::can_park)
    /// is `true`, and none if the handler then fails (an `Err` or a panic closes the connection
    /// as always).
    pub fn park(&mut self, idle_timeout: Duration) {
        if self.parkable {
            self.park = Some(idle_timeout);
        }
    }

    /// Whether other connections are waiting for a worker of this strategy right now. Only a
    /// [`Pool`](crate::Pool) has such a queue; elsewhere this is always `false`. Internal: the
    /// HTTP layer asks it; a public version would fix the pool's queue into the API.
    ///
    /// A handler that can park should then park as soon as it has answered a request, rather
    /// than keep serving this client's next one: with more busy keep-alive clients than
    /// workers, a worker that stays with the client it has would leave the others waiting for
    /// as long as that client keeps sending. Parking sends this connection to the back of the
    /// line, so clients take turns.
    pub(crate) fn others_waiting(&self) -> bool {
        self.queued.as_ref().is_some_and(|q| q.load(Ordering::Relaxed) > 0)
    }

    /// Offers parking to handlers of this connection (strategies that can park set this).
    pub(crate) fn set_parkable(&mut self, on: bool) {
        self.parkable = on;
    }

    /// Lets [`others_waiting`](Connection::others_waiting) read the strategy's queue length.
    pub(crate) fn set_queue_gauge(&mut self, queued: Arc<AtomicUsize>) {
        self.queued = Some(queued);
    }

    /// Takes the park request of the last handler call, leaving none.
    pub(crate) fn take_park(&mut self) -> Option<Duration> {
        self.park.take()
    }

    /// The socket's descriptor, for the reactor while parked (a datagram is never parked; its
    /// descriptor is the server's socket).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match &self.io {
            Io::Stream(s) => s.as_fd(),
            Io::Datagram(d) => d.socket_fd(),
        }
    }

    /// The connected socket (Python's `self.request`), TCP or Unix. Read from and write to it.
    ///
    /// # Panics
    /// On a datagram server's connection, which has no stream (see *A datagram server's
    /// connections*); only a strategy of your own could call it there.
    pub fn stream(&mut self) -> &mut Stream {
        match &mut self.io {
            Io::Stream(s) => s,
            Io::Datagram(_) => panic!("Connection::stream on a datagram: a datagram server has no stream"),
        }
    }

    /// The client's address (Python's `self.client_address`): an internet address, or for a
    /// Unix socket the client's path if it bound one, usually [`Addr::Unnamed`].
    pub fn peer_addr(&self) -> &Addr {
        &self.peer_addr
    }

    /// The server this connection came from (Python's `self.server`).
    pub fn server(&self) -> &ServerContext {
        &self.server
    }

    /// Python's `shutdown_request`: tells the peer we are done writing, then the socket closes
    /// when `self` is dropped. The half-close first matters: closing a socket that still has
    /// unread input makes Linux send RST, which can destroy a response the client has not read
    /// yet; `shutdown(Write)` sends FIN after the queued data instead.
    pub(crate) fn close(self) {
        // A datagram has nothing to close: the socket is the server's.
        if let Io::Stream(stream) = &self.io
            && !self.write_shut
        {
            // The peer may already be gone (ENOTCONN); nothing useful can be done about it.
            let _ = stream.shutdown(Shutdown::Write);
        }
    }

    /// `shutdown(Write)` now, for a handler that must send FIN before it stops reading (the
    /// HTTP layer's lingering close); [`close`](Connection::close) then does not repeat it.
    pub(crate) fn shutdown_write(&mut self) {
        // As in `close`: a peer that is already gone is nothing to report.
        if let Io::Stream(stream) = &self.io {
            let _ = stream.shutdown(Shutdown::Write);
        }
        self.write_shut = true;
    }

    /// Gives back the stream, for handlers that want to keep it.
    ///
    /// # Panics
    /// On a datagram server's connection, as [`stream`](Connection::stream).
    pub fn into_stream(self) -> Stream {
        match self.io {
            Io::Stream(s) => s,
            Io::Datagram(_) => {
                panic!("Connection::into_stream on a datagram: a datagram server has no stream")
            }
        }
    }

    /// The stream, the peer and the server, borrowed together (for [`StreamRequestHandler`]).
    ///
    /// # Panics
    /// On a datagram, as [`stream`](Connection::stream).
    pub(crate) fn stream_parts(&mut self) -> (&Stream, &Addr, &ServerContext) {
        match &self.io {
            Io::Stream(s) => (s, &self.peer_addr, &self.server),
            Io::Datagram(_) => panic!("a stream handler on a datagram server"),
        }
    }

    /// The stream and the peer's address, for a strategy that moves the connection onto its
    /// reactor.
    /// `None` for a datagram (which no reactor takes).
    pub(crate) fn into_parts(self) -> Option<(Stream, Addr)> {
        match self.io {
            Io::Stream(s) => Some((s, self.peer_addr)),
            Io::Datagram(_) => None,
        }
    }

    /// A second handle to the same socket (`dup(2)`), e.g. to read and write from two threads.
    pub fn try_clone_stream(&self) -> io::Result<Stream> {
        match &self.io {
            Io::Stream(s) => s.try_clone(),
            Io::Datagram(_) => Err(io::Error::new(io::ErrorKind::Unsupported, "a datagram has no stream")),
        }
    }
}

/// What a [`Connection`] carries: an accepted stream, or one received datagram.
#[derive(Debug)]
enum Io {
    Stream(Stream),
    Datagram(Box<Datagram>),
}

/// What a handler may know about its server: where it listens and how to stop it.
#[derive(Debug, Clone)]
pub struct ServerContext {
    /// One reference count for both: a context is cloned into every connection, and in a
    /// forking server each count written after the fork is a copy-on-write fault.
    inner: Arc<(Addr, ShutdownHandle)>,
}

impl ServerContext {
    pub(crate) fn new(local_addr: Addr, shutdown: ShutdownHandle) -> ServerContext {
        ServerContext { inner: Arc::new((local_addr, shutdown)) }
    }

    /// A context that belongs to no running server, for driving a handler directly in a unit
    /// test (its shutdown handle stops nothing).
    ///
    /// # Errors
    /// If the self-pipe behind the shutdown handle cannot be created (out of file descriptors).
    pub fn standalone(local_addr: impl Into<Addr>) -> crate::Result<ServerContext> {
        Ok(ServerContext::new(local_addr.into(), ShutdownHandle::new()?))
    }

    /// The address the server listens on (Python's `server.server_address`).
    pub fn local_addr(&self) -> &Addr {
        &self.inner.0
    }

    /// Whether the server is stopping (see [`ShutdownHandle::is_stopping`]); works in a forked
    /// child too. A handler about to wait for an idle client should give up instead.
    pub fn is_stopping(&self) -> bool {
        self.inner.1.is_stopping()
    }

    /// The server's shutdown handle. From inside a handler, prefer
    /// [`ShutdownHandle::request_shutdown`]: [`ShutdownHandle::shutdown`] would wait for the very
    /// request that is calling it, and so returns [`Error::ShutdownFromHandler`](crate::Error).
    pub fn shutdown_handle(&self) -> &ShutdownHandle {
        &self.inner.1
    }
}
