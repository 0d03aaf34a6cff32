//! # socketserver
//!
//! Python's [`socketserver`](https://docs.python.org/3/library/socketserver.html), done properly
//! in Rust: a small server library for Linux (TCP, Unix stream, UDP and Unix datagram sockets),
//! generic over *how* requests run concurrently,
//! and teaching material that shows — in pids, thread ids and timings — what each way costs.
//!
//! ## Three axes
//! Python splits a server into three independent choices, and so does this crate:
//!
//! | axis | Python | here |
//! |---|---|---|
//! | transport | `TCPServer`, `UnixStreamServer`, `UDPServer`, `UnixDatagramServer` | a value, not a type: [`Server::bind`], [`Server::bind_unix`], [`Server::bind_udp`], [`Server::bind_unix_datagram`] make a [`Listener`]; [`Addr`] and [`Stream`] cover them all |
//! | concurrency | `ThreadingMixIn`, `ForkingMixIn` | [`Concurrency`]: [`Sequential`], [`Threading`], [`Forking`], [`Pool`], [`EventLoop`]; [`Prefork`] above servers |
//! | handler | `BaseRequestHandler`, `StreamRequestHandler`, `DatagramRequestHandler` | [`RequestHandler`], [`StreamRequestHandler`], [`DatagramHandler`]; HTTP/1.1 in [`http`] |
//!
//! Why the transport is a value and not a third type parameter: above the socket nothing
//! differs between TCP and a Unix stream socket (every strategy, the HTTP layer and the reactor
//! see one [`Stream`] enum and one [`Addr`]), so a parameter would only lengthen every
//! signature. Datagrams *do* differ (no connection, a request is a packet), and there the type
//! says so: a datagram server is a `Server<C, Datagrams<D>>` with `D:` [`DatagramHandler`], so
//! a stream handler cannot be bound to a datagram socket, nor the reverse.
//!
//! Python glues the axes with mixins; Rust glues them with a type parameter:
//!
//! ```text
//! Python                                         Rust
//! ------                                         ----
//! BaseServer ── TCPServer                        Server<C: Concurrency, H: RequestHandler>
//! class ThreadingTCPServer(ThreadingMixIn,       type ThreadingTcpServer<H> = Server<Threading, H>
//!                          TCPServer)
//! class ForkingTCPServer(ForkingMixIn,           type ForkingTcpServer<H>   = Server<Forking, H>
//!                        TCPServer)
//! TCPServer (no mixin)                           type TcpServer<H>          = Server<Sequential, H>
//! (gunicorn's gthread; no Python mixin)          type PoolTcpServer<H>      = Server<Pool, H>
//! (asyncio, nginx; no Python mixin)              type EventLoopTcpServer<H> = Server<EventLoop, H>
//! UnixStreamServer (ThreadingUnixStreamServer,   Server::bind_unix(path, C, h): the same Server<C, H>
//!   ForkingUnixStreamServer)
//! UDPServer (ThreadingUDPServer, ...)            Server::bind_udp(addr, C, d): Server<C, Datagrams<D>>
//! UnixDatagramServer (ThreadingUnix..., ...)     Server::bind_unix_datagram(path, C, d)
//!
//!                     Server<C, H>
//!         ┌───────────────┼─────────────────┐
//!   Concurrency C                     RequestHandler H
//!   process_request                   setup / handle / finish
//!   service_actions                   verify_request / handle_error
//!   server_close                      (http::HttpHandler<S: Service> is one)
//!     ├── Sequential   inline on the accept thread
//!     ├── Threading    a thread per request   (block_on_close, daemon_threads, max_threads)
//!     ├── Forking      a process per request  (max_children = 40, reaping, _exit)
//!     ├── Pool         N reused worker threads at one reactor, a bounded queue
//!     └── EventLoop    every connection on a reactor, the service on its thread (timers, offload)
//!
//!   Prefork: a master forks N workers, each its own Server<Sequential | Pool, H>
//!            on the shared listener (gunicorn sync / Apache prefork)
//!
//!   Transport (the Listener): TCP v4/v6 · Unix stream · UDP · Unix datagram
//!     streams:   accept → Connection { Stream, Addr } → every strategy, HTTP
//!     datagrams: recvmsg(MSG_TRUNC) → one Datagram per request → Sequential,
//!                Threading, Forking (the child keeps the socket), Pool
//! ```
//!
//! ## The life of a connection
//! ```text
//! Server::bind                      socket, SO_REUSEADDR, bind, listen(SOMAXCONN), non-blocking
//! Server::serve_forever             until a ShutdownHandle asks it to stop:
//!     poll(listener, waker, poll_interval)
//!     accept (up to 64 per pass)
//!     RequestHandler::verify_request        on the accept thread: refuse cheaply
//!     Concurrency::process_request          inline / a thread / a fork / the pool's queue
//!         Dispatcher::run                   wherever the strategy chose:
//!             setup, handle, finish         panics caught here, errors to handle_error
//!             close                         shutdown(Write), then close
//!     Concurrency::service_actions          reap children, join finished threads
//! Server::server_close              close the listener; Concurrency::server_close waits
//! ```
//! Why a poll and not a blocking `accept`: Rust's std retries `accept` on `EINTR`, so a signal
//! would never wake it; the poll's timeout bounds how long `service_actions` waits, and the
//! shutdown handle's waker (an eventfd) makes a stop immediate.
//!
//! ## Call this, override this, configure this
//! * **Call** [`Server::bind`] (or [`ServerBuilder`]), [`Server::serve_forever`] or
//!   [`Server::handle_request`], [`Server::shutdown_handle`] and [`Server::server_close`];
//!   [`shutdown_on_signals`] for Ctrl-C and SIGTERM; [`Prefork::bind`] then
//!   [`PreforkServer::run`] for pre-forked workers.
//! * **Override** [`RequestHandler::handle`] (and `setup`, `finish`, `verify_request`,
//!   `handle_error`), or write only a closure: [`handler_fn`], or an HTTP
//!   [`Service`](http::Service) for [`HttpHandler`](http::HttpHandler). A new strategy
//!   implements [`Concurrency`] and ends in [`Dispatcher::run`].
//! * **Configure** the server with [`ServerBuilder`] and each strategy with its consuming
//!   setters; names and defaults are Python's where Python has them (`max_children = 40`,
//!   `poll_interval = 0.5 s`, `block_on_close = true`, `daemon_threads`, `request_queue_size`).
//!
//! ## What goes wrong in servers like this, and where it is handled
//! * **Fork in a multi-threaded process**: the child inherits locks held by threads that no
//!   longer exist. [`Forking`] warns, [`Prefork`] refuses; both children `_exit` and never
//!   return into the parent's loop (see [`Forking`], "The rules the child follows").
//! * **Zombies**: every child is reaped, by polling, never in a signal handler.
//! * **Signals**: the one handler ([`shutdown_on_signals`]) only sets an atomic and writes to
//!   an eventfd (Python's `set_wakeup_fd`); the stop happens in ordinary code. [`Prefork`]
//!   blocks its signals and reads them from a `signalfd`.
//! * **Slow clients** pin threads: the HTTP layer has header and idle timeouts and size limits
//!   by default, and the [`Pool`] keeps every HTTP connection on a reactor, lending a thread
//!   only to a complete request.
//! * **`shutdown()` from a handler** deadlocks in Python: here it is refused with
//!   [`Error::ShutdownFromHandler`].
//!
//! ## Example: serve, connect, stop (runs as a doctest)
//! A threaded echo server on a free port, one client round trip, and a clean stop from another
//! thread:
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use socketserver::{Server, Threading, handler_fn};
//!
//! let echo = handler_fn(|conn| {
//!     let mut line = String::new();
//!     BufReader::new(conn.stream()).read_line(&mut line)?;
//!     conn.stream().write_all(line.as_bytes())?;
//!     Ok(())
//! });
//! let mut server = Server::bind("127.0.0.1:0", Threading::new(), echo)?; // port 0: any free one
//! let addr = server.local_addr();
//! let stop = server.shutdown_handle();
//! let serving = std::thread::spawn(move || {
//!     server.serve_forever()?;
//!     server.server_close(); // joins the request threads
//!     Ok::<(), socketserver::Error>(())
//! });
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello\n")?;
//! let mut reply = String::new();
//! BufReader::new(&client).read_line(&mut reply)?;
//! assert_eq!(reply, "hello\n");
//!
//! stop.shutdown()?; // returns once serve_forever has returned
//! serving.join().unwrap()?;
//! # Ok::<(), socketserver::Error>(())
//! ```
//!
//! ## Example: the same echo server, stopped by Ctrl-C
//! ```no_run
//! use std::io::{BufRead, BufReader, Write};
//! use socketserver::{ThreadingTcpServer, Threading, handler_fn, shutdown_on_signals};
//!
//! fn main() -> Result<(), socketserver::Error> {
//!     let echo = handler_fn(|conn| {
//!         let mut line = String::new();
//!         BufReader::new(conn.stream()).read_line(&mut line)?;
//!         conn.stream().write_all(line.as_bytes())?;
//!         Ok(())
//!     });
//!     let mut server: ThreadingTcpServer<_> =
//!         socketserver::Server::bind("127.0.0.1:9999", Threading::new(), echo)?;
//!     shutdown_on_signals(server.shutdown_handle())?; // Ctrl-C: stop, finish, exit 0
//!     server.serve_forever()?;
//!     server.server_close(); // joins in-flight request threads (block_on_close)
//!     Ok(())
//! }
//! ```
//!
//! ## Example: an HTTP server, forking
//! ```no_run
//! use socketserver::http::{HttpHandler, Request, Response};
//! use socketserver::{Forking, Server, trace::Who};
//!
//! let hello = HttpHandler::new(|_req: &Request| Response::text(200, format!("hello from {}\n", Who::current())));
//! let mut server = Server::bind("127.0.0.1:8000", Forking::new().max_children(8), hello)?;
//! server.serve_forever()?;
//! # Ok::<(), socketserver::Error>(())
//! ```
//!
//! ## Where to read on
//! * Each type's docs: [`Server`], [`Sequential`], [`Threading`], [`Forking`], [`Pool`],
//!   [`Prefork`], [`RequestHandler`], [`Connection`], [`ShutdownHandle`], each with its design
//!   and trade-off.
//! * [`http`]: the HTTP/1.1 layer, its limits and status codes. [`trace`]: pid, kernel tid,
//!   seconds since start.
//! * The repository's `course/` crate: the example servers' endpoints and the bundled client.
//! * The repository's `docs/` chapters and `examples/`; what things cost, measured (system
//!   calls, wake-ups, requests per second), is in docs/costs.md and docs/benchmarks.md, not
//!   here, because figures go stale and the design does not.
//!
//! ## Source layout
//! `server.rs` (the accept loop, [`ServerBuilder`]), `transport/` (`addr.rs`, `stream.rs`,
//! `listener.rs`: the sockets and the Unix socket file's rules), `handler/` (`mod.rs`, and
//! `stream.rs`, `datagram.rs` for the two Python handler classes), `shutdown.rs`, `error.rs`, `concurrency/` (one file per strategy,
//! `dispatcher.rs`, `prefork/` with `master.rs` and `worker.rs`), `http/`, `trace.rs`, and
//! `sys.rs`: the OS plumbing written once (waking a thread, one-descriptor waits, the signal
//! thread, fork and `_exit`), the one file with `unsafe` in it.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod concurrency;
mod error;
mod handler;
pub mod http;
mod reactor;
mod server;
mod shutdown;
mod sys;
pub mod trace;
mod transport;

pub use concurrency::{
    Concurrency, Dispatcher, EventLoop, Forking, Pool, Prefork, PreforkServer, Sequential, Threading,
};
pub use error::{Error, HandlerError, Result};
pub use handler::{
    Connection, Datagram, DatagramHandler, Datagrams, FnDatagramHandler, FnHandler, RequestHandler,
    ServerContext, StreamIo, StreamRequestHandler, datagram_fn, handler_fn,
};
pub use server::{
    EventLoopTcpServer, ForkingTcpServer, ForkingUdpServer, ForkingUnixDatagramServer,
    ForkingUnixStreamServer, PoolTcpServer, Server, ServerBuilder, TcpServer, ThreadingTcpServer,
    ThreadingUdpServer, ThreadingUnixDatagramServer, ThreadingUnixStreamServer, UdpServer,
    UnixDatagramServer, UnixStreamServer,
};
pub use shutdown::{ShutdownHandle, shutdown_on_signals};
pub use transport::{Addr, Listener, Stream};

/// The README's Rust examples, compiled and checked as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
