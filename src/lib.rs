//! # socketserver
//!
//! Python's [`socketserver`](https://docs.python.org/3/library/socketserver.html), done properly
//! in Rust: a small TCP server library for Linux, generic over *how* requests run concurrently,
//! and teaching material that shows — in pids, thread ids and timings — what each way costs.
//!
//! ## Three axes
//! Python splits a server into three independent choices, and so does this crate:
//!
//! | axis | Python | here |
//! |---|---|---|
//! | transport | `TCPServer` (`server_bind`, `server_activate`) | [`listener`] (socket2: `SO_REUSEADDR`, backlog) |
//! | concurrency | `ThreadingMixIn`, `ForkingMixIn` | [`Concurrency`]: [`Sequential`], [`Threading`], [`Forking`], [`Pool`] |
//! | handler | `BaseRequestHandler` (`setup`, `handle`, `finish`) | [`RequestHandler`]; HTTP/1.1 in [`http`] |
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
//!     └── Pool         N reused worker threads, a bounded queue, idle keep-alive parked
//!
//!   Prefork: a master forks N workers, each its own Server<Sequential | Pool, H>
//!            on the shared listener (gunicorn sync / Apache prefork)
//! ```
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
//! * [`server`]: the accept loop, and why it polls.
//! * [`concurrency`]: the strategies, each with its trade-off essay.
//! * [`http`]: the HTTP/1.1 layer, its limits and status codes.
//! * [`trace`]: pid, kernel tid, seconds since start.
//! * [`app`]: the example servers' endpoints; [`client`]: the bundled client.
//! * The repository's `docs/` chapters and `examples/`.
#![deny(missing_docs)]

pub mod app;
pub mod client;
pub mod concurrency;
pub mod error;
pub mod handler;
pub mod http;
pub mod listener;
mod reactor;
pub mod server;
pub mod shutdown;
pub mod trace;

pub use concurrency::{Concurrency, Forking, Job, Pool, Prefork, PreforkServer, Sequential, Threading};
pub use error::{Error, HandlerError, Result};
pub use handler::{Connection, FnHandler, RequestHandler, ServerContext, handler_fn};
pub use server::{ForkingTcpServer, PoolTcpServer, Server, ServerBuilder, TcpServer, ThreadingTcpServer};
pub use shutdown::{ShutdownHandle, shutdown_on_signals};

/// The README's Rust examples, compiled and checked as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
