//! A forking HTTP server: a new process per connection (Python's `ForkingTCPServer`).
//!
//! Run it:
//!     cargo run --example forking_server                      # port 8000, max 40 children
//!     cargo run --example forking_server -- --max-children 2  # at most 2 at once
//!     cargo run --example forking_server -- --no-reap         # watch zombies appear
//!
//! Then, in a second terminal:
//!     cargo run --example client -- -n 10 http://127.0.0.1:8000/delay?s=1
//!
//! What to look for: ten parallel bars and a wall time of about 1 s, like the threaded server,
//! but ten different *pids*, none of them the server's own (its pid is in its first log line).
//! While the requests run, `ps --ppid <server pid>` lists the children; a moment after they
//! finish the list is empty again, because the server reaps them every poll interval. With
//! `--no-reap`, `ps` shows them as `<defunct>`: zombies, until the cap forces a wait.
//!
//! Ctrl-C stops it gracefully: the children finish their requests (they ignore Ctrl-C; the
//! parent decides), the parent reaps every one, exit 0.

use std::process::ExitCode;

use course::app::{self, Kind};

fn main() -> ExitCode {
    // Server::bind(addr, Forking::new(), HttpHandler::new(app::service)), see course/src/app.rs; the
    // fork, the child's _exit and the reaping are in src/concurrency/forking.rs.
    app::main(Kind::Forking)
}
