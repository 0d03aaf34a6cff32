//! A pre-forking HTTP server: a master and N worker processes, each with its own accept loop
//! (gunicorn's sync workers, Apache's prefork).
//!
//! Run it:
//!     cargo run --example prefork_server -- --workers 4               # 4 workers, 1 request each
//!     cargo run --example prefork_server -- --workers 2 --threads 4   # 2 workers × 4 threads
//!     cargo run --example prefork_server -- --workers 4 --reuse-port  # a socket per worker
//!     cargo run --example prefork_server -- --workers 16 --wake-all   # the thundering herd
//!     cargo run --example prefork_server -- --workers 2 --event-loop  # nginx: a loop per worker
//!
//! The master logs its pid and each worker's as it boots them. Then, in a second terminal:
//!     cargo run --example client -- -n 10 http://127.0.0.1:8000/delay?s=1
//!
//! What to look for:
//! * Waves: ten one-second requests against four sequential workers take about 3 s, in waves of
//!   4, 4 and 2, and the pids in the replies are the same four worker pids over and over — never
//!   the master's. The fork was paid once, at start-up; capacity is workers × threads.
//! * `kill -TTIN <master pid>`: the master boots a fifth worker (its pid in the log);
//!   `kill -TTOU <master pid>`: the oldest worker finishes what it is doing and exits.
//! * `kill -9 <worker pid>`: the master logs the death and boots a replacement with a new pid;
//!   `ps --ppid <master pid>` shows four workers again, and no `<defunct>` zombie.
//! * The herd: workers share one listener and wait for it with `EPOLLEXCLUSIVE`, so a connection
//!   wakes one of them; with `--wake-all` they `poll` it and every connection wakes them all.
//!   `strace -c -f -p <worker pids>` shows the wasted `accept` calls (`EAGAIN`); docs chapter 5.
//! * `--event-loop`: each worker is one event loop (nginx's architecture, chapter 13): ten
//!   `/delay?s=1` take about 1 s even on two workers, and the replies name two pids at most,
//!   each with a single tid. `/block` stalls the worker it lands on (`--offload M` moves it to
//!   M threads of that worker).
//! * `kill <master pid>` (SIGTERM) during a slow request: the request finishes, every worker exits,
//!   the master reaps them and exits 0. Ctrl-C does the same, waiting at most 2 s; a second
//!   Ctrl-C kills the workers at once. Kill the master with -9 and the workers notice
//!   (PR_SET_PDEATHSIG) and exit on their own.

use std::process::ExitCode;

use course::app::{self, Kind};

fn main() -> ExitCode {
    // Prefork::new(workers).bind(addr)?.run(HttpHandler::new(app::service)), see course/src/app.rs; the
    // master loop, the fork and the workers' _exit are in src/concurrency/prefork.rs.
    app::main(Kind::Prefork)
}
