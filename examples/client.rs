//! Fire N requests at a server at the same instant and see how it handled them.
//!
//! Run a server in one terminal, the client in another:
//!
//! ```text
//! cargo run --example sequential_server            # or threaded_server, forking_server, ...
//! cargo run --example client -- -n 5 http://127.0.0.1:8000/delay?s=1
//! ```
//!
//! What to look for:
//!
//! * `done at` in the table: against a sequential server the answers come back one second
//!   apart (1, 2, 3, 4, 5 s); against a threaded or forking one they all come back after
//!   about one second.
//! * the timeline: a staircase under a single `pid ... tid ...` heading means one at a time;
//!   parallel bars under five `tid` headings (threads) or five `pid` headings (processes)
//!   mean concurrently. `-` is time a request spent waiting (in the accept backlog, say).
//! * the summary's `most in flight` and `verdict` lines say the same in words.
//!
//! Try `-n 50` against the pool server (its pool is smaller than 50), or a URL on a port
//! where nothing listens, to see how failures are reported.
//!
//! Exit status: 0 if every request got a response (any status), 1 if any failed, 2 for a
//! usage error.

use std::process::ExitCode;

use socketserver::client::cli::{self, Command, Mode};
use socketserver::client::fire;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(reason) => {
            eprintln!("client: {reason}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match args.mode {
        Mode::Fire => {
            let report = fire(&args.fire_config());
            print!("{report}");
            if report.all_answered() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        // The load mode (a steady stream of requests, latency percentiles) will get its arm
        // here. `Mode` is non_exhaustive, so this arm is required until then.
        _ => {
            eprintln!("client: this mode is not built yet");
            ExitCode::from(2)
        }
    }
}
