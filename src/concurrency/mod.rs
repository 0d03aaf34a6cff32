//! The concurrency axis: how a server handles the connections it accepts.
//!
//! Python composes this axis with mixins that override three methods of `BaseServer`:
//!
//! | hook | Python | here | what it does |
//! |---|---|---|---|
//! | `process_request` | `ThreadingMixIn.process_request` | [`Concurrency::process_request`] | handle inline, start a thread, or fork |
//! | `service_actions` | `ForkingMixIn.service_actions` | [`Concurrency::service_actions`] | once per loop pass: reap children, drop finished threads |
//! | `server_close` | `ThreadingMixIn.server_close` | [`Concurrency::server_close`] | wait for (or stop) what is still running |
//!
//! In Rust the mixin becomes a type parameter: `class ForkingTCPServer(ForkingMixIn, TCPServer)`
//! is `type ForkingTcpServer<H> = Server<Forking, H>`. The strategies:
//!
//! * [`Sequential`]: inline on the accept thread; one request at a time.
//! * [`Threading`]: a new thread per connection.
//! * [`Forking`]: a new process per connection, with child reaping.
//! * [`Pool`]: a fixed set of worker threads fed by a bounded queue; idle keep-alive
//!   connections are *parked* (watched by one epoll reactor, holding no thread).
//!
//! One more sits *above* a server rather than inside it: [`Prefork`] forks N worker processes up
//! front, each running its own [`Server`](crate::Server) (with `Sequential` or a `Pool` inside)
//! on the shared listener, and supervises them (gunicorn's sync workers).
//!
//! Writing your own is allowed: implement [`Concurrency`] and call [`Job::run`] wherever
//! (whichever thread, whichever process) the connection should be handled, or
//! [`Job::run_parkable`] if your strategy can keep idle connections without a thread.

use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, HandlerError, panic_message};
use crate::handler::{Connection, RequestHandler};
use crate::shutdown::HandlerScope;

pub mod forking;
pub mod pool;
pub mod prefork;
pub mod sequential;
pub mod threading;

pub use forking::Forking;
pub use pool::Pool;
pub use prefork::{Prefork, PreforkServer};
pub use sequential::Sequential;
pub use threading::Threading;

/// A concurrency strategy: the hooks Python's `ThreadingMixIn` and `ForkingMixIn` override.
///
/// All three are called on the thread that runs `serve_forever`.
pub trait Concurrency {
    /// A short name for logs and banners (`"threading"`).
    fn name(&self) -> &'static str;

    /// Handles one accepted connection: by calling `job.run(conn)` here (sequential), on a new
    /// thread, in a child process, ... It must not return an error: whatever happens to one
    /// request is that request's business, and the server goes on.
    fn process_request<H: RequestHandler>(&mut self, conn: Connection, job: &Job<H>);

    /// Called once per pass of `serve_forever` (at least every `poll_interval`) and after
    /// `handle_request`. Default: nothing.
    fn service_actions(&mut self) {}

    /// Called by `server_close`, after the listener is closed: wait for or stop the requests
    /// still running. Default: nothing.
    fn server_close(&mut self) {}

    /// Whether the strategy would start handling a connection *now*. When `false`, the server
    /// leaves connections in the listen backlog, where another process sharing the listener
    /// (a pre-forked sibling) can take them, and calls
    /// [`wait_for_capacity`](Concurrency::wait_for_capacity) instead of `accept`. Default:
    /// always `true` (the strategy queues or blocks in `process_request`).
    fn has_capacity(&self) -> bool {
        true
    }

    /// Waits, at most `timeout`, until [`has_capacity`](Concurrency::has_capacity) may be
    /// `true` again. Default: returns at once.
    fn wait_for_capacity(&mut self, timeout: std::time::Duration) {
        let _ = timeout;
    }
}

/// Everything needed to run the handler for one connection, wherever that happens.
///
/// Cheap to clone (an `Arc` and two integers), `Send` when the handler is, so a strategy can
/// move it to a thread.
#[derive(Debug)]
pub struct Job<H> {
    handler: Arc<H>,
    server_id: u64,
    listener_fd: RawFd,
}

impl<H> Clone for Job<H> {
    fn clone(&self) -> Self {
        Job { handler: Arc::clone(&self.handler), server_id: self.server_id, listener_fd: self.listener_fd }
    }
}

impl<H: RequestHandler> Job<H> {
    pub(crate) fn new(handler: Arc<H>, server_id: u64, listener_fd: RawFd) -> Job<H> {
        Job { handler, server_id, listener_fd }
    }

    /// The request handler.
    pub fn handler(&self) -> &Arc<H> {
        &self.handler
    }

    /// The raw descriptor of the server's listening socket. A forked child closes it (see
    /// [`Forking`]); nothing else should touch it.
    pub fn listener_fd(&self) -> RawFd {
        self.listener_fd
    }

    /// Python's `finish_request` + `shutdown_request`: runs `setup`, `handle`, `finish` on the
    /// connection, reports an error *or a panic* to `handle_error`, and closes the connection.
    /// Returns `true` if the handler succeeded.
    ///
    /// A panic is caught here, at the request boundary, so that it never unwinds into a
    /// server's accept loop, a thread pool's worker, or a forked child's parent code.
    pub fn run(&self, mut conn: Connection) -> bool {
        let ok = self.serve(&mut conn);
        conn.close();
        ok
    }

    /// Like [`run`](Job::run), for strategies that park connections ([`Pool`]): if the handler
    /// succeeded *and* called [`Connection::park`], the connection is returned, still open, with
    /// the requested idle timeout, instead of being closed; the strategy watches it and calls
    /// `run_parkable` again when it is readable. Otherwise the connection is closed and `None`
    /// returned.
    ///
    /// The strategy must have offered parking ([`Connection::can_park`]); a park request left
    /// over from an earlier call is cleared before the handler runs.
    pub fn run_parkable(&self, mut conn: Connection) -> Option<(Connection, Duration)> {
        // Each call starts unparked: only what this call's handler decides counts.
        conn.take_park();
        let ok = self.serve(&mut conn);
        // A failed handler's connection is in an unknown state (half a request read, a panic
        // midway): never keep it, even if it asked to be parked before failing.
        match conn.take_park() {
            Some(idle) if ok => Some((conn, idle)),
            _ => {
                conn.close();
                None
            }
        }
    }

    /// Runs `setup`, `handle`, `finish`, reporting an error or a panic to `handle_error`.
    /// `true` if the handler succeeded. Leaves the connection open.
    fn serve(&self, conn: &mut Connection) -> bool {
        let _scope = HandlerScope::enter(self.server_id);
        let peer = conn.peer_addr();
        let handler = &*self.handler;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // As in Python: a failed setup skips handle and finish; finish runs after handle
            // whatever handle returned.
            handler.setup(conn)?;
            let handled = handler.handle(conn);
            let finished = handler.finish(conn);
            handled.and(finished)
        }));
        let error: Option<HandlerError> = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(payload) => Some(Box::new(Error::HandlerPanicked(panic_message(&*payload)))),
        };
        let ok = error.is_none();
        if let Some(e) = error {
            // handle_error is user code too; a panic in it must not escape either.
            if catch_unwind(AssertUnwindSafe(|| handler.handle_error(&peer, &e))).is_err() {
                log::error!("handle_error panicked while reporting: {e}");
            }
        }
        ok
    }
}
