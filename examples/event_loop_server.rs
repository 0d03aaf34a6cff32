//! An event-loop HTTP server: every connection on one reactor (epoll), and the service run on
//! the loop's own thread — asyncio, Node, an nginx worker. Python's socketserver has no such
//! mixin.
//!
//! Run it:
//!     cargo run --release --example event_loop_server                  # one loop, port 8000
//!     cargo run --release --example event_loop_server -- --threads 2   # two loops
//!     cargo run --release --example event_loop_server -- --offload 10  # /cpu, /block on 10 workers
//!
//! Then, in a second terminal:
//!     cargo run --example client -- -n 100 http://127.0.0.1:8000/delay?s=1
//!     cargo run --example client -- -n 10 http://127.0.0.1:8000/block?s=1
//!
//! What to look for: a hundred `/delay?s=1` take about 1 s, all with the *same* tid: `/delay`
//! is a timer of the loop (`Reply::after`, Python's `await asyncio.sleep(1)`), and the loop
//! serves everybody else while it runs. Ten `/block?s=1` take about 10 s, one after the
//! other, on that same tid: `/block` sleeps the loop thread itself, and while it sleeps nobody
//! is served — the one rule of an event loop is never to block it. `/cpu` computes on the loop
//! (it blocks it too). With `--offload M`, `/block` and `/cpu` run on one of M worker threads
//! (asyncio's `run_in_executor`) and the loop stays free: ten `/block?s=1` take about 1 s.
//!
//! Ctrl-C stops it gracefully: idle connections are closed, every request already read is
//! answered (those waiting on a timer or an offload worker too), exit 0.

use std::process::ExitCode;

use course::app::{self, Kind};

fn main() -> ExitCode {
    // Server::bind(addr, EventLoop::new().threads(1), HttpHandler::new(app::service)), see
    // course/src/app.rs.
    app::main(Kind::EventLoop)
}
