//! [`Dispatcher`]: what a strategy calls to run the handler on one connection.
//!
//! The seam between the two axes: the server owns the handler and makes one `Dispatcher`; the
//! concurrency strategy decides where `run` happens. Everything a request boundary must
//! guarantee lives here once, whatever the strategy: `setup`/`handle`/`finish` in Python's
//! order, a panic caught before it can unwind into an accept loop, a worker or a forked child's
//! copy of the parent, errors reported to `handle_error`, the connection closed (or, for a
//! parking strategy, kept).

use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, HandlerError, panic_message};
use crate::handler::{Connection, RequestHandler};
use crate::shutdown::HandlerScope;

/// A server's dispatcher: runs the request handler on one connection, wherever the strategy
/// decides that happens (inline, on a thread, in a forked child). Python's `finish_request`
/// plus `shutdown_request`.
///
/// # Call this
/// A [`Concurrency`](crate::Concurrency) strategy receives one in
/// [`process_request`](crate::Concurrency::process_request) and calls
/// [`run`](Dispatcher::run) with the connection, on whichever thread or process should handle
/// it. Nothing to override or configure: the server makes it, one per server.
///
/// Cheap to clone (an `Arc` and two integers), `Send` when the handler is, so a strategy can
/// move a clone to a thread.
#[derive(Debug)]
pub struct Dispatcher<H> {
    handler: Arc<H>,
    server_id: u64,
    listener_fd: Option<RawFd>,
}

impl<H> Clone for Dispatcher<H> {
    fn clone(&self) -> Self {
        Dispatcher {
            handler: Arc::clone(&self.handler),
            server_id: self.server_id,
            listener_fd: self.listener_fd,
        }
    }
}

impl<H: RequestHandler> Dispatcher<H> {
    pub(crate) fn new(handler: Arc<H>, server_id: u64, listener_fd: Option<RawFd>) -> Dispatcher<H> {
        Dispatcher { handler, server_id, listener_fd }
    }

    /// Which server this dispatcher belongs to (what `HandlerScope` checks a handler's
    /// `shutdown()` against).
    pub(crate) fn server_id(&self) -> u64 {
        self.server_id
    }

    /// The request handler.
    pub(crate) fn handler(&self) -> &Arc<H> {
        &self.handler
    }

    /// The raw descriptor of the server's listening socket, which a forked child closes (see
    /// [`Forking`](crate::Forking)); nothing else should touch it. `None` on a datagram server:
    /// there the child answers on that very socket, so it must keep it.
    pub(crate) fn listener_fd(&self) -> Option<RawFd> {
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

    /// Like [`run`](Dispatcher::run), for strategies that park connections
    /// ([`Pool`](crate::Pool)): if the handler
    /// succeeded *and* called [`Connection::park`], the connection is returned, still open, with
    /// the requested idle timeout, instead of being closed; the strategy watches it and calls
    /// `run_parkable` again when it is readable. Otherwise the connection is closed and `None`
    /// returned.
    ///
    /// The strategy must have offered parking ([`Connection::can_park`]); a park request left
    /// over from an earlier call is cleared before the handler runs.
    pub(crate) fn run_parkable(&self, mut conn: Connection) -> Option<(Connection, Duration)> {
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
        let peer = conn.peer_addr().clone();
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
