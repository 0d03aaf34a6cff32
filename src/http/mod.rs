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
//! # The read loop
//! Each connection has one byte buffer. The loop asks the parser what the buffer holds
//! *before* it reads, so requests a client pipelined into one segment are answered in order
//! without waiting for more input. The parser ([`RequestReader`], or [`parse_request`] for one
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
//! | a request not complete within the read timeout of its first byte | 30 s | 408 |
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
//! # What one request costs
//! Measured on `threaded_server --port 0 --quiet` answering `GET /hello` from the bundled
//! client on loopback, before and after the issue-3 pass over this path (Linux x86-64, a
//! shared 2-core VM, November 2026; the counts below are deterministic for a given binary, but
//! another compiler, libc or kernel moves them):
//!
//! | per request | keep-alive before | keep-alive after | `--close` before | `--close` after |
//! |---|---|---|---|---|
//! | system calls (`strace -c -f`) | 5.0 | 2.0 | 31.1 | 28.9 |
//! | instructions, server (callgrind) | 8,944 | 5,710 | 45,132 | 24,435 |
//! | heap allocations (dhat) | 7.0 | 2.0 | 25.6 | 18.9 |
//!
//! Keep-alive: `client --load -c 4 -n 20000 URL/hello` under `strace -c -f`; `-n 2000` and
//! `-n 4000` under `valgrind --tool=callgrind` and `--tool=dhat`, the difference divided by
//! 2000 (so start-up is not counted). `--close`: the same with `--close`, 5000 requests under
//! strace and 1000/2000 under valgrind.
//!
//! What is left. Keep-alive: one `recvfrom` and one `sendto` per request, and the two
//! allocations are the application's (`Response::text`'s body and header list). Of the
//! instructions, about a third is parsing (two thirds of that in httparse), a third is
//! serializing, and the rest is the loop, five monotonic clock reads and one wall-clock read
//! (vDSO, no system call) and the service itself. `--close`: most of the system calls (about
//! 20 of 29) are `Threading` starting and ending a thread per connection (`clone3`, `mmap`,
//! `mprotect`, `sigaltstack`, `rt_sigprocmask`, ...); per connection the layer added
//! `setsockopt` three times (`TCP_NODELAY`, `SO_SNDTIMEO`, `SO_RCVTIMEO`; now once, see the
//! second pass below), `shutdown` once, and the accept loop its `poll` and `accept4` (one
//! `EAGAIN` per burst).
//!
//! What changed, each found in the profile first: the pid and thread id are remembered per
//! thread (were `getpid` twice and `gettid` once per request: three of the five system calls);
//! a connection's request buffers are recycled ([`RequestReader::recycle`]) and the parser no
//! longer boxes the request; httparse gets uninitialised header slots (a 4 KiB `memset` per
//! parse) and method, target and header names are kept in a `String`, so no accessor checks
//! UTF-8 again; `X-Start`/`X-Elapsed` are written with integer arithmetic (float formatting
//! was 17% of all instructions); the log line is built only if `log_enabled!`; the `Date` text
//! is shared by the process (under `Threading` a per-thread cache formatted it per connection);
//! a connection's first read buffer is 4 KiB, not a zeroed 16 KiB (valgrind counts the
//! `rep stosb` of that `memset` per byte, which overstates it, but it was real work); and the
//! connection sends `shutdown(Write)` once, not twice.
//!
//! A second pass, on [`Pool`](crate::Pool) with a connection per request (`pool_server
//! --threads 4`, 500 `curl -H 'Connection: close'` under `strace -c -f`): 14 system calls per
//! connection before, 10 after. Two were `setsockopt`: the read and write timeouts are now set
//! only when a read or a write first has to wait (the first read tries `MSG_DONTWAIT`, and so
//! does the first write), and on a connection whose request is already there and whose
//! response fits in the send buffer, neither ever does. Two were `futex`: the pool notified its
//! condition variables after every hand-over whether or not anyone waited; now it counts its
//! waiters. What is left per connection: `poll`, `accept4` twice (the second finds the queue
//! empty), `futex` twice (wake a worker, and the worker's wait), `setsockopt(TCP_NODELAY)`,
//! `recvfrom`, `sendto`, `shutdown`, `close`.
//!
//! Requests per second are a poorer measure on a shared machine: `client --load -c 32 -d 5s`,
//! alternating the two binaries, three rounds, gave 267k/287k, 245k/253k, 215k/232k
//! (before/after) with a load average above 60 from other builds, so the 3-8% gain per round
//! is a direction, not a number.
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
mod request;
mod response;
mod service;
mod status;

#[doc(hidden)]
pub use conn::{Answer, ConnConfig, HttpConn, LINGER_BYTES, LINGER_TIME, STOP_GRACE, SansIo, Want};
pub use request::{Limits, Parsed, Request, RequestReader, Version, parse_request};
pub use response::Response;
pub use service::{HttpHandler, Service};
pub use status::reason_phrase;
