//! A thread-pool HTTP server: a fixed set of worker threads fed by a bounded queue (the Rust
//! Book's pool, gunicorn's `gthread`). Python's socketserver has no such mixin.
//!
//! Run it:
//!     cargo run --example pool_server                    # 4 workers, port 8000
//!     cargo run --example pool_server -- --threads 8     # 8 workers
//!
//! Then, in a second terminal:
//!     cargo run --example client -- -n 10 http://127.0.0.1:8000/delay?s=1
//!
//! What to look for: the bars come in waves of four (4 + 4 + 2), a wall time of about 3 s, one
//! pid, and only four distinct tids, used again and again: the workers are started once and
//! reused, not started per request. Capacity is workers ÷ service time: 4 requests per second
//! here, however many clients come; the others wait in the queue, then in the kernel's backlog.
//! Compare `threaded_server` (about 1 s, ten tids) and `threaded_server -- --max-threads 4`
//! (waves too, but a new tid for every request).
//!
//! Keep-alive and slow clients: no connection holds a worker while its client is idle or slow.
//! Every connection lives in one reactor (epoll), which the workers take turns at; a worker
//! runs the service only on a complete request, then the connection waits in the reactor for
//! the next one (or is closed after the 5 s idle timeout). So four workers serve dozens of
//! kept-alive clients (docs/14-slow-clients.md; `--hand-off` gives the reactor a thread of its
//! own, `--blocking-workers` gives it up, for the comparison).
//!
//! Full: with every worker busy and the queue full (`--queue-size N`, default threads × 4),
//! the server waits: it stops reading and accepting, and new clients wait in the backlog.
//! `--shed-when-full SECS` refuses them instead, at once: `503 Service Unavailable` with
//! `Retry-After: SECS` (docs/appendix-choosing-a-strategy.md, "Backpressure"):
//!     cargo run --release --example pool_server -- --threads 2 --queue-size 2 --shed-when-full 1
//!     cargo run --release --example client -- -n 50 http://127.0.0.1:8000/delay?s=0.2
//!
//! Ctrl-C stops it gracefully: queued and in-flight requests finish, parked connections are
//! closed, the workers are joined, exit 0.

use std::process::ExitCode;

use course::app::{self, Kind};

fn main() -> ExitCode {
    // Server::bind(addr, Pool::new(4), HttpHandler::new(app::service)), see course/src/app.rs.
    app::main(Kind::Pool)
}
