//! The concurrency axis ("the mixins"): one file per strategy, each with its trade-off on the
//! strategy's type docs, and the [`Dispatcher`] that every strategy calls.
//!
//! The crate docs (`src/lib.rs`) draw the whole picture; the [`Concurrency`] trait's docs are
//! the contract a strategy implements.

use crate::handler::{Connection, RequestHandler};

mod dispatcher;
mod event_loop;
mod forking;
mod pool;
mod prefork;
mod sequential;
mod threading;

pub use dispatcher::Dispatcher;
pub use event_loop::EventLoop;
pub use forking::Forking;
pub use pool::Pool;
pub use prefork::{Prefork, PreforkServer};
pub use sequential::Sequential;
pub use threading::Threading;

/// A concurrency strategy: the hooks Python's `ThreadingMixIn` and `ForkingMixIn` override.
///
/// Python composes this axis with mixins that override three methods of `BaseServer`; in Rust
/// the mixin becomes a type parameter (`class ForkingTCPServer(ForkingMixIn, TCPServer)` is
/// `type ForkingTcpServer<H> = Server<Forking, H>`), and the three methods are this trait:
///
/// | hook | Python | what it does |
/// |---|---|---|
/// | [`process_request`](Concurrency::process_request) | `ThreadingMixIn.process_request` | handle inline, start a thread, or fork |
/// | [`service_actions`](Concurrency::service_actions) | `ForkingMixIn.service_actions` | once per loop pass: reap children, drop finished threads |
/// | [`server_close`](Concurrency::server_close) | `ThreadingMixIn.server_close` | wait for (or stop) what is still running |
///
/// The crate's strategies: [`Sequential`](crate::Sequential) (inline on the accept thread),
/// [`Threading`](crate::Threading) (a thread per connection), [`Forking`](crate::Forking) (a
/// process per connection), [`Pool`](crate::Pool) (fixed worker threads that take turns at one
/// reactor, so no connection holds a thread while its client is slow or idle), [`EventLoop`](crate::EventLoop) (every connection on
/// one reactor thread, the service run there too). [`Prefork`](crate::Prefork) sits *above* servers
/// rather than inside one.
///
/// # Override this (writing your own)
/// Implement [`name`](Concurrency::name) and [`process_request`](Concurrency::process_request),
/// which must end, on whichever thread or in whichever process the connection should be
/// handled, in [`Dispatcher::run`]: it runs the handler's hooks, catches a panic, and closes
/// the connection. The other hooks have defaults.
///
/// All hooks are called on the thread that runs `serve_forever`.
pub trait Concurrency {
    /// A short name for logs and banners (`"threading"`).
    fn name(&self) -> &'static str;

    /// Handles one accepted connection: by calling `dispatcher.run(conn)` here (sequential), on
    /// a new thread, in a child process, ... It must not return an error: whatever happens to
    /// one request is that request's business, and the server goes on.
    fn process_request<H: RequestHandler>(&mut self, conn: Connection, dispatcher: &Dispatcher<H>);

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

    /// Hidden (the [`EventLoop`](crate::EventLoop)'s): called when `serve_forever` starts. A
    /// strategy whose own threads accept from `listener` (calling `verify_request`
    /// themselves) starts or resumes that and returns `true`; `serve_forever` then only waits
    /// for a shutdown, running `service_actions` every `poll_interval`, and calls
    /// [`stop_accepting`](Concurrency::stop_accepting) when it returns. Default: `false`, the
    /// server's thread accepts and calls `process_request`.
    #[doc(hidden)]
    fn accept_on_own_threads<H: RequestHandler>(
        &mut self,
        listener: &crate::transport::Listener,
        dispatcher: &Dispatcher<H>,
    ) -> bool {
        let _ = (listener, dispatcher);
        false
    }

    /// Hidden: whether the strategy can run a datagram server's requests (which have no stream
    /// to put on a reactor). Default `true`; the [`EventLoop`](crate::EventLoop) says `false`,
    /// and binding a datagram server with it is refused.
    #[doc(hidden)]
    fn serves_datagrams(&self) -> bool {
        true
    }

    /// Hidden: `serve_forever` is returning; a strategy that accepts on its own threads stops
    /// accepting (connections wait in the backlog). Default: nothing.
    #[doc(hidden)]
    fn stop_accepting(&mut self) {}
}
