//! A threaded HTTP server: a new thread per connection (Python's `ThreadingTCPServer`).
//!
//! Run it:
//!     cargo run --example threaded_server                     # port 8000
//!     cargo run --example threaded_server -- --max-threads 4  # at most 4 at once
//!
//! Then, in a second terminal:
//!     cargo run --example client -- -n 10 http://127.0.0.1:8000/delay?s=1
//!
//! What to look for: ten parallel bars, a wall time of about 1 s, one pid and ten different
//! tids. The tids are the kernel's thread ids: while a long request runs, `ps -L -p <pid>` (or
//! `top -H`) lists the same numbers. With `--max-threads 4` the bars come in waves of four.
//!
//! Try `/cpu?ms=500` with `-n 2` too: Rust threads have no global interpreter lock, so two
//! CPU-bound requests finish together on two cores.
//!
//! Ctrl-C stops it gracefully: requests in flight finish (their threads are joined), exit 0.

use std::process::ExitCode;

use course::app::{self, Kind};

fn main() -> ExitCode {
    // Server::bind(addr, Threading::new(), HttpHandler::new(app::service)), see course/src/app.rs.
    app::main(Kind::Threading)
}
