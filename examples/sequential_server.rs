//! A sequential HTTP server: one request at a time, on one thread (Python's `TCPServer`).
//!
//! Run it:
//!     cargo run --example sequential_server              # port 8000
//!     cargo run --example sequential_server -- --port 0  # any free port
//!
//! Then, in a second terminal, fire ten 1-second requests at the same instant:
//!     cargo run --example client -- -n 10 http://127.0.0.1:8000/delay?s=1
//!
//! What to look for: the client's timeline is a staircase, the wall time about 10 s, and every
//! request names the same pid and tid. The server's log shows each request starting only when
//! the previous one has ended (the `+s` offsets climb by 1 s). While one request sleeps the server
//! is deaf: the other nine wait in the kernel's listen backlog.
//!
//! Ctrl-C (or `kill`) stops it gracefully: the request in flight finishes, then it exits 0.

use std::process::ExitCode;

use course::app::{self, Kind};

fn main() -> ExitCode {
    // The whole program is app::main: the server is
    //     Server::bind(addr, Sequential, HttpHandler::new(app::service))
    // plus argument parsing, the banner line, and shutdown on SIGINT/SIGTERM (course/src/app.rs).
    app::main(Kind::Sequential)
}
