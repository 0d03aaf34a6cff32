//! HTTP/1.1 on top of [`RequestHandler`](crate::RequestHandler): Python's
//! `BaseHTTPRequestHandler`, with the limits and timeouts a real server needs.
//!
//! [`HttpHandler`] is one more handler. It owns the connection loop; the application is a
//! [`Service`], any `Fn(&Request) -> Response`:
//!
//! ```no_run
//! use socketserver::http::{HttpHandler, Request, Response};
//! let handler = HttpHandler::new(|req: &Request| Response::text(200, format!("you asked for {}\n", req.path())));
//! # let _ = handler;
//! ```
//!
//! # A connection with no I/O in it, and two drivers
//! The connection itself (`conn.rs`: buffers, parser, keep-alive, deadlines, what to write) is a
//! state machine that does no I/O and reads no clock: bytes in, requests out; answers in, bytes
//! out; and at every step what it *wants* next (read, write, the service, close) and by when (a
//! deadline). The h11 / quinn-proto idea: the protocol is tested and fuzzed as a pure function,
//! and two thin drivers share it:
//!
//! - the **blocking driver**, [`HttpHandler`]'s `handle`: read (the socket's timeouts set from
//!   the deadline), call the service, write, until the machine says close. `Sequential`,
//!   `Threading`, `Forking` and sync `Prefork` workers run it, one thread per connection.
//! - the **non-blocking driver**, the [`Pool`](crate::Pool)'s reactor: every connection on one
//!   `epoll`, a worker lent only to run the service on a complete request.
//!
//! Both answer a given input with the same bytes (`tests/http_conn.rs` runs one table of cases
//! through both).
//!
//! # The read loop
//! Each connection has one byte buffer. The loop asks the parser what the buffer holds
//! *before* it reads, so requests a client pipelined into one segment are answered in order
//! without waiting for more input, and their answers gathered into one write. The parser ([`RequestReader`], or [`parse_request`] for one
//! shot) is a pure function of the bytes: it does no I/O and answers one of
//!
//! - [`Parsed::Partial`]: not a whole request yet. This is a *state*, not an error, exactly as
//!   `httparse::Status::Partial` is: read more and ask again;
//! - [`Parsed::Complete`]: a request, and how many bytes it took;
//! - [`Parsed::Error`]: a status code to refuse the request with.
//!
//! Because it is pure, the tests feed every input whole, byte by byte, and split at every
//! position, and require the same answer; the body (by `Content-Length` or chunked) is decoded
//! incrementally by the same reader, so a body is scanned once however it is split.
//!
//! # Limits
//! Every limit is enforced while the request is still partial, so a client cannot make the
//! server buffer more than the limit by simply never finishing.
//!
//! | what | limit | status |
//! |---|---|---|
//! | request line without a line feed | 8 KiB ([`Limits::max_request_line`]) | 414 |
//! | header fields | 100 ([`Limits::max_headers`]) | 431 |
//! | header section | 64 KiB ([`Limits::max_header_bytes`]) | 431 |
//! | body (`Content-Length`, decided before reading it; or chunked, as it decodes) | 1 MiB ([`Limits::max_body`]) | 413 |
//! | malformed syntax (an HTTP/0.9 request line, a space before a header's colon, an obs-fold continuation line, a control byte in the target or a header value); `Content-Length` and `Transfer-Encoding` together; a `Content-Length` that is not plain digits, or two that differ; HTTP/1.1 without `Host`; bad chunk framing; a target that is not UTF-8 | | 400 |
//! | a `Transfer-Encoding` other than exactly `chunked` | | 501 |
//! | a version other than HTTP/1.0 and 1.1 (the HTTP/2 preface `PRI * HTTP/2.0` too) | | 505 |
//! | a request head (request line and headers) not complete within the header timeout of its first byte (nginx's `client_header_timeout`; slowloris) | 10 s | 408 |
//! | a request body arriving slower than the minimum body rate, after a grace (Apache's `mod_reqtimeout` `MinRate`; a slow POST) | 500 B/s after 10 s | 408 |
//! | a request not complete within the read timeout of its first byte | 30 s | 408 |
//! | a response read slower than the minimum send rate, after a grace (a slow reader) | 500 B/s after 10 s | connection closed (the response is half-sent) |
//! | a write that makes no progress for the write timeout | 30 s | connection closed |
//!
//! Every status the layer generates itself goes out with `Connection: close`, and the
//! connection is then closed: after a framing error the server can no longer tell where the
//! next request would start.
//!
//! # Keep-alive
//! HTTP/1.1 connections stay open unless the request's `Connection` header lists `close`;
//! HTTP/1.0 ones close unless it lists `keep-alive` (then the response says
//! `Connection: keep-alive`). The server closes anyway (and says `Connection: close`) if
//! keep-alive is switched off, the service set `Connection: close`, the service panicked, or
//! the server is shutting down. Between requests a connection may be idle for the idle timeout
//! (5 s); then it is closed without a word, since there is no request to answer. A client that
//! resets the connection or closes it is not an error: the handler returns `Ok`.
//!
//! # One write per response
//! Status line, headers and body are serialized into one reused buffer and sent with one
//! `write_all`, on a socket with `TCP_NODELAY`. Separate writes would either go out as
//! separate small segments or, with Nagle's algorithm, wait for the client's delayed ACK.
//!
//! # What one request costs, and why
//! The hot path was cut down by measuring first (system calls with `strace -c -f`, instructions
//! with callgrind, allocations with dhat); the figures, before and after, and how to reproduce
//! them are in docs/costs.md, "One HTTP request". What the design keeps from that work:
//!
//! - **No system call the request does not need.** The pid and thread id in the trace headers
//!   and the log line are remembered per thread, not asked of the kernel per request. The read
//!   and write timeouts are set only when a read or a write first has to wait (the first read
//!   tries `MSG_DONTWAIT`, and so does the first write): on a connection whose request is
//!   already there and whose response fits in the send buffer, neither `setsockopt` happens.
//!   The connection sends `shutdown(Write)` once. The socket options a connection needs
//!   (`TCP_NODELAY`, and `TCP_NOTSENT_LOWAT` for slow readers, [`HttpHandler::unsent_limit`])
//!   cost a `setsockopt` each per connection on the blocking path, and the unsent limit none
//!   on a reactor that accepts for itself: it sets it once on its listener, and every
//!   accepted socket inherits it.
//! - **No allocation the request does not need.** A connection's request buffers are recycled
//!   ([`RequestReader::recycle`]); the parser does not box the request; method, target and
//!   header names are kept in one `String`, so no accessor checks UTF-8 again; the log line is
//!   built only if its level is enabled; the `Date` text is shared by the process.
//! - **No work the request does not need.** httparse gets uninitialised header slots (no
//!   `memset` per parse), a connection's first read buffer is 4 KiB rather than a zeroed
//!   16 KiB, and `X-Start`/`X-Elapsed` are written with integer arithmetic, not float
//!   formatting.
//!
//! Keep-alive is what makes a request cheap: on a kept connection what is left is one `recv`
//! and one `send`. A connection per request pays the accept loop, the strategy (a thread start
//! under [`Threading`](crate::Threading)) and the socket's set-up and teardown.
//!
//! # What every response carries
//! `Content-Length` (except 1xx, 204 and 304, which have no body; RFC 9110 forbids the header
//! on 1xx and 204), `Date`, `Server`, and, unless switched off, the trace headers `X-Pid`,
//! `X-Tid`, `X-Start` and `X-Elapsed` that let a reader see which process and thread served a
//! request, and when.

mod chunked;
mod conn;
#[doc(hidden)]
pub mod conn_cases;
mod date;
mod reply;
mod request;
mod response;
mod service;
mod status;

#[doc(hidden)]
pub use conn::{Answer, ConnConfig, HttpConn, LINGER_BYTES, LINGER_TIME, STOP_GRACE, SansIo, Want};
pub use reply::Reply;
#[doc(hidden)]
pub use reply::{Later, Work};
pub use request::{Limits, Parsed, Request, RequestReader, Version, parse_request};
pub use response::Response;
pub(crate) use service::limit_unsent;
pub use service::{DEFAULT_UNSENT_LIMIT, HttpHandler, Service};
pub use status::reason_phrase;
